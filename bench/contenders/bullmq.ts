/**
 * BullMQ baseline — what a user would hand-roll instead: one job per text, a worker at
 * concurrency 50 whose processor embeds that one text and HSETs the blob into the target hash.
 * Jobs use `removeOnComplete: true` (the common production setting; it also spares BullMQ
 * from keeping 20,000 finished jobs, so the baseline is, if anything, flattered).
 */
import { Queue, Worker } from 'bullmq'
import type { BenchContext } from '../lib/context.js'
import type { FakeEmbedder } from '../lib/fake-embedder.js'
import { chunks } from '../lib/stats.js'
import type { Item } from '../lib/texts.js'

export const CONCURRENCY = 50
/** Jobs per addBulk call. */
const BULK = 1000

interface JobData {
  key: string
  text: string
}

function toJobs(items: readonly Item[]) {
  return items.map((it) => ({
    name: 'embed',
    data: { key: it.key, text: it.text } satisfies JobData,
    opts: { removeOnComplete: true, removeOnFail: true },
  }))
}

/** addBulk of every item, no worker (for memory per waiting job). */
export async function addAll(ctx: BenchContext, name: string, items: readonly Item[]): Promise<void> {
  const queue = new Queue<JobData>(name, { connection: ctx.client({ bullmq: true }) })
  await queue.waitUntilReady()
  for (const c of chunks(items, BULK)) await queue.addBulk(toJobs(c))
  await queue.close()
}

export interface BullRig {
  /** From the first add to the last job completed. */
  run(items: readonly Item[]): Promise<void>
  close(): Promise<void>
}

/** A queue and a running worker; `run` is what gets timed. */
export async function rig(ctx: BenchContext, name: string, embedder: FakeEmbedder): Promise<BullRig> {
  const writer = ctx.client()
  const queue = new Queue<JobData>(name, { connection: ctx.client({ bullmq: true }) })
  let completed = 0
  let target = Number.POSITIVE_INFINITY
  let onDone: (() => void) | undefined
  let onError: ((err: Error) => void) | undefined
  const worker = new Worker<JobData>(
    name,
    async (job) => {
      const [vector] = await embedder.embed([job.data.text])
      const v = vector as Float32Array
      await writer.hset(job.data.key, 'embedding', Buffer.from(v.buffer, v.byteOffset, v.byteLength))
    },
    { connection: ctx.client({ bullmq: true }), concurrency: CONCURRENCY },
  )
  worker.on('completed', () => {
    if (++completed >= target) onDone?.()
  })
  worker.on('failed', (_job, err) => onError?.(err))
  worker.on('error', (err) => onError?.(err))
  await Promise.all([queue.waitUntilReady(), worker.waitUntilReady()])
  return {
    async run(items) {
      completed = 0
      target = items.length
      const done = new Promise<void>((resolve, reject) => {
        onDone = resolve
        onError = reject
      })
      for (const c of chunks(items, BULK)) await queue.addBulk(toJobs(c))
      await done
    },
    async close() {
      await worker.close()
      await queue.close()
    },
  }
}
