/**
 * Workload 5 — scale: 1, 2 and 4 worker processes (bench/worker-process.ts) drain one queue
 * while this process enqueues N items with a producer-only instance. Time runs from the first
 * enqueue to `flushAndWait()` reporting everything finished in Redis. Each configuration runs
 * twice: with `trackResults: false` (the producer keeps nothing per job: pure drain
 * throughput) and with the default `trackResults: true`, where the producer also resolves
 * every `job.result` — which, across processes, means reading each vector back from Redis.
 */
import { type ChildProcess, fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import * as embedq from '../contenders/embedq.js'
import { type BenchContext, reset, runTimeoutMs } from '../lib/context.js'
import { now } from '../lib/stats.js'
import { items } from '../lib/texts.js'
import type { FromWorker, ToWorker } from '../worker-process.js'

export const PROCESS_COUNTS = [1, 2, 4] as const
/** How long results may trail `flushAndWait()` before the missing ones count as lost. */
const RESULT_GRACE_MS = 15_000

export interface ScaleRun {
  processes: number
  latencyMs: number
  /** The producer kept a result promise per job (trackResults: true) and so read every vector back. */
  trackResults: boolean
  items: number
  /** First enqueue to flushAndWait() drained. */
  drainedMs: number
  /** First enqueue to the producer's last job.result (with trackResults; null if some never came). */
  resultsMs: number | null
  /** job.result promises still pending RESULT_GRACE_MS after everything was finished in Redis (all repetitions). */
  lostResults: number
  /** Drained items/s of every repetition (this record is the fastest). */
  runsPerSec?: number[]
  /** Texts the workers sent to the provider (N when nothing was embedded twice). */
  embedded: number
}

class Child {
  private readonly proc: ChildProcess
  private readonly waiting: Array<{
    type: FromWorker['type']
    resolve(m: FromWorker): void
    reject(e: Error): void
  }> = []

  constructor(url: string) {
    const script = fileURLToPath(new URL('../worker-process.ts', import.meta.url))
    this.proc = fork(script, [], {
      execArgv: ['--import', 'tsx'],
      env: { ...process.env, BENCH_REDIS_URL: url },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    })
    this.proc.on('message', (m: FromWorker) => {
      if (m.type === 'error') return this.fail(new Error(`worker process: ${m.message}`))
      const i = this.waiting.findIndex((w) => w.type === m.type)
      if (i !== -1) this.waiting.splice(i, 1)[0]!.resolve(m)
    })
    this.proc.on('exit', (code) => {
      if (code) this.fail(new Error(`worker process exited with ${code}`))
    })
  }

  private fail(err: Error): void {
    for (const w of this.waiting.splice(0)) w.reject(err)
  }

  wait<T extends FromWorker['type']>(type: T, timeoutMs = 60_000): Promise<Extract<FromWorker, { type: T }>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`worker process: no '${type}' in ${timeoutMs} ms`)),
        timeoutMs,
      )
      this.waiting.push({
        type,
        resolve: (m) => {
          clearTimeout(timer)
          resolve(m as Extract<FromWorker, { type: T }>)
        },
        reject: (err) => {
          clearTimeout(timer)
          reject(err)
        },
      })
    })
  }

  send(m: ToWorker): void {
    this.proc.send(m)
  }

  async exit(): Promise<void> {
    if (this.proc.exitCode !== null || !this.proc.connected) return
    const gone = new Promise<void>((r) => this.proc.once('exit', () => r()))
    this.send({ type: 'exit' })
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 10_000)
    await gone
    clearTimeout(timer)
  }
}

interface RunOptions {
  processes: number
  latencyMs: number
  /** The producer keeps a result promise per job (and so reads every vector back). */
  trackResults: boolean
}

