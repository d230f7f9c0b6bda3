import { describe, expect, it } from 'vitest'
import { EmbedderError, EmbeddingFailedError, RedisUnavailableError } from '../src/index.js'
import { queueKeys } from '../src/keys.js'
import { fakeEmbedder, fakeVector, readVector, sleep, uniqueName, waitFor } from './helpers/fixtures.js'
import { useQueueHarness } from './helpers/queue-harness.js'

const h = useQueueHarness(['--appendonly', 'yes', '--appendfsync', 'always'])

describe('provider errors', () => {
  it('401/403 stop the drain, emit an error event and charge no attempt', async () => {
    let denied = true
    const embedder = fakeEmbedder({
      fail: () =>
        denied ? new EmbedderError('API key not valid', { status: 403, retryable: false }) : undefined,
    })
    const q = h.queue({ embedder, authPauseMs: 400, maxAttempts: 1, pollIntervalMs: 20 })
    const errors: Error[] = []
    q.on('error', (e) => errors.push(e))
    await q.start()
    const jobs = await q.enqueueMany(
      Array.from({ length: 4 }, (_, i) => ({ key: `auth:${i}`, text: `t${i}` })),
    )
    q.flushNow()
    await waitFor(() => errors.length > 0, 5_000, 'error event')
    expect(errors[0]).toBeInstanceOf(EmbedderError)
    expect((errors[0] as EmbedderError).status).toBe(403)
    // One call, not bisected, nothing charged, nothing given up even with maxAttempts 1.
    expect(embedder.calls).toHaveLength(1)
    const k = queueKeys('embedq', q.name)
    expect(await h.redis.hlen(k.retries)).toBe(0)
    expect(await h.redis.hlen(k.failed)).toBe(0)
    expect(await q.pendingCount()).toBe(4)
    // Paused: no call during authPauseMs.
    await sleep(200)
    expect(embedder.calls).toHaveLength(1)
    denied = false
    const vectors = await Promise.all(jobs.map((j) => j.result))
    expect(Array.from(vectors[2]!)).toEqual(Array.from(fakeVector('t2', 8)))
  })

  it('a configuration error (missing SDK) pauses the drain like a credential error and charges nothing', async () => {
    const embedder = fakeEmbedder({
      fail: () =>
        new EmbedderError('the optional package is not installed', { retryable: false, configuration: true }),
    })
    const q = h.queue({ embedder, authPauseMs: 60_000, maxAttempts: 1 })
    const errors: Error[] = []
    q.on('error', (e) => errors.push(e))
    await q.start()
    await q.enqueueMany([
      { key: 'cfg:1', text: 'a' },
      { key: 'cfg:2', text: 'b' },
    ])
    q.flushNow()
    await waitFor(() => errors.length > 0, 5_000, 'error event')
    expect((errors[0] as EmbedderError).stopsDrain).toBe(true)
    expect(embedder.calls).toHaveLength(1) // not bisected
    expect(await q.failed()).toEqual([])
    expect(await q.pendingCount()).toBe(2)
  })

  it('a 429 with retry-after pauses every worker of the queue until the retry time (shared in Redis)', async () => {
    let limited = true
    const embedder = fakeEmbedder({
      fail: () =>
        limited
          ? new EmbedderError('RESOURCE_EXHAUSTED', { status: 429, retryable: true, retryAfterMs: 700 })
          : undefined,
    })
    const name = uniqueName()
    const a = h.queue({ name, embedder, pollIntervalMs: 20, backoffBaseMs: 10, backoffMaxMs: 20 })
    const other = fakeEmbedder()
    const b = h.queue({ name, embedder: other, redis: h.client(), pollIntervalMs: 20 })
    await a.start()
    const job = await a.enqueue('rl:1', 'slow down')
    a.flushNow()
    await waitFor(() => embedder.calls.length === 1, 5_000, 'first call')
    limited = false
    const t429 = Date.now()
    await b.start()
    await b.enqueue('rl:2', 'another')
    b.flushNow()
    const stats = await b.stats()
    expect(stats.pausedForMs).toBeGreaterThan(300)
    await sleep(300)
    expect(other.calls).toHaveLength(0) // b respects the pause a's provider asked for
    await job.result
    expect(Date.now() - t429).toBeGreaterThanOrEqual(600)
    await b.flushAndWait({ timeoutMs: 5_000 })
  })

  it('gives up with the field left absent when zeroVectorOnFailure is false', async () => {
    const embedder = fakeEmbedder({ fail: () => new EmbedderError('bad', { status: 400, retryable: false }) })
    const q = h.queue({ embedder, maxAttempts: 1, zeroVectorOnFailure: false })
    await q.start()
    await h.redis.hset('nz:1', 'text', 'x')
    const job = await q.enqueue('nz:1', 'x')
    q.flushNow()
    await expect(job.result).rejects.toBeInstanceOf(EmbeddingFailedError)
    expect(await readVector(h.redis, 'nz:1')).toBeNull()
    expect(await q.failed()).toHaveLength(1)
  })
})

