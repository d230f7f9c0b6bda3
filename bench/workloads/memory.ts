/**
 * Workload 4b — Redis memory per pending item: N items enqueued with nothing draining, then
 * `MEMORY USAGE <key> SAMPLES 0` (exact) summed over the contender's keys, divided by N.
 * `used_memory` growth is recorded as a cross-check (it includes allocator overhead).
 */
import * as bull from '../contenders/bullmq.js'
import * as embedq from '../contenders/embedq.js'
import * as raw from '../contenders/raw.js'
import { type BenchContext, reset } from '../lib/context.js'
import { memoryOf, scanKeys, usedMemory } from '../lib/redis-cost.js'
import { items } from '../lib/texts.js'

export interface MemoryFigure {
  /** Sum of MEMORY USAGE over the contender's keys / N. */
  bytesPerItem: number
  /** used_memory growth / N. */
  usedMemoryPerItem: number
  keys: number
  /** bytes/item per key group (embedq: per queue key; BullMQ: job hashes vs each shared key). */
  byKey: Record<string, number>
}

export interface MemoryResult {
  embedq: MemoryFigure
  bullmq: MemoryFigure
  raw: MemoryFigure
}

async function figure(
  ctx: BenchContext,
  fill: () => Promise<string[]>,
  group: (key: string) => string,
): Promise<MemoryFigure> {
  await reset(ctx)
  const before = await usedMemory(ctx.stats)
  const keys = await fill()
  const after = await usedMemory(ctx.stats)
  const byKey: Record<string, number> = {}
  let bytes = 0
  for (const key of keys) {
    const b = await memoryOf(ctx.stats, [key])
    if (b === 0) continue
    bytes += b
    byKey[group(key)] = (byKey[group(key)] ?? 0) + b / ctx.n
  }
  await reset(ctx)
  return {
    bytesPerItem: bytes / ctx.n,
    usedMemoryPerItem: (after - before) / ctx.n,
    keys: keys.length,
    byKey,
  }
}

export async function memoryWorkload(ctx: BenchContext): Promise<MemoryResult> {
  const embedqFig = await figure(
    ctx,
    async () => {
      const { queue } = embedq.makeQueue({ redis: ctx.client(), name: 'memory', worker: false })
      await queue.enqueueMany(items('memory-embedq', ctx.n))
      await queue.stop()
      return embedq.ownedKeys('memory')
    },
    (key) => key.slice(key.indexOf('}:') + 2),
  )
  const bullFig = await figure(
    ctx,
    async () => {
      await bull.addAll(ctx, 'memory', items('memory-bullmq', ctx.n))
      return scanKeys(ctx.stats, 'bull:memory:*')
    },
    (key) => (/^bull:memory:\d+$/.test(key) ? 'job hashes' : key.slice('bull:memory:'.length)),
  )
  const rawFig = await figure(
    ctx,
    async () => {
      await raw.enqueuePipelines(ctx.client(), items('memory-raw', ctx.n))
      return [raw.RAW_PENDING, raw.RAW_JOBS]
    },
    (key) => key,
  )
  const out = { embedq: embedqFig, bullmq: bullFig, raw: rawFig }
  ctx.log(
    `memory/pending item: embedq ${Math.round(embedqFig.bytesPerItem)} B, BullMQ ${Math.round(bullFig.bytesPerItem)} B, raw ${Math.round(rawFig.bytesPerItem)} B`,
  )
  return out
}
