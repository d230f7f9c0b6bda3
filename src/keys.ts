/**
 * Key names of one queue. Every queue-owned key carries the hash tag `{name}`, so all of
 * them live in one Redis Cluster slot and every Lua script touches a single slot.
 */
export interface QueueKeys {
  /** ZSET key -> ready tick (version in µs for fresh items: FIFO). */
  readonly pending: string
  /** ZSET key -> lease expiry tick. */
  readonly inflight: string
  /** HASH key -> text of the latest version. */
  readonly jobs: string
  /** ZSET key -> latest version, for every item not yet finished. */
  readonly versions: string
  /** HASH key -> claim token of the lease holder. */
  readonly leases: string
  /** HASH key -> failed attempts so far. */
  readonly retries: string
  /** HASH key -> dead letter (JSON). */
  readonly failed: string
  /** ZSET key -> tick when its retry backoff ends. */
  readonly delayed: string
  /** STRING highest version handed out. */
  readonly seq: string
  /** STRING items with a tick up to this are flushed now. */
  readonly flush: string
  /** STRING claims pause until this tick (provider rate limit). */
  readonly pause: string
  /** HASH why the queue is paused (reason, quota, since…) and rate-limited calls so far. */
  readonly pauseInfo: string
  /** HASH 10-second bucket -> items finished (the last minute is kept). */
  readonly throughput: string
  /**
   * STREAM capped log of the done notifications (ids + keys, no dead-letter bodies): a
   * subscriber that missed messages reads what it missed from here.
   */
  readonly doneStream: string
  /** HASH worker id -> WorkerInfo (JSON), rewritten on every heartbeat. */
  readonly workers: string
  /** ZSET worker id -> epoch ms (Redis time) after which the worker counts as gone. */
  readonly workersSeen: string
  /** STRING operator pause (`pause()`): JSON `{ since, by }`; absent when not paused. */
  readonly paused: string
  /** HASH minute -> that minute's counters (CSV, see src/history.ts), 24 h kept. */
  readonly history: string
  /** ZSET key -> version: items waiting for the bulk lane (online claims never look here). */
  readonly bulk: string
  /** ZSET key -> version: items inside a submitted bulk job (out of flushAndWait's count). */
  readonly bulkItems: string
  /** HASH bulk job id -> JSON record (label, provider job id, state, counts, times). */
  readonly bulkJobs: string
  /** ZSET bulk job id -> tick (ms) when a worker should look at it next (poll, or a stale submit). */
  readonly bulkDue: string
  /** HASH bulk job id -> token of the worker holding its poll lease. */
  readonly bulkLeases: string
  /** HASH key -> times it was missing from a succeeded job's results (bounded uncharged requeues). */
  readonly bulkMisses: string
  /** HASH totals of the bulk lane: requests submitted, tokens sent, estimated saving, pause. */
  readonly bulkStats: string
  /** Pub/sub channel of done and failed notifications. */
  readonly doneChannel: string
  /** Pub/sub channel that wakes workers (full batch, flush, reclaim). */
  readonly wakeChannel: string
}

const NAME_RE = /^[^{}\s]+$/

export function queueKeys(prefix: string, name: string): QueueKeys {
  const base = `${prefix}:{${name}}`
  return {
    pending: `${base}:pending`,
    inflight: `${base}:inflight`,
    jobs: `${base}:jobs`,
    versions: `${base}:versions`,
    leases: `${base}:leases`,
    retries: `${base}:retries`,
    failed: `${base}:failed`,
    delayed: `${base}:delayed`,
    seq: `${base}:seq`,
    flush: `${base}:flush`,
    pause: `${base}:pause`,
    pauseInfo: `${base}:pauseinfo`,
    throughput: `${base}:throughput`,
    doneStream: `${base}:done-log`,
    workers: `${base}:workers`,
    workersSeen: `${base}:workers-seen`,
    paused: `${base}:paused`,
    history: `${base}:history`,
    bulk: `${base}:bulk`,
    bulkItems: `${base}:bulkitems`,
    bulkJobs: `${base}:bulkjobs`,
    bulkDue: `${base}:bulkdue`,
    bulkLeases: `${base}:bulkleases`,
    bulkMisses: `${base}:bulkmisses`,
    bulkStats: `${base}:bulkstats`,
    doneChannel: `${base}:done`,
    wakeChannel: `${base}:wake`,
  }
}

