/**
 * Typed wrappers around the Lua scripts in lua/ (bundled by scripts/build-lua.mjs).
 *
 * Scripts run with EVALSHA and fall back to EVAL on NOSCRIPT (a `SCRIPT FLUSH`, a restarted
 * or failed-over Redis), through our own small runner. Nothing is defined on the caller's
 * client and no type of ioredis is augmented: the caller's client stays exactly as it was.
 */
import { createHash } from 'node:crypto'
import type { Cluster, Redis } from 'ioredis'
import { withDeadline } from './deadline.js'
import { QueueCorruptedError, RedisOutOfMemoryError } from './errors.js'
import { type LuaScriptName, luaScripts } from './generated/lua.js'
import { bulkJobKey, expectedKeyType, type QueueKeys } from './keys.js'

export type Arg = string | number | Buffer
export type RedisLike = Redis | Cluster
type Pipeline = ReturnType<Redis['pipeline']>

interface CompiledScript {
  readonly lua: string
  readonly sha: string
}

const compiled = new Map<LuaScriptName, CompiledScript>()

function script(name: LuaScriptName): CompiledScript {
  let s = compiled.get(name)
  if (!s) {
    const lua = luaScripts[name].lua
    s = { lua, sha: createHash('sha1').update(lua).digest('hex') }
    compiled.set(name, s)
  }
  return s
}

/** Whether a Redis error says the script cache does not hold the script. */
export function isNoScript(err: unknown): boolean {
  return err instanceof Error && /^NOSCRIPT\b/.test(err.message)
}

/**
 * Runs one script: EVALSHA, then EVAL once if Redis answers NOSCRIPT (EVAL also caches it, so
 * the next call is an EVALSHA again). `keys` are declared keys; `args` the ARGV.
 */
export async function runScript(
  redis: RedisLike,
  name: LuaScriptName,
  keys: readonly string[],
  args: readonly Arg[],
): Promise<unknown> {
  const s = script(name)
  const client = redis as Redis
  try {
    return await client.evalsha(s.sha, keys.length, ...keys, ...args)
  } catch (err) {
    if (!isNoScript(err)) throw err
    return client.eval(s.lua, keys.length, ...keys, ...args)
  }
}

/**
 * Queues one script call on a pipeline as EVALSHA. A NOSCRIPT entry in the pipeline's reply
 * is retried with `runScript` by the caller (the target store treats it as transient).
 */
export function queueScript(
  pipeline: Pipeline,
  name: LuaScriptName,
  keys: readonly string[],
  args: readonly Arg[],
): void {
  pipeline.evalsha(script(name).sha, keys.length, ...keys, ...args)
}

export interface ClaimedItem {
  key: string
  version: number
  /** Failed attempts before this claim. */
  attempts: number
  text: string
}

export interface ClaimResult {
  items: ClaimedItem[]
  /** -1: nothing queued; otherwise ms until a batch could be due. */
  waitMs: number
  /** Ready items left after this claim. */
  readyLeft: number
  /** The claim was refused because the queue is paused: by an operator, or by a rate limit. */
  pausedBy?: 'operator' | 'rate-limit'
}

export type FailMode = 'R' | 'G' | 'N'

export interface FailItem {
  key: string
  version: number
  mode: FailMode
  delayMs: number
  /** Dead-letter JSON (used with mode 'G'). */
  letter: string
}

export type PauseReason = 'rate-limit' | 'quota'

export interface PauseRequest {
  /** The server's wait; undefined: `baseMs` doubled along the streak, at most `maxMs`. */
  delayMs: number | undefined
  baseMs: number
  maxMs: number
  reason: PauseReason
  quotaId: string | undefined
  message: string
  /** A rate limit this long after the previous one starts a new streak. */
  streakWindowMs: number
}

export interface PauseResult {
  /** How long the queue is now paused, ms (this pause, or a longer one already set). */
  leftMs: number
  /** This call lengthened the pause. */
  extended: boolean
  /** This call turned the queue's pause into a quota pause (report it once). */
  quotaStarted: boolean
}

/**
 * Whether `redis` is the in-process ioredis-mock (it models no connection, so it has no
 * `status`). Its streams cannot be trimmed safely (IDs repeat after a trim), so no done log
 * is kept there; its pub/sub cannot lose a message either.
 */
