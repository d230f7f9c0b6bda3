/**
 * The library's error family. Every class sets `name`, so `err.name` survives
 * serialization and `instanceof` works from both the ESM and the CJS build.
 */

/** Base class of every error this library throws on purpose. */
export class EmbedqError extends Error {
  override name = 'EmbedqError'
}

/**
 * Vectors that were embedded but could not be written to their target hashes because Redis
 * kept failing (not because of the items): reported through the queue's `error` event; the
 * items go back to the queue without being charged an attempt.
 */
export class TargetWriteError extends EmbedqError {
  override name = 'TargetWriteError'
  constructor(
    message: string,
    /** The target keys whose vectors were not written. */
    readonly keys: readonly string[],
    options?: { cause?: unknown },
  ) {
    super(message, options)
  }
}

/** Input that can never be embedded (empty key, text too long, not a string…). Thrown at `enqueue`. */
export class InvalidInputError extends EmbedqError {
  override name = 'InvalidInputError'
  /** Which part of the input is wrong: `key` or `text`. */
  readonly field: 'key' | 'text'
  /** The target key of the item, when it is a string. */
  readonly key: string | undefined
  constructor(message: string, field: 'key' | 'text', key?: string) {
    super(message)
    this.field = field
    this.key = key
  }
}

export interface EmbedderErrorOptions {
  /** HTTP status (or the provider's equivalent) when there was one. */
  status?: number
  /** Whether trying the same texts again later can succeed (429, 5xx, timeouts, resets). */
  retryable: boolean
  /** How long the provider asked us to wait before the next call, in milliseconds. */
  retryAfterMs?: number
  /**
   * The setup is wrong (missing SDK, bad base URL…): no text can succeed until someone fixes
   * it. Like 401/403, the queue pauses the drain and charges no attempt.
   */
  configuration?: boolean
  /**
   * The provider refused the call because of a rate limit or quota (HTTP 429, gRPC
   * `RESOURCE_EXHAUSTED`), not because of the texts. The queue charges no attempt: it pauses
   * every worker of the queue for `retryAfterMs` (or its own doubling default) and requeues
   * the texts. Implies `retryable`.
   * @default status === 429, or, without a status, a `cause` whose `status` is 429 (an SDK's error)
   */
  rateLimited?: boolean
  /**
   * The rate limit is a quota that will not come back within minutes (a daily quota, a billing
   * quota). The queue pauses until `retryAfterMs` (or `quotaPauseThresholdMs` without one) and
   * reports a `QuotaExhaustedError`. Implies `rateLimited`.
   */
  quotaExhausted?: boolean
  /** The provider's name of the exhausted quota, e.g. Gemini's `quotaId`. */
  quotaId?: string
  cause?: unknown
}

/** A provider call failed. Providers map every failure to this class; the queue reads its fields. */
export class EmbedderError extends EmbedqError {
  override name = 'EmbedderError'
  readonly status: number | undefined
  readonly retryable: boolean
  readonly retryAfterMs: number | undefined
  readonly configuration: boolean
  /** A rate limit or quota refused the call (see `EmbedderErrorOptions.rateLimited`). */
  readonly rateLimited: boolean
  /** A quota that resets in hours, not seconds (see `EmbedderErrorOptions.quotaExhausted`). */
  readonly quotaExhausted: boolean
  readonly quotaId: string | undefined
  constructor(message: string, options: EmbedderErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.status = options.status
    this.quotaExhausted = options.quotaExhausted ?? false
    this.rateLimited =
      options.rateLimited ??
      (this.quotaExhausted ||
        options.status === 429 ||
        (options.status === undefined && httpStatusOf(options.cause) === 429))
    this.retryable = options.retryable || this.rateLimited
    this.retryAfterMs = options.retryAfterMs
    this.configuration = options.configuration ?? false
    this.quotaId = options.quotaId
  }

  /** 401/403: a wrong or revoked key. Retrying burns attempts for nothing. */
  get isAuthError(): boolean {
    return this.status === 401 || this.status === 403
  }

  /** Credentials or setup are wrong: retrying any text is pointless until an operator acts. */
  get stopsDrain(): boolean {
    return this.isAuthError || this.configuration
  }
}

/** An item was given up after `maxAttempts` failed attempts; its target holds a zero vector. */
export class EmbeddingFailedError extends EmbedqError {
  override name = 'EmbeddingFailedError'
  readonly key: string
  readonly attempts: number
  /** The last error's message, as recorded in the dead letter. */
  readonly lastError: string
  constructor(key: string, attempts: number, lastError: string) {
    super(`embedding of ${JSON.stringify(key)} failed after ${attempts} attempt(s): ${lastError}`)
    this.key = key
    this.attempts = attempts
    this.lastError = lastError
  }
}

