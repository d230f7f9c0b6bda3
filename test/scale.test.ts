import { describe, expect, it } from 'vitest'
import { QueueFullError } from '../src/index.js'
import { fakeEmbedder, fakeVector, readVector, sleep, uniqueName, waitFor } from './helpers/fixtures.js'
import { useQueueHarness } from './helpers/queue-harness.js'

const h = useQueueHarness()

describe('many workers', () => {
  it('a full batch enqueued by another instance wakes an idle worker within milliseconds (pub/sub, not polling)', async () => {
    const name = uniqueName()
    const embedder = fakeEmbedder()
    const worker = h.queue({ name, embedder, maxBatchSize: 20, pollIntervalMs: 3_600_000, redis: h.client() })
    await worker.start()
    await sleep(100) // the worker's first (empty) claim is done; it now sleeps for an hour
    const producer = h.queue({ name, worker: false, maxBatchSize: 20 })
    const t0 = Date.now()
    const jobs = await producer.enqueueMany(
      Array.from({ length: 20 }, (_, i) => ({ key: `wk:${i}`, text: `w${i}` })),
    )
    await Promise.all(jobs.map((j) => j.result))
    expect(Date.now() - t0).toBeLessThan(500)
    expect(embedder.calls).toHaveLength(1)
  })
})

describe('backpressure', () => {
  it('enqueue rejects with QueueFullError over maxPending and writes nothing for the refused items', async () => {
    const q = h.queue({ worker: false, maxPending: 10, enqueueChunkSize: 5 })
    const first = await q.enqueueMany(
      Array.from({ length: 8 }, (_, i) => ({ key: `bp:${i}`, text: `t${i}` })),
    )
    expect(first.every((j) => !j.error)).toBe(true)
    // 8 + 5 > 10: the chunk is refused whole; its items get the typed error.
    const second = await q.enqueueMany(
      Array.from({ length: 5 }, (_, i) => ({ key: `bp2:${i}`, text: `u${i}` })),
    )
    expect(second.every((j) => j.error instanceof QueueFullError)).toBe(true)
    await expect(second[0]!.result).rejects.toBeInstanceOf(QueueFullError)
    expect(await q.pendingCount()).toBe(8)
    const err = await Promise.all([
      q.enqueue('bp3:1', 'a'),
      q.enqueue('bp3:2', 'b'),
      q.enqueue('bp3:3', 'c'),
    ]).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(QueueFullError)
    expect(err).toMatchObject({ maxPending: 10, unfinished: 8 })
    // Single items still fit until the limit.
    await q.enqueue('bp4:1', 'fits')
    expect(await q.pendingCount()).toBe(9)
  })
})

describe('shared rate limit', () => {
  it('several workers together never exceed requestsPerMinute or tokensPerMinute over any window', async () => {
    const name = uniqueName()
    const windowMs = 1_000
    const maxReq = 5
    const maxTok = 60
    const calls: { at: number; tokens: number }[] = []
    const workers = [0, 1, 2].map(() => {
      const inner = fakeEmbedder({ maxBatchSize: 4 })
      return h.queue({
        name,
        redis: h.client(),
        maxBatchSize: 4,
        concurrency: 4,
        embedder: {
          dimensions: 8,
          maxBatchSize: 4,
          async embed(texts: string[]) {
            calls.push({ at: Date.now(), tokens: texts.reduce((n, t) => n + Math.ceil(t.length / 4), 0) })
            return inner.embed(texts)
          },
        },
        rateLimit: { requestsPerMinute: maxReq, tokensPerMinute: maxTok, windowMs },
      })
    })
    await Promise.all(workers.map((w) => w.start()))
    const producer = h.queue({ name, worker: false })
    // 60 texts of 16 chars = 4 tokens each: 16 tokens per full call, so tokens bind before requests.
    const jobs = await producer.enqueueMany(
      Array.from({ length: 60 }, (_, i) => ({
        key: `rl:${i}`,
        text: `text number ${String(i).padStart(4, '0')}`,
      })),
    )
    producer.flushNow()
    await Promise.all(jobs.map((j) => j.result))
    calls.sort((a, b) => a.at - b.at)
    // Calls are timed here, a few ms after Redis admitted them; allow that much jitter.
    const jitterMs = 30
    for (let i = 0; i < calls.length; i++) {
      const inWindow = calls.filter((c) => c.at >= calls[i]!.at && c.at < calls[i]!.at + windowMs - jitterMs)
      expect(inWindow.length).toBeLessThanOrEqual(maxReq)
      expect(inWindow.reduce((n, c) => n + c.tokens, 0)).toBeLessThanOrEqual(maxTok)
    }
    // The limit paced the work instead of failing it: 240 tokens at 60 per second.
    expect(calls[calls.length - 1]!.at - calls[0]!.at).toBeGreaterThanOrEqual(2_500)
  }, 30_000)
})

