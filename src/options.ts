import type { Cluster, Redis } from 'ioredis'
import type { Embedder } from './embedder.js'
import { isValidKeyPart } from './keys.js'
import { type Logger, silentLogger } from './logger.js'

/** A limit on provider calls shared by every worker of the queue (through Redis). */
export interface RateLimitOptions {
  /** Calls per window. @default no limit */
  requestsPerMinute?: number
  /** Tokens per window, estimated from text length by `estimateTokens`. @default no limit */
  tokensPerMinute?: number
  /** Window length; the limits hold over every window of this length. @default 60_000 */
  windowMs?: number
  /** Queues with the same scope share one limiter (e.g. one API key). @default the queue name */
  scope?: string
  /** Token estimate of one text. @default Math.ceil(text.length / 4) */
  estimateTokens?: (text: string) => number
}

/** Opt-in cache of vectors by (embedder id, text): identical texts cost no API call. */
export interface CacheOptions {
  /** How long a cached vector lives. @default 604_800 (7 days) */
  ttlSeconds?: number
  /** Part of the cache key that names the model; set it when the embedder has no `id`. @default embedder.id */
  namespace?: string
}

export interface ResolvedRateLimit {
  requestsPerMinute: number
  tokensPerMinute: number
  windowMs: number
  scope: string
  estimateTokens: (text: string) => number
}

