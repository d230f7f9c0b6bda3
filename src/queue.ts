/**
 * EmbeddingBatchQueue: producers call `enqueue(key, text)` and get a promise of the vector;
 * texts wait in Redis, are embedded in batches, and the vectors are written into the
 * producers' hashes as float32 blobs. See docs/architecture.md for the data model.
 */
import { EventEmitter } from 'node:events'
import type { Cluster, Redis } from 'ioredis'
import { foreignFields, newLocalCounts, QueueAdmin } from './admin.js'
import type {
  BackfillInfo,
  FailedFilter,
  FailedPage,
  HistoryPoint,
  Inspection,
  PauseState,
  WorkerInfo,
} from './admin-types.js'
import { type BulkJobRecord, BulkLane } from './bulk-lane.js'
import { VectorCache } from './cache.js'
import type { DeadLetter } from './codec.js'
import { clampTimer, isConnectionError, withDeadline } from './deadline.js'
import { embedOne } from './embed-one.js'
import {
  EmbedTimeoutError,
  EvictionPolicyError,
  InvalidInputError,
  LostToEvictionError,
  QueueFullError,
  QueueStoppedError,
  RedisUnavailableError,
  toError,
} from './errors.js'
import { inKeySpace, type QueueKeys, queueKeys } from './keys.js'
import { type QueueOptions, type ResolvedOptions, resolveOptions } from './options.js'
import { embedderRedactor, type Redactor } from './redact.js'
import { QueueScripts } from './scripts.js'
import { TargetStore } from './target-store.js'
import { VectorIndex, type VectorIndexOptions } from './vector-index.js'
import { Waiters } from './waiters.js'
import { Worker, type WorkerEvents, WorkerState } from './worker.js'

/** What `enqueue` returns once the item is durably in Redis. */
export interface EmbedJob {
  /** The target hash key. */
  readonly key: string
  /** Version of this text (0 for blank text, which never touches Redis). */
  readonly version: number
  /**
   * The vector, once it is written to the target hash (by any process): the vector of this
   * text or of newer text enqueued for the same key. Rejects with `EmbeddingFailedError`
   * after `maxAttempts`, `EmbedTimeoutError` after `resultTimeoutMs`, `QueueStoppedError`
   * when this instance stops first, or the item's `InvalidInputError` in `enqueueMany`.
   */
  readonly result: Promise<Float32Array>
  /**
   * Set (in `enqueueMany` only) when the item was refused — `InvalidInputError`, or
   * `QueueFullError` for a chunk over `maxPending`; nothing was written for it.
   */
  readonly error?: InvalidInputError | QueueFullError
}

export interface EnqueueItem {
  key: string
  text: string
}

/** Which lane an item takes: 'online' (the default) or 'bulk' (the provider's batch API). */
export type Lane = 'online' | 'bulk'

export interface EnqueueOptions {
  /**
   * 'bulk': the item waits for the half-price bulk lane (a provider batch job, answered within
   * hours; needs `embedder.bulk`). Every guarantee of the online lane holds. @default 'online'
   */
  lane?: Lane
}

/** The bulk lane as `stats().bulk` shows it. */
export interface BulkStats {
  /** Items waiting to be gathered into a job. */
  waiting: number
  /** Items inside submitted jobs. */
  inJobs: number
  /** Jobs not settled yet, oldest first. */
  jobs: {
    id: string
    state: BulkJobRecord['state']
    providerJobId: string | null
    requests: number
    completed: number
    failed: number
    ageMs: number
    lastPolledAt: Date | null
    error: string | null
  }[]
  /** Jobs submitted ever, the requests in them, and the tokens sent (estimated, ~4 characters each). */
  submittedJobs: number
  submittedRequests: number
  tokensSent: number
  /** What the same tokens would have cost more online, in USD (0 when the price is unknown). */
  estimatedSavingUsd: number
  /** New jobs wait until then after a refused submit (429), else null. */
  pausedUntil: Date | null
}

/** What `flushNow`/`flushAndWait` do with bulk items. */
export interface FlushOptions {
  /**
   * 'skip' (default): bulk items are left alone (and `flushAndWait` does not count them: a
   * batch job may take 24 h). 'promote': bulk items move to the online lane and are embedded
   * now. 'wait' (`flushAndWait` only): bulk items are submitted now (even a small job) and
   * counted: it returns when their jobs are settled or the timeout runs out.
   */
  bulk?: 'skip' | 'promote' | 'wait'
}

export interface FlushResult {
  /** Everything queued before the call is finished (embedded or given up). */
  drained: boolean
  /** The timeout ran out first. */
  timedOut: boolean
  /** Items queued before the call that are not finished. */
  remaining: number
  elapsedMs: number
}