/**
 * Keys of a shared rate limiter. The scope defaults to the queue name (same slot as the
 * queue); queues that share a provider key can share a scope.
 */
export function rateLimitKeys(prefix: string, scope: string): { log: string; total: string } {
  return { log: `${prefix}:{${scope}}:ratelimit:log`, total: `${prefix}:{${scope}}:ratelimit:tokens` }
}

/** The Redis type embedq keeps under each queue key part (what a script expects to find). */
const KEY_TYPES: Readonly<Record<string, 'zset' | 'hash' | 'string' | 'stream'>> = {
  pending: 'zset',
  inflight: 'zset',
  versions: 'zset',
  delayed: 'zset',
  jobs: 'hash',
  leases: 'hash',
  retries: 'hash',
  failed: 'hash',
  throughput: 'hash',
  backfill: 'hash',
  seq: 'string',
  flush: 'string',
  pause: 'string',
  pauseinfo: 'hash',
  'done-log': 'stream',
  imported: 'hash',
  workers: 'hash',
  'workers-seen': 'zset',
  paused: 'string',
  history: 'hash',
  'ratelimit:log': 'zset',
  'ratelimit:tokens': 'string',
  bulk: 'zset',
  bulkitems: 'zset',
  bulkjobs: 'hash',
  bulkdue: 'zset',
  bulkleases: 'hash',
  bulkmisses: 'hash',
  bulkstats: 'hash',
  /** `bulkjob:<id>`: key -> version of one bulk job's items (see {@link bulkJobKey}). */
  'bulkjob:*': 'hash',
}

/** HASH key -> version of the items of bulk job `id` (same hash tag as the queue). */
export function bulkJobKey(keys: QueueKeys, id: string): string {
  return `${keys.bulkJobs.slice(0, -'bulkjobs'.length)}bulkjob:${id}`
}

/** The type a queue-owned key must hold, from its part after the hash tag (undefined: not ours). */
export function expectedKeyType(key: string): 'zset' | 'hash' | 'string' | 'stream' | undefined {
  const close = key.indexOf('}:')
  if (close === -1) return undefined
  const part = key.slice(close + 2)
  if (part.startsWith('bulkjob:')) return KEY_TYPES['bulkjob:*']
  return KEY_TYPES[part]
}

/**
 * Whether `key` lies in embedq's own key space: everything under `<prefix>:` (queue keys of
 * any queue name, rate-limit keys, cache keys). A target key there would overwrite the queue.
 */
export function inKeySpace(prefix: string, key: string): boolean {
  return key.startsWith(`${prefix}:`)
}

/** Queue names and prefixes must not contain braces (they would break the hash tag) or spaces. */
export function isValidKeyPart(value: string): boolean {
  return value.length > 0 && value.length <= 200 && NAME_RE.test(value)
}

/** The Redis Cluster hash slot of a key (CRC16/XMODEM of its hash tag, mod 16384). */
export function keySlot(key: string): number {
  const bytes = Buffer.from(key)
  let start = 0
  let end = bytes.length
  const open = bytes.indexOf(0x7b)
  if (open !== -1) {
    const close = bytes.indexOf(0x7d, open + 1)
    if (close > open + 1) {
      start = open + 1
      end = close
    }
  }
  let crc = 0
  for (let i = start; i < end; i++) {
    crc ^= (bytes[i] as number) << 8
    for (let b = 0; b < 8; b++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff
  }
  return crc % 16384
}

/** SCAN/KEYS MATCH treat * ? [ ] \ as pattern characters: escapes them in a literal prefix. */
export const escapeGlob = (s: string): string => s.replace(/[*?[\]\\]/g, '\\$&')
