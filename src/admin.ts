/**
 * QueueAdmin: the operator's calls on one queue, from Redis alone (no embedder, no worker),
 * so the CLI and the dashboard can look at any queue under a prefix. `EmbeddingBatchQueue`
 * delegates its operator methods (and the Redis half of `stats()`) here.
 *
 * Reads never load a whole structure that grows with the queue: dead letters are paged with
 * HSCAN, the worker registry and the history are bounded by construction (see src/history.ts
 * and lua/worker-beat-2.lua).
 */
import { hostname } from 'node:os'
import type { Cluster, Redis } from 'ioredis'
import type {
  BackfillInfo,
  FailedFilter,
  FailedPage,
  HistoryPoint,
  Inspection,
  ItemState,
  PauseState,
  QueueAdminApi,
  WorkerInfo,
} from './admin-types.js'
import type { BulkJobRecord } from './bulk-lane.js'
import type { DeadLetter } from './codec.js'
import { withDeadline } from './deadline.js'
import { QueueCorruptedError } from './errors.js'
import { HISTORY_MINUTES, historyPoint } from './history.js'
import { isValidKeyPart, type QueueKeys, queueKeys } from './keys.js'
import { type Logger, silentLogger } from './logger.js'
import type { BulkStats, QueueStats, RateLimitStats } from './queue.js'
import { QueueScripts } from './scripts.js'

export interface QueueAdminOptions {
  /** The Redis client holding the queue (the caller's: never quit, never renamed). */
  redis: Redis | Cluster
  /** @default 'default' */
  name?: string
  /** @default 'embedq' */
  prefix?: string
  /** Reports dead-letter fields that are not ours; silent by default. */
  logger?: Logger
  /** Every call settles within this (`RedisUnavailableError` past it). @default 5_000 */
  commandTimeoutMs?: number
  /** Target hash field of the vector, for `inspect`. @default 'embedding' */
  field?: string
  /** @default `${field}_version` */
  versionField?: string
  /** @default `${field}_failed` */
  failedField?: string
}

/** The figures of `stats()` every process shares (the queue adds its own `local` counts). */
export type SharedStats = Omit<QueueStats, 'local'>

/** A queue instance's own counters, all zero (`stats().local` without `waiting`). */
export function newLocalCounts(): Omit<QueueStats['local'], 'waiting'> {
  return {
    enqueued: 0,
    embedded: 0,
    failed: 0,
    retried: 0,
    apiCalls: 0,
    apiErrors: 0,
    tokens: 0,
    cacheHits: 0,
    cacheMisses: 0,
    lostToEviction: 0,
  }
}

/** Page size of the HSCAN loops that retry or delete dead letters. */
const SCAN_PAGE = 500

/** Longest text preview of `inspect`. */
const PREVIEW = 200

/** A dead letter, or undefined when the value is not one of ours. */
export function parseDeadLetter(raw: string): DeadLetter | undefined {
  try {
    const v = JSON.parse(raw) as Partial<DeadLetter> | null
    return v && typeof v === 'object' && typeof v.key === 'string' ? (v as DeadLetter) : undefined
  } catch {
    return undefined
  }
}

/** Whether a dead letter passes the filter's status and error parts (match and keys are Redis-side). */
function passes(letter: DeadLetter, f: FailedFilter): boolean {
  if (f.status !== undefined && letter.status !== f.status) return false
  if (f.error !== undefined && !String(letter.error).includes(f.error)) return false
  return true
}

function checkFilter(f: FailedFilter): void {
  if (f.match !== undefined && (typeof f.match !== 'string' || f.match === ''))
    throw new TypeError(
      `embedq: failed filter \`match\` must be a non-empty glob, received ${JSON.stringify(f.match)}`,
    )
  if (f.status !== undefined && !Number.isInteger(f.status))
    throw new TypeError(`embedq: failed filter \`status\` must be an integer, received ${String(f.status)}`)
  if (f.keys !== undefined && (!Array.isArray(f.keys) || f.keys.some((k) => typeof k !== 'string')))
    throw new TypeError('embedq: failed filter `keys` must be an array of strings')
}