export interface QueueStats {
  /** Items not finished: waiting, in flight, or backing off. */
  unfinished: number
  /** Items waiting in pending (ready or not yet due). */
  pending: number
  /** Items claimed by a worker right now. */
  inflight: number
  /** Items backing off after a failed attempt. */
  retrying: number
  /** Dead letters. */
  failed: number
  /** Age of the oldest unfinished item, ms (null when empty). */
  oldestAgeMs: number | null
  /** Claims are paused (provider rate limit or quota) for this long, ms. */
  pausedForMs: number
  /** The shared rate-limit pause, as every process and `embedq status` see it. */
  rateLimit: RateLimitStats
  /** The operator pause (`pause()`/`resume()`), distinct from the rate-limit pause. */
  paused: PauseState['operator']
  /** Live workers of the queue (in every process; see `workers()`). */
  workers: number
  /** Unfinished items and no live worker: nothing will drain the queue. */
  backlogWithoutWorker: boolean
  /** Items finished by all workers over about the last minute. */
  finishedLastMinute: number
  /**
   * The bulk lane: waiting items, jobs with state, request counts and age, totals. Always set
   * by `stats()` (optional in the type for sources that predate the bulk lane).
   */
  bulk?: BulkStats
  /** This instance's counts since it was created (for "indexing N/M" displays). */
  local: {
    enqueued: number
    embedded: number
    failed: number
    retried: number
    apiCalls: number
    apiErrors: number
    tokens: number
    cacheHits: number
    cacheMisses: number
    /** Items the sweep found lost to eviction (dead-lettered 'lost to eviction'). */
    lostToEviction: number
    waiting: number
  }
}

export interface RateLimitStats {
  /** Claims are paused for this long, ms (0: not paused). Same as `QueueStats.pausedForMs`. */
  pausedForMs: number
  /** Why: a rate limit (seconds) or an exhausted quota (until its reset); null when not paused. */
  reason: 'rate-limit' | 'quota' | null
  /** When the workers resume; null when not paused. */
  resumesAt: Date | null
  /** When this pause began; null when not paused. */
  since: Date | null
  /** The exhausted quota's name (Gemini's `quotaId`), when the provider gave one. */
  quotaId: string | null
  /** The provider's error that set the pause (clipped); null when not paused. */
  message: string | null
  /** Rate-limited provider calls of all workers, ever (none of them charged an attempt). */
  rateLimitedCalls: number
}

export interface QueueEvents {
  embedded: [info: Parameters<WorkerEvents['embedded']>[0]]
  failed: [info: Parameters<WorkerEvents['failed']>[0]]
  retrying: [info: Parameters<WorkerEvents['retrying']>[0]]
  refused: [info: Parameters<WorkerEvents['refused']>[0]]
  /** Items durably queued by this instance (one event per script call). */
  enqueued: [info: { count: number }]
  call: [info: Parameters<WorkerEvents['call']>[0]]
  cache: [info: Parameters<WorkerEvents['cache']>[0]]
  rateLimited: [info: Parameters<WorkerEvents['rateLimited']>[0]]
  drained: []
  error: [err: Error]
}

/** One shared no-op handler (a closure per job would cost ~60 bytes of heap per waiting result). */
const ignore = (): void => {}

/** How far past its timeout one Redis call of `flushAndWait` may run (see there). */
const FLUSH_CALL_GRACE_MS = 500

/** Matches a surrogate code unit not part of a pair (in `u` mode a pair is one code point). */
const LONE_SURROGATE = /\p{Surrogate}/u

const zeroVector = (dims: number): Promise<Float32Array> => Promise.resolve(new Float32Array(dims))

interface Buffered {
  lane: Lane
  key: string
  text: string
  resolve(job: EmbedJob): void
  reject(err: Error): void
}

export class EmbeddingBatchQueue extends EventEmitter<QueueEvents> {
  /** The queue's name: its keys are `<prefix>:{<name>}:<part>`. */
  readonly name: string
  private readonly o: ResolvedOptions
  private readonly keys: QueueKeys
  private readonly scripts: QueueScripts
  private readonly targets: TargetStore
  private readonly waiters: Waiters
  private readonly worker: Worker | undefined
  private readonly bulkLane: BulkLane | undefined
  private readonly queryCache: VectorCache | undefined
  private readonly redactor: Redactor
  private readonly admin: QueueAdmin
  private stopped = false
  private started: Promise<void> | undefined
  private buffer: Buffered[] = []
  private bufferTimer: NodeJS.Immediate | undefined
  private readonly writes = new Set<Promise<unknown>>()
  private readonly activity = new Set<() => void>()
  private readonly counts = newLocalCounts()

