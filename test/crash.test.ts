import { describe, expect, it } from 'vitest'
import { queueKeys } from '../src/keys.js'
import { startQueueChild } from './helpers/child.js'
import { fakeEmbedder, fakeVector, readVector, uniqueName, waitFor } from './helpers/fixtures.js'
import { useQueueHarness } from './helpers/queue-harness.js'

const h = useQueueHarness(['--appendonly', 'yes', '--appendfsync', 'always'])

describe('across processes', () => {
  it("an item enqueued by a producer-only process is drained by a worker in another process, and the producer's result resolves", async () => {
    const name = uniqueName()
    const worker = startQueueChild({ REDIS_URL: h.server.url, QUEUE_NAME: name, ROLE: 'worker' })
    await worker.waitFor('ready')
    const producer = startQueueChild({
      REDIS_URL: h.server.url,
      QUEUE_NAME: name,
      ROLE: 'producer',
      KEYS: '25',
    })
    const done = (await producer.waitFor('done')).done as { resolved: number; first: number[] }
    expect(done.resolved).toBe(25)
    expect(done.first).toEqual(Array.from(fakeVector('text 0', 8)))
    expect(await producer.exited).toBe(0)
    // The producer never embedded anything itself.
    expect(producer.lines.some((l) => 'call' in l)).toBe(false)
    expect(worker.lines.some((l) => 'call' in l)).toBe(true)
    worker.kill('SIGTERM')
    expect(await worker.exited).toBe(0)
    expect(worker.lines.some((l) => 'stopped' in l)).toBe(true)
  }, 60_000)
})

