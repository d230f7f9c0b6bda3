/**
 * #10.7: while Redis is down, every public call settles in bounded time whatever the client's
 * retry settings (ioredis' default `maxRetriesPerRequest: 20`, and `null`, which BullMQ users
 * configure and which queues commands forever). An OOM reply at enqueue is a typed error and
 * nothing is written.
 */
import { Redis } from 'ioredis'
import { afterEach, describe, expect, it } from 'vitest'
import {
  EmbeddingBatchQueue,
  EmbedTimeoutError,
  queueKeys,
  RedisOutOfMemoryError,
  RedisUnavailableError,
} from '../../src/index.js'
import { fakeEmbedder, fakeVector, uniqueName, waitFor } from '../helpers/fixtures.js'
import { type RedisServer, startRedisServer } from '../helpers/redis-server.js'

const servers: RedisServer[] = []
const clients: Redis[] = []
const queues: EmbeddingBatchQueue[] = []

afterEach(async () => {
  const capped = (p: Promise<unknown>): Promise<unknown> =>
    Promise.race([p.catch(() => {}), new Promise((r) => setTimeout(r, 3_000))])
  await Promise.all(queues.splice(0).map((q) => capped(q.stop())))
  for (const c of clients.splice(0)) c.disconnect()
  await Promise.all(servers.splice(0).map((s) => s.destroy()))
})

function client(server: RedisServer, maxRetriesPerRequest: number | null | undefined): Redis {
  const c = new Redis({
    host: '127.0.0.1',
    port: server.port,
    ...(maxRetriesPerRequest !== undefined ? { maxRetriesPerRequest } : {}),
  })
  c.on('error', () => {})
  clients.push(c)
  return c
}

/** How long `p` took to settle, and how; gives up (as 'pending') after `capMs` so a hang fails the test. */
async function timed(
  p: Promise<unknown>,
  capMs = 12_000,
): Promise<{ ms: number; error?: unknown; value?: unknown; pending?: true }> {
  const t0 = Date.now()
  let cap: NodeJS.Timeout | undefined
  const r = await Promise.race([
    p.then(
      (value) => ({ value }),
      (error: unknown) => ({ error }),
    ),
    new Promise<{ pending: true }>((resolve) => {
      cap = setTimeout(() => resolve({ pending: true }), capMs)
    }),
  ])
  clearTimeout(cap)
  return { ms: Date.now() - t0, ...r }
}

const settings: Array<{ label: string; maxRetriesPerRequest: number | null | undefined }> = [
  { label: 'default retry settings', maxRetriesPerRequest: undefined },
  { label: 'maxRetriesPerRequest: null', maxRetriesPerRequest: null },
]

describe('#10.7 calls while Redis is down settle in bounded time', () => {
  for (const { label, maxRetriesPerRequest } of settings) {
    it(`with ${label}: timeouts are honoured, the rest fail with RedisUnavailableError, all resumes after`, async () => {
      // Durable, so what was queued before the outage is still there after the restart.
      const server = await startRedisServer({ args: ['--appendonly', 'yes', '--appendfsync', 'always'] })
      servers.push(server)
      const redis = client(server, maxRetriesPerRequest)
      const name = uniqueName()
      const q = new EmbeddingBatchQueue({
        redis,
        embedder: fakeEmbedder(),
        name,
        flushIntervalMs: 60_000,
        commandTimeoutMs: 1_000,
        enqueueTimeoutMs: 300,
        pollIntervalMs: 50,
      })
      queues.push(q)
      const errors: Error[] = []
      q.on('error', (e) => errors.push(e))
      await q.start()
      const before = await q.enqueue('down:1', 'queued before')
      await server.stop({ kill: true })
      await waitFor(() => redis.status !== 'ready', 5_000, 'disconnect noticed')

      const fresh = new EmbeddingBatchQueue({
        redis,
        embedder: fakeEmbedder(),
        name,
        commandTimeoutMs: 1_000,
      })
      queues.push(fresh)
      const flushErrors: Error[] = []
      const flushing = new Promise<void>((resolve) => {
        fresh.on('error', (e) => {
          flushErrors.push(e)
          resolve()
        })
      })
      fresh.flushNow()
      const [flush, stats, count, failed, retry, enqueue, result, start, flushNowReport] = await Promise.all([
        timed(q.flushAndWait({ timeoutMs: 2_000 })),
        timed(q.stats()),
        timed(q.pendingCount()),
        timed(q.failed()),
        timed(q.retryFailed()),
        timed(q.enqueue('down:2', 'during')),
        timed(q.result('down:1', { timeoutMs: 800 })),
        timed(fresh.start()),
        timed(flushing),
      ])
      // A call that takes a timeout honours it (within about a second).
      expect(flush.pending, 'flushAndWait settled').toBeUndefined()
      expect(flush.error).toBeInstanceOf(RedisUnavailableError)
      expect(flush.ms).toBeGreaterThanOrEqual(1_900)
      expect(flush.ms).toBeLessThan(3_000)
      expect(result.error).toBeInstanceOf(EmbedTimeoutError)
      expect(result.ms).toBeLessThan(1_800)
      // The others fail with RedisUnavailableError within commandTimeoutMs (+ slack).
      for (const [what, r, bound] of [
        ['stats', stats, 2_000],
        ['pendingCount', count, 2_000],
        ['failed', failed, 2_000],
        ['retryFailed', retry, 2_000],
        ['start', start, 2_000],
        ['enqueue', enqueue, 1_500],
        ['flushNow report', flushNowReport, 2_000],
      ] as const) {
        expect(r.pending, `${what} settled`).toBeUndefined()
        expect(r.ms, what).toBeLessThan(bound)
        if (what !== 'flushNow report') expect(r.error, what).toBeInstanceOf(RedisUnavailableError)
      }
      expect(flushErrors[0]).toBeInstanceOf(RedisUnavailableError)
      expect((flush.error as Error).message).toContain('flushAndWait')

      // Back up: the queue carries on by itself.
      await server.restart()
      await waitFor(() => redis.status === 'ready', 15_000, 'reconnect')
      const after = await q.enqueue('down:3', 'after')
      const drained = await q.flushAndWait({ timeoutMs: 10_000 })
      expect(drained.drained).toBe(true)
      expect(Array.from(await before.result)).toEqual(Array.from(fakeVector('queued before', 8)))
      expect(Array.from(await after.result)).toEqual(Array.from(fakeVector('after', 8)))
    }, 45_000)
  }
})

