/** embedq as the bench drives it: producer-only instances for enqueue, worker instances for drains. */
import type { Redis } from 'ioredis'
import { EmbeddingBatchQueue, type EmbedJob, type QueueOptions, queueKeys } from '../../src/index.js'
import { type FakeEmbedder, fakeEmbedder } from '../lib/fake-embedder.js'
import { inFlight } from '../lib/stats.js'
import type { Item } from '../lib/texts.js'

export const PREFIX = 'bench'

export interface QueueSetup {
  redis: Redis
  name: string
  worker: boolean
  latencyMs?: number
  /** @default 100 */
  maxBatchSize?: number
  /** @default 8 */
  concurrency?: number
  extra?: Partial<QueueOptions>
}

export function makeQueue(s: QueueSetup): { queue: EmbeddingBatchQueue; embedder: FakeEmbedder } {
  const embedder = fakeEmbedder(s.latencyMs ?? 0)
  const queue = new EmbeddingBatchQueue({
    redis: s.redis,
    embedder,
    name: s.name,
    prefix: PREFIX,
    worker: s.worker,
    maxBatchSize: s.maxBatchSize ?? 100,
    concurrency: s.concurrency ?? 8,
    ...s.extra,
  })
  return { queue, embedder }
}

/** Every Redis key the queue owns (channels left out). */
export function ownedKeys(name: string): string[] {
  const { doneChannel: _d, wakeChannel: _w, ...keys } = queueKeys(PREFIX, name)
  return Object.values(keys)
}

/** `enqueueMany` of all items in one call (the library chunks it). */
export async function enqueueMany(queue: EmbeddingBatchQueue, items: readonly Item[]): Promise<EmbedJob[]> {
  return queue.enqueueMany(items)
}

/** One `enqueue` per item, `inflight` calls outstanding at any time. */
export async function enqueueSingles(
  queue: EmbeddingBatchQueue,
  items: readonly Item[],
  inflight: number,
): Promise<EmbedJob[]> {
  const jobs: EmbedJob[] = []
  await inFlight(items, inflight, async (it) => {
    jobs.push(await queue.enqueue(it.key, it.text))
  })
  return jobs
}

/** From the first enqueue to the last `job.result` resolved (the caller has started a worker queue). */
export async function drain(queue: EmbeddingBatchQueue, items: readonly Item[]): Promise<void> {
  const jobs = await queue.enqueueMany(items)
  queue.flushNow() // the last partial batch: nothing else would flush it before flushIntervalMs
  await Promise.all(jobs.map((j) => j.result))
}
