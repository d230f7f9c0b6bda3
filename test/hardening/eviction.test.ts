/**
 * #10.6: Redis under a `maxmemory-policy` that evicts can drop whole queue structures. `start()`
 * says so (or refuses, with `requireNoEviction`), and the periodic sweep repairs bookkeeping
 * that eviction left inconsistent and reports what was lost, so `flushAndWait` and
 * `pendingCount` always terminate and tell the truth.
 */
import type { Redis } from 'ioredis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import {
  EmbeddingBatchQueue,
  EmbeddingFailedError,
  EvictionPolicyError,
  LostToEvictionError,
  type QueueOptions,
  queueKeys,
} from '../../src/index.js'
import type { Logger } from '../../src/logger.js'
import { fakeEmbedder, fakeVector, uniqueName, waitFor } from '../helpers/fixtures.js'
import { type RedisServer, startRedisServer } from '../helpers/redis-server.js'

const queues: EmbeddingBatchQueue[] = []
afterEach(async () => {
  await Promise.allSettled(queues.splice(0).map((q) => q.stop()))
})

function queue(redis: Redis, opts: Partial<QueueOptions> = {}): EmbeddingBatchQueue {
  const q = new EmbeddingBatchQueue({
    redis,
    embedder: fakeEmbedder(),
    name: uniqueName(),
    flushIntervalMs: 60_000,
    ...opts,
  })
  queues.push(q)
  return q
}

function recordingLogger(): Logger & { warnings: unknown[][] } {
  const warnings: unknown[][] = []
  const noop = (): void => {}
  return { warnings, debug: noop, info: noop, error: noop, warn: (...a: unknown[]) => warnings.push(a) }
}

describe('#10.6 start() reads the eviction policy', () => {
  let lru: RedisServer
  let lruRedis: Redis
  let safe: RedisServer
  let safeRedis: Redis
  beforeAll(async () => {
    ;[lru, safe] = await Promise.all([
      startRedisServer({ args: ['--maxmemory', '64mb', '--maxmemory-policy', 'allkeys-lru'] }),
      startRedisServer({ args: ['--maxmemory', '64mb', '--maxmemory-policy', 'noeviction'] }),
    ])
    lruRedis = lru.client()
    safeRedis = safe.client()
  })
  afterAll(async () => {
    lruRedis?.disconnect()
    safeRedis?.disconnect()
    await Promise.all([lru?.destroy(), safe?.destroy()])
  })

  it('warns through the logger and the error event unless the policy is noeviction', async () => {
    const logger = recordingLogger()
    const q = queue(lruRedis, { logger })
    const errors: Error[] = []
    q.on('error', (e) => errors.push(e))
    await q.start()
    expect(q.isRunning).toBe(true)
    expect(errors[0]).toBeInstanceOf(EvictionPolicyError)
    expect((errors[0] as EvictionPolicyError).policies).toEqual({ '': 'allkeys-lru' })
    expect(errors[0]!.message).toContain('allkeys-lru')
    expect(logger.warnings).toHaveLength(1)
    expect(String(logger.warnings[0]![1])).toContain('noeviction')
  })

  it('requireNoEviction makes it fatal: start() rejects and nothing drains', async () => {
    const q = queue(lruRedis, { requireNoEviction: true })
    await expect(q.start()).rejects.toBeInstanceOf(EvictionPolicyError)
    expect(q.isRunning).toBe(false)
  })

  it('says nothing under noeviction', async () => {
    const logger = recordingLogger()
    const q = queue(safeRedis, { logger, requireNoEviction: true })
    const errors: Error[] = []
    q.on('error', (e) => errors.push(e))
    await q.start()
    expect(errors).toEqual([])
    expect(logger.warnings).toEqual([])
  })
})

