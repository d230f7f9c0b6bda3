/**
 * Experiment: what the per-item write-back costs, and what a batched fence would save.
 *
 *   npx tsx bench/experiments/write-back.ts [--n 20000]
 *
 * Writes N 768-dim blobs into N target hashes, 100 per chunk, 8 chunks in flight (what an
 * embedq worker does at concurrency 8), three ways, on a private redis-server:
 *   per-item  — the library today: one EVALSHA of lua/write-vector-1.lua per target
 *   hset      — plain HSET of blob + version (no stale-write fence)
 *   batched   — one EVALSHA per chunk whose loop does the same HGET-compare-HSET per target
 *               (standalone Redis; on a cluster it works per slot group)
 * and prints wall time, Redis and Node CPU per item and commands sent/executed per item.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import type { Redis } from 'ioredis'
import pLimit from 'p-limit'
import { startRedisServer } from '../../test/helpers/redis-server.js'
import { createContext, reset, timed } from '../lib/context.js'
import { blobs } from '../lib/fake-embedder.js'
import { chunks } from '../lib/stats.js'

/** The library's own fence script, read from lua/ (no dependency on internals). */
function writeVectorLua(): string {
  const dir = new URL('../../lua/', import.meta.url)
  const file = readdirSync(dir).find((f) => /^write-vector-\d+\.lua$/.test(f))
  if (!file) throw new Error('lua/write-vector-*.lua not found')
  return readFileSync(new URL(file, dir), 'utf8')
}

const BATCHED_LUA = `
for i = 1, #KEYS do
  local cur = redis.call('HGET', KEYS[i], ARGV[2])
  local v = ARGV[2 * i + 1]
  if not cur or tonumber(cur) <= tonumber(v) then
    redis.call('HSET', KEYS[i], ARGV[1], ARGV[2 * i + 2], ARGV[2], v)
  end
end
return #KEYS`

type Way = 'per-item' | 'hset' | 'batched'

async function writeBack(redis: Redis, n: number, way: Way): Promise<void> {
  const limit = pLimit(8)
  const keys = Array.from({ length: n }, (_, i) => `exp:msg:${i}`)
  const c = redis as unknown as Record<string, (...a: unknown[]) => unknown>
  await Promise.all(
    chunks(keys, 100).map((chunk, ci) =>
      limit(async () => {
        const version = String(1_700_000_000_000_000 + ci)
        if (way === 'batched') {
          const args: (string | Buffer)[] = ['embedding', 'embedding_version']
          for (let i = 0; i < chunk.length; i++) args.push(version, blobs[i % blobs.length]!)
          await c.expBatched!(chunk.length, ...chunk, ...args)
          return
        }
        const p = redis.pipeline() as unknown as Record<string, (...a: unknown[]) => unknown> & {
          exec(): Promise<unknown>
        }
        chunk.forEach((key, i) => {
          const blob = blobs[i % blobs.length]!
          if (way === 'per-item') p.expPerItem!(key, 'embedding', 'embedding_version', version, blob)
          else p.hset!(key, 'embedding', blob, 'embedding_version', version)
        })
        await p.exec()
      }),
    ),
  )
}

const { values } = parseArgs({ options: { n: { type: 'string', default: '20000' } } })
const n = Number(values.n)
const server = await startRedisServer()
const ctx = createContext({ n, smoke: false, repeat: 3, port: server.port, url: server.url })
try {
  for (const way of ['per-item', 'hset', 'batched'] as const) {
    const rows: string[] = []
    for (let r = 0; r < 3; r++) {
      const redis = ctx.client()
      redis.defineCommand('expPerItem', { numberOfKeys: 1, lua: writeVectorLua() })
      redis.defineCommand('expBatched', { lua: BATCHED_LUA })
      await writeBack(redis, 1000, way) // warm-up, loads the script
      const t = await timed(ctx, n, () => writeBack(redis, n, way))
      await reset(ctx)
      rows.push(
        `${Math.round((n * 1000) / t.ms)} items/s, CPU/item Redis ${((t.redisCpuMs * 1000) / n).toFixed(1)} µs ` +
          `Node ${((t.nodeCpuMs * 1000) / n).toFixed(1)} µs, sent ${(t.cost.sent / n).toFixed(2)} executed ${(t.cost.executed / n).toFixed(2)} per item`,
      )
    }
    console.log(`${way.padEnd(8)} ${rows.join('\n         ')}`)
  }
} finally {
  await ctx.closeClients()
  ctx.stats.disconnect()
  await server.destroy()
}