/** Options of `new EmbeddingBatchQueue(...)`. Defaults are applied in `resolveOptions` only. */
export interface QueueOptions {
  /**
   * Your ioredis client (or Cluster). The queue never quits it: it duplicates it for its
   * one subscriber connection and closes only that. A client with `keyPrefix` is refused.
   */
  redis: Redis | Cluster
  /** Where texts are embedded. See `hashingEmbedder`, `geminiEmbedder`, `openAIEmbedder`, `ollamaEmbedder`. */
  embedder: Embedder
  /** Queue name: all its keys share the hash tag `{name}` (one cluster slot). @default 'default' */
  name?: string
  /** Prefix of every queue key. @default 'embedq' */
  prefix?: string
  /** Items per claim; a batch this full is flushed at once. At most 1000. @default 50 */
  maxBatchSize?: number
  /** The oldest ready item waits at most this long for a full batch. @default 3_600_000 */
  flushIntervalMs?: number
  /** Failed attempts before an item is given up (zero vector + dead letter). @default 3 */
  maxAttempts?: number
  /** Target hash field that receives the float32 blob. @default 'embedding' */
  field?: string
  /**
   * Target hash field that receives the version of the text the vector belongs to. It fences
   * out stale writes and lets a late waiter find a finished result. @default `${field}_version`
   */
  versionField?: string
  /**
   * Target hash field set (to `1`) when an item is given up, together with its zero vector,
   * and removed when a vector is written later. `queue.vectorIndex()` leaves such targets out
   * of the index and of scan results, so given-up items never pollute search. @default `${field}_failed`
   */
  failedField?: string
  /** How long a claim is held without a heartbeat before another worker may take it. @default 30_000 */
  leaseMs?: number
  /** Whether this instance drains the queue. `false` makes a producer-only instance. @default true */
  worker?: boolean
  /** Provider calls in flight per process. @default 4 */
  concurrency?: number
  /** Longest key accepted, in bytes. @default 1024 */
  maxKeyBytes?: number
  /** Longest text accepted, in UTF-8 bytes. @default 65_536 */
  maxTextBytes?: number
  /** Reject `job.result` with `EmbedTimeoutError` after this long; 0 waits without limit. @default 0 */
  resultTimeoutMs?: number
  /** Backoff after the first failed attempt; doubles per attempt, with jitter. @default 1_000 */
  backoffBaseMs?: number
  /** Longest backoff. @default 60_000 */
  backoffMaxMs?: number
  /** On give-up, write a zero vector (so vector search still sees the key) or leave the field absent. @default true */
  zeroVectorOnFailure?: boolean
  /** How often an idle worker checks the queue even without a wake-up message. @default 1_000 */
  pollIntervalMs?: number
  /** How often every worker returns expired leases to pending. @default leaseMs / 2 */
  reclaimIntervalMs?: number
  /**
   * How long a target write that fails for a Redis reason (connection lost, a slot moving,
   * CLUSTERDOWN, TRYAGAIN…) is retried before the item goes back to the queue, uncharged, and
   * an `error` event reports it. @default 10_000
   */
  writeRetryMs?: number
  /**
   * Upper bound of one embedder call, enforced by the queue whether or not the embedder honours
   * its `AbortSignal`. Past it the call is abandoned (its signal aborted), its leases released
   * and its items retried as a timeout (`EmbedderTimeoutError`, charged an attempt like any
   * timeout). Keep it above the provider's own `timeoutMs` (30 s for the built-in providers)
   * times the requests one call makes. @default 60_000
   */
  embedTimeoutMs?: number
  /** How long `stop()` lets running provider calls finish before aborting them. @default 10_000 */
  stopGraceMs?: number
  /** How long a credential error (401/403) pauses this worker's drain. @default 30_000 */
  authPauseMs?: number
  /**
   * How long a rate-limited call (429) without a wait from the server pauses every worker of
   * the queue; doubles with each rate-limited call after a pause ended, up to `backoffMaxMs`.
   * @default 1_000
   */
  rateLimitPauseMs?: number
  /**
   * A rate limit whose wait is longer than this counts as an exhausted quota: reported with a
   * `QuotaExhaustedError` and in `stats().rateLimit.reason`. Also the pause of a quota error
   * that gives no reset time. @default 600_000
   */
  quotaPauseThresholdMs?: number
  /**
   * How long `enqueue` waits for a disconnected client to reconnect before it rejects with
   * `RedisUnavailableError` (nothing is written then). @default 2_000
   */
  enqueueTimeoutMs?: number
  /**
   * Longest wait for Redis in a call that takes no timeout of its own (`start`, `stats`,
   * `pendingCount`, `failed`, `retryFailed`, the enqueue script, `flushNow`'s report): past it
   * the call rejects with `RedisUnavailableError`, whatever the client's `maxRetriesPerRequest`.
   * Calls with a timeout (`flushAndWait`) honour theirs instead. @default 5_000
   */
  commandTimeoutMs?: number
  /**
   * Make `start()` reject with `EvictionPolicyError` when Redis's `maxmemory-policy` is not
   * `noeviction` (Redis could silently evict queued work). Without it, `start()` only warns
   * (logger + `error` event). @default false
   */
  requireNoEviction?: boolean
  /**
   * Backpressure: `enqueue` rejects with `QueueFullError` (writing nothing) when the queue
   * would hold more unfinished items than this. 0 means no limit. @default 0
   */
  maxPending?: number
  /**
   * Whether `enqueue` registers a waiter for every job at once (the cheapest way to get
   * results). With `false`, nothing is kept per job: `job.result` subscribes and checks
   * Redis only when first read — for backfills of millions of keys. @default true
   */
  trackResults?: boolean
  /** Items per enqueue script call. @default 500 */
  enqueueChunkSize?: number
  /** Shared rate limit of provider calls across all workers of the queue. @default none */
  rateLimit?: RateLimitOptions
  /** Vector cache by text (opt-in). @default off */
  cache?: CacheOptions | boolean
  /** pino-compatible logger. @default silent */
  logger?: Logger
  /** The half-price bulk lane (needs `embedder.bulk`). See docs/notes-b2.md. */
  bulk?: BulkLaneOptions
}