  constructor(options: QueueOptions) {
    super()
    this.o = resolveOptions(options)
    this.name = this.o.name
    this.keys = queueKeys(this.o.prefix, this.o.name)
    this.scripts = new QueueScripts(this.o.redis, this.keys, this.o.commandTimeoutMs)
    this.targets = new TargetStore(
      this.o.redis,
      this.o.field,
      this.o.versionField,
      this.o.writeRetryMs,
      this.o.failedField,
    )
    this.waiters = new Waiters({
      redis: this.o.redis,
      keys: this.keys,
      targets: this.targets,
      dimensions: this.o.embedder.dimensions,
      logger: this.o.logger,
      onWake: () => this.worker?.kick(),
      onActivity: () => this.notifyActivity(),
      connectionName: `embedq:${this.o.name}:sub`,
    })
    this.redactor = embedderRedactor(this.o.embedder)
    this.admin = new QueueAdmin({
      redis: this.o.redis,
      name: this.o.name,
      prefix: this.o.prefix,
      logger: this.o.logger,
      commandTimeoutMs: this.o.commandTimeoutMs,
      field: this.o.field,
      versionField: this.o.versionField,
      failedField: this.o.failedField,
    })
    if (this.o.cache) {
      this.queryCache = new VectorCache(
        this.o.redis,
        this.o.prefix,
        `${this.o.cache.namespace}\u0000query`,
        this.o.embedder.dimensions,
        this.o.cache.ttlSeconds,
      )
    }
    if (this.o.worker) {
      const emit: ConstructorParameters<typeof Worker>[0]['emit'] = (event, ...args) => {
        if (event === 'embedded') this.counts.embedded++
        else if (event === 'failed') this.counts.failed++
        else if (event === 'retrying') this.counts.retried++
        else if (event === 'call') {
          const info = args[0] as Parameters<WorkerEvents['call']>[0]
          this.counts.apiCalls++
          if (!info.ok) this.counts.apiErrors++
          this.counts.tokens += info.tokens
        } else if (event === 'cache') {
          const info = args[0] as Parameters<WorkerEvents['cache']>[0]
          this.counts.cacheHits += info.hits
          this.counts.cacheMisses += info.misses
        }
        if (event === 'error') {
          if (args[0] instanceof LostToEvictionError) this.counts.lostToEviction += args[0].lost.length
          this.o.logger.error({ err: args[0] }, 'embedq worker error')
          if (this.listenerCount('error') === 0) return
        }
        ;(this.emit as (e: string, ...a: unknown[]) => boolean)(event, ...args)
      }
      const hasListeners = (event: keyof WorkerEvents): boolean =>
        event === 'embedded' || this.listenerCount(event) > 0
      const bulk = this.o.embedder.bulk
      if (bulk && this.o.bulk.enabled) {
        const redactor = this.redactor
        this.bulkLane = new BulkLane({
          options: this.o,
          scripts: this.scripts,
          keys: this.keys,
          targets: this.targets,
          waiters: this.waiters,
          bulk,
          emit: (event, ...args) => {
            if (redactor.active) for (const a of args) redactor.error(a)
            emit(event, ...args)
          },
          hasListeners,
        })
      }
      this.worker = new Worker({
        options: this.o,
        scripts: this.scripts,
        targets: this.targets,
        waiters: this.waiters,
        emit,
        hasListeners,
        ...(this.o.cache
          ? {
              cache: new VectorCache(
                this.o.redis,
                this.o.prefix,
                this.o.cache.namespace,
                this.o.embedder.dimensions,
                this.o.cache.ttlSeconds,
              ),
            }
          : {}),
      })
    }
  }

  /**
   * Subscribes for results and, if this instance is a worker, returns expired leases of a
   * previous run to pending and starts draining. Idempotent.
   */
  start(): Promise<void> {
    if (this.stopped) return Promise.reject(new QueueStoppedError('queue stopped'))
    if (!this.started) {
      this.started = this.bounded('start', async () => {
        await this.checkEvictionPolicy()
        await this.waiters.ensureSubscribed()
        await this.worker?.start()
        this.bulkLane?.start()
      })
      this.started.catch(() => {
        this.started = undefined
      })
    }
    return this.started
  }