describe('#10.6 the sweep repairs what eviction left inconsistent', () => {
  let server: RedisServer
  let redis: Redis
  beforeAll(async () => {
    server = await startRedisServer()
    redis = server.client()
  })
  afterAll(async () => {
    redis?.disconnect()
    await server?.destroy()
  })

  it('ghost versions become dead letters, surviving texts are requeued, flushAndWait and pendingCount tell the truth', async () => {
    const name = uniqueName()
    const k = queueKeys('embedq', name)
    const producer = queue(redis, { name, worker: false })
    const jobs = await producer.enqueueMany(
      Array.from({ length: 10 }, (_, i) => ({ key: `ev:${i}`, text: `text ${i}` })),
    )
    // What eviction does, entry by entry:
    await redis.hdel(k.jobs, 'ev:0', 'ev:1') // text gone, version left: ghosts
    await redis.zrem(k.pending, 'ev:2') // text and version left, queued nowhere
    await redis.zrem(k.versions, 'ev:3') // text left without a version
    await redis.zrem(k.versions, 'ev:4') // only the pending entry is left
    await redis.hdel(k.jobs, 'ev:4')
    expect(await producer.pendingCount()).toBe(8) // the lie the sweep must correct

    const worker = queue(redis, { name, reclaimIntervalMs: 200, pollIntervalMs: 20 })
    const errors: Error[] = []
    worker.on('error', (e) => errors.push(e))
    await worker.start()
    const r = await worker.flushAndWait({ timeoutMs: 10_000 })
    expect(r.drained).toBe(true)
    expect(await worker.pendingCount()).toBe(0)

    const reports = errors.filter((e): e is LostToEvictionError => e instanceof LostToEvictionError)
    expect(reports.flatMap((e) => e.lost).sort()).toEqual(['ev:0', 'ev:1', 'ev:4'])
    expect(reports.flatMap((e) => e.requeued).sort()).toEqual(['ev:2', 'ev:3'])
    expect((await worker.stats()).local.lostToEviction).toBe(3)
    const letters = await worker.failed()
    expect(letters.map((l) => l.key).sort()).toEqual(['ev:0', 'ev:1', 'ev:4'])
    expect(letters.every((l) => l.error === 'lost to eviction')).toBe(true)

    // Waiters of lost items reject; every other item, requeued ones included, is embedded.
    for (const i of [0, 1, 4]) await expect(jobs[i]!.result).rejects.toBeInstanceOf(EmbeddingFailedError)
    for (const i of [2, 3, 5, 6, 7, 8, 9])
      expect(Array.from(await jobs[i]!.result)).toEqual(Array.from(fakeVector(`text ${i}`, 8)))
    expect(await redis.exists(k.jobs, k.versions, k.pending, k.delayed, k.inflight)).toBe(0)
  })

  it('a whole evicted jobs hash never leaves flushAndWait waiting forever', async () => {
    const name = uniqueName()
    const k = queueKeys('embedq', name)
    const producer = queue(redis, { name, worker: false })
    const jobs = await producer.enqueueMany(
      Array.from({ length: 300 }, (_, i) => ({ key: `whole:${i}`, text: `t ${i}` })),
    )
    await redis.del(k.jobs)
    const worker = queue(redis, { name, reclaimIntervalMs: 200 })
    worker.on('error', () => {})
    await worker.start()
    const r = await worker.flushAndWait({ timeoutMs: 10_000 })
    expect(r).toMatchObject({ drained: true, remaining: 0 })
    expect(await worker.pendingCount()).toBe(0)
    expect(await redis.hlen(k.failed)).toBe(300)
    const settled = await Promise.allSettled(jobs.map((j) => j.result))
    expect(settled.every((s) => s.status === 'rejected' && s.reason instanceof EmbeddingFailedError)).toBe(
      true,
    )
  })
})

describe('#10.6 a real redis-server under allkeys-lru', () => {
  let server: RedisServer
  let redis: Redis
  beforeAll(async () => {
    server = await startRedisServer({ args: ['--maxmemory', '3mb', '--maxmemory-policy', 'allkeys-lru'] })
    redis = server.client()
  })
  afterAll(async () => {
    redis?.disconnect()
    await server?.destroy()
  })

  it('evicts queue structures, and the queue still terminates, repairs and reports', async () => {
    const name = uniqueName()
    const k = queueKeys('embedq', name)
    const producer = queue(redis, { name, worker: false, trackResults: false })
    const worker = queue(redis, {
      name,
      embedder: fakeEmbedder({ latencyMs: 5 }),
      reclaimIntervalMs: 200,
      maxBatchSize: 100,
      pollIntervalMs: 20,
    })
    const errors: Error[] = []
    worker.on('error', (e) => errors.push(e))
    await worker.start()
    expect(errors.some((e) => e instanceof EvictionPolicyError)).toBe(true)
    const text = (i: number): string => `${i} ${'lorem ipsum dolor sit amet '.repeat(10)}`
    for (let i = 0; i < 16_000; i += 1_000)
      await producer.enqueueMany(
        Array.from({ length: 1_000 }, (_, j) => ({ key: `lru:${i + j}`, text: text(i + j) })),
      )
    const info = await redis.info('stats')
    const evicted = Number(/evicted_keys:(\d+)/.exec(info)?.[1])
    expect(evicted).toBeGreaterThan(0)

    const r = await worker.flushAndWait({ timeoutMs: 20_000 })
    expect(r.drained).toBe(true)
    // Truth: no ghosts keep pendingCount up. (An item whose version and queue entry were both
    // evicted but whose text survived is requeued with a new version, i.e. as if enqueued
    // after the flush: it finishes right after.)
    await waitFor(async () => (await worker.pendingCount()) === 0, 10_000, 'pendingCount 0')
    expect(await redis.zcard(k.versions)).toBe(0)
    expect(await redis.hlen(k.jobs)).toBe(0)
    // The damage was reported, and counted.
    const reports = errors.filter((e): e is LostToEvictionError => e instanceof LostToEvictionError)
    expect(reports.length).toBeGreaterThan(0)
    const lost = reports.reduce((n, e) => n + e.lost.length, 0)
    expect((await worker.stats()).local.lostToEviction).toBe(lost)
  }, 60_000)
})