export function isInProcessMock(redis: RedisLike): boolean {
  return (
    (redis as { status?: string }).status === undefined &&
    (redis as { isCluster?: boolean }).isCluster !== true
  )
}

/** Items the done log keeps, about: its length cap in entries is this over the chunk size. */
export const DONE_LOG_ITEMS = 100_000

/** The done log's cap (in entries) for a message of `items` entries; 0 keeps no log. */
function doneLogCap(keepLog: boolean, items: number): number {
  if (!keepLog) return 0
  return Math.min(DONE_LOG_ITEMS, Math.max(100, Math.ceil(DONE_LOG_ITEMS / Math.max(1, items))))
}

/** What `bulkGather` needs: the new job's identity and the gather policy. */
export interface BulkGather {
  id: string
  label: string
  token: string
  maxItems: number
  maxBytes: number
  minItems: number
  gatherMs: number
  force: boolean
  submitLeaseMs: number
}

/** Where the eviction repair continues: a structure and a SCAN cursor within it. */
export interface RepairCursor {
  phase: 'v' | 'j' | 'p' | 'd'
  cursor: string
}

/** One queue's view of the scripts: fills in its keys and channels. */
export class QueueScripts {
  /** Whether acks and give-ups append to the done log (not on the in-process mock). */
  private readonly keepDoneLog: boolean

  /**
   * `deadlineMs`: every script call settles within it (`RedisUnavailableError` past it), so a
   * client that queues commands forever while Redis is down (`maxRetriesPerRequest: null`)
   * cannot hang a worker's claim, ack or release, nor `stop()`.
   */
  constructor(
    private readonly redis: RedisLike,
    private readonly k: QueueKeys,
    private readonly deadlineMs?: number,
  ) {
    this.keepDoneLog = !isInProcessMock(redis)
  }

  /**
   * Runs a script of this queue and names what went wrong in Redis's terms: a WRONGTYPE reply
   * becomes `QueueCorruptedError` naming the declared key of the wrong type (never a silent
   * stop), an OOM reply `RedisOutOfMemoryError` (a script's first write is refused, so nothing
   * was written).
   */
  private async run(
    name: LuaScriptName,
    keys: readonly string[],
    args: readonly Arg[],
    opts: { bounded?: boolean } = {},
  ): Promise<unknown> {
    try {
      const call = (): Promise<unknown> => runScript(this.redis, name, keys, args)
      return await (this.deadlineMs === undefined || opts.bounded === false
        ? call()
        : withDeadline(this.redis, `script ${name}`, this.deadlineMs, call, 'unknown'))
    } catch (err) {
      throw await this.explain(err, keys)
    }
  }

  private async explain(err: unknown, keys: readonly string[]): Promise<unknown> {
    if (!(err instanceof Error)) return err
    if (/\bOOM\b/.test(err.message) && /maxmemory/.test(err.message))
      return new RedisOutOfMemoryError(
        `Redis is out of memory (maxmemory reached); nothing was written: ${err.message}`,
        { cause: err },
      )
    if (!/\bWRONGTYPE\b/.test(err.message)) return err
    for (const key of keys) {
      const expected = expectedKeyType(key)
      if (!expected) continue
      let actual: string
      try {
        actual = await (this.redis as Redis).type(key)
      } catch {
        return err
      }
      if (actual !== 'none' && actual !== expected)
        return new QueueCorruptedError(key, expected, actual, { cause: err })
    }
    return err
  }

  /** Returns `{ full }` (nothing written) when the chunk would go over `maxPending`. */
  async enqueue(
    items: readonly { key: string; text: string }[],
    maxBatch: number,
    maxPending: number,
  ): Promise<{ ready: number; versions: number[] } | { full: true; unfinished: number }> {
    const args: Arg[] = [maxBatch, this.k.wakeChannel, maxPending]
    for (const it of items) args.push(it.key, it.text)
    const k = this.k
    const res = (await this.run(
      'enqueue',
      [k.pending, k.jobs, k.versions, k.seq, k.retries, k.failed, k.delayed, k.bulk, k.bulkItems],
      args,
    )) as (string | number)[]
    if (Number(res[0]) === -1) return { full: true, unfinished: Number(res[1]) }
    return { ready: Number(res[0]), versions: res.slice(1).map(Number) }
  }