  /**
   * Stops claiming, lets running provider calls finish (within `stopGraceMs`), returns the
   * rest to pending, rejects this instance's waiters with `QueueStoppedError` and closes the
   * connection it created. Queued work stays in Redis. Never quits your client.
   */
  async stop(): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    const errors: unknown[] = []
    if (this.bufferTimer) clearImmediate(this.bufferTimer)
    this.bufferTimer = undefined
    await this.flushBuffer().catch((e) => errors.push(e))
    await Promise.allSettled([...this.writes])
    await this.bulkLane?.stop().catch((e) => errors.push(e))
    await this.worker?.stop().catch((e) => errors.push(e))
    await this.waiters.close().catch((e) => errors.push(e))
    for (const wake of this.activity) wake()
    if (errors.length) throw new AggregateError(errors, 'embedq: errors while stopping')
  }

  private validate(key: unknown, text: unknown): InvalidInputError | undefined {
    if (typeof key !== 'string')
      return new InvalidInputError(`key must be a string, received ${typeof key}`, 'key')
    if (key.length === 0) return new InvalidInputError('key must not be empty', 'key', key)
    // A lone surrogate becomes U+FFFD in UTF-8: 'a\uD800' and 'a\uDBFF' would share one hash.
    if (LONE_SURROGATE.test(key))
      return new InvalidInputError(
        `key ${JSON.stringify(key)} is not well-formed UTF-16 (a lone surrogate): it would alias other keys in Redis`,
        'key',
        key,
      )
    if (inKeySpace(this.o.prefix, key))
      return new InvalidInputError(
        `key ${JSON.stringify(key)} is inside embedq's own key space (${JSON.stringify(`${this.o.prefix}:`)}): writing a vector there would corrupt the queue`,
        'key',
        key,
      )
    const keyBytes = Buffer.byteLength(key)
    if (keyBytes > this.o.maxKeyBytes) {
      return new InvalidInputError(
        `key is ${keyBytes} bytes, over maxKeyBytes (${this.o.maxKeyBytes})`,
        'key',
        key,
      )
    }
    if (typeof text !== 'string') {
      return new InvalidInputError(
        `text of ${JSON.stringify(key)} must be a string, received ${typeof text}`,
        'text',
        key,
      )
    }
    // Refused rather than silently embedded as U+FFFD (the text Redis would store is not this one).
    if (LONE_SURROGATE.test(text))
      return new InvalidInputError(
        `text of ${JSON.stringify(key)} is not well-formed UTF-16 (a lone surrogate)`,
        'text',
        key,
      )
    const textBytes = Buffer.byteLength(text)
    if (textBytes > this.o.maxTextBytes) {
      return new InvalidInputError(
        `text of ${JSON.stringify(key)} is ${textBytes} bytes, over maxTextBytes (${this.o.maxTextBytes})`,
        'text',
        key,
      )
    }
    return undefined
  }

  /**
   * Queues one text for `key`. Resolves once the item is durably in Redis (calls made in the
   * same tick share one script call). Rejects with `InvalidInputError` for bad input.
   */
  enqueue(key: string, text: string, opts: EnqueueOptions = {}): Promise<EmbedJob> {
    if (this.stopped) return Promise.reject(new QueueStoppedError('queue stopped'))
    let lane: Lane
    try {
      lane = this.laneOf(opts)
    } catch (err) {
      return Promise.reject(err)
    }
    const invalid = this.validate(key, text)
    if (invalid) return Promise.reject(invalid)
    if (text.trim() === '') return Promise.resolve(this.blankJob(key))
    return new Promise<EmbedJob>((resolve, reject) => {
      this.buffer.push({ key, text, lane, resolve, reject })
      if (this.buffer.length >= this.o.enqueueChunkSize) {
        if (this.bufferTimer) clearImmediate(this.bufferTimer)
        this.bufferTimer = undefined
        this.track(this.flushBuffer())
      } else if (!this.bufferTimer) {
        this.bufferTimer = setImmediate(() => {
          this.bufferTimer = undefined
          this.track(this.flushBuffer())
        })
      }
    })
  }

  /**
   * Queues many texts, one script call per `enqueueChunkSize` items. Returns one job per
   * input, in order. Bad items get a job with `error` set (their `result` rejects with it);
   * the other items are queued all the same.
   */
  async enqueueMany(items: readonly EnqueueItem[], opts: EnqueueOptions = {}): Promise<EmbedJob[]> {
    if (this.stopped) throw new QueueStoppedError('queue stopped')
    const lane = this.laneOf(opts)
    if (!Array.isArray(items)) throw new TypeError('embedq: enqueueMany expects an array of { key, text }')
    const jobs: EmbedJob[] = new Array(items.length)
    const toWrite: { index: number; key: string; text: string }[] = []
    items.forEach((item, index) => {
      const key = (item as Partial<EnqueueItem> | null)?.key
      const text = (item as Partial<EnqueueItem> | null)?.text
      const invalid = this.validate(key, text)
      if (invalid) jobs[index] = this.refusedJob(typeof key === 'string' ? key : String(key), invalid)
      else if ((text as string).trim() === '') jobs[index] = this.blankJob(key as string)
      else toWrite.push({ index, key: key as string, text: text as string })
    })
    const write = this.writeChunks(toWrite, lane)
    this.track(write)
    const written = await write
    toWrite.forEach((w, i) => {
      jobs[w.index] = written[i]!
    })
    return jobs
  }

  /**
   * The lane an enqueue asked for. A worker instance refuses 'bulk' unless its embedder has a
   * batch API; a producer (`worker: false`) may queue bulk items for workers that have one.
   */
  private laneOf(opts: EnqueueOptions | undefined): Lane {
    const lane = opts?.lane ?? 'online'
    if (lane !== 'online' && lane !== 'bulk')
      throw new TypeError(
        `embedq: option \`lane\` must be 'online' or 'bulk', received ${JSON.stringify(lane)}`,
      )
    if (lane === 'bulk' && this.o.worker && !this.o.embedder.bulk)
      throw new TypeError(
        "embedq: lane 'bulk' needs an embedder with a batch API (embedder.bulk: geminiEmbedder, openAIEmbedder or your own)",
      )
    return lane
  }

  /** A job that keeps nothing until its result is read (trackResults: false). */
  private lazyJob(key: string, version: number): EmbedJob {
    let result: Promise<Float32Array> | undefined
    const waiters = this.waiters
    const timeoutMs = this.o.resultTimeoutMs
    return {
      key,
      version,
      get result() {
        result ??= waiters.watch(key, version, timeoutMs)
        return result
      },
    }
  }

  private refusedJob(key: string, error: InvalidInputError | QueueFullError): EmbedJob {
    const result = Promise.reject(error)
    result.catch(() => {})
    return { key, version: 0, result, error }
  }

  private blankJob(key: string): EmbedJob {
    return { key, version: 0, result: zeroVector(this.o.embedder.dimensions) }
  }

  private track(p: Promise<unknown>): void {
    const guarded = p.catch(() => {})
    this.writes.add(guarded)
    void guarded.finally(() => this.writes.delete(guarded))
  }

  private async flushBuffer(): Promise<void> {
    const batch = this.buffer
    this.buffer = []
    if (batch.length === 0) return
    await Promise.all(
      (['online', 'bulk'] as const).map(async (lane) => {
        const part = batch.filter((b) => b.lane === lane)
        if (part.length === 0) return
        try {
          const jobs = await this.writeChunks(part, lane)
          part.forEach((b, i) => {
            const job = jobs[i]!
            if (job.error) b.reject(job.error)
            else b.resolve(job)
          })
        } catch (err) {
          for (const b of part) b.reject(toError(err))
        }
      }),
    )
  }

  /** Writes items in chunks (one Lua call each) and registers their waiters. */
  private async writeChunks(
    items: readonly { key: string; text: string }[],
    lane: Lane = 'online',
  ): Promise<EmbedJob[]> {
    if (items.length === 0) return []
    await this.ensureConnected()
    // Subscribe before the items exist in Redis: a done message cannot slip past a waiter.
    if (this.o.trackResults) await this.bounded('enqueue', () => this.waiters.ensureSubscribed())
    // Every chunk's script call is sent at once: one connection executes them in order (so
    // versions stay FIFO) while this process prepares the next, instead of one round trip each.
    const size = this.o.enqueueChunkSize
    const calls: Promise<EmbedJob[]>[] = []
    for (let i = 0; i < items.length; i += size) calls.push(this.writeChunk(items.slice(i, i + size), lane))
    const settled = await Promise.allSettled(calls)
    const failed = settled.find((r) => r.status === 'rejected')
    if (failed) throw (failed as PromiseRejectedResult).reason
    return settled.flatMap((r) => (r as PromiseFulfilledResult<EmbedJob[]>).value)
  }

  /** One enqueue script call, with its waiters announced before it is sent. */
  private async writeChunk(chunk: readonly { key: string; text: string }[], lane: Lane): Promise<EmbedJob[]> {
    const track = this.o.trackResults
    const keys = chunk.map((it) => it.key)
    if (track) this.waiters.expect(keys)
    let res: Awaited<ReturnType<QueueScripts['enqueue']>>
    try {
      res = await this.bounded(
        'enqueue',
        () =>
          lane === 'bulk'
            ? this.scripts
                .bulkEnqueue(chunk, this.o.maxPending)
                .then((r) => ('full' in r ? r : { ready: 0, versions: r.versions }))
            : this.scripts.enqueue(chunk, this.o.maxBatchSize, this.o.maxPending),
        this.o.commandTimeoutMs,
        'unknown',
      )
    } catch (err) {
      if (track) this.waiters.unexpect(keys)
      throw err
    }
    if ('full' in res) {
      if (track) this.waiters.unexpect(keys)
      const error = new QueueFullError(res.unfinished, this.o.maxPending)
      return chunk.map((it) => this.refusedJob(it.key, error))
    }
    const { ready, versions } = res
    const written = chunk.map((it, j) => ({ key: it.key, version: versions[j]! }))
    let jobs: EmbedJob[]
    if (track) {
      const results = this.waiters.registerExpected(written, this.o.resultTimeoutMs)
      jobs = written.map((w, j) => {
        const result = results[j]!
        result.catch(ignore) // a caller who never reads `result` must not crash the process
        return { key: w.key, version: w.version, result }
      })
    } else {
      jobs = written.map((w) => this.lazyJob(w.key, w.version))
    }
    this.counts.enqueued += chunk.length
    this.emit('enqueued', { count: chunk.length })
    if (ready >= this.o.maxBatchSize) this.worker?.kick()
    return jobs
  }

  /**
   * A client that is reconnecting would queue the script until it is back; a producer wants
   * a clear answer instead. Waits `enqueueTimeoutMs` for the connection, then rejects.
   */
  private async ensureConnected(): Promise<void> {
    const redis = this.o.redis as Redis
    // `status` is absent on clients that do not model connections (ioredis-mock).
    const ok = (): boolean =>
      redis.status === undefined || redis.status === 'ready' || redis.status === 'wait'
    if (ok()) return
    const waitMs = this.o.enqueueTimeoutMs
    if (redis.status !== 'end' && waitMs > 0) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer)
          redis.off('ready', done)
          resolve()
        }
        const timer = setTimeout(done, waitMs)
        redis.on('ready', done)
      })
      if (ok()) return
    }
    throw new RedisUnavailableError(redis.status, waitMs)
  }

  /**
   * Starts embedding everything queued now, in every worker process; does not wait. Bulk items
   * are left to their lane unless `{ bulk: 'promote' }` moves them online first.
   */
  flushNow(opts: FlushOptions = {}): void {
    if (this.stopped) return
    const promote = opts.bulk === 'promote'
    this.track(
      this.bounded('flushNow', async () => {
        if (promote) await this.promoteAll()
        return this.scripts.flush()
      }).then(
        () => this.worker?.kick(),
        (err) => this.reportError(err),
      ),
    )
  }

  private reportError(err: unknown): void {
    const e = toError(err)
    this.o.logger.error({ err: e }, 'embedq error')
    if (this.listenerCount('error') > 0) this.emit('error', e)
  }

  private notifyActivity(): void {
    for (const wake of this.activity) wake()
  }

  private waitActivity(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer)
        this.activity.delete(done)
        resolve()
      }
      const timer = setTimeout(done, ms)
      this.activity.add(done)
    })
  }

  /**
   * Flushes everything queued before this call and waits until all of it is finished
   * (embedded or given up), including items already in flight. Never throws on timeout:
   * the result says whether it drained and how many items remain. When Redis does not answer,
   * it rejects with `RedisUnavailableError` within about half a second of `timeoutMs`,
   * whatever the client's retry settings.
   */
  async flushAndWait(opts: { timeoutMs?: number } & FlushOptions = {}): Promise<FlushResult> {
    const timeoutMs = opts.timeoutMs ?? 15_000
    const bulkMode = opts.bulk ?? 'skip'
    if (bulkMode !== 'skip' && bulkMode !== 'promote' && bulkMode !== 'wait')
      throw new TypeError(
        `embedq: option \`bulk\` must be 'skip', 'promote' or 'wait', received ${JSON.stringify(bulkMode)}`,
      )
    const started = Date.now()
    if (this.bufferTimer) {
      clearImmediate(this.bufferTimer)
      this.bufferTimer = undefined
      this.track(this.flushBuffer())
    }
    const left = (): number => Math.max(1, timeoutMs - (Date.now() - started))
    // Each Redis call may overrun the deadline by this much: a slow but live Redis still
    // answers (and the result reports the timeout), a dead one fails soon after the deadline.
    const callMs = (): number => left() + FLUSH_CALL_GRACE_MS
    // A Redis call that fails for want of Redis is tried again until the deadline: a short
    // outage within `timeoutMs` is ridden through, a longer one ends in RedisUnavailableError.
    const call = async <T>(fn: () => Promise<T>): Promise<T> => {
      for (;;) {
        try {
          return await this.bounded('flushAndWait', fn, callMs())
        } catch (err) {
          if (!(err instanceof RedisUnavailableError)) throw err
          if (Date.now() - started >= timeoutMs)
            throw new RedisUnavailableError(err.status, Date.now() - started, {
              operation: 'flushAndWait',
              cause: err,
            })
          await new Promise((r) => setTimeout(r, Math.min(100, left())))
        }
      }
    }
    // Enqueues still being written count as "queued before the call", within the same deadline.
    await this.within(left(), Promise.allSettled([...this.writes]), () => undefined)
    if (bulkMode === 'promote') await call(() => this.promoteAll())
    const mark = await call(() => this.scripts.flush())
    this.worker?.kick()
    if (bulkMode === 'wait') this.bulkLane?.kick(true)
    const countBulk = bulkMode === 'wait'
    let flushedAt = Date.now()
    for (;;) {
      // The forced-flush tick is a key like any other: if Redis lost it (eviction, a failover
      // without persistence), items younger than flushIntervalMs would wait for a full batch.
      if (Date.now() - flushedAt >= 1_000) {
        await call(() => this.scripts.flush())
        flushedAt = Date.now()
      }
      const remaining = await call(() => this.unfinishedUpTo(mark, countBulk))
      const elapsedMs = Date.now() - started
      if (remaining === 0) {
        this.emit('drained')
        return { drained: true, timedOut: false, remaining: 0, elapsedMs }
      }
      if (elapsedMs >= timeoutMs || this.stopped)
        return { drained: false, timedOut: !this.stopped, remaining, elapsedMs }
      await this.waitActivity(Math.min(100, timeoutMs - elapsedMs))
    }
  }

  /**
   * Unfinished items with a version up to `mark`, read atomically with a consistency check:
   * every script keeps one text in `jobs` per version in `versions`. Texts whose version was
   * lost (evicted) count as unfinished until the sweep gives them one back.
   */
  private async unfinishedUpTo(mark: number | '+inf', countBulk = true): Promise<number> {
    const k = this.keys
    const replies = await (this.o.redis as Redis)
      .multi()
      .zcount(k.versions, '-inf', String(mark))
      .hlen(k.jobs)
      .zcard(k.versions)
      .zcount(k.bulk, '-inf', String(mark))
      .zcount(k.bulkItems, '-inf', String(mark))
      .exec()
    const [counted, texts, versions, bulkWaiting, bulkInJobs] = (replies ?? []).map(([err, v]) => {
      if (err) throw err
      return Number(v)
    }) as [number, number, number, number, number]
    // Entries of the bulk lane hold only latest versions (every enqueue takes older ones out),
    // so they can be subtracted from the versions they are counted in.
    const bulk = countBulk ? 0 : bulkWaiting + bulkInJobs
    return Math.max(0, counted - bulk) + Math.max(0, texts - versions)
  }

  /**
   * Moves bulk items to the online lane now: all of them, or the given keys. A waiting item
   * keeps its version; an item inside a submitted job is enqueued online again with its current
   * text (a new version), so the online result wins and the job's late result is superseded.
   * Returns how many items moved.
   */
  async promote(keys?: readonly string[]): Promise<number> {
    if (this.stopped) throw new QueueStoppedError('queue stopped')
    const n = await this.bounded('promote', () => (keys ? this.promoteKeys(keys) : this.promoteAll()))
    if (n > 0) this.worker?.kick()
    return n
  }

  private async promoteKeys(keys: readonly string[]): Promise<number> {
    let n = 0
    for (let i = 0; i < keys.length; i += 1000) n += await this.scripts.bulkPromote(keys.slice(i, i + 1000))
    return n
  }

  private async promoteAll(): Promise<number> {
    const redis = this.o.redis as Redis
    let n = 0
    for (const set of [this.keys.bulk, this.keys.bulkItems]) {
      for (;;) {
        const page = await redis.zrange(set, 0, 999)
        if (page.length === 0) break
        n += await this.scripts.bulkPromote(page)
      }
    }
    return n
  }

  /** Items not finished yet (waiting, in flight, or backing off). */
  async pendingCount(): Promise<number> {
    return this.bounded('pendingCount', () => this.unfinishedUpTo('+inf'))
  }

  /** The queue in Redis as every process sees it, plus this instance's own counts (`local`). */
  async stats(): Promise<QueueStats> {
    const shared = await this.admin.sharedStats()
    return { ...shared, local: { ...this.counts, waiting: this.waiters.size } }
  }

  /**
   * Dead letters: items given up after `maxAttempts`. Without an argument, all of them (read
   * with HSCAN pages, as before: an array); with one, one page filtered by `match` (HSCAN MATCH
   * on the key), `status`, `error` or `keys`, from `cursor` ('0' first; the returned cursor is
   * '0' at the end). Use the paged form on large queues.
   */
  failed(): Promise<DeadLetter[]>
  failed(opts: FailedFilter & { cursor?: string; count?: number }): Promise<FailedPage<DeadLetter>>
  async failed(
    opts?: FailedFilter & { cursor?: string; count?: number },
  ): Promise<DeadLetter[] | FailedPage<DeadLetter>> {
    if (opts !== undefined) {
      const page = await this.admin.failedPage(opts)
      if (page.foreign.length) this.reportError(foreignFields(this.keys.failed, page.foreign))
      return { items: page.items, cursor: page.cursor }
    }
    const letters: DeadLetter[] = []
    const foreign: string[] = []
    let cursor = '0'
    do {
      const page = await this.admin.failedPage({ cursor, count: 1_000 })
      letters.push(...page.items)
      foreign.push(...page.foreign)
      cursor = page.cursor
    } while (cursor !== '0')
    // Something other than embedq wrote into the dead-letter hash: skip it, say so.
    if (foreign.length) this.reportError(foreignFields(this.keys.failed, foreign))
    return letters
  }

  /**
   * Puts dead letters back in the queue with their text. Without an argument or with an array
   * of keys: those (all without one), returning their new jobs (as before). With a filter
   * (`{ match, status, error, keys }`): every dead letter that passes it, paged with HSCAN,
   * due at once; returns how many.
   */
  retryFailed(keys?: readonly string[]): Promise<EmbedJob[]>
  retryFailed(filter: FailedFilter): Promise<number>
  async retryFailed(arg?: readonly string[] | FailedFilter): Promise<EmbedJob[] | number> {
    if (arg !== undefined && !Array.isArray(arg)) return this.admin.retryFailed(arg as FailedFilter)
    const keys = arg as readonly string[] | undefined
    const letters = keys ? (await this.failed({ keys })).items : await this.failed()
    return this.enqueueMany(letters.map((l) => ({ key: l.key, text: l.text })))
  }

  /** Deletes the dead letters that pass the filter (all without one); returns how many. */
  deleteFailed(filter: FailedFilter = {}): Promise<number> {
    return this.admin.deleteFailed(filter)
  }

  /** Live workers of this queue, in every process (a SIGKILLed one is gone within 3 heartbeats). */
  workers(): Promise<WorkerInfo[]> {
    return this.admin.workers()
  }

  /**
   * Pauses claims of every worker of the queue, in every process, until `resume()`: persisted
   * in Redis, distinct from the rate-limit pause. Producers keep enqueueing; calls in flight finish.
   */
  pause(opts: { by?: string } = {}): Promise<void> {
    return this.admin.pause(opts)
  }

  /** Lifts the operator pause; every worker claims again at once. */
  resume(): Promise<void> {
    return this.admin.resume()
  }

  /** Whether an operator paused the queue (`pauseState()` shows the rate-limit pause too). */
  isPaused(): Promise<boolean> {
    return this.admin.isPaused()
  }

  pauseState(): Promise<PauseState> {
    return this.admin.pauseState()
  }

  /** Everything the queue and the target hash know about `key`. */
  inspect(key: string): Promise<Inspection> {
    return this.admin.inspect(key)
  }

  /** Per-minute history of the last `minutes` (default 60, at most 1440), oldest first. */
  history(opts: { minutes?: number } = {}): Promise<HistoryPoint[]> {
    return this.admin.history(opts)
  }

  /** Saved progress of `embedq backfill` runs of this queue. */
  backfills(): Promise<BackfillInfo[]> {
    return this.admin.backfills()
  }

  /**
   * Waits for the result of `key` enqueued by any process (subscribe, then check Redis).
   * `version` defaults to 0: any finished vector of the key resolves it.
   */
  result(key: string, opts: { version?: number; timeoutMs?: number } = {}): Promise<Float32Array> {
    if (this.stopped) return Promise.reject(new QueueStoppedError('queue stopped'))
    const timeoutMs = opts.timeoutMs ?? this.o.resultTimeoutMs
    const watching = this.waiters.watch(key, opts.version ?? 0, timeoutMs)
    if (timeoutMs <= 0) return watching
    // The waiter's own timer starts once it is subscribed; an unreachable Redis must not delay it.
    watching.catch(() => {})
    return this.within(
      timeoutMs + 50,
      watching,
      () => new EmbedTimeoutError(key, timeoutMs),
    ) as Promise<Float32Array>
  }

  /**
   * Every public method's Redis work goes through here: it settles within `ms` (default
   * `commandTimeoutMs`) whatever the client's retry settings, with `RedisUnavailableError`
   * when Redis does not answer in time.
   */
  private bounded<T>(
    operation: string,
    call: () => Promise<T>,
    ms: number = this.o.commandTimeoutMs,
    written: 'nothing' | 'unknown' = 'nothing',
  ): Promise<T> {
    return withDeadline(this.o.redis, operation, ms, call, written)
  }

  /** `p`, or after `ms` what `onTimeout()` says: an error to reject with, or nothing (resolve). */
  private within<T>(ms: number, p: Promise<T>, onTimeout: () => Error | undefined): Promise<T | undefined> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const err = onTimeout()
        if (err) reject(err)
        else resolve(undefined)
      }, clampTimer(ms))
      p.then(
        (v) => {
          clearTimeout(timer)
          resolve(v)
        },
        (err: unknown) => {
          clearTimeout(timer)
          reject(err)
        },
      )
    })
  }

  /**
   * Reads `maxmemory_policy` (INFO memory; shown even where CONFIG is disabled) on every
   * master. Anything but `noeviction` lets Redis drop queued work silently: warn, or refuse
   * to start with `requireNoEviction`.
   */
  private async checkEvictionPolicy(): Promise<void> {
    const redis = this.o.redis as Redis | Cluster
    const cluster = (redis as { isCluster?: boolean }).isCluster === true
    const nodes: Redis[] = cluster ? (redis as Cluster).nodes('master') : [redis as Redis]
    const policies: Record<string, string> = {}
    for (const node of nodes) {
      let info: string
      try {
        info = await node.info('memory')
      } catch (err) {
        if (isConnectionError(err)) throw err
        // A server (or mock) without INFO memory: nothing to check.
        this.o.logger.debug({ err }, 'embedq: could not read maxmemory_policy')
        continue
      }
      const policy = /^maxmemory_policy:(.*)$/m.exec(String(info))?.[1]?.trim()
      if (policy && policy !== 'noeviction')
        policies[cluster ? `${node.options.host}:${node.options.port}` : ''] = policy
    }
    if (Object.keys(policies).length === 0) return
    const err = new EvictionPolicyError(policies)
    if (this.o.requireNoEviction) throw err
    this.o.logger.warn({ err }, err.message)
    if (this.listenerCount('error') > 0) this.emit('error', err)
  }

  /**
   * Embeds a search query through the queue's embedder in its query mode (Gemini:
   * `RETRIEVAL_QUERY`), with the vector cache when enabled. Resolves with the vector;
   * rejects with `InvalidInputError` for bad text and `EmbedderError` when the provider fails.
   */
  async embedQuery(text: string, opts: { signal?: AbortSignal } = {}): Promise<Float32Array> {
    if (typeof text !== 'string' || text.trim() === '')
      throw new InvalidInputError('a search query must be a non-empty string', 'text')
    const bytes = Buffer.byteLength(text)
    if (bytes > this.o.maxTextBytes)
      throw new InvalidInputError(
        `query is ${bytes} bytes, over maxTextBytes (${this.o.maxTextBytes})`,
        'text',
      )
    const cached = await this.queryCache?.get([text]).catch(() => [null])
    if (cached?.[0]) return cached[0]
    const vector = await embedOne(
      this.o.embedder,
      text,
      'query',
      this.o.embedTimeoutMs,
      this.redactor,
      opts.signal,
    )
    await this.queryCache?.set([{ text, vector }]).catch((err) => this.reportError(err))
    return vector
  }

  /**
   * A vector index over target hashes under `prefixes`, bound to this queue's field and
   * dimensions: `await index.ensure()` creates it on the Redis query engine (or checks an
   * existing one), `await index.search(textOrVector, { k })` returns the nearest hits. Without
   * the query engine (plain Redis, ioredis-mock) the same API runs an exact scan. Given-up
   * items (zero vectors, marked with `failedField`) never appear in results.
   */
  vectorIndex(options: VectorIndexOptions): VectorIndex {
    return new VectorIndex(
      {
        redis: this.o.redis,
        field: this.o.field,
        failedField: this.o.failedField,
        dimensions: this.o.embedder.dimensions,
        embedQuery: (text) => this.embedQuery(text),
      },
      options,
    )
  }

  /** Whether this instance's worker is draining. */
  get isRunning(): boolean {
    return this.worker?.currentState === WorkerState.Running
  }
}