const msOfTime = (t: readonly (string | number)[]): number =>
  Number(t[0]) * 1000 + Math.floor(Number(t[1]) / 1000)

export class QueueAdmin implements QueueAdminApi<QueueStats, DeadLetter> {
  readonly name: string
  readonly prefix: string
  private readonly redis: Redis
  private readonly client: Redis | Cluster
  private readonly keys: QueueKeys
  private readonly scripts: QueueScripts
  private readonly logger: Logger
  private readonly timeoutMs: number
  private readonly versionField: string
  private readonly failedField: string

  constructor(opts: QueueAdminOptions) {
    if (!opts || typeof opts !== 'object' || !opts.redis)
      throw new TypeError('QueueAdmin: `redis` is required')
    this.name = opts.name ?? 'default'
    this.prefix = opts.prefix ?? 'embedq'
    for (const [option, v] of [
      ['name', this.name],
      ['prefix', this.prefix],
    ] as const) {
      if (!isValidKeyPart(v))
        throw new TypeError(
          `QueueAdmin: option \`${option}\` must be a non-empty string without braces or spaces, received ${JSON.stringify(v)}`,
        )
    }
    this.client = opts.redis
    this.redis = opts.redis as Redis
    this.keys = queueKeys(this.prefix, this.name)
    this.timeoutMs = opts.commandTimeoutMs ?? 5_000
    this.scripts = new QueueScripts(opts.redis, this.keys, this.timeoutMs)
    this.logger = opts.logger ?? silentLogger
    const field = opts.field ?? 'embedding'
    this.versionField = opts.versionField ?? `${field}_version`
    this.failedField = opts.failedField ?? `${field}_failed`
  }

  private bounded<T>(operation: string, call: () => Promise<T>, ms = this.timeoutMs): Promise<T> {
    return withDeadline(this.client, operation, ms, call)
  }

  /** `stats()` of the queue as every process sees it; `local` counts are zeros here. */
  async stats(): Promise<QueueStats> {
    return {
      ...(await this.sharedStats()),
      local: { ...newLocalCounts(), waiting: 0 },
    }
  }

  /** The Redis half of `stats()` (what `EmbeddingBatchQueue.stats()` adds its counts to). */
  async sharedStats(): Promise<SharedStats> {
    const k = this.keys
    const redis = this.redis
    const [
      unfinished,
      pending,
      inflight,
      retrying,
      failed,
      oldest,
      pause,
      time,
      buckets,
      pauseInfo,
      seen,
      paused,
    ] = await this.bounded('stats', () =>
      Promise.all([
        redis.zcard(k.versions),
        redis.zcard(k.pending),
        redis.zcard(k.inflight),
        redis.zcard(k.delayed),
        redis.hlen(k.failed),
        redis.zrange(k.versions, 0, 0, 'WITHSCORES'),
        redis.get(k.pause),
        redis.time(),
        redis.hgetall(k.throughput),
        redis.hgetall(k.pauseInfo),
        redis.zrange(k.workersSeen, 0, -1, 'WITHSCORES'),
        redis.get(k.paused),
      ]),
    )
    const nowUs = Number(time[0]) * 1e6 + Number(time[1])
    const pausedForMs = pause ? Math.max(0, Math.round((Number(pause) - nowUs) / 1000)) : 0
    let workers = 0
    for (let i = 1; i < seen.length; i += 2) if (Number(seen[i]) > nowUs / 1000) workers++
    return {
      unfinished,
      pending,
      inflight,
      retrying,
      failed,
      oldestAgeMs: oldest[1] ? Math.max(0, Math.round((nowUs - Number(oldest[1])) / 1000)) : null,
      pausedForMs,
      rateLimit: rateLimitStats(pauseInfo, pausedForMs, nowUs),
      paused: operatorPause(paused),
      workers,
      backlogWithoutWorker: unfinished > 0 && workers === 0,
      finishedLastMinute: Object.entries(buckets)
        .filter(([bucket]) => Number(bucket) > Math.floor(nowUs / 1e7) - 6)
        .reduce((sum, [, n]) => sum + Number(n), 0),
      bulk: await this.bounded('stats', () => this.bulkStats(Math.round(nowUs / 1000))),
    }
  }