async function runOnce(ctx: BenchContext, children: Child[], o: RunOptions): Promise<ScaleRun> {
  const name = `scale-${o.processes}p-${o.latencyMs}ms`
  const used = children.slice(0, o.processes)
  for (const c of used) c.send({ type: 'start', name, latencyMs: o.latencyMs })
  await Promise.all(used.map((c) => c.wait('started')))
  const { queue } = embedq.makeQueue({
    redis: ctx.client(),
    name,
    worker: false,
    extra: { trackResults: o.trackResults },
  })
  await queue.start()
  const list = items(name, ctx.n)
  const limitMs = runTimeoutMs(list.length)
  const t0 = now()
  const jobs = await queue.enqueueMany(list)
  const flushed = await queue.flushAndWait({ timeoutMs: limitMs })
  const drainedMs = now() - t0
  if (!flushed.drained) {
    const st = await queue.stats()
    throw new Error(
      `scale ${name}: not drained after ${Math.round(limitMs / 1000)} s: ${flushed.remaining} left ` +
        `(pending ${st.pending}, in flight ${st.inflight}, retrying ${st.retrying}, failed ${st.failed})`,
    )
  }
  let resultsMs: number | null = null
  let lostResults = 0
  if (o.trackResults) {
    // Everything is finished in Redis now; results still missing after a grace period never come.
    let resolved = 0
    const all = Promise.all(jobs.map((j) => j.result.then(() => resolved++)))
    const grace = ctx.smoke ? 5_000 : RESULT_GRACE_MS
    let timer: NodeJS.Timeout | undefined
    const expired = new Promise<false>((r) => {
      timer = setTimeout(() => r(false), grace)
    })
    const settled = await Promise.race([all.then(() => true), expired])
    clearTimeout(timer)
    if (settled) resultsMs = now() - t0
    else {
      lostResults = jobs.length - resolved
      ctx.log(`scale ${name}: ${lostResults} job.result promises never resolved although drained (see docs)`)
    }
    all.catch(() => {}) // the lost ones reject with QueueStoppedError when the queue stops below
  }
  for (const c of used) c.send({ type: 'stop' })
  const stopped = await Promise.all(used.map((c) => c.wait('stopped')))
  await queue.stop()
  await reset(ctx)
  return {
    ...o,
    items: list.length,
    drainedMs,
    resultsMs,
    lostResults,
    embedded: stopped.reduce((s, m) => s + m.texts, 0),
  }
}

/** The fastest of `ctx.repeat` runs. */
async function best(ctx: BenchContext, children: Child[], o: RunOptions): Promise<ScaleRun> {
  const runs: ScaleRun[] = []
  for (let i = 0; i < ctx.repeat; i++) runs.push(await runOnce(ctx, children, o))
  const b = runs.reduce((x, y) => (y.drainedMs < x.drainedMs ? y : x))
  const run = {
    ...b,
    lostResults: runs.reduce((sum, r) => sum + r.lostResults, 0),
    runsPerSec: runs.map((r) => Math.round((r.items * 1000) / r.drainedMs)),
  }
  ctx.log(
    `scale ${o.processes}p ${o.latencyMs}ms trackResults ${o.trackResults}: ${run.runsPerSec.join(', ')} items/s drained`,
  )
  return run
}

export async function scaleWorkload(ctx: BenchContext, latencies: readonly number[]): Promise<ScaleRun[]> {
  const children = Array.from({ length: Math.max(...PROCESS_COUNTS) }, () => new Child(ctx.url))
  try {
    await Promise.all(children.map((c) => c.wait('ready')))
    const runs: ScaleRun[] = []
    for (const latencyMs of latencies) {
      // Warm-up: every process once on a small batch, not recorded.
      const warm = { ...ctx, n: Math.min(ctx.n, 1000) }
      await runOnce(warm, children, { processes: children.length, latencyMs, trackResults: true })
      for (const processes of PROCESS_COUNTS) {
        for (const trackResults of [false, true])
          runs.push(await best(ctx, children, { processes, latencyMs, trackResults }))
      }
    }
    return runs
  } finally {
    await Promise.all(children.map((c) => c.exit()))
  }
}