  async claim(
    maxBatch: number,
    flushIntervalMs: number,
    leaseMs: number,
    token: string,
  ): Promise<ClaimResult> {
    const k = this.k
    // Not bounded: a claim abandoned by a deadline would still run once Redis is back and take
    // leases nobody works on (its items would wait out leaseMs). A claim that waits for Redis
    // holds nothing, and the worker carries on with its result when Redis answers.
    const res = (await this.run(
      'claim',
      [
        k.pending,
        k.inflight,
        k.jobs,
        k.versions,
        k.leases,
        k.retries,
        k.flush,
        k.seq,
        k.delayed,
        k.pause,
        k.paused,
      ],
      [maxBatch, flushIntervalMs, leaseMs, token],
      { bounded: false },
    )) as (string | number)[]
    const count = Number(res[0])
    if (count === 0 && res[3] !== undefined) {
      const pausedBy = String(res[3]) === 'O' ? 'operator' : 'rate-limit'
      return { items: [], waitMs: Number(res[1]), readyLeft: 0, pausedBy }
    }
    const items: ClaimedItem[] = []
    for (let i = 0; i < count; i++) {
      const b = 3 + i * 4
      items.push({
        key: String(res[b]),
        version: Number(res[b + 1]),
        attempts: Number(res[b + 2]),
        text: String(res[b + 3]),
      })
    }
    return { items, waitMs: Number(res[1]), readyLeft: Number(res[2]) }
  }

  async ack(token: string, items: readonly { key: string; version: number }[]): Promise<string[]> {
    const k = this.k
    const args: Arg[] = [token, k.doneChannel]
    for (const it of items) args.push(it.key, String(it.version))
    args.push(doneLogCap(this.keepDoneLog, items.length))
    return (await this.run(
      'ack',
      [k.inflight, k.leases, k.jobs, k.versions, k.retries, k.pending, k.throughput, k.doneStream],
      args,
    )) as string[]
  }

  async fail(token: string, items: readonly FailItem[]): Promise<number[]> {
    const k = this.k
    const args: Arg[] = [token, k.doneChannel]
    for (const it of items)
      args.push(it.key, String(it.version), it.mode, Math.max(0, Math.round(it.delayMs)), it.letter)
    args.push(doneLogCap(this.keepDoneLog, items.length))
    const res = (await this.run(
      'fail',
      [
        k.inflight,
        k.leases,
        k.jobs,
        k.versions,
        k.retries,
        k.delayed,
        k.failed,
        k.pending,
        k.flush,
        k.doneStream,
      ],
      args,
    )) as number[]
    return res.map(Number)
  }

  async renew(token: string, leaseMs: number, keys: readonly string[]): Promise<string[]> {
    return (await this.run('renew', [this.k.inflight, this.k.leases], [token, leaseMs, ...keys])) as string[]
  }

  async reclaim(limit: number): Promise<number> {
    const k = this.k
    return Number(
      await this.run(
        'reclaim',
        [k.inflight, k.leases, k.pending, k.versions, k.flush],
        [limit, k.wakeChannel],
      ),
    )
  }

  /** Forces a flush everywhere; returns the watermark (highest version queued so far). */
  async flush(): Promise<number> {
    return Number(await this.run('flush', [this.k.flush, this.k.seq], [this.k.wakeChannel]))
  }

  /**
   * One bounded page of the eviction repair (lua/repair-13.lua). Start with `{ phase: 'p',
   * cursor: '0' }` and pass back what it returns; a full cycle visits pending, delayed,
   * versions and jobs once.
   */
  async repair(
    at: RepairCursor,
    count: number,
  ): Promise<{ next: RepairCursor; lost: string[]; requeued: string[] }> {
    const k = this.k
    const res = (await this.run(
      'repair',
      [
        k.versions,
        k.jobs,
        k.pending,
        k.delayed,
        k.inflight,
        k.leases,
        k.retries,
        k.failed,
        k.seq,
        k.flush,
        k.doneStream,
        k.bulk,
        k.bulkItems,
      ],
      [at.phase, at.cursor, count, k.doneChannel, k.wakeChannel, doneLogCap(this.keepDoneLog, count)],
    )) as (string | number)[]
    const lostCount = Number(res[2])
    const keys = res.slice(3).map(String)
    return {
      next: { phase: String(res[0]) as RepairCursor['phase'], cursor: String(res[1]) },
      lost: keys.slice(0, lostCount),
      requeued: keys.slice(lostCount),
    }
  }

