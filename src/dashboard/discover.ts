/**
 * Finds the queues under a prefix from their keys alone: every queue that ever held an item
 * has `<prefix>:{<name>}:seq` (and usually `:versions`, `:pending`, `:failed`). One SCAN per
 * master node with a MATCH on the prefix, so target hashes elsewhere in the keyspace are
 * skipped by Redis, not read.
 */
import { Cluster, type Redis } from 'ioredis'
import { escapeGlob, isValidKeyPart } from '../keys.js'

/** Key suffixes that mark a queue (a queue with only a rate-limiter key is not listed). */
const QUEUE_SUFFIXES = new Set(['seq', 'versions', 'pending', 'inflight', 'failed', 'delayed', 'jobs'])

export interface DiscoverOptions {
  /** SCAN COUNT hint per call. @default 1000 */
  scanCount?: number
  /** Stop after this many SCAN calls per node (bounds the time on a huge keyspace). @default 2000 */
  maxCalls?: number
  /** Return at most this many queue names. @default 500 */
  maxQueues?: number
}

/** Re-exported: the glob escape shared with the vector index's scan (src/keys.ts). */
export { escapeGlob }

/** The queue name of a queue-owned key under `prefix`, or null. */
export function queueNameOf(key: string, prefix: string): string | null {
  const head = `${prefix}:{`
  if (!key.startsWith(head)) return null
  const close = key.indexOf('}:', head.length)
  if (close === -1) return null
  const name = key.slice(head.length, close)
  const suffix = key.slice(close + 2)
  if (!QUEUE_SUFFIXES.has(suffix) || !isValidKeyPart(name)) return null
  return name
}

/** Sorted names of the queues under `prefix`, on a standalone Redis or every master of a cluster. */
export async function discoverQueues(
  redis: Redis | Cluster,
  prefix: string,
  opts: DiscoverOptions = {},
): Promise<string[]> {
  const scanCount = opts.scanCount ?? 1000
  const maxCalls = opts.maxCalls ?? 2000
  const maxQueues = opts.maxQueues ?? 500
  const nodes: Redis[] = redis instanceof Cluster ? redis.nodes('master') : [redis]
  const pattern = `${escapeGlob(prefix)}:{*}:*`
  const names = new Set<string>()
  await Promise.all(
    nodes.map(async (node) => {
      let cursor = '0'
      let calls = 0
      do {
        const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', scanCount)
        for (const key of keys) {
          const name = queueNameOf(key, prefix)
          if (name !== null) names.add(name)
        }
        cursor = next
        calls++
      } while (cursor !== '0' && calls < maxCalls && names.size < maxQueues)
    }),
  )
  return [...names].sort().slice(0, maxQueues)
}