/** How the bulk lane packs, submits and polls provider batch jobs. */
export interface BulkLaneOptions {
  /** Most requests per job (capped by the provider's `maxRequestsPerJob`). @default 10_000 */
  maxJobSize?: number
  /** A job is submitted as soon as this many items wait. @default 1_000 */
  minJobSize?: number
  /** ...or when the oldest waiting item is this old, ms. @default 60_000 */
  gatherMs?: number
  /** First poll of a job after submit, and the start of the poll backoff, ms. @default 30_000 */
  pollIntervalMs?: number
  /** The poll backoff stops growing here, ms. @default 300_000 */
  maxPollIntervalMs?: number
  /**
   * How long a worker holds a job it polls or submits; a worker that dies holding it lets
   * another take the job after this long (a 'submitting' record is then looked up by label).
   * @default 300_000
   */
  leaseMs?: number
  /** Times an item may be missing from a succeeded job's results before it goes online. @default 3 */
  maxMisses?: number
  /** Whether this worker runs the bulk lane (needs `worker` and `embedder.bulk`). @default true */
  enabled?: boolean
  /** Test hook: called after the provider accepted a job and before its id is recorded. */
  afterSubmit?: (jobId: string) => void
}

export type ResolvedBulkOptions = Required<Omit<BulkLaneOptions, 'afterSubmit'>> & {
  afterSubmit: ((jobId: string) => void) | undefined
}

export type ResolvedOptions = Required<Omit<QueueOptions, 'logger' | 'rateLimit' | 'cache' | 'bulk'>> & {
  bulk: ResolvedBulkOptions
  logger: Logger
  rateLimit: ResolvedRateLimit | undefined
  cache: { ttlSeconds: number; namespace: string } | undefined
}

function check(ok: boolean, option: string, expected: string, received: unknown, Err = RangeError): void {
  if (!ok) {
    const shown = typeof received === 'string' ? JSON.stringify(received) : String(received)
    throw new Err(`embedq: option \`${option}\` must be ${expected}, received ${shown}`)
  }
}

function int(o: Record<string, unknown>, option: string, def: number, min: number, max: number): number {
  const v = o[option]
  if (v === undefined) return def
  check(typeof v === 'number', option, 'a number', v, TypeError)
  check(
    Number.isInteger(v) && (v as number) >= min && (v as number) <= max,
    option,
    `an integer in [${min}, ${max}]`,
    v,
  )
  return v as number
}