/** A result was not ready within the requested time. The item itself stays queued. */
export class EmbedTimeoutError extends EmbedqError {
  override name = 'EmbedTimeoutError'
  readonly key: string
  readonly timeoutMs: number
  constructor(key: string, timeoutMs: number) {
    super(`no vector for ${JSON.stringify(key)} within ${timeoutMs} ms (the item stays queued)`)
    this.key = key
    this.timeoutMs = timeoutMs
  }
}

/** The queue instance was stopped while a result was still awaited here. The item stays queued. */
export class QueueStoppedError extends EmbedqError {
  override name = 'QueueStoppedError'
}

/** Backpressure: the queue holds `maxPending` unfinished items or more; nothing was written. */
export class QueueFullError extends EmbedqError {
  override name = 'QueueFullError'
  readonly unfinished: number
  readonly maxPending: number
  constructor(unfinished: number, maxPending: number) {
    super(`queue is full: ${unfinished} unfinished items, maxPending is ${maxPending}; nothing was written`)
    this.unfinished = unfinished
    this.maxPending = maxPending
  }
}

/** Redis could not be reached in time; nothing was written for the call that got this. */
export class RedisUnavailableError extends EmbedqError {
  override name = 'RedisUnavailableError'
  /** The client's connection status when we gave up (`reconnecting`, `connecting`, `end`, …). */
  readonly status: string
  /**
   * `operation` names the call that gave up; `written: 'unknown'` when a write was already
   * sent (it may still be applied once Redis answers: re-enqueueing the same text is safe).
   */
  constructor(
    status: string,
    waitedMs: number,
    options?: { operation?: string; written?: 'nothing' | 'unknown'; cause?: unknown },
  ) {
    const what = options?.operation ? `${options.operation}: ` : ''
    const written =
      options?.written === 'unknown' ? 'the write may or may not have been applied' : 'nothing was written'
    super(
      `${what}Redis is not reachable (connection ${status} after ${waitedMs} ms); ${written}`,
      options?.cause === undefined ? undefined : { cause: options.cause },
    )
    this.status = status
  }
}

/**
 * The HTTP status a foreign error carries (`status`, as the OpenAI and Google SDKs set it, or
 * `statusCode`), so that e.g. an SDK's `RateLimitError` wrapped as a cause still reads as a 429.
 */
function httpStatusOf(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined
  const { status, statusCode } = err as { status?: unknown; statusCode?: unknown }
  if (typeof status === 'number') return status
  return typeof statusCode === 'number' ? statusCode : undefined
}

/** Wraps an unknown throw so the caller always gets an `Error` with the original as `cause`. */
export function toError(value: unknown): Error {
  if (value instanceof Error) return value
  return new EmbedqError(typeof value === 'string' ? value : 'non-error thrown', { cause: value })
}

/**
 * A provider quota is exhausted (a daily quota, or a rate limit whose wait is longer than
 * `quotaPauseThresholdMs`). Every worker of the queue pauses until `resumesAt`; nothing is
 * charged. Reported once per pause through the queue's `error` event.
 */
export class QuotaExhaustedError extends EmbedqError {
  override name = 'QuotaExhaustedError'
  /** When the workers resume (the quota's reset, or the provider's delay). */
  readonly resumesAt: Date
  /** The provider's name of the quota, when it gave one (Gemini's `quotaId`). */
  readonly quotaId: string | undefined
  constructor(message: string, resumesAt: Date, quotaId?: string, options?: { cause?: unknown }) {
    super(message, options)
    this.resumesAt = resumesAt
    this.quotaId = quotaId
  }
}

/**
 * An embedder's reply could not be used for an item: not an array, the wrong number of vectors,
 * a missing (null/undefined) or unreadable entry, the wrong number of dimensions, a value that
 * is not a finite number, or a getter that threw. Only the affected items fail; like any
 * failure, an item is retried until `maxAttempts`, then given up (dead letter).
 */
export class EmbedderReplyError extends EmbedderError {
  override name = 'EmbedderReplyError'
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, { retryable: false, ...options })
  }
}

/**
 * A target hash holds, at the version a result was waited for (or newer), a blob that is not
 * one of this queue's vectors: its length is not `dimensions × 4` bytes (restored or foreign
 * data, another queue's model). The waiter rejects with this instead of resolving with it.
 */
export class ForeignVectorError extends EmbedqError {
  override name = 'ForeignVectorError'
  constructor(
    /** The target key. */
    readonly key: string,
    /** The `embedding_version` the target holds. */
    readonly version: number,
    /** The blob's length in bytes. */
    readonly bytes: number,
    /** `dimensions × 4`. */
    readonly expectedBytes: number,
  ) {
    super(
      `${JSON.stringify(key)} holds a ${bytes}-byte blob at version ${version}, not a vector of this queue (${expectedBytes} bytes); it was not returned`,
    )
  }
}