  /** The bulk lane's waiting items, unsettled jobs and totals (`stats().bulk`). */
  async bulkStats(nowMs: number): Promise<BulkStats> {
    const k = this.keys
    const redis = this.redis
    const [waiting, inJobs, records, totals] = await Promise.all([
      redis.zcard(k.bulk),
      redis.zcard(k.bulkItems),
      redis.hgetall(k.bulkJobs),
      redis.hgetall(k.bulkStats),
    ])
    const jobs: BulkStats['jobs'] = []
    for (const raw of Object.values(records)) {
      let r: BulkJobRecord
      try {
        r = JSON.parse(raw) as BulkJobRecord
      } catch {
        continue
      }
      jobs.push({
        id: r.id,
        state: r.state,
        providerJobId: r.providerJobId ?? null,
        requests: r.count,
        completed: r.completed ?? 0,
        failed: r.failed ?? 0,
        ageMs: Math.max(0, nowMs - r.createdAt),
        lastPolledAt: r.lastPolledAt ? new Date(r.lastPolledAt) : null,
        error: r.error ?? null,
      })
    }
    jobs.sort((a, b) => b.ageMs - a.ageMs)
    const paused = Number(totals.pausedUntil ?? 0)
    return {
      waiting,
      inJobs,
      jobs,
      submittedJobs: Number(totals.jobs ?? 0),
      submittedRequests: Number(totals.requests ?? 0),
      tokensSent: Number(totals.tokens ?? 0),
      estimatedSavingUsd: Number(totals.savingUsd ?? 0),
      pausedUntil: paused > nowMs ? new Date(paused) : null,
    }
  }

  /**
   * Live workers (entry refreshed within WORKER_TTL_BEATS heartbeats, see src/worker.ts), by
   * start time. Entries past their expiry are removed here.
   */
  async workers(): Promise<WorkerInfo[]> {
    const k = this.keys
    const [time, seen, all] = await this.bounded('workers', () =>
      Promise.all([
        this.redis.time(),
        this.redis.zrange(k.workersSeen, 0, -1, 'WITHSCORES'),
        this.redis.hgetall(k.workers),
      ]),
    )
    const now = msOfTime(time)
    const live = new Set<string>()
    const gone: string[] = []
    for (let i = 0; i + 1 < seen.length; i += 2) {
      if (Number(seen[i + 1]) > now) live.add(seen[i]!)
      else gone.push(seen[i]!)
    }
    const out: WorkerInfo[] = []
    for (const [id, raw] of Object.entries(all)) {
      if (!live.has(id)) {
        if (!gone.includes(id)) gone.push(id)
        continue
      }
      try {
        out.push(JSON.parse(raw) as WorkerInfo)
      } catch {
        gone.push(id)
      }
    }
    if (gone.length) {
      // A worker that beats between the read and this cleanup rewrites its entry on its next beat.
      await this.bounded('workers', () =>
        Promise.all([this.redis.hdel(k.workers, ...gone), this.redis.zrem(k.workersSeen, ...gone)]),
      )
    }
    return out.sort((a, b) => a.startedAt - b.startedAt || a.id.localeCompare(b.id))
  }