  /** The bulk lane's twin of `enqueue` (lua/bulk-enqueue-9.lua). */
  async bulkEnqueue(
    items: readonly { key: string; text: string }[],
    maxPending: number,
  ): Promise<{ waiting: number; versions: number[] } | { full: true; unfinished: number }> {
    const args: Arg[] = [maxPending]
    for (const it of items) args.push(it.key, it.text)
    const k = this.k
    const res = (await this.run(
      'bulkEnqueue',
      [k.bulk, k.jobs, k.versions, k.seq, k.retries, k.failed, k.delayed, k.pending, k.bulkItems],
      args,
    )) as (string | number)[]
    if (Number(res[0]) === -1) return { full: true, unfinished: Number(res[1]) }
    return { waiting: Number(res[0]), versions: res.slice(1).map(Number) }
  }

  /** Gathers a bulk job's items and records it as 'submitting' (lua/bulk-gather-10.lua). */
  async bulkGather(g: BulkGather): Promise<{
    items: { key: string; version: number; text: string }[]
    waitMs: number
    waiting: number
  }> {
    const k = this.k
    const res = (await this.run(
      'bulkGather',
      [
        k.bulk,
        k.versions,
        k.jobs,
        k.pending,
        k.bulkItems,
        k.bulkJobs,
        bulkJobKey(k, g.id),
        k.bulkDue,
        k.bulkLeases,
        k.bulkStats,
      ],
      [
        g.id,
        g.label,
        g.token,
        g.maxItems,
        g.maxBytes,
        g.minItems,
        g.gatherMs,
        g.force ? '1' : '0',
        g.submitLeaseMs,
      ],
    )) as (string | number)[]
    const count = Number(res[0])
    const items: { key: string; version: number; text: string }[] = []
    for (let i = 0; i < count; i++) {
      const b = 3 + i * 3
      items.push({ key: String(res[b]), version: Number(res[b + 1]), text: String(res[b + 2]) })
    }
    return { items, waitMs: Number(res[1]), waiting: Number(res[2]) }
  }

  /** Leases up to `max` due bulk jobs to `token` (lua/bulk-lease-3.lua). */
  async bulkLease(
    token: string,
    leaseMs: number,
    max: number,
  ): Promise<{ nowMs: number; jobs: { id: string; record: string }[] }> {
    const k = this.k
    const res = (await this.run(
      'bulkLease',
      [k.bulkDue, k.bulkLeases, k.bulkJobs],
      [token, leaseMs, max],
    )) as (string | number)[]
    const jobs: { id: string; record: string }[] = []
    for (let i = 1; i + 1 < res.length; i += 2) jobs.push({ id: String(res[i]), record: String(res[i + 1]) })
    return { nowMs: Number(res[0]), jobs }
  }

  /** Saves a leased bulk job's record; false when the lease is another worker's. */
  async bulkSave(
    id: string,
    token: string,
    record: string,
    dueInMs: number,
    release: boolean,
  ): Promise<boolean> {
    const k = this.k
    const res = await this.run(
      'bulkSave',
      [k.bulkDue, k.bulkLeases, k.bulkJobs],
      [id, token, record, Math.max(0, Math.round(dueInMs)), release ? '1' : '0'],
    )
    return Number(res) === 1
  }

  /** Requeues items of a finished bulk job (lua/bulk-requeue-7.lua); one status letter per item. */
  async bulkRequeue(
    items: readonly { key: string; version: number; mode: 'U' | 'C' | 'M' }[],
    maxAttempts: number,
    maxMisses: number,
  ): Promise<string[]> {
    if (items.length === 0) return []
    const k = this.k
    const args: Arg[] = [maxAttempts, maxMisses]
    for (const it of items) args.push(it.key, it.version, it.mode)
    return (await this.run(
      'bulkRequeue',
      [k.bulk, k.versions, k.retries, k.bulkMisses, k.pending, k.bulkItems, k.flush],
      args,
    )) as string[]
  }