describe('graceful stop', () => {
  it('lets in-flight chunks finish within the grace period and writes their vectors', async () => {
    const embedder = fakeEmbedder({ latencyMs: 300 })
    const q = h.queue({ embedder, stopGraceMs: 5_000 })
    await q.start()
    await q.enqueueMany([{ key: 'gr:1', text: 'finish me' }])
    q.flushNow()
    await waitFor(() => embedder.calls.length === 1, 5_000, 'call')
    await q.stop()
    expect(Array.from((await readVector(h.redis, 'gr:1'))!)).toEqual(Array.from(fakeVector('finish me', 8)))
    const k = queueKeys('embedq', q.name)
    expect(await h.redis.zcard(k.inflight)).toBe(0)
    expect(await h.redis.zcard(k.versions)).toBe(0)
  })
})

describe('Redis outages', () => {
  it('survives SCRIPT FLUSH: scripts are reloaded on NOSCRIPT', async () => {
    const q = h.queue()
    await q.start()
    const a = await q.enqueue('sf:1', 'before')
    q.flushNow()
    await a.result
    await h.redis.script('FLUSH')
    const b = await q.enqueue('sf:2', 'after')
    q.flushNow()
    expect(Array.from(await b.result)).toEqual(Array.from(fakeVector('after', 8)))
  })

  it('enqueue rejects clearly while Redis is down; workers and waiters resume after it comes back', async () => {
    const name = uniqueName()
    const producerClient = h.client()
    const workerClient = h.client()
    producerClient.on('error', () => {})
    workerClient.on('error', () => {})
    const producer = h.queue({ name, redis: producerClient, worker: false, enqueueTimeoutMs: 300 })
    const embedder = fakeEmbedder()
    const worker = h.queue({ name, redis: workerClient, embedder, pollIntervalMs: 50 })
    worker.on('error', () => {})
    // Queued before the outage, waiting across it.
    const before = await producer.enqueue('out:1', 'queued before')
    await h.server.stop({ kill: true })
    await waitFor(() => producerClient.status !== 'ready', 5_000, 'disconnect noticed')
    const t0 = Date.now()
    const err = await producer.enqueue('out:2', 'during').catch((e: unknown) => e)
    expect(err).toBeInstanceOf(RedisUnavailableError)
    expect(Date.now() - t0).toBeLessThan(3_000)
    await h.server.restart()
    await waitFor(
      () => producerClient.status === 'ready' && workerClient.status === 'ready',
      15_000,
      'reconnect',
    )
    await worker.start()
    worker.flushNow()
    expect(Array.from(await before.result)).toEqual(Array.from(fakeVector('queued before', 8)))
    // Nothing was half-written for the rejected call.
    const k = queueKeys('embedq', name)
    expect(await h.redis.hget(k.jobs, 'out:2')).toBeNull()
    const after = await producer.enqueue('out:3', 'after')
    worker.flushNow()
    expect(Array.from(await after.result)).toEqual(Array.from(fakeVector('after', 8)))
  }, 40_000)
})