  /**
   * Pauses claims in every worker of the queue until `resume()` (persisted in Redis; producers
   * keep enqueueing; calls in flight finish). Pausing a paused queue keeps its first `since`.
   */
  async pause(opts: { by?: string } = {}): Promise<void> {
    const by = opts.by ?? `${hostname()}:${process.pid}`
    if (typeof by !== 'string' || by.length > 200)
      throw new TypeError('embedq: pause `by` must be a short string')
    const k = this.keys
    await this.bounded('pause', async () => {
      const time = await this.redis.time()
      await this.redis.set(k.paused, JSON.stringify({ since: msOfTime(time), by }), 'NX')
      await this.redis.publish(k.wakeChannel, 'pause')
    })
  }

  /** Lifts the operator pause and wakes every worker. The rate-limit pause is not touched. */
  async resume(): Promise<void> {
    const k = this.keys
    await this.bounded('resume', async () => {
      await this.redis.del(k.paused)
      await this.redis.publish(k.wakeChannel, 'resume')
    })
  }

  async isPaused(): Promise<boolean> {
    return (await this.bounded('isPaused', () => this.redis.exists(this.keys.paused))) === 1
  }

  async pauseState(): Promise<PauseState> {
    const k = this.keys
    const [paused, pause, info, time] = await this.bounded('pauseState', () =>
      Promise.all([
        this.redis.get(k.paused),
        this.redis.get(k.pause),
        this.redis.hgetall(k.pauseInfo),
        this.redis.time(),
      ]),
    )
    const nowUs = Number(time[0]) * 1e6 + Number(time[1])
    const until = pause && Number(pause) > nowUs ? Math.round(Number(pause) / 1000) : null
    return {
      operator: operatorPause(paused),
      rateLimit: {
        paused: until !== null,
        until,
        reason: until === null ? null : info.reason === 'quota' ? 'quota' : 'rate-limit',
      },
    }
  }

  /** Everything the queue and the target hash say about one key. */
  async inspect(key: string): Promise<Inspection> {
    if (typeof key !== 'string' || key === '') throw new TypeError('embedq: inspect needs a non-empty key')
    const k = this.keys
    const r = this.redis
    const [version, pending, inflight, delayed, holder, retries, text, letterRaw] = await this.bounded(
      'inspect',
      () =>
        Promise.all([
          r.zscore(k.versions, key),
          r.zscore(k.pending, key),
          r.zscore(k.inflight, key),
          r.zscore(k.delayed, key),
          r.hget(k.leases, key),
          r.hget(k.retries, key),
          r.hget(k.jobs, key),
          r.hget(k.failed, key),
        ]),
    )
    // The target may live on another node, hold another type, or not exist.
    const target = await this.bounded('inspect', () =>
      r.hmget(key, this.versionField, this.failedField).catch((): (string | null)[] => [null, null]),
    )
    const letter = letterRaw ? parseDeadLetter(letterRaw) : undefined
    let state: ItemState = 'unknown'
    if (inflight !== null && holder !== null) state = 'inflight'
    else if (delayed !== null) state = 'delayed'
    else if (pending !== null || version !== null) state = 'pending'
    else if (letter) state = 'failed'
    else if (target[0] !== null) state = 'done'
    const shown = text ?? letter?.text ?? null
    return {
      key,
      state,
      version: version === null ? (letter?.version ?? null) : Number(version),
      attempts: retries !== null ? Number(retries) : (letter?.attempts ?? 0),
      lastError: letter?.error ?? null,
      dueAt: state === 'delayed' && delayed !== null ? Math.round(Number(delayed) / 1000) : null,
      lease:
        state === 'inflight' && holder !== null && inflight !== null
          ? { holder, expiresAt: Math.round(Number(inflight) / 1000) }
          : null,
      targetVersion: target[0] === null || target[0] === undefined ? null : Number(target[0]),
      targetFailed: target[1] !== null && target[1] !== undefined,
      textPreview: shown === null ? null : shown.length > PREVIEW ? `${shown.slice(0, PREVIEW - 1)}…` : shown,
    }
  }