describe('embedding cache', () => {
  it('identical texts cost one API call, land in their own target hashes, and hits/misses are counted', async () => {
    const embedder = { ...fakeEmbedder(), id: 'fake:8' }
    const inner = fakeEmbedder()
    embedder.embed = (texts: string[]) => inner.embed(texts)
    const q = h.queue({ embedder, cache: { ttlSeconds: 60 }, maxBatchSize: 10 })
    await q.start()
    const first = await q.enqueueMany(
      Array.from({ length: 10 }, (_, i) => ({ key: `c1:${i}`, text: i % 2 ? 'ok' : 'thanks' })),
    )
    await Promise.all(first.map((j) => j.result))
    // Within one chunk, identical texts are sent once.
    expect(inner.calls).toHaveLength(1)
    expect(inner.calls[0]!.texts.sort()).toEqual(['ok', 'thanks'])
    const second = await q.enqueueMany(
      Array.from({ length: 10 }, (_, i) => ({ key: `c2:${i}`, text: i % 2 ? 'thanks' : 'ok' })),
    )
    await Promise.all(second.map((j) => j.result))
    expect(inner.calls).toHaveLength(1) // all hits
    expect(Array.from((await readVector(h.redis, 'c2:3'))!)).toEqual(Array.from(fakeVector('thanks', 8)))
    const stats = await q.stats()
    expect(stats.local.cacheHits).toBe(10)
    expect(stats.local.cacheMisses).toBe(10)
    const cacheKeys = await h.redis.keys('embedq:cache:*')
    expect(cacheKeys).toHaveLength(2)
    const ttl = await h.redis.ttl(cacheKeys[0]!)
    expect(ttl).toBeGreaterThan(50)
    expect(ttl).toBeLessThanOrEqual(60)
  })

  it('refuses a cache without a namespace when the embedder has no id', () => {
    expect(() => h.queue({ embedder: fakeEmbedder(), cache: true })).toThrow(/cache.namespace/)
  })

  it('a different model namespace does not share cached vectors', async () => {
    const a = fakeEmbedder()
    const q1 = h.queue({ embedder: a, cache: { namespace: 'model-a' }, maxBatchSize: 1 })
    await q1.start()
    await (await q1.enqueue('ns:1', 'same text')).result
    const b = fakeEmbedder()
    const q2 = h.queue({ embedder: b, cache: { namespace: 'model-b' }, maxBatchSize: 1 })
    await q2.start()
    await (await q2.enqueue('ns:2', 'same text')).result
    expect(a.calls).toHaveLength(1)
    expect(b.calls).toHaveLength(1)
    await waitFor(async () => (await h.redis.keys('embedq:cache:*')).length >= 2, 2_000, 'two cache entries')
  })
})

describe('flush interval across processes', () => {
  it('a lone item from a producer-only instance flushes after flushIntervalMs, not at the next poll', async () => {
    const name = uniqueName()
    const embedder = fakeEmbedder()
    const worker = h.queue({
      name,
      embedder,
      flushIntervalMs: 100,
      pollIntervalMs: 3_600_000,
      redis: h.client(),
    })
    await worker.start()
    await sleep(100)
    const producer = h.queue({ name, worker: false })
    const t0 = Date.now()
    const job = await producer.enqueue('lone:1', 'alone')
    await job.result
    const waited = Date.now() - t0
    expect(waited).toBeGreaterThanOrEqual(80)
    expect(waited).toBeLessThan(1_000)
  })
})