/**
 * A queue-owned key holds the wrong Redis type (another program wrote it, or old data): the
 * script that met it stopped. Nothing is retried silently; an operator has to look at `key`.
 */
export class QueueCorruptedError extends EmbedqError {
  override name = 'QueueCorruptedError'
  constructor(
    /** The queue key of the wrong type. */
    readonly key: string,
    /** What embedq keeps there: `zset`, `hash` or `string`. */
    readonly expectedType: string,
    /** What Redis holds there now. */
    readonly actualType: string,
    options?: { cause?: unknown },
  ) {
    super(
      `embedq queue key ${JSON.stringify(key)} holds a ${actualType}, expected a ${expectedType}: the queue cannot run until it is repaired (delete or rename the key)`,
      options,
    )
  }
}

/** Redis refused a write because it is at `maxmemory` (policy `noeviction`); nothing was written. */
export class RedisOutOfMemoryError extends EmbedqError {
  override name = 'RedisOutOfMemoryError'
}

/**
 * Redis may evict keys (`maxmemory-policy` is not `noeviction`): queued work can vanish.
 * Reported by `start()` (a warning and an `error` event, or a rejection with `requireNoEviction`).
 */
export class EvictionPolicyError extends EmbedqError {
  override name = 'EvictionPolicyError'
  constructor(
    /** The server's `maxmemory_policy`, per node (`host:port` on a cluster). */
    readonly policies: Readonly<Record<string, string>>,
  ) {
    const shown = Object.entries(policies)
      .map(([node, p]) => (node ? `${node}: ${p}` : p))
      .join(', ')
    super(
      `Redis maxmemory-policy is ${shown}, not noeviction: Redis may silently evict queued work (set maxmemory-policy noeviction)`,
    )
  }
}

/**
 * An embedder call did not settle within `embedTimeoutMs`: the queue abandoned it (and aborted
 * its signal), released its leases and retries its items like any timeout (charged an attempt).
 */
export class EmbedderTimeoutError extends EmbedderError {
  override name = 'EmbedderTimeoutError'
  readonly timeoutMs: number
  constructor(timeoutMs: number) {
    super(`the embedder call did not settle within ${timeoutMs} ms (embedTimeoutMs); it was abandoned`, {
      retryable: true,
    })
    this.timeoutMs = timeoutMs
  }
}

/**
 * The target hash already holds a newer version field than the item's (data restored from a
 * backup, or written by something else): the write fence refused the vector. The item is given
 * up as a dead letter with this error (no zero vector: the fence would refuse it too), waiters in
 * every process reject with it, and the queue emits `refused`. The target keeps what it held.
 */
export class TargetVersionConflictError extends EmbeddingFailedError {
  override name = 'TargetVersionConflictError'
  readonly version: number
  constructor(key: string, version: number, attempts: number, lastError = targetConflictMessage(version)) {
    super(key, attempts, lastError)
    this.version = version
  }
}

/** The dead-letter text of a refused write (kept in one place so every process reads it back alike). */
export function targetConflictMessage(version: number): string {
  return `the target hash holds a newer version than ${version} (restored or foreign data); the vector was not written`
}

/** Marks a dead letter whose item was refused by the write fence (see `TargetVersionConflictError`). */
export const TARGET_VERSION_CONFLICT = 'target-version-conflict'

/** The error a waiter rejects with for a dead letter. */
export function deadLetterError(letter: {
  key: string
  version: number
  attempts: number
  error: string
  reason?: string
}): EmbeddingFailedError {
  if (letter.reason === TARGET_VERSION_CONFLICT)
    return new TargetVersionConflictError(letter.key, letter.version, letter.attempts, letter.error)
  return new EmbeddingFailedError(letter.key, letter.attempts, letter.error)
}

/**
 * The sweep found bookkeeping that only eviction (or a manual delete) leaves behind and
 * repaired it. `lost` items had no text left: each got a dead letter (error 'lost to
 * eviction') and its waiters were rejected. `requeued` items still had their text and were
 * queued again.
 */
export class LostToEvictionError extends EmbedqError {
  override name = 'LostToEvictionError'
  constructor(
    /** Target keys whose text was gone (dead-lettered). */
    readonly lost: readonly string[],
    /** Target keys whose text survived and were queued again. */
    readonly requeued: readonly string[],
  ) {
    const sample = (keys: readonly string[]): string =>
      keys
        .slice(0, 10)
        .map((k) => JSON.stringify(k))
        .join(', ') + (keys.length > 10 ? `, … (${keys.length - 10} more)` : '')
    super(
      `queue bookkeeping was damaged (evicted by Redis?): ${lost.length} item(s) lost${lost.length ? ` [${sample(lost)}]` : ''}, ${requeued.length} requeued${requeued.length ? ` [${sample(requeued)}]` : ''}`,
    )
  }
}