  /**
   * One page of dead letters: HSCAN from `cursor` (default '0') with `count` (default 100, at
   * most 10,000) and `match` as its MATCH; `status` and `error` filter the page, so a page may
   * hold fewer than `count` letters (even none) before the cursor comes back '0'. With `keys`,
   * exactly those dead letters in one page (cursor '0').
   */
  async failed(
    opts: FailedFilter & { cursor?: string; count?: number } = {},
  ): Promise<FailedPage<DeadLetter>> {
    const { items, cursor, foreign } = await this.failedPage(opts)
    if (foreign.length) {
      const err = foreignFields(this.keys.failed, foreign)
      this.logger.warn({ err }, err.message)
    }
    return { items, cursor }
  }

  /** A page of `failed()`, with the fields that are not dead letters of ours. */
  async failedPage(
    opts: FailedFilter & { cursor?: string; count?: number },
  ): Promise<FailedPage<DeadLetter> & { foreign: string[] }> {
    checkFilter(opts)
    const count = opts.count ?? 100
    if (!Number.isInteger(count) || count < 1 || count > 10_000)
      throw new RangeError(
        `embedq: failed \`count\` must be an integer in [1, 10000], received ${String(count)}`,
      )
    const cursor = opts.cursor ?? '0'
    if (typeof cursor !== 'string' || !/^\d+$/.test(cursor))
      throw new TypeError(
        `embedq: failed \`cursor\` must be a cursor string, received ${JSON.stringify(cursor)}`,
      )
    const fk = this.keys.failed
    let entries: Array<[string, string | null]>
    let next = '0'
    if (opts.keys) {
      const keys = [...new Set(opts.keys)]
      const values = keys.length ? await this.bounded('failed', () => this.redis.hmget(fk, ...keys)) : []
      entries = keys.map((key, i) => [key, values[i] ?? null])
    } else {
      const args: (string | number)[] = opts.match !== undefined ? ['MATCH', opts.match] : []
      const [c, flat] = await this.bounded('failed', () =>
        (this.redis.hscan as (...a: unknown[]) => Promise<[string, string[]]>).call(
          this.redis,
          fk,
          cursor,
          ...args,
          'COUNT',
          count,
        ),
      )
      next = c
      entries = []
      for (let i = 0; i + 1 < flat.length; i += 2) entries.push([flat[i]!, flat[i + 1]!])
    }
    const items: DeadLetter[] = []
    const foreign: string[] = []
    for (const [field, raw] of entries) {
      if (raw === null) continue
      const letter = parseDeadLetter(raw)
      if (!letter) foreign.push(field)
      else if (passes(letter, opts)) items.push(letter)
    }
    return { items, cursor: next, foreign }
  }

  /** Calls `each` with every page of dead letters that pass the filter (whole hash, HSCAN). */
  private async eachFailedPage(
    filter: FailedFilter,
    each: (letters: DeadLetter[]) => Promise<void>,
  ): Promise<void> {
    if (filter.keys) {
      const page = await this.failed({ ...filter, count: 1 })
      if (page.items.length) await each(page.items)
      return
    }
    let cursor = '0'
    do {
      const page = await this.failed({ ...filter, cursor, count: SCAN_PAGE })
      if (page.items.length) await each(page.items)
      cursor = page.cursor
    } while (cursor !== '0')
  }

  /**
   * Re-enqueues the dead letters that pass the filter (all without one) with their text, due at
   * once; the enqueue clears each dead letter. Returns how many were re-enqueued.
   */
  async retryFailed(filter: FailedFilter = {}): Promise<number> {
    checkFilter(filter)
    let n = 0
    await this.eachFailedPage(filter, async (letters) => {
      const res = await this.scripts.enqueue(
        letters.map((l) => ({ key: l.key, text: l.text })),
        1,
        0,
      )
      if ('versions' in res) n += res.versions.length
    })
    if (n > 0) await this.scripts.flush()
    return n
  }

