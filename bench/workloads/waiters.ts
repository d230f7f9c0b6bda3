/**
 * Workload: waiting at scale (issue #10.10). A producer with no worker holds N tracked results
 * (nothing drains), and we measure what that costs:
 *
 * - heap bytes per waiting result, its `EmbedJob` included (`heapUsed` after `global.gc()`,
 *   before and after the enqueues, divided by N);
 * - Redis commands the waiting producer sends per safety-net tick (`INFO stats`
 *   `total_commands_processed` over a few ticks, minus the INFO calls themselves);
 * - `stop()` with M waiters: how long it takes and how much heap it leaves behind.
 *
 * Not a timed benchmark: the figures are sizes and counts. It needs `--expose-gc`, so it runs
 * in a child process of its own:
 *
 *   node --expose-gc --import tsx bench/workloads/waiters.ts [--n 600000] [--stop-n 1000000]
 *        [--ticks 2] [--port <redis port>]
 *
 * Without `--port` it starts a private redis-server. Prints one JSON line (`WaitersFigures`).
 * `waitersWorkload(ctx)` runs the same script as a child of the bench run.
 */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { Redis } from 'ioredis'
import type { Embedder } from '../../src/embedder.js'
import { EmbeddingBatchQueue, type EmbedJob } from '../../src/index.js'
import { startRedisServer } from '../../test/helpers/redis-server.js'

export interface StopFigure {
  /** Results waiting when `stop()` ran. */
  waiters: number
  /** How long `stop()` took, ms. */
  ms: number
  /** heapUsed right after `stop()` returned (no GC) minus heapUsed (after GC) just before, bytes. */
  heapGrowthBytes: number
  /** heapUsed (after GC) just before `stop()`, bytes. */
  heapBeforeBytes: number
  /** Results that rejected (QueueStoppedError). */
  rejected: number
}

export interface WaitersFigures {
  /** Results waited for in the memory phase. */
  n: number
  /** heapUsed growth / n, bytes (jobs and their promises included). */
  heapBytesPerWaiter: number
  /** Highest heapUsed sampled (every 20 ms, no forced GC) during the ticks, minus the start, / n. */
  peakHeapBytesPerWaiter: number
  /** Waiters the queue reported (`stats().local.waiting`). */
  waiting: number
  /** Safety-net ticks observed while n results waited. */
  ticks: number
  /** Commands Redis processed per tick while n results waited (nothing draining). */
  commandsPerTick: number
  /** `stop()` of the memory phase's queue (n waiters), then of a queue with `--stop-n` waiters. */
  stops: StopFigure[]
}

/** Only the producer side runs: the embedder is never called. */
const idleEmbedder: Embedder = {
  dimensions: 16,
  embed: () => Promise.reject(new Error('no worker in this workload')),
}

const SAFETY_NET_MS = 5_000
const CHUNK = 10_000

function heap(): number {
  const gc = (globalThis as { gc?: () => void }).gc
  if (!gc) throw new Error('run node with --expose-gc')
  gc()
  gc()
  return process.memoryUsage().heapUsed
}

async function commandsProcessed(stats: Redis): Promise<number> {
  const info = await stats.info('stats')
  return Number(/total_commands_processed:(\d+)/.exec(info)?.[1] ?? Number.NaN)
}

/** Enqueues `n` short texts in chunks (the texts are not kept), returning every job. */
async function fill(queue: EmbeddingBatchQueue, tag: string, n: number): Promise<EmbedJob[]> {
  const jobs: EmbedJob[] = []
  for (let i = 0; i < n; i += CHUNK) {
    const items = []
    for (let j = i; j < Math.min(n, i + CHUNK); j++) items.push({ key: `w:${tag}:${j}`, text: `text ${j}` })
    for (const job of await queue.enqueueMany(items)) jobs.push(job)
  }
  return jobs
}

/** Stops `queue` with its `jobs` waiting and measures it. */
async function measureStop(queue: EmbeddingBatchQueue, jobs: EmbedJob[]): Promise<StopFigure> {
  let rejected = 0
  const count = (): void => {
    rejected++
  }
  for (const j of jobs) j.result.catch(count)
  const heapBeforeBytes = heap()
  const t0 = performance.now()
  await queue.stop()
  const ms = performance.now() - t0
  const heapGrowthBytes = process.memoryUsage().heapUsed - heapBeforeBytes
  await new Promise((r) => setImmediate(r))
  return { waiters: jobs.length, ms: Math.round(ms), heapGrowthBytes, heapBeforeBytes, rejected }
}

