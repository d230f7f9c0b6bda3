/**
 * A fast smoke suite on ioredis-mock, the in-process Redis the demo uses when REDIS_URL is
 * unset. Semantics are proven on real Redis elsewhere; this proves the demo's default works.
 */

import type { Redis } from 'ioredis'
import RedisMock from 'ioredis-mock'
import { afterEach, describe, expect, it } from 'vitest'
import { EmbeddingBatchQueue } from '../src/index.js'
import { fakeEmbedder, fakeVector, uniqueName } from './helpers/fixtures.js'

const queues: EmbeddingBatchQueue[] = []
afterEach(async () => {
  await Promise.all(queues.splice(0).map((q) => q.stop()))
})

function mockQueue(opts: { maxBatchSize?: number } = {}): { q: EmbeddingBatchQueue; redis: Redis } {
  const redis = new RedisMock() as unknown as Redis
  const q = new EmbeddingBatchQueue({ redis, embedder: fakeEmbedder(), name: uniqueName(), ...opts })
  queues.push(q)
  return { q, redis }
}

describe('on ioredis-mock (the demo default)', () => {
  it('enqueues, drains, writes blobs and resolves results', async () => {
    const { q, redis } = mockQueue({ maxBatchSize: 10 })
    await q.start()
    const jobs = await q.enqueueMany(
      Array.from({ length: 35 }, (_, i) => ({ key: `m:${i}`, text: `hello ${i}` })),
    )
    const r = await q.flushAndWait({ timeoutMs: 5_000 })
    expect(r.drained).toBe(true)
    const vectors = await Promise.all(jobs.map((j) => j.result))
    expect(Array.from(vectors[7]!)).toEqual(Array.from(fakeVector('hello 7', 8)))
    const blob = await redis.hgetBuffer('m:7', 'embedding')
    expect(blob?.length).toBe(32)
    expect(blob!.readFloatLE(0)).toBe(fakeVector('hello 7', 8)[0])
    expect(await q.pendingCount()).toBe(0)
  })

  it('keeps one item per key with the latest text', async () => {
    const { q } = mockQueue()
    await q.start()
    const a = await q.enqueue('d:1', 'one')
    const b = await q.enqueue('d:1', 'two')
    expect(await q.pendingCount()).toBe(1)
    await q.flushAndWait({ timeoutMs: 5_000 })
    expect(Array.from(await a.result)).toEqual(Array.from(fakeVector('two', 8)))
    expect(Array.from(await b.result)).toEqual(Array.from(fakeVector('two', 8)))
  })
})

describe('two instances on one ioredis-mock', () => {
  it("a producer-only instance's results resolve when a worker instance embeds them (pub/sub on the mock)", async () => {
    const redis = new RedisMock() as unknown as Redis
    const name = uniqueName()
    const producer = new EmbeddingBatchQueue({ redis, embedder: fakeEmbedder(), name, worker: false })
    const worker = new EmbeddingBatchQueue({ redis, embedder: fakeEmbedder(), name, flushIntervalMs: 50 })
    queues.push(producer, worker)
    await worker.start()
    const job = await producer.enqueue('two:1', 'hello world')
    expect(Array.from(await job.result)).toEqual(Array.from(fakeVector('hello world', 8)))
  })
})
