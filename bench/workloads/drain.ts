/**
 * Workload 2 — end-to-end drain: from the first enqueue to the last result, with a fake
 * provider of `latencyMs` per call. embedq (one process: producer and worker), the raw
 * hand-rolled batching ceiling, and BullMQ (one job per text, worker concurrency 50).
 * The commands each contender causes are counted here too (workload 4).
 */
import * as bull from '../contenders/bullmq.js'
import * as embedq from '../contenders/embedq.js'
import * as raw from '../contenders/raw.js'
import { type BenchContext, bestOf, reset, type Timed, timed } from '../lib/context.js'
import { DIMENSIONS, fakeEmbedder } from '../lib/fake-embedder.js'
import { type Item, items } from '../lib/texts.js'

export interface DrainRun extends Timed {
  /** Provider calls made in the timed run. */
  providerCalls: number
}

export interface DrainResult {
  latencyMs: number
  embedq: DrainRun
  raw: DrainRun
  bullmq: DrainRun
}

/** Every target hash has a 768-dim blob (guards against a contender that skips work). */
async function verify(ctx: BenchContext, list: readonly Item[], label: string): Promise<void> {
  const p = ctx.stats.pipeline()
  for (const it of list) p.hstrlen(it.key, 'embedding')
  const res = (await p.exec()) ?? []
  const bad = res.filter(([err, len]) => err || Number(len) !== DIMENSIONS * 4).length
  if (bad > 0) throw new Error(`${label}: ${bad} of ${list.length} targets lack a ${DIMENSIONS}-dim vector`)
}

interface Rig {
  run(list: readonly Item[]): Promise<void>
  close(): Promise<void>
  calls(): number
}

async function measure(ctx: BenchContext, label: string, setup: () => Promise<Rig>): Promise<DrainRun> {
  const warmRig = await setup()
  await warmRig.run(items(`warm:${label}`, Math.min(ctx.n, 5000)))
  await warmRig.close()
  await reset(ctx)
  const list = items(label, ctx.n)
  const t = await bestOf(ctx, async () => {
    const rig = await setup()
    const before = rig.calls()
    const run = await timed(ctx, list.length, () => rig.run(list))
    const providerCalls = rig.calls() - before
    await rig.close()
    await verify(ctx, list, label)
    await reset(ctx)
    return { ...run, providerCalls }
  })
  ctx.log(
    `drain ${label}: ${t.runsPerSec?.join(', ')} items/s, ${(t.cost.sent / t.items).toFixed(2)} cmds/item sent`,
  )
  return t
}

export async function drainWorkload(ctx: BenchContext, latencyMs: number): Promise<DrainResult> {
  const name = (who: string) => `drain-${latencyMs}ms-${who}`
  const embedqRun = await measure(ctx, name('embedq'), async () => {
    const { queue, embedder } = embedq.makeQueue({
      redis: ctx.client(),
      name: name('embedq'),
      worker: true,
      latencyMs,
    })
    await queue.start()
    return { run: (l) => embedq.drain(queue, l), close: () => queue.stop(), calls: () => embedder.calls }
  })
  const rawRun = await measure(ctx, name('raw'), async () => {
    const redis = ctx.client()
    await redis.ping()
    const embedder = fakeEmbedder(latencyMs)
    return { run: (l) => raw.drain(redis, l, embedder), close: async () => {}, calls: () => embedder.calls }
  })
  const bullRun = await measure(ctx, name('bullmq'), async () => {
    const embedder = fakeEmbedder(latencyMs)
    const rig = await bull.rig(ctx, name('bullmq'), embedder)
    return { run: (l) => rig.run(l), close: () => rig.close(), calls: () => embedder.calls }
  })
  return { latencyMs, embedq: embedqRun, raw: rawRun, bullmq: bullRun }
}