async function measure(port: number, n: number, stopN: number, ticks: number): Promise<WaitersFigures> {
  const redis = new Redis({ port, host: '127.0.0.1' })
  const stats = new Redis({ port, host: '127.0.0.1' })
  try {
    // Phase 1: n waiting results, nothing drains.
    const queue = new EmbeddingBatchQueue({
      redis,
      embedder: idleEmbedder,
      name: 'waiters-mem',
      worker: false,
    })
    await queue.start()
    const before = heap()
    const jobs = await fill(queue, 'mem', n)
    const after = heap()
    const waiting = (await queue.stats()).local.waiting
    let commandsPerTick = Number.NaN
    let peak = after
    if (ticks > 0) {
      const sampler = setInterval(() => {
        peak = Math.max(peak, process.memoryUsage().heapUsed)
      }, 20)
      const c0 = await commandsProcessed(stats)
      await new Promise((r) => setTimeout(r, ticks * SAFETY_NET_MS + 500))
      const c1 = await commandsProcessed(stats)
      clearInterval(sampler)
      // The second INFO is counted too.
      commandsPerTick = (c1 - c0 - 1) / ticks
    }
    const stops = [await measureStop(queue, jobs)]
    jobs.length = 0
    await redis.flushdb()

    // Phase 2: stop() with stopN waiting results.
    if (stopN > 0) {
      const big = new EmbeddingBatchQueue({
        redis,
        embedder: idleEmbedder,
        name: 'waiters-stop',
        worker: false,
      })
      await big.start()
      stops.push(await measureStop(big, await fill(big, 'stop', stopN)))
      await redis.flushdb()
    }
    return {
      n,
      heapBytesPerWaiter: Math.round((after - before) / n),
      peakHeapBytesPerWaiter: Math.round((peak - before) / n),
      waiting,
      ticks,
      commandsPerTick,
      stops,
    }
  } finally {
    await Promise.all([redis.quit(), stats.quit()])
  }
}

/** Runs the workload in a child process (it needs --expose-gc) against the bench's Redis. */
export function waitersWorkload(
  ctx: { port: number; smoke: boolean; log(message: string): void },
  opts: { n?: number; stopN?: number; ticks?: number } = {},
): Promise<WaitersFigures> {
  const n = opts.n ?? (ctx.smoke ? 20_000 : 600_000)
  const stopN = opts.stopN ?? (ctx.smoke ? 20_000 : 1_000_000)
  const ticks = opts.ticks ?? (ctx.smoke ? 1 : 2)
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        '--expose-gc',
        '--import',
        'tsx',
        fileURLToPath(import.meta.url),
        '--port',
        String(ctx.port),
        '--n',
        String(n),
        '--stop-n',
        String(stopN),
        '--ticks',
        String(ticks),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    )
    let out = ''
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString()
    })
    child.once('error', reject)
    child.once('exit', (code) => {
      const line = out.trim().split('\n').pop() ?? ''
      if (code !== 0) return reject(new Error(`waiters workload exited with ${code}: ${line}`))
      try {
        const figures = JSON.parse(line) as WaitersFigures
        const stops = figures.stops.map((s) => `${s.waiters} in ${s.ms} ms`).join(', ')
        ctx.log(
          `waiters: ${figures.heapBytesPerWaiter} B heap per waiting result (n=${n}), ${figures.commandsPerTick} commands per safety-net tick, stop() of ${stops}`,
        )
        resolve(figures)
      } catch (err) {
        reject(err)
      }
    })
  })
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      n: { type: 'string', default: '600000' },
      'stop-n': { type: 'string', default: '1000000' },
      ticks: { type: 'string', default: '2' },
      port: { type: 'string' },
    },
  })
  const server = values.port ? undefined : await startRedisServer()
  try {
    const port = server?.port ?? Number(values.port)
    const figures = await measure(port, Number(values.n), Number(values['stop-n']), Number(values.ticks))
    process.stdout.write(`${JSON.stringify(figures)}\n`)
  } finally {
    await server?.destroy()
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((err) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
    process.exitCode = 1
  })
}
