/** Workload 1 — enqueue throughput: embedq enqueueMany and single enqueues vs raw pipelines. */
import * as embedq from '../contenders/embedq.js'
import * as raw from '../contenders/raw.js'
import { type BenchContext, bestOf, reset, type Timed, timed } from '../lib/context.js'
import { type Item, items } from '../lib/texts.js'

export const SINGLE_INFLIGHT = 100

export interface EnqueueResult {
  embedqMany: Timed
  embedqSingles: Timed
  /** ZADD+HSET per item, 500 items per pipeline, one pipeline at a time. */
  rawPipelines: Timed
  /** The same with 4 pipelines in flight. */
  rawPipelines4: Timed
  /** One variadic ZADD + one variadic HSET per 500 items, 4 pipelines in flight. */
  rawVariadic4: Timed
  rawSingles: Timed
}

type Runner = (list: readonly Item[]) => Promise<void>

async function measure(
  ctx: BenchContext,
  label: string,
  setup: () => Promise<{ run: Runner; close(): Promise<void> }>,
) {
  // Warm-up (JIT, script cache, connections) on other keys, then the timed run on a clean server.
  const warm = await setup()
  await warm.run(items(`warm:${label}`, Math.min(ctx.n, 5000)))
  await warm.close()
  await reset(ctx)
  const list = items(label, ctx.n)
  const t = await bestOf(ctx, async () => {
    const rig = await setup()
    const run = await timed(ctx, list.length, () => rig.run(list))
    await rig.close()
    await reset(ctx)
    return run
  })
  ctx.log(`enqueue ${label}: ${t.runsPerSec?.join(', ')} items/s`)
  return t
}

function embedqRig(ctx: BenchContext, singles: boolean) {
  return async () => {
    const { queue } = embedq.makeQueue({
      redis: ctx.client(),
      name: singles ? 'enq-single' : 'enq-many',
      worker: false,
    })
    await queue.start()
    return {
      run: async (list: readonly Item[]) => {
        if (singles) await embedq.enqueueSingles(queue, list, SINGLE_INFLIGHT)
        else await embedq.enqueueMany(queue, list)
      },
      close: () => queue.stop(),
    }
  }
}

function rawRig(
  ctx: BenchContext,
  run: (redis: ReturnType<BenchContext['client']>, list: readonly Item[]) => Promise<void>,
) {
  return async () => {
    const redis = ctx.client()
    await redis.ping()
    return { run: (list: readonly Item[]) => run(redis, list), close: async () => {} }
  }
}

export async function enqueueWorkload(ctx: BenchContext): Promise<EnqueueResult> {
  return {
    rawPipelines: await measure(
      ctx,
      'raw-pipelines',
      rawRig(ctx, (r, l) => raw.enqueuePipelines(r, l, 1)),
    ),
    rawPipelines4: await measure(
      ctx,
      'raw-pipelines-4',
      rawRig(ctx, (r, l) => raw.enqueuePipelines(r, l, 4)),
    ),
    rawVariadic4: await measure(
      ctx,
      'raw-variadic-4',
      rawRig(ctx, (r, l) => raw.enqueueVariadic(r, l, 4)),
    ),
    rawSingles: await measure(
      ctx,
      'raw-singles',
      rawRig(ctx, (r, l) => raw.enqueueSingles(r, l, SINGLE_INFLIGHT)),
    ),
    embedqMany: await measure(ctx, 'embedq-many', embedqRig(ctx, false)),
    embedqSingles: await measure(ctx, 'embedq-singles', embedqRig(ctx, true)),
  }
}
