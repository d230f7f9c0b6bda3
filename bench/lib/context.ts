/** What every workload gets: the private Redis server, a stats connection and the run's settings. */
import { Redis } from 'ioredis'
import { type CommandCost, measureCommands } from './redis-cost.js'
import { now } from './stats.js'

export interface BenchContext {
  /** Items per workload (texts of 100–300 characters). */
  readonly n: number
  readonly smoke: boolean
  /** Timed repetitions per contender; the fastest is reported (others on the machine only slow runs down). */
  readonly repeat: number
  readonly port: number
  readonly url: string
  /** Dedicated connection for FLUSHDB, INFO and MEMORY USAGE (its commands are not counted). */
  readonly stats: Redis
  /** A new client to the private server; closed by `closeClients()`. */
  client(opts?: { bullmq?: boolean }): Redis
  closeClients(): Promise<void>
  log(message: string): void
}

export function createContext(opts: {
  n: number
  smoke: boolean
  repeat: number
  port: number
  url: string
}): BenchContext {
  const clients = new Set<Redis>()
  const stats = new Redis({ port: opts.port, host: '127.0.0.1' })
  return {
    ...opts,
    stats,
    client({ bullmq = false } = {}) {
      // BullMQ workers need maxRetriesPerRequest: null (blocking commands).
      const c = new Redis({
        port: opts.port,
        host: '127.0.0.1',
        ...(bullmq ? { maxRetriesPerRequest: null } : {}),
      })
      clients.add(c)
      return c
    },
    async closeClients() {
      await Promise.all([...clients].map((c) => c.quit().catch(() => c.disconnect())))
      clients.clear()
    },
    log(message: string) {
      console.error(`[bench] ${message}`)
    },
  }
}

export interface Timed {
  items: number
  ms: number
  cost: CommandCost
  /** CPU time the redis-server process used during the run (INFO cpu), ms. */
  redisCpuMs: number
  /** CPU time this Node process used during the run (process.cpuUsage), ms. */
  nodeCpuMs: number
  /** items/s of every repetition (this record is the fastest). */
  runsPerSec?: number[]
}

/** Rejects when `p` takes longer than `ms`: a stuck contender fails the run instead of hanging it. */
export function withTimeout<T>(p: Promise<T>, ms: number, label: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${label}: no result after ${Math.round(ms / 1000)} s`)), ms)
  })
  return Promise.race([p, limit]).finally(() => clearTimeout(timer))
}

/** Generous bound for one timed run of `items` items (the slowest contender does ~900/s). */
export const runTimeoutMs = (items: number): number => 60_000 + items * 10

/** Runs `once` `ctx.repeat` times and keeps the fastest, recording every rate. */
export async function bestOf<T extends Timed>(ctx: BenchContext, once: () => Promise<T>): Promise<T> {
  const runs: T[] = []
  for (let i = 0; i < ctx.repeat; i++) runs.push(await once())
  const perSec = (t: T): number => (t.items * 1000) / t.ms
  const best = runs.reduce((a, b) => (perSec(b) > perSec(a) ? b : a))
  return { ...best, runsPerSec: runs.map((r) => Math.round(perSec(r))) }
}

async function redisCpuMs(redis: Redis): Promise<number> {
  const info = await redis.info('cpu')
  const get = (field: string): number => Number(new RegExp(`${field}:([\\d.]+)`).exec(info)?.[1] ?? 0)
  // used_cpu_*_main_thread would exclude Redis's background threads; the totals are what the
  // machine pays, and the bench server has no persistence, so they barely differ.
  return (get('used_cpu_user') + get('used_cpu_sys')) * 1000
}

/**
 * Times `fn` (which handles `items` items), counts the Redis commands it causes and the CPU
 * both sides spend (work in child processes is not in `nodeCpuMs`).
 */
export async function timed(ctx: BenchContext, items: number, fn: () => Promise<void>): Promise<Timed> {
  let ms = 0
  let nodeCpuMs = 0
  const redisBefore = await redisCpuMs(ctx.stats)
  const { cost } = await measureCommands(ctx.stats, async () => {
    const cpu0 = process.cpuUsage()
    const t0 = now()
    await withTimeout(fn(), runTimeoutMs(items), `timed run of ${items} items`)
    ms = now() - t0
    const cpu = process.cpuUsage(cpu0)
    nodeCpuMs = (cpu.user + cpu.system) / 1000
  })
  const redisAfter = await redisCpuMs(ctx.stats)
  return { items, ms, cost, redisCpuMs: redisAfter - redisBefore, nodeCpuMs }
}

/** Empties the private server between contenders (it is ours alone). */
export async function reset(ctx: BenchContext): Promise<void> {
  await ctx.closeClients()
  await ctx.stats.flushdb()
}