export function resolveOptions(opts: QueueOptions): ResolvedOptions {
  check(typeof opts === 'object' && opts !== null, 'options', 'an object', opts, TypeError)
  const o = opts as unknown as Record<string, unknown>
  const redis = opts.redis as { options?: { keyPrefix?: string }; duplicate?: unknown } | undefined
  check(
    !!redis && typeof redis.duplicate === 'function',
    'redis',
    'an ioredis Redis or Cluster client',
    redis,
    TypeError,
  )
  const keyPrefix =
    (redis as { options?: { keyPrefix?: string; redisOptions?: { keyPrefix?: string } } }).options
      ?.keyPrefix ??
    (redis as { options?: { redisOptions?: { keyPrefix?: string } } }).options?.redisOptions?.keyPrefix
  check(
    !keyPrefix,
    'redis',
    'a client without ioredis `keyPrefix` (Lua scripts and target keys would disagree on names; use the `prefix` option instead)',
    `a client with keyPrefix ${JSON.stringify(keyPrefix)}`,
    TypeError,
  )
  const e = opts.embedder as Partial<Embedder> | undefined
  check(
    !!e && typeof e.embed === 'function',
    'embedder',
    'an object with an embed(texts) method',
    e,
    TypeError,
  )
  check(
    typeof e?.dimensions === 'number' && Number.isInteger(e.dimensions) && e.dimensions > 0,
    'embedder.dimensions',
    'a positive integer',
    e?.dimensions,
  )
  if (e?.maxBatchSize !== undefined) {
    check(
      Number.isInteger(e.maxBatchSize) && e.maxBatchSize > 0,
      'embedder.maxBatchSize',
      'a positive integer',
      e.maxBatchSize,
    )
  }
  const name = opts.name ?? 'default'
  check(
    typeof name === 'string' && isValidKeyPart(name),
    'name',
    'a non-empty string without braces or spaces',
    name,
  )
  const prefix = opts.prefix ?? 'embedq'
  check(
    typeof prefix === 'string' && isValidKeyPart(prefix),
    'prefix',
    'a non-empty string without braces or spaces',
    prefix,
  )
  const field = opts.field ?? 'embedding'
  check(typeof field === 'string' && field.length > 0, 'field', 'a non-empty string', field)
  const versionField = opts.versionField ?? `${field}_version`
  check(
    typeof versionField === 'string' && versionField.length > 0 && versionField !== field,
    'versionField',
    'a non-empty string other than `field`',
    versionField,
  )
  const failedField = opts.failedField ?? `${field}_failed`
  check(
    typeof failedField === 'string' &&
      failedField.length > 0 &&
      failedField !== field &&
      failedField !== versionField,
    'failedField',
    'a non-empty string other than `field` and `versionField`',
    failedField,
  )
  const leaseMs = int(o, 'leaseMs', 30_000, 1_000, 3_600_000)
  const backoffBaseMs = int(o, 'backoffBaseMs', 1_000, 0, 3_600_000)
  const backoffMaxMs = int(o, 'backoffMaxMs', 60_000, 0, 86_400_000)
  check(backoffMaxMs >= backoffBaseMs, 'backoffMaxMs', `>= backoffBaseMs (${backoffBaseMs})`, backoffMaxMs)
  for (const b of ['worker', 'zeroVectorOnFailure', 'trackResults', 'requireNoEviction'] as const) {
    if (o[b] !== undefined) check(typeof o[b] === 'boolean', b, 'a boolean', o[b], TypeError)
  }
  const logger = opts.logger ?? silentLogger
  for (const level of ['debug', 'info', 'warn', 'error'] as const) {
    check(
      typeof logger[level] === 'function',
      'logger',
      `a pino-compatible logger with ${level}()`,
      logger,
      TypeError,
    )
  }
  let rateLimit: ResolvedRateLimit | undefined
  if (opts.rateLimit !== undefined) {
    check(
      typeof opts.rateLimit === 'object' && opts.rateLimit !== null,
      'rateLimit',
      'an object',
      opts.rateLimit,
      TypeError,
    )
    const r = opts.rateLimit as unknown as Record<string, unknown>
    const requestsPerMinute = int(r, 'requestsPerMinute', 0, 0, Number.MAX_SAFE_INTEGER)
    const tokensPerMinute = int(r, 'tokensPerMinute', 0, 0, Number.MAX_SAFE_INTEGER)
    check(
      requestsPerMinute > 0 || tokensPerMinute > 0,
      'rateLimit',
      'an object with requestsPerMinute or tokensPerMinute',
      JSON.stringify(opts.rateLimit),
    )
    const scope = opts.rateLimit.scope ?? name
    check(
      typeof scope === 'string' && isValidKeyPart(scope),
      'rateLimit.scope',
      'a string without braces or spaces',
      scope,
    )
    const estimateTokens = opts.rateLimit.estimateTokens ?? ((text: string) => Math.ceil(text.length / 4))
    check(
      typeof estimateTokens === 'function',
      'rateLimit.estimateTokens',
      'a function',
      estimateTokens,
      TypeError,
    )
    rateLimit = {
      requestsPerMinute,
      tokensPerMinute,
      windowMs: int(r, 'windowMs', 60_000, 100, 86_400_000),
      scope,
      estimateTokens,
    }
  }
  let cache: ResolvedOptions['cache']
  if (opts.cache) {
    const c = (opts.cache === true ? {} : opts.cache) as Record<string, unknown>
    const namespace = (c.namespace as string | undefined) ?? e?.id
    check(
      typeof namespace === 'string' && namespace.length > 0,
      'cache.namespace',
      'a non-empty string (the embedder has no id to name its model)',
      namespace,
    )
    cache = { ttlSeconds: int(c, 'ttlSeconds', 604_800, 1, 315_360_000), namespace: namespace as string }
  }
  check(
    opts.bulk === undefined || (typeof opts.bulk === 'object' && opts.bulk !== null),
    'bulk',
    'an object',
    opts.bulk,
    TypeError,
  )
  const b = (opts.bulk ?? {}) as Record<string, unknown>
  if (b.enabled !== undefined)
    check(typeof b.enabled === 'boolean', 'bulk.enabled', 'a boolean', b.enabled, TypeError)
  if (b.afterSubmit !== undefined)
    check(typeof b.afterSubmit === 'function', 'bulk.afterSubmit', 'a function', b.afterSubmit, TypeError)
  const pollIntervalMs = int(b, 'pollIntervalMs', 30_000, 10, 86_400_000)
  const bulk: ResolvedBulkOptions = {
    maxJobSize: int(b, 'maxJobSize', 10_000, 1, 1_000_000),
    minJobSize: int(b, 'minJobSize', 1_000, 1, 1_000_000),
    gatherMs: int(b, 'gatherMs', 60_000, 0, 31 * 86_400_000),
    pollIntervalMs,
    maxPollIntervalMs: Math.max(pollIntervalMs, int(b, 'maxPollIntervalMs', 300_000, 10, 86_400_000)),
    leaseMs: int(b, 'leaseMs', 300_000, 100, 86_400_000),
    maxMisses: int(b, 'maxMisses', 3, 0, 1000),
    enabled: (b.enabled as boolean | undefined) ?? true,
    afterSubmit: b.afterSubmit as ((jobId: string) => void) | undefined,
  }
  return {
    bulk,
    rateLimit,
    cache,
    redis: opts.redis,
    embedder: opts.embedder,
    name,
    prefix,
    field,
    versionField,
    failedField,
    maxBatchSize: int(o, 'maxBatchSize', 50, 1, 1000),
    flushIntervalMs: int(o, 'flushIntervalMs', 3_600_000, 0, 31 * 86_400_000),
    maxAttempts: int(o, 'maxAttempts', 3, 1, 1000),
    leaseMs,
    worker: opts.worker ?? true,
    concurrency: int(o, 'concurrency', 4, 1, 1000),
    maxKeyBytes: int(o, 'maxKeyBytes', 1024, 1, 512 * 1024 * 1024),
    maxTextBytes: int(o, 'maxTextBytes', 65_536, 1, 512 * 1024 * 1024),
    resultTimeoutMs: int(o, 'resultTimeoutMs', 0, 0, 2_147_483_647),
    backoffBaseMs,
    backoffMaxMs,
    zeroVectorOnFailure: opts.zeroVectorOnFailure ?? true,
    trackResults: opts.trackResults ?? true,
    pollIntervalMs: int(o, 'pollIntervalMs', 1_000, 10, 3_600_000),
    reclaimIntervalMs: int(o, 'reclaimIntervalMs', Math.max(100, Math.floor(leaseMs / 2)), 10, 3_600_000),
    writeRetryMs: int(o, 'writeRetryMs', 10_000, 0, 3_600_000),
    stopGraceMs: int(o, 'stopGraceMs', 10_000, 0, 3_600_000),
    embedTimeoutMs: int(o, 'embedTimeoutMs', 60_000, 1, 2_147_483_647),
    authPauseMs: int(o, 'authPauseMs', 30_000, 0, 86_400_000),
    rateLimitPauseMs: int(o, 'rateLimitPauseMs', 1_000, 1, 3_600_000),
    quotaPauseThresholdMs: int(o, 'quotaPauseThresholdMs', 600_000, 1_000, 86_400_000),
    enqueueChunkSize: int(o, 'enqueueChunkSize', 500, 1, 1000),
    enqueueTimeoutMs: int(o, 'enqueueTimeoutMs', 2_000, 0, 3_600_000),
    maxPending: int(o, 'maxPending', 0, 0, Number.MAX_SAFE_INTEGER),
    commandTimeoutMs: int(o, 'commandTimeoutMs', 5_000, 100, 3_600_000),
    requireNoEviction: opts.requireNoEviction ?? false,
    logger,
  }
}