describe('crash safety', () => {
  it('a worker killed with SIGKILL mid-batch loses nothing: a live worker reclaims its leases and finishes', async () => {
    const name = uniqueName()
    const n = 200
    const producer = h.queue({ name, worker: false })
    const jobs = await producer.enqueueMany(
      Array.from({ length: n }, (_, i) => ({ key: `kill:${i}`, text: `doc ${i}` })),
    )
    const victim = startQueueChild({
      REDIS_URL: h.server.url,
      QUEUE_NAME: name,
      LATENCY_MS: '60000',
      LEASE_MS: '1000',
      MAX_BATCH: '20',
      CONCURRENCY: '3',
    })
    await victim.waitFor('ready')
    producer.flushNow()
    await victim.waitFor('call')
    const k = queueKeys('embedq', name)
    // Three calls in flight (concurrency 3) and as many chunks claimed ahead: 6 × 20 leases.
    await waitFor(async () => (await h.redis.zcard(k.inflight)) === 120, 10_000, 'six chunks claimed')
    victim.kill('SIGKILL')
    await victim.exited
    expect(await h.redis.zcard(k.inflight)).toBe(120)

    // A worker that was already running picks the items up through its periodic sweep.
    const embedder = fakeEmbedder()
    const rescuer = h.queue({ name, embedder, redis: h.client(), reclaimIntervalMs: 100, maxBatchSize: 50 })
    await rescuer.start()
    const r = await rescuer.flushAndWait({ timeoutMs: 15_000 })
    expect(r.drained).toBe(true)
    const vectors = await Promise.all(jobs.map((j) => j.result))
    vectors.forEach((v, i) => {
      expect(Array.from(v)).toEqual(Array.from(fakeVector(`doc ${i}`, 8)))
    })
    for (let i = 0; i < n; i += 37) {
      expect(Array.from((await readVector(h.redis, `kill:${i}`))!)).toEqual(
        Array.from(fakeVector(`doc ${i}`, 8)),
      )
    }
    expect(await h.redis.zcard(k.inflight)).toBe(0)
    expect(await h.redis.zcard(k.pending)).toBe(0)
    expect(await h.redis.zcard(k.versions)).toBe(0)
    expect(await h.redis.hlen(k.leases)).toBe(0)
    // Killed items are not charged an attempt: the crash was not their fault.
    expect(await h.redis.hlen(k.retries)).toBe(0)
    expect(new Set(embedder.texts).size).toBe(n)
  }, 60_000)

  it('start() returns expired leases of a previous run to pending at once', async () => {
    const name = uniqueName()
    const producer = h.queue({ name, worker: false })
    await producer.enqueueMany(Array.from({ length: 10 }, (_, i) => ({ key: `lo:${i}`, text: `left ${i}` })))
    const victim = startQueueChild({
      REDIS_URL: h.server.url,
      QUEUE_NAME: name,
      LATENCY_MS: '60000',
      LEASE_MS: '1000',
    })
    await victim.waitFor('ready')
    producer.flushNow()
    await victim.waitFor('call')
    victim.kill('SIGKILL')
    await victim.exited
    await new Promise((r) => setTimeout(r, 1_100))
    const embedder = fakeEmbedder()
    const next = h.queue({ name, embedder, redis: h.client(), reclaimIntervalMs: 3_600_000 })
    await next.start()
    await waitFor(() => embedder.texts.length === 10, 5_000, 'leftovers embedded')
    expect(embedder.texts.sort()).toEqual(Array.from({ length: 10 }, (_, i) => `left ${i}`).sort())
  }, 30_000)

  it('a slow but alive worker keeps its lease through a long call (heartbeat) and is not double-processed', async () => {
    const embedder = fakeEmbedder({ latencyMs: 2_500 })
    const name = uniqueName()
    const slow = h.queue({ name, embedder, leaseMs: 1_000, reclaimIntervalMs: 100 })
    const other = fakeEmbedder()
    const watcher = h.queue({
      name,
      embedder: other,
      redis: h.client(),
      leaseMs: 1_000,
      reclaimIntervalMs: 100,
    })
    await slow.start()
    const job = await slow.enqueue('hb:1', 'long call')
    slow.flushNow()
    await waitFor(() => embedder.calls.length === 1, 5_000, 'call started')
    await watcher.start()
    await job.result
    expect(other.calls).toHaveLength(0)
    expect(embedder.calls).toHaveLength(1)
  }, 30_000)

  it('several workers never claim the same key at once, and each key is embedded once', async () => {
    const name = uniqueName()
    const shared = fakeEmbedder({ latencyMs: 5, maxBatchSize: 10 })
    const active = new Set<string>()
    let overlap = 0
    const embedder = {
      dimensions: 8,
      maxBatchSize: 10,
      async embed(texts: string[]) {
        for (const t of texts) {
          if (active.has(t)) overlap++
          active.add(t)
        }
        try {
          return await shared.embed(texts)
        } finally {
          for (const t of texts) active.delete(t)
        }
      },
    }
    const workers = [0, 1, 2].map(() =>
      h.queue({ name, embedder, redis: h.client(), maxBatchSize: 20, concurrency: 3 }),
    )
    const producer = h.queue({ name, worker: false })
    await Promise.all(workers.map((w) => w.start()))
    const jobs = await producer.enqueueMany(
      Array.from({ length: 1_000 }, (_, i) => ({ key: `mw:${i}`, text: `k${i}` })),
    )
    const r = await producer.flushAndWait({ timeoutMs: 20_000 })
    expect(r.drained).toBe(true)
    await Promise.all(jobs.map((j) => j.result))
    expect(overlap).toBe(0)
    expect(shared.texts).toHaveLength(1_000)
    expect(new Set(shared.texts).size).toBe(1_000)
  }, 30_000)
})

describe('durability', () => {
  it('when enqueue resolves, the item is in Redis (seen by another connection) and survives a Redis restart with AOF', async () => {
    const name = uniqueName()
    const q = h.queue({ name, worker: false })
    const job = await q.enqueue('dur:1', 'keep me')
    const k = queueKeys('embedq', name)
    const other = h.client()
    expect(await other.hget(k.jobs, 'dur:1')).toBe('keep me')
    expect(Number(await other.zscore(k.versions, 'dur:1'))).toBe(job.version)
    await q.stop()
    await h.server.restart({ kill: true })
    await waitFor(() => h.redis.status === 'ready', 10_000, 'reconnect')
    expect(await h.redis.hget(k.jobs, 'dur:1')).toBe('keep me')
    expect(await h.redis.zscore(k.pending, 'dur:1')).not.toBeNull()
  }, 30_000)
})
