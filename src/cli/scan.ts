/**
 * Cluster-aware SCAN: one cursor per master (a Redis Cluster client's `SCAN` would only reach
 * one node), and an estimate of how far each cursor has come, for progress bars and ETAs.
 *
 * How far a cursor has come: Redis walks its hash table in reverse-binary order (`dictScan`),
 * so the cursor read with its 64 bits reversed counts the buckets visited, as a fraction of
 * 2^64. On Redis ≥ 7.4 / Valkey ≥ 8 in cluster mode, each slot has its own table and the low
 * 14 bits of the cursor name the slot being scanned, so the fraction is the slot's rank among
 * the node's slots.
 */
import type { Cluster, Redis } from 'ioredis'

export interface ScanNode {
  /** `host:port`, stable across runs as long as the topology is. */
  readonly id: string
  readonly client: Redis
  /** Keys in the node's database (DBSIZE when the scan started), to weigh its progress. */
  readonly size: number
  /** How far a cursor of this node has come, in [0, 1). */
  progress(cursor: string): number
}

const TWO_64 = 2 ** 64

/** The fraction of a classic (one table per database) SCAN cursor. */
export function cursorFraction(cursor: string): number {
  let c = BigInt(cursor)
  let r = 0n
  for (let i = 0; i < 64; i++) {
    r = (r << 1n) | (c & 1n)
    c >>= 1n
  }
  return Number(r) / TWO_64
}

/** The fraction of a per-slot (kvstore) cursor: rank of the slot in its low 14 bits among `slots` (sorted). */
export function slotCursorFraction(cursor: string, slots: readonly number[]): number {
  if (slots.length === 0) return 0
  const slot = Number(BigInt(cursor) & 0x3fffn)
  let lo = 0
  let hi = slots.length
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if (slots[mid]! < slot) lo = mid + 1
    else hi = mid
  }
  return lo / slots.length
}

function infoField(info: string, field: string): string | undefined {
  return new RegExp(`^${field}:(.*)$`, 'm').exec(info)?.[1]?.trim()
}

/** Whether this server keeps one table per slot (Redis ≥ 7.4 or Valkey ≥ 8, in cluster mode). */
export function usesSlotTables(info: string): boolean {
  if (infoField(info, 'cluster_enabled') !== '1') return false
  const valkey = infoField(info, 'valkey_version')
  const [major = 0, minor = 0] = (valkey ?? infoField(info, 'redis_version') ?? '0')
    .split('.')
    .map((n) => Number(n))
  return valkey ? major >= 8 : major > 7 || (major === 7 && minor >= 4)
}

const isCluster = (redis: Redis | Cluster): redis is Cluster =>
  (redis as { isCluster?: boolean }).isCluster === true

/** The nodes to SCAN: every master of a cluster, or the one server. */
export async function scanNodes(redis: Redis | Cluster): Promise<ScanNode[]> {
  const clients: Array<{ id: string; client: Redis }> = isCluster(redis)
    ? redis.nodes('master').map((client) => ({ id: `${client.options.host}:${client.options.port}`, client }))
    : [{ id: `${redis.options.host}:${redis.options.port}`, client: redis }]
  return Promise.all(
    clients.map(async ({ id, client }) => {
      const [info, size] = await Promise.all([client.info(), client.dbsize()])
      let progress = cursorFraction
      if (isCluster(redis) && usesSlotTables(info)) {
        const slots: number[] = []
        redis.slots.forEach((owners, slot) => {
          if (owners?.[0] === id) slots.push(slot)
        })
        progress = (cursor) => slotCursorFraction(cursor, slots)
      }
      return { id, client, size, progress }
    }),
  )
}