  /** Takes settled items out of the in-job set (lua/bulk-release-1.lua). */
  async bulkRelease(items: readonly { key: string; version: number }[]): Promise<number> {
    if (items.length === 0) return 0
    const args: Arg[] = []
    for (const it of items) args.push(it.key, it.version)
    return Number(await this.run('bulkRelease', [this.k.bulkItems], args))
  }

  /** Deletes a settled bulk job (lua/bulk-finish-7.lua); false when the lease is another worker's. */
  async bulkFinish(id: string, token: string): Promise<boolean> {
    const k = this.k
    const res = await this.run(
      'bulkFinish',
      [k.bulkJobs, k.bulkDue, k.bulkLeases, bulkJobKey(k, id), k.bulkItems, k.versions, k.bulkMisses],
      [id, token],
    )
    return Number(res) === 1
  }

  /** Moves bulk items (waiting or in a job) to the online lane (lua/bulk-promote-6.lua). */
  async bulkPromote(keys: readonly string[]): Promise<number> {
    if (keys.length === 0) return 0
    const k = this.k
    return Number(
      await this.run(
        'bulkPromote',
        [k.bulk, k.bulkItems, k.versions, k.pending, k.seq, k.flush],
        [k.wakeChannel, ...keys],
      ),
    )
  }

  /**
   * Pauses claims in every worker after a rate-limited call (extends, never shortens) and
   * records the reason. `delayMs` undefined: the default pause, doubled along the streak.
   */
  async pause(p: PauseRequest): Promise<PauseResult> {
    const res = (await this.run(
      'pause',
      [this.k.pause, this.k.pauseInfo],
      [
        p.delayMs === undefined ? -1 : Math.max(1, Math.round(p.delayMs)),
        Math.max(1, Math.round(p.baseMs)),
        Math.max(1, Math.round(p.maxMs)),
        p.reason,
        p.quotaId ?? '',
        p.message,
        Math.max(1, Math.round(p.streakWindowMs)),
      ],
    )) as (string | number)[]
    return {
      leftMs: Number(res[1]),
      extended: Number(res[2]) === 1,
      quotaStarted: Number(res[3]) === 1,
    }
  }

  /** How long claims stay paused (0 when not paused): the pause key's remaining time to live. */
  async pauseLeft(): Promise<number> {
    return Math.max(0, await (this.redis as Redis).pttl(this.k.pause))
  }

  /**
   * Why a chunk claimed ahead must not call the provider now: the operator paused the queue,
   * or a rate limit did (null: go ahead).
   */
  async blockedBy(): Promise<'operator' | 'rate-limit' | null> {
    const redis = this.redis as Redis
    const [paused, left] = await Promise.all([redis.exists(this.k.paused), redis.pttl(this.k.pause)])
    if (paused === 1) return 'operator'
    return left > 0 ? 'rate-limit' : null
  }

  /**
   * Writes this worker's registry entry (`info` JSON without lastSeenAt; the script stamps
   * Redis's time), counted live for `ttlMs`; `info` null removes it. Returns Redis's time, ms.
   */
  async workerBeat(id: string, info: string | null, ttlMs: number): Promise<number> {
    return Number(
      await this.run('workerBeat', [this.k.workers, this.k.workersSeen], [id, info ?? '', Math.round(ttlMs)]),
    )
  }

  /** Adds per-minute counters to the history (args: minute, CSV, …); prunes aged-out minutes. */
  async history(keptMinutes: number, width: number, args: readonly string[]): Promise<number> {
    return Number(await this.run('history', [this.k.history], [keptMinutes, width, ...args]))
  }

  /** A provider call succeeded: the next rate limit starts a new streak (the default pause again). */
  async endRateLimitStreak(): Promise<void> {
    await (this.redis as Redis).hset(this.k.pauseInfo, 'streak', 0)
  }

  /**
   * Asks the shared limiter to admit one provider call of `tokens` tokens.
   * Returns 0 when admitted, else how long to wait (ms).
   */
  async rateLimit(
    keys: { log: string; total: string },
    windowMs: number,
    requests: number,
    tokensPerWindow: number,
    tokens: number,
    id: string,
  ): Promise<number> {
    return Number(
      await this.run(
        'rateLimit',
        [keys.log, keys.total],
        [windowMs, requests, tokensPerWindow, Math.ceil(tokens), id],
      ),
    )
  }
}