describe('#10.7 stop() while Redis is down', () => {
  for (const { label, maxRetriesPerRequest } of settings) {
    it(`with ${label}: resolves within stopGraceMs + commandTimeoutMs, with a claim in flight`, async () => {
      const server = await startRedisServer()
      servers.push(server)
      const redis = client(server, maxRetriesPerRequest)
      const embedder = fakeEmbedder({ latencyMs: 3_000 })
      const q = new EmbeddingBatchQueue({
        redis,
        embedder,
        name: uniqueName(),
        stopGraceMs: 500,
        commandTimeoutMs: 1_000,
      })
      q.on('error', () => {})
      await q.start()
      await q.enqueue('stop:1', 'text')
      q.flushNow()
      await waitFor(() => embedder.calls.length === 1, 5_000, 'claim in flight')
      await server.stop({ kill: true })
      const r = await timed(q.stop())
      expect(r.pending, 'stop settled').toBeUndefined()
      expect(r.ms).toBeLessThan(3_000)
    }, 30_000)
  }
})

describe('#10.7 options', () => {
  it('commandTimeoutMs and requireNoEviction are validated, naming the option', () => {
    const redis = new Redis({ lazyConnect: true })
    const base = { redis, embedder: fakeEmbedder() }
    expect(() => new EmbeddingBatchQueue({ ...base, commandTimeoutMs: 5 })).toThrow(
      /option `commandTimeoutMs` must be an integer in \[100, 3600000\], received 5/,
    )
    expect(() => new EmbeddingBatchQueue({ ...base, commandTimeoutMs: '1s' as unknown as number })).toThrow(
      TypeError,
    )
    expect(
      () => new EmbeddingBatchQueue({ ...base, requireNoEviction: 'yes' as unknown as boolean }),
    ).toThrow(/option `requireNoEviction` must be a boolean/)
    redis.disconnect()
  })
})

describe('#10.7 deadlines do not break long timeouts', () => {
  it('a flushAndWait timeout beyond 2^31 ms waits normally instead of failing at once', async () => {
    const server = await startRedisServer()
    servers.push(server)
    const redis = client(server, undefined)
    const q = new EmbeddingBatchQueue({
      redis,
      embedder: fakeEmbedder(),
      name: uniqueName(),
      flushIntervalMs: 60_000,
    })
    queues.push(q)
    await q.start()
    const job = await q.enqueue('long:1', 'text')
    await expect(q.flushAndWait({ timeoutMs: 40 * 86_400_000 })).resolves.toMatchObject({ drained: true })
    expect(Array.from(await job.result)).toEqual(Array.from(fakeVector('text', 8)))
  })
})

describe('#10.7 an OOM reply at enqueue', () => {
  it('is a RedisOutOfMemoryError and writes nothing (noeviction at maxmemory)', async () => {
    const server = await startRedisServer({
      args: ['--maxmemory', '4mb', '--maxmemory-policy', 'noeviction'],
    })
    servers.push(server)
    const redis = client(server, undefined)
    // Fill Redis until it refuses writes.
    const filler = 'x'.repeat(64 * 1024)
    let oom = false
    for (let i = 0; i < 1_000 && !oom; i++) {
      await redis.set(`filler:${i}`, filler).catch((e: Error) => {
        oom = /OOM/.test(e.message)
      })
    }
    expect(oom).toBe(true)
    const name = uniqueName()
    const q = new EmbeddingBatchQueue({ redis, embedder: fakeEmbedder(), name, worker: false })
    queues.push(q)
    const one = await q.enqueue('oom:1', 'a text').catch((e: unknown) => e)
    expect(one).toBeInstanceOf(RedisOutOfMemoryError)
    const many = await q
      .enqueueMany(Array.from({ length: 50 }, (_, i) => ({ key: `oom:m${i}`, text: `text ${i}` })))
      .catch((e: unknown) => e)
    expect(many).toBeInstanceOf(RedisOutOfMemoryError)
    const k = queueKeys('embedq', name)
    expect(await redis.exists(k.pending, k.jobs, k.versions, k.seq, k.retries, k.failed, k.delayed)).toBe(0)
    // Room again: the same enqueue goes through.
    await redis.del('filler:0', 'filler:1', 'filler:2', 'filler:3', 'filler:4', 'filler:5')
    await expect(q.enqueue('oom:1', 'a text')).resolves.toMatchObject({ key: 'oom:1' })
  }, 30_000)
})