  /** Deletes the dead letters that pass the filter; their targets keep what they hold. */
  async deleteFailed(filter: FailedFilter = {}): Promise<number> {
    checkFilter(filter)
    let n = 0
    await this.eachFailedPage(filter, async (letters) => {
      n += await this.bounded('deleteFailed', () =>
        this.redis.hdel(this.keys.failed, ...letters.map((l) => l.key)),
      )
    })
    return n
  }

  /** The last `minutes` minutes (default 60, at most 1440), oldest first, the current one last. */
  async history(opts: { minutes?: number } = {}): Promise<HistoryPoint[]> {
    const minutes = opts.minutes ?? 60
    if (!Number.isInteger(minutes) || minutes < 1 || minutes > HISTORY_MINUTES)
      throw new RangeError(
        `embedq: history \`minutes\` must be an integer in [1, ${HISTORY_MINUTES}], received ${String(minutes)}`,
      )
    const time = await this.bounded('history', () => this.redis.time())
    const now = Math.floor(msOfTime(time) / 60_000)
    const fields = Array.from({ length: minutes }, (_, i) => String(now - minutes + 1 + i))
    const values = await this.bounded('history', () => this.redis.hmget(this.keys.history, ...fields))
    return fields.map((f, i) => historyPoint(Number(f), values[i]))
  }

  /** Saved progress of `embedq backfill` runs of this queue. */
  async backfills(): Promise<BackfillInfo[]> {
    const all = await this.bounded('backfills', () =>
      this.redis.hgetall(`${this.prefix}:{${this.name}}:backfill`),
    )
    const out: BackfillInfo[] = []
    for (const [id, raw] of Object.entries(all)) {
      try {
        const b = JSON.parse(raw) as {
          match?: string
          scanned?: number
          enqueued?: number
          updatedAt?: number
          cursors?: Record<string, string>
        }
        const cursors = Object.values(b.cursors ?? {})
        out.push({
          id,
          match: String(b.match ?? '*'),
          scanned: Number(b.scanned ?? 0),
          enqueued: Number(b.enqueued ?? 0),
          updatedAt: typeof b.updatedAt === 'number' ? b.updatedAt : null,
          done: cursors.length > 0 && cursors.every((c) => c === 'done'),
        })
      } catch {
        // not a backfill of ours
      }
    }
    return out.sort((a, b) => (b.updatedAt ?? 0) - (a.updatedAt ?? 0))
  }
}

/** Something other than embedq wrote into the dead-letter hash. */
export function foreignFields(key: string, fields: readonly string[]): QueueCorruptedError {
  return new QueueCorruptedError(
    key,
    'hash of dead letters (JSON)',
    `hash with ${fields.length} foreign field(s): ${fields
      .slice(0, 5)
      .map((f) => JSON.stringify(f))
      .join(', ')}`,
  )
}

function operatorPause(raw: string | null): PauseState['operator'] {
  if (raw === null) return { paused: false, since: null, by: null }
  try {
    const v = JSON.parse(raw) as { since?: unknown; by?: unknown }
    return {
      paused: true,
      since: typeof v.since === 'number' ? v.since : null,
      by: typeof v.by === 'string' ? v.by : null,
    }
  } catch {
    return { paused: true, since: null, by: null }
  }
}

/** The rate-limit part of `stats()`, from the `pauseinfo` hash and the pause left. */
export function rateLimitStats(
  info: Record<string, string>,
  pausedForMs: number,
  nowUs: number,
): RateLimitStats {
  const paused = pausedForMs > 0
  const at = (tick: string | undefined): Date | null =>
    paused && tick !== undefined && tick !== '' ? new Date(Number(tick) / 1000) : null
  return {
    pausedForMs,
    reason: paused ? (info.reason === 'quota' ? 'quota' : 'rate-limit') : null,
    resumesAt: paused ? new Date(Math.round(nowUs / 1000) + pausedForMs) : null,
    since: at(info.since),
    quotaId: paused && info.quotaId ? info.quotaId : null,
    message: paused && info.message ? info.message : null,
    rateLimitedCalls: Number(info.calls ?? 0),
  }
}
