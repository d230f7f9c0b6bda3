/**
 * embedq benchmark: `npm run bench` (N = 20,000) or `npm run bench:smoke` (tiny N, for CI).
 *
 *   tsx bench/run.ts [--n 20000] [--smoke] [--only enqueue,drain,latency,memory,scale,bulk]
 *                    [--repeat 3] [--out bench/results] [--docs]
 *
 * Starts one private redis-server (never the machine's shared one), runs every workload
 * against embedq and the baselines measured in the same run, prints the markdown table and
 * writes `<out>/latest.{json,md}` (smoke: `<out>/smoke.{json,md}`). `--docs` also replaces the
 * table between the markers in docs/benchmarks.md. Exits 0 when targets are missed (they are
 * reported); non-zero only on errors. See docs/benchmarks.md.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, release, type } from 'node:os'
import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { startRedisServer } from '../test/helpers/redis-server.js'
import { createContext } from './lib/context.js'
import { type BenchResults, computeTargets, type Machine, renderMarkdown } from './lib/report.js'
import { now } from './lib/stats.js'
import { bulkWorkload } from './workloads/bulk.js'
import { drainWorkload } from './workloads/drain.js'
import { enqueueWorkload } from './workloads/enqueue.js'
import { latencyWorkload } from './workloads/latency.js'
import { memoryWorkload } from './workloads/memory.js'
import { scaleWorkload } from './workloads/scale.js'

const WORKLOADS = ['enqueue', 'drain', 'latency', 'memory', 'scale', 'bulk'] as const
type Workload = (typeof WORKLOADS)[number]
const LATENCIES = [0, 50] as const
const DOCS_START = '<!-- bench:table:start -->'
const DOCS_END = '<!-- bench:table:end -->'

function options() {
  const { values } = parseArgs({
    options: {
      n: { type: 'string' },
      smoke: { type: 'boolean', default: false },
      only: { type: 'string' },
      out: { type: 'string', default: 'bench/results' },
      docs: { type: 'boolean', default: false },
      repeat: { type: 'string' },
    },
  })
  const smoke = values.smoke ?? false
  const n = Number(values.n ?? (smoke ? 300 : 20_000))
  if (!Number.isInteger(n) || n < 1)
    throw new RangeError(`--n must be a positive integer, received ${values.n}`)
  const repeat = Number(values.repeat ?? (smoke ? 1 : 3))
  if (!Number.isInteger(repeat) || repeat < 1)
    throw new RangeError(`--repeat must be a positive integer, received ${values.repeat}`)
  const only = values.only ? values.only.split(',').map((s) => s.trim()) : [...WORKLOADS]
  for (const w of only) {
    if (!(WORKLOADS as readonly string[]).includes(w))
      throw new RangeError(`--only: unknown workload ${w} (${WORKLOADS.join(', ')})`)
  }
  return {
    n,
    smoke,
    repeat,
    only: new Set(only as Workload[]),
    out: resolve(values.out ?? 'bench/results'),
    docs: values.docs ?? false,
  }
}

function sh(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
  } catch {
    return 'unknown'
  }
}

function machine(redisVersion: string): Machine {
  let cpu = cpus()[0]?.model ?? 'unknown'
  try {
    cpu = /model name\s*:\s*(.+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? cpu
  } catch {
    // not Linux
  }
  const dirty = sh('git', ['status', '--porcelain', '--', 'src', 'lua']) ? ' (src/lua modified)' : ''
  return {
    cpu,
    cores: Number(sh('nproc', [])) || cpus().length,
    node: process.version,
    redis: redisVersion,
    os: `${type()} ${release()}`,
    commit: `${sh('git', ['rev-parse', '--short', 'HEAD'])}${dirty}`,
  }
}

function updateDocs(markdown: string): void {
  const path = resolve('docs/benchmarks.md')
  if (!existsSync(path)) throw new Error(`--docs: ${path} not found`)
  const doc = readFileSync(path, 'utf8')
  const a = doc.indexOf(DOCS_START)
  const b = doc.indexOf(DOCS_END)
  if (a === -1 || b < a) throw new Error(`--docs: markers ${DOCS_START} … ${DOCS_END} not found in ${path}`)
  writeFileSync(path, `${doc.slice(0, a + DOCS_START.length)}\n${markdown}${doc.slice(b)}`)
  console.error(`[bench] updated ${path}`)
}

async function main(): Promise<void> {
  const opts = options()
  const started = now()
  const server = await startRedisServer({ args: ['--save', '', '--appendonly', 'no'] })
  const ctx = createContext({
    n: opts.n,
    smoke: opts.smoke,
    repeat: opts.repeat,
    port: server.port,
    url: server.url,
  })
  const load0 = loadavg()[0]!
  try {
    const redisVersion = /redis_version:(\S+)/.exec(await ctx.stats.info('server'))?.[1] ?? 'unknown'
    ctx.log(
      `N=${opts.n}${opts.smoke ? ' (smoke)' : ''}, private redis-server ${redisVersion} on port ${server.port}`,
    )
    await ctx.stats.flushdb()
    const results: BenchResults = {
      meta: {
        date: new Date().toISOString(),
        n: opts.n,
        smoke: opts.smoke,
        repeat: opts.repeat,
        durationS: 0,
        loadavg: [load0, load0],
        machine: machine(redisVersion),
      },
      targets: [],
    }
    if (opts.only.has('enqueue')) results.enqueue = await enqueueWorkload(ctx)
    if (opts.only.has('drain')) {
      results.drain = []
      for (const latency of LATENCIES) results.drain.push(await drainWorkload(ctx, latency))
    }
    if (opts.only.has('latency')) {
      results.latency = []
      for (const latency of LATENCIES)
        results.latency.push(await latencyWorkload(ctx, latency, opts.smoke ? 2 : 10))
    }
    if (opts.only.has('memory')) results.memory = await memoryWorkload(ctx)
    if (opts.only.has('scale')) results.scale = await scaleWorkload(ctx, LATENCIES)
    if (opts.only.has('bulk')) results.bulk = await bulkWorkload(ctx)
    results.meta.durationS = (now() - started) / 1000
    results.meta.loadavg[1] = loadavg()[0]!
    results.targets = computeTargets(results)

    const markdown = renderMarkdown(results)
    console.log(markdown)
    mkdirSync(opts.out, { recursive: true })
    const base = resolve(opts.out, opts.smoke ? 'smoke' : 'latest')
    writeFileSync(`${base}.json`, `${JSON.stringify(results, null, 2)}\n`)
    writeFileSync(`${base}.md`, markdown)
    ctx.log(`wrote ${base}.json and ${base}.md`)
    if (opts.docs && !opts.smoke) updateDocs(markdown)
    const missed = results.targets.filter((t) => !t.pass)
    if (missed.length) ctx.log(`targets missed: ${missed.map((t) => t.name).join('; ')}`)
  } finally {
    await ctx.closeClients()
    ctx.stats.disconnect()
    await server.destroy()
  }
}

main().then(
  () => {
    // Anything still holding the event loop (a library timer, a socket) must not hang CI.
    setTimeout(() => {
      const alive = process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap')
      console.error(`[bench] still alive after the run (${alive.join(', ')}); exiting`)
      process.exit(0)
    }, 3_000).unref()
  },
  (err: unknown) => {
    console.error('[bench] failed:', err)
    process.exitCode = 1
    setTimeout(() => process.exit(1), 3_000).unref()
  },
)
