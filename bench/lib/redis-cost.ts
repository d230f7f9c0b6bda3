/**
 * Redis cost accounting.
 *
 * - Commands sent by the client: counted in this process, at the moment ioredis writes a
 *   command to a socket (`Command#toWritable`, which every plain, pipelined and MULTI command
 *   of every ioredis connection goes through, BullMQ's included). The stats connection's own
 *   commands are left out.
 * - Commands executed by Redis: the delta of `INFO commandstats` (sum of `calls`). Redis 7.0
 *   counts the commands a script runs with `redis.call` under their own names as well (checked:
 *   one EVAL running 10 HSETs adds eval=1 and hset=10), so executed − sent = the scripts' inner
 *   calls.
 */
import { Command, type Redis } from 'ioredis'

let sent = 0
let excluded: object | undefined

const proto = Command.prototype as unknown as { toWritable(socket: object): string | Buffer }
const original = proto.toWritable
proto.toWritable = function (this: unknown, socket: object) {
  if (socket !== excluded) sent++
  return original.call(this, socket)
}

export type CommandStats = Map<string, number>

export interface CostSnapshot {
  sent: number
  stats: CommandStats
}

export interface CommandCost {
  /** Commands the client processes wrote to Redis. */
  sent: number
  /** Commands Redis executed (top-level plus scripts' inner calls). */
  executed: number
  /** executed − sent: calls made inside Lua scripts. */
  inner: number
  /** Per command name, executed calls (sorted, largest first). */
  byCommand: Record<string, number>
}

async function commandStats(redis: Redis): Promise<CommandStats> {
  const info = await redis.info('commandstats')
  const out: CommandStats = new Map()
  for (const line of info.split('\n')) {
    const m = /^cmdstat_([^:]+):calls=(\d+)/.exec(line.trim())
    if (m) out.set(m[1]!, Number(m[2]))
  }
  return out
}

/** Takes a snapshot; `redis` is the dedicated stats connection (its commands are not counted). */
export async function snapshot(redis: Redis): Promise<CostSnapshot> {
  excluded = redis.stream
  return { sent, stats: await commandStats(redis) }
}

/** Cost between two snapshots; the INFO of the first snapshot is subtracted. */
export function costBetween(a: CostSnapshot, b: CostSnapshot): CommandCost {
  const byCommand: Record<string, number> = {}
  let executed = 0
  for (const [name, calls] of b.stats) {
    let d = calls - (a.stats.get(name) ?? 0)
    if (name === 'info') d -= 1
    if (d > 0) {
      byCommand[name] = d
      executed += d
    }
  }
  const sorted = Object.fromEntries(Object.entries(byCommand).sort((x, y) => y[1] - x[1]))
  const sentDelta = b.sent - a.sent
  return { sent: sentDelta, executed, inner: Math.max(0, executed - sentDelta), byCommand: sorted }
}

/** Measures the commands `fn` causes. */
export async function measureCommands<T>(
  stats: Redis,
  fn: () => Promise<T>,
): Promise<{ value: T; cost: CommandCost }> {
  const a = await snapshot(stats)
  const value = await fn()
  const b = await snapshot(stats)
  return { value, cost: costBetween(a, b) }
}

/** Sum of `MEMORY USAGE <key> SAMPLES 0` (exact) over keys; missing keys count 0. */
export async function memoryOf(redis: Redis, keys: readonly string[]): Promise<number> {
  const pipe = redis.pipeline()
  for (const k of keys) pipe.call('MEMORY', 'USAGE', k, 'SAMPLES', '0')
  const res = (await pipe.exec()) ?? []
  let total = 0
  for (const [err, v] of res) {
    if (err) throw err
    total += Number(v ?? 0)
  }
  return total
}

/** Every key matching `pattern` (SCAN). */
export async function scanKeys(redis: Redis, pattern: string): Promise<string[]> {
  const out: string[] = []
  let cursor = '0'
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000)
    cursor = next
    out.push(...keys)
  } while (cursor !== '0')
  return out
}

export async function usedMemory(redis: Redis): Promise<number> {
  const info = await redis.info('memory')
  return Number(/used_memory:(\d+)/.exec(info)?.[1] ?? 0)
}
