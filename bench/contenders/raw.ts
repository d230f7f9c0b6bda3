/**
 * Raw Redis baseline: the same data written with plain ioredis pipelines, no Lua, no
 * durability bookkeeping — the practical ceiling for one Node process.
 */
import type { Redis } from 'ioredis'
import pLimit from 'p-limit'
import { blobs, type FakeEmbedder, variantOf } from '../lib/fake-embedder.js'
import { chunks, inFlight } from '../lib/stats.js'
import type { Item } from '../lib/texts.js'

export const RAW_PENDING = 'raw:pending'
export const RAW_JOBS = 'raw:jobs'
/** Items per enqueue pipeline (the same as embedq's enqueueChunkSize default). */
export const PIPELINE_ITEMS = 500

async function exec(p: ReturnType<Redis['pipeline']>): Promise<void> {
  const res = await p.exec()
  for (const [err] of res ?? []) if (err) throw err
}

function enqueueChunk(redis: Redis, chunk: readonly Item[], base: number): Promise<void> {
  const p = redis.pipeline()
  chunk.forEach((it, i) => {
    p.zadd(RAW_PENDING, base + i, it.key)
    p.hset(RAW_JOBS, it.key, it.text)
  })
  return exec(p)
}

/** One variadic ZADD and one variadic HSET per PIPELINE_ITEMS items, `inflight` pipelines outstanding. */
export async function enqueueVariadic(redis: Redis, items: readonly Item[], inflight = 1): Promise<void> {
  const base = Date.now() * 1000
  const list = chunks(items, PIPELINE_ITEMS).map((c, i) => ({ c, base: base + i * PIPELINE_ITEMS }))
  await inFlight(list, inflight, ({ c, base: b }) => {
    const zadd: (string | number)[] = []
    const hset: string[] = []
    c.forEach((it, i) => {
      zadd.push(b + i, it.key)
      hset.push(it.key, it.text)
    })
    return exec(
      redis
        .pipeline()
        .zadd(RAW_PENDING, ...zadd)
        .hset(RAW_JOBS, ...hset),
    )
  })
}

/** ZADD+HSET per item, PIPELINE_ITEMS items per pipeline, `inflight` pipelines outstanding. */
export async function enqueuePipelines(redis: Redis, items: readonly Item[], inflight = 1): Promise<void> {
  const base = Date.now() * 1000
  const list = chunks(items, PIPELINE_ITEMS).map((c, i) => ({ c, base: base + i * PIPELINE_ITEMS }))
  await inFlight(list, inflight, ({ c, base: b }) => enqueueChunk(redis, c, b))
}

/** One ZADD+HSET pipeline per item, `inflight` items outstanding. */
export async function enqueueSingles(redis: Redis, items: readonly Item[], inflight: number): Promise<void> {
  let seq = Date.now() * 1000
  await inFlight(items, inflight, (it) => enqueueChunk(redis, [it], seq++))
}

/**
 * Hand-rolled batching without any safety: enqueue pipelines as above; as each lands, its
 * items go to the provider 100 per call (8 calls in flight) and the blobs are written back
 * with one HSET pipeline per call.
 */
export async function drain(redis: Redis, items: readonly Item[], embedder: FakeEmbedder): Promise<void> {
  const limit = pLimit(8)
  const writes: Promise<void>[] = []
  const base = Date.now() * 1000
  let i = 0
  for (const chunk of chunks(items, PIPELINE_ITEMS)) {
    await enqueueChunk(redis, chunk, base + i)
    i += chunk.length
    for (const call of chunks(chunk, embedder.maxBatchSize ?? 100)) {
      writes.push(
        limit(async () => {
          await embedder.embed(call.map((it) => it.text))
          const p = redis.pipeline()
          for (const it of call) p.hset(it.key, 'embedding', blobs[variantOf(it.text)]!)
          p.zrem(RAW_PENDING, ...call.map((it) => it.key))
          p.hdel(RAW_JOBS, ...call.map((it) => it.key))
          await exec(p)
        }),
      )
    }
  }
  await Promise.all(writes)
}
