/**
 * Workload 3 — flush latency: with items pending and a worker idle (flushIntervalMs 1 h, so
 * nothing flushes by itself), `flushNow()` is called and every item's time from that call to
 * its `job.result` resolving is recorded; p50/p99 over several rounds.
 *
 * Pending count: the claim policy flushes a full batch (maxBatchSize ready) at once, so a
 * running worker never leaves maxBatchSize items waiting. The bench uses maxBatchSize 1000
 * (the library's maximum; the provider still gets 100 texts per call, 8 calls in flight) and
 * 999 pending items — the most a running worker leaves for flushNow.
 */
import * as embedq from '../contenders/embedq.js'
import { type BenchContext, reset } from '../lib/context.js'
import { now, percentile, sleep } from '../lib/stats.js'
import { items } from '../lib/texts.js'

export const LATENCY_PENDING = 999
const QUEUE_MAX_BATCH = 1000

export interface LatencyResult {
  latencyMs: number
  pending: number
  rounds: number
  p50: number
  p99: number
  max: number
  /** Per round: flushNow() to the last result. */
  allDoneMs: number[]
}

export async function latencyWorkload(
  ctx: BenchContext,
  latencyMs: number,
  rounds: number,
): Promise<LatencyResult> {
  const name = `latency-${latencyMs}ms`
  const { queue } = embedq.makeQueue({
    redis: ctx.client(),
    name,
    worker: true,
    latencyMs,
    maxBatchSize: QUEUE_MAX_BATCH,
    extra: { flushIntervalMs: 3_600_000 },
  })
  await queue.start()
  const samples: number[] = []
  const allDoneMs: number[] = []
  // Round 0 is a warm-up and is not recorded.
  for (let r = 0; r <= rounds; r++) {
    const jobs = await queue.enqueueMany(items(`${name}:r${r}`, LATENCY_PENDING))
    await sleep(50)
    const st = await queue.stats()
    if (st.pending !== LATENCY_PENDING || st.inflight !== 0) {
      throw new Error(
        `latency: expected ${LATENCY_PENDING} idle pending items, found ${st.pending} (+${st.inflight} in flight)`,
      )
    }
    const round: number[] = []
    const t0 = now()
    queue.flushNow()
    await Promise.all(jobs.map((j) => j.result.then(() => round.push(now() - t0))))
    if (r > 0) {
      samples.push(...round)
      allDoneMs.push(Math.max(...round))
    }
  }
  await queue.stop()
  await reset(ctx)
  const result = {
    latencyMs,
    pending: LATENCY_PENDING,
    rounds,
    p50: percentile(samples, 50),
    p99: percentile(samples, 99),
    max: Math.max(...samples),
    allDoneMs,
  }
  ctx.log(`latency ${latencyMs}ms: p50 ${result.p50.toFixed(1)} ms, p99 ${result.p99.toFixed(1)} ms`)
  return result
}
