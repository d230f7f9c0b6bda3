/**
 * The drain loop of one queue instance.
 *
 * States (WorkerState):
 *   idle ──start()──▶ running ──stop()──▶ stopping ──(claims settled)──▶ stopped
 *
 * While running, `pump()` claims batches (one Lua call each) as long as fewer than
 * `concurrency` provider chunks are outstanding, so a slow provider does not set the pace
 * of the whole pipeline. Each claim is split into provider-sized chunks; each chunk, when
 * its call returns, is written back (one pipeline per node) and acknowledged (one Lua call).
 * A heartbeat renews the leases of running claims; a sweep returns expired leases of dead
 * workers to pending. Wake-ups come from pub/sub (full batch, flush, reclaim), from this
 * process's own enqueues, from finished chunks, and from a polling timer as a fallback.
 */
import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import pLimit from 'p-limit'
import { backoffMs } from './backoff.js'
import type { VectorCache } from './cache.js'
import { type DeadLetter, encodeVector } from './codec.js'
import type { Embedder } from './embedder.js'
import { callEmbedder, checkReply, type Outcome, toEmbedderError } from './embedder-guard.js'
import {
  EmbedderError,
  LostToEvictionError,
  QuotaExhaustedError,
  TARGET_VERSION_CONFLICT,
  TargetVersionConflictError,
  TargetWriteError,
  targetConflictMessage,
  toError,
} from './errors.js'
import { HISTORY_FLUSH_MS, HISTORY_MINUTES, HISTORY_WIDTH, HistoryRecorder } from './history.js'
import { rateLimitKeys } from './keys.js'
import type { ResolvedOptions } from './options.js'
import { embedderRedactor, type Redactor } from './redact.js'
import type { ClaimedItem, FailItem, PauseReason, QueueScripts, RepairCursor } from './scripts.js'
import { isTransientRedisError, type TargetStore } from './target-store.js'
import { VERSION } from './version.js'
import type { Waiters } from './waiters.js'

export const WorkerState = {
  Idle: 'idle',
  Running: 'running',
  Stopping: 'stopping',
  Stopped: 'stopped',
} as const
export type WorkerState = (typeof WorkerState)[keyof typeof WorkerState]

/** Events the worker reports through the queue's EventEmitter. */
export interface WorkerEvents {
  embedded(info: { key: string; version: number; ms: number }): void
  failed(info: { key: string; version: number; attempts: number; error: Error }): void
  retrying(info: { key: string; version: number; attempts: number; delayMs: number; error: Error }): void
  /**
   * The write fence refused an item's vector: its target already holds a newer version (restored
   * or foreign data). The item is given up (dead letter, `failed` fires too) and its waiters reject
   * with the same `TargetVersionConflictError`; the target keeps what it held.
   */
  refused(info: { key: string; version: number; error: TargetVersionConflictError }): void
  /** One provider call: texts sent, duration, outcome, estimated tokens (with a rate limit). */
  call(info: { size: number; ms: number; ok: boolean; tokens: number; status?: number }): void
  /** Cache lookups of one chunk. */
  cache(info: { hits: number; misses: number }): void
  /**
   * A provider call was rate-limited: every worker of the queue pauses until `resumesAt` and
   * the call's items went back to the queue uncharged.
   */
  rateLimited(info: {
    items: number
    pausedForMs: number
    resumesAt: Date
    reason: PauseReason
    error: EmbedderError
  }): void
  error(err: Error): void
}

interface ActiveClaim {
  token: string
  /** Key -> version of the items whose lease this claim still holds (the heartbeat renews these). */
  keys: Map<string, number>
  controller: AbortController
}

export interface WorkerDeps {
  options: ResolvedOptions
  scripts: QueueScripts
  targets: TargetStore
  waiters: Waiters
  emit: <K extends keyof WorkerEvents>(event: K, ...args: Parameters<WorkerEvents[K]>) => void
  hasListeners: (event: keyof WorkerEvents) => boolean
  cache?: VectorCache
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/**
 * A worker silent for this many heartbeat intervals is gone from `workers()` (its registry
 * entry expires): with the default leaseMs of 30 s (a beat every 10 s) that is 30 s.
 */
export const WORKER_TTL_BEATS = 3

/** The heartbeat interval of a worker with this lease: renews leases and the registry entry. */
export const heartbeatMs = (leaseMs: number): number => Math.max(100, Math.floor(leaseMs / 3))

/** The longest pause a rate-limited call can ask for (a server's Retry-After is capped to it). */
export const MAX_RATE_LIMIT_PAUSE_MS = 48 * 3_600_000

export class Worker {
  /** This instance's id in the worker registry (host, pid and a random part). */
  readonly id: string
  private startedAt = 0
  /** Why the last claim was refused (the queue was paused), or null. */
  private pausedBy: 'operator' | 'rate-limit' | null = null
  private readonly history = new HistoryRecorder()
  private historyTimer: NodeJS.Timeout | undefined
  private state: WorkerState = WorkerState.Idle
  private pumping = false
  private repump = false
  private outstandingChunks = 0
  private pausedUntil = 0
  private wakeTimer: NodeJS.Timeout | undefined
  private reclaimTimer: NodeJS.Timeout | undefined
  private heartbeatTimer: NodeJS.Timeout | undefined
  private readonly claims = new Set<ActiveClaim>()
  private readonly settling = new Set<Promise<void>>()
  private readonly limit: ReturnType<typeof pLimit>
  private readonly chunkSize: number
  private readonly embedder: Embedder
  private readonly o: ResolvedOptions
  private readonly rateKeys: { log: string; total: string } | undefined
  /** Replaces the embedder's secrets in every error it produces (defense in depth for custom embedders). */
  private readonly redactor: Redactor

  private readonly deps: WorkerDeps

  constructor(deps: WorkerDeps) {
    this.o = deps.options
    this.embedder = this.o.embedder
    this.redactor = embedderRedactor(this.embedder)
    // Every error the worker reports (events, and the logs the queue writes from them) passes the
    // redactor: defense in depth for a custom embedder whose errors carry its secrets.
    const redactor = this.redactor
    this.deps = {
      ...deps,
      emit: (event, ...args) => {
        if (redactor.active) for (const a of args) redactor.error(a)
        this.recordHistory(event, args[0])
        deps.emit(event, ...args)
      },
    }
    this.id = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`
    this.limit = pLimit(this.o.concurrency)
    this.rateKeys = this.o.rateLimit ? rateLimitKeys(this.o.prefix, this.o.rateLimit.scope) : undefined
    this.chunkSize = Math.min(this.o.maxBatchSize, this.embedder.maxBatchSize ?? Number.POSITIVE_INFINITY)
  }

  get currentState(): WorkerState {
    return this.state
  }

  /** Items claimed by this worker and not yet settled. */
  get inflightCount(): number {
    let n = 0
    for (const c of this.claims) n += c.keys.size
    return n
  }

  async start(): Promise<void> {
    if (this.state !== WorkerState.Idle) return
    this.state = WorkerState.Running
    this.startedAt = Date.now()
    await this.beat()
    await this.sweep()
    this.reclaimTimer = setInterval(() => void this.sweep(), this.o.reclaimIntervalMs)
    this.heartbeatTimer = setInterval(() => void this.heartbeat(), heartbeatMs(this.o.leaseMs))
    this.historyTimer = setInterval(() => void this.flushHistory(), HISTORY_FLUSH_MS)
    this.kick()
  }

  /** Asks for a drain pass soon (coalesced with one already running). */
  kick(): void {
    if (this.state !== WorkerState.Running) return
    if (this.pumping) {
      this.repump = true
      return
    }
    void this.pump()
  }

  private scheduleWake(ms: number): void {
    if (this.state !== WorkerState.Running) return
    if (this.wakeTimer) clearTimeout(this.wakeTimer)
    const delay = ms < 0 ? this.o.pollIntervalMs : Math.min(Math.max(ms, 1), this.o.pollIntervalMs)
    this.wakeTimer = setTimeout(() => {
      this.wakeTimer = undefined
      this.kick()
    }, delay)
  }

  private async pump(): Promise<void> {
    this.pumping = true
    try {
      do {
        this.repump = false
        // Claim ahead up to twice the provider concurrency, so the next chunks are ready when
        // calls return together; p-limit still caps the calls themselves at `concurrency`.
        while (this.state === WorkerState.Running && this.outstandingChunks < 2 * this.o.concurrency) {
          const pauseLeft = this.pausedUntil - Date.now()
          if (pauseLeft > 0) {
            this.scheduleWake(pauseLeft)
            break
          }
          const token = randomBytes(9).toString('base64url')
          const res = await this.deps.scripts.claim(
            this.o.maxBatchSize,
            this.o.flushIntervalMs,
            this.o.leaseMs,
            token,
          )
          this.pausedBy = res.pausedBy ?? null
          if (res.items.length === 0) {
            this.scheduleWake(res.waitMs)
            break
          }
          this.runClaim(token, res.items)
          if (res.readyLeft <= 0 && res.items.length < this.o.maxBatchSize) {
            this.scheduleWake(-1)
            break
          }
        }
      } while (this.repump && this.state === WorkerState.Running)
    } catch (err) {
      this.deps.emit('error', toError(err))
      this.scheduleWake(Math.min(1_000, this.o.pollIntervalMs))
    } finally {
      this.pumping = false
    }
  }

  private runClaim(token: string, items: ClaimedItem[]): void {
    const claim: ActiveClaim = {
      token,
      keys: new Map(items.map((i) => [i.key, i.version])),
      controller: new AbortController(),
    }
    this.claims.add(claim)
    for (let i = 0; i < items.length; i += this.chunkSize) {
      const chunk = items.slice(i, i + this.chunkSize)
      this.outstandingChunks++
      const p = this.processChunk(claim, chunk)
        .catch((err) => this.o.logger.error({ err }, 'embedq chunk failed unexpectedly'))
        .finally(() => {
          this.settling.delete(p)
          if (claim.keys.size === 0) this.claims.delete(claim)
        })
      this.settling.add(p)
    }
  }

  /**
   * Embeds, writes and settles one chunk. Whatever happens, its keys leave the claim at the end
   * (so the heartbeat stops renewing them): settled in Redis, or left to lease expiry and the sweep.
   */
  private async processChunk(claim: ActiveClaim, chunk: ClaimedItem[]): Promise<void> {
    let outcomes: Outcome[]
    try {
      outcomes = await this.embedWithCache(chunk, claim.controller.signal)
      if (outcomes.length !== chunk.length)
        throw new Error(`${outcomes.length} outcomes for ${chunk.length} items`)
    } catch (err) {
      // A defect on our side, not the items': they go through the ordinary failure path.
      outcomes = chunk.map(() => ({ error: this.redactor.error(toEmbedderError(err)) }))
    } finally {
      this.outstandingChunks--
      this.kick()
    }
    this.noteSuccess(outcomes)
    try {
      await this.settle(claim, chunk, outcomes)
    } catch (err) {
      // Redis failed mid-settle: the leases expire and the sweep returns the items.
      this.deps.emit('error', toError(err))
    } finally {
      for (const it of chunk) claim.keys.delete(it.key)
    }
  }

  /** Serves cached vectors, embeds the rest under the concurrency limit, caches what came back. */
  private async embedWithCache(chunk: ClaimedItem[], signal: AbortSignal): Promise<Outcome[]> {
    const cache = this.deps.cache
    if (!cache) return this.limit(() => this.embedStarted(chunk, signal))
    let cached: (Float32Array | null)[]
    try {
      cached = await cache.get(chunk.map((i) => i.text))
    } catch (err) {
      this.deps.emit('error', toError(err))
      cached = chunk.map(() => null)
    }
    const missIdx = chunk.flatMap((_, i) => (cached[i] ? [] : [i]))
    this.deps.emit('cache', { hits: chunk.length - missIdx.length, misses: missIdx.length })
    const outcomes: Outcome[] = cached.map((v) =>
      v ? { vector: v } : { error: new EmbedderError('unset', { retryable: true }) },
    )
    if (missIdx.length === 0) return outcomes
    const missed = await this.limit(() =>
      this.embedStarted(
        missIdx.map((i) => chunk[i]!),
        signal,
      ),
    )
    const fresh: { text: string; vector: Float32Array }[] = []
    missIdx.forEach((i, j) => {
      const o = missed[j]!
      outcomes[i] = o
      if ('vector' in o) fresh.push({ text: chunk[i]!.text, vector: o.vector })
    })
    if (fresh.length) await cache.set(fresh).catch((err) => this.deps.emit('error', toError(err)))
    return outcomes
  }

  /**
   * Runs when the limiter gives the chunk a slot. A chunk claimed ahead that gets its slot
   * only after stop() began is not started: it goes back to pending uncharged at once.
   */
  private async embedStarted(items: ClaimedItem[], signal: AbortSignal): Promise<Outcome[]> {
    if (this.state !== WorkerState.Running) return items.map(() => ({ error: this.notStarted }))
    const outcomes = await this.unlessPaused(items, () => this.embedItems(items, signal))
    await this.pauseOnRateLimit(outcomes)
    return outcomes
  }

  /** Rate-limited calls whose pause is already set (fail() sets any other before releasing). */
  private readonly pausedFor = new WeakSet<EmbedderError>()

  /**
   * Sets the shared pause while this chunk still holds its concurrency slot, so that the
   * chunks waiting for the slot, here and in every other worker, find the queue paused
   * before they call the provider.
   */
  private async pauseOnRateLimit(outcomes: Outcome[]): Promise<void> {
    const limited = new Map<EmbedderError, number>()
    for (const o of outcomes) {
      if ('error' in o && o.error.rateLimited && !this.pausedFor.has(o.error))
        limited.set(o.error, (limited.get(o.error) ?? 0) + 1)
    }
    for (const [error, items] of limited) {
      try {
        await this.pauseForRateLimit(error, items)
        this.pausedFor.add(error)
      } catch (err) {
        this.deps.emit('error', toError(err)) // fail() tries again before releasing the items
      }
    }
  }

  private readonly notStarted = new EmbedderError('not started: the worker is stopping', { retryable: true })

  /** A chunk that found the queue paused by a rate limit: it goes back uncharged, not called. */
  private readonly deferred = new EmbedderError('not started: the queue is paused by a rate limit', {
    retryable: true,
  })

  /** A chunk claimed ahead that found the queue paused by an operator: back uncharged, not called. */
  private readonly held = new EmbedderError('not started: the queue is paused by an operator', {
    retryable: true,
  })

  /**
   * A chunk claimed before another worker hit a rate limit, or before an operator paused the
   * queue, must not call the provider during the pause: one EXISTS and one PTTL before each
   * call. If Redis cannot answer, the call goes ahead (its claim just succeeded, and a 429
   * would pause it anyway).
   */
  private async unlessPaused(items: ClaimedItem[], call: () => Promise<Outcome[]>): Promise<Outcome[]> {
    const blocked = await this.deps.scripts.blockedBy().catch(() => null)
    if (blocked === 'operator') return items.map(() => ({ error: this.held }))
    if (blocked === 'rate-limit') return items.map(() => ({ error: this.deferred }))
    return call()
  }

  /**
   * Calls the provider; a non-retryable failure of several texts (including a reply that is
   * unusable as a whole) is bisected to find the bad ones. Never throws: every item gets an
   * outcome, a bad entry in a reply fails only its own item (`EmbedderReplyError`).
   */
  private async embedItems(items: ClaimedItem[], signal: AbortSignal): Promise<Outcome[]> {
    if (signal.aborted)
      return items.map(() => ({ error: toEmbedderError(signal.reason ?? new Error('aborted')) }))
    try {
      const outcomes = await this.callProvider(
        items.map((i) => i.text),
        signal,
      )
      // A bad entry's error may carry what the embedder put there (a getter's throw): redact it too.
      for (const o of outcomes) if ('error' in o) this.redactor.error(o.error)
      return outcomes
    } catch (err) {
      const e = this.redactor.error(toEmbedderError(err))
      if (!e.retryable && !e.stopsDrain && items.length > 1 && !signal.aborted) {
        const mid = items.length >> 1
        const left = await this.embedItems(items.slice(0, mid), signal)
        const right = await this.embedItems(items.slice(mid), signal)
        return [...left, ...right]
      }
      return items.map(() => ({ error: e }))
    }
  }

  /**
   * One provider call through the guard (`embedder-guard.ts`): identical texts are sent once,
   * the shared rate limit is honoured, the call is bounded by `embedTimeoutMs`, and the reply
   * is checked entry by entry. Throws an `EmbedderError` when the call as a whole failed.
   */
  private async callProvider(texts: string[], signal: AbortSignal): Promise<Outcome[]> {
    const unique = [...new Set(texts)]
    const rl = this.o.rateLimit
    let tokens = 0
    if (rl) {
      for (const t of unique) tokens += rl.estimateTokens(t)
      await this.admit(tokens, signal)
    }
    const started = Date.now()
    let ok = false
    let status: number | undefined
    try {
      const reply = await callEmbedder(this.embedder, unique, signal, this.o.embedTimeoutMs, this.redactor)
      const outcomes = checkReply(reply, unique.length, this.embedder.dimensions)
      ok = true
      if (unique.length === texts.length) return outcomes
      const byText = new Map(unique.map((t, i) => [t, outcomes[i]!]))
      return texts.map((t) => byText.get(t)!)
    } catch (err) {
      status = err instanceof EmbedderError ? err.status : undefined
      throw err
    } finally {
      this.deps.emit('call', {
        size: unique.length,
        ms: Date.now() - started,
        ok,
        tokens,
        ...(status !== undefined ? { status } : {}),
      })
    }
  }

  /** Waits until the shared limiter admits a call (or the claim is aborted). */
  private async admit(tokens: number, signal: AbortSignal): Promise<void> {
    const rl = this.o.rateLimit!
    for (;;) {
      const waitMs = await this.deps.scripts.rateLimit(
        this.rateKeys!,
        rl.windowMs,
        rl.requestsPerMinute,
        rl.tokensPerMinute,
        tokens,
        randomBytes(6).toString('base64url'),
      )
      if (waitMs <= 0) return
      if (signal.aborted) throw toEmbedderError(signal.reason ?? new Error('aborted'))
      await sleep(Math.min(waitMs, 1_000))
    }
  }

  private async settle(claim: ActiveClaim, chunk: ClaimedItem[], outcomes: Outcome[]): Promise<void> {
    const ok: { item: ClaimedItem; vector: Float32Array }[] = []
    const failures: { item: ClaimedItem; error: EmbedderError }[] = []
    outcomes.forEach((o, i) => {
      const item = chunk[i]!
      if ('vector' in o) ok.push({ item, vector: o.vector })
      else failures.push({ item, error: o.error })
    })

    if (ok.length) {
      const writeErrors = await this.deps.targets.write(
        ok.map(({ item, vector }) => ({ key: item.key, version: item.version, blob: encodeVector(vector) })),
      )
      const written: typeof ok = []
      const refused: ClaimedItem[] = []
      const unavailable: string[] = []
      let unavailableError: Error | undefined
      ok.forEach((entry, i) => {
        const err = writeErrors[i]
        if (!err) written.push(entry)
        else if (err instanceof TargetVersionConflictError) refused.push(entry.item)
        else {
          if (isTransientRedisError(err)) {
            unavailable.push(entry.item.key)
            unavailableError ??= err
          }
          // WRONGTYPE and the like will not heal by retrying; anything else might.
          const permanent = /WRONGTYPE|ERR /.test(err.message)
          failures.push({
            item: entry.item,
            error: new EmbedderError(`writing the vector failed: ${err.message}`, {
              retryable: !permanent,
              cause: err,
            }),
          })
        }
      })
      if (unavailableError) {
        // Not the items' fault (they go back uncharged), but an operator must hear of it: a
        // slot no node will serve, or a master down for longer than `writeRetryMs`, would
        // otherwise cycle these items silently.
        this.deps.emit(
          'error',
          new TargetWriteError(
            `could not write ${unavailable.length} vector(s) within ${this.o.writeRetryMs} ms (e.g. "${unavailable[0]}"): ${unavailableError.message}; they go back to the queue uncharged`,
            unavailable,
            { cause: unavailableError },
          ),
        )
      }
      if (written.length) await this.acknowledge(claim, written)
      if (refused.length) await this.refuse(claim, refused)
    }
    if (failures.length) await this.fail(claim, failures)
  }

  private async acknowledge(
    claim: ActiveClaim,
    written: { item: ClaimedItem; vector: Float32Array }[],
  ): Promise<void> {
    const { waiters } = this.deps
    for (const { item, vector } of written) waiters.offerLocal(item.key, item.version, vector)
    let statuses: string[]
    try {
      statuses = await this.deps.scripts.ack(
        claim.token,
        written.map(({ item }) => ({ key: item.key, version: item.version })),
      )
    } catch (err) {
      for (const { item } of written) waiters.finishLocal(item.key, item.version, false)
      throw err
    }
    const report = this.deps.hasListeners('embedded')
    const now = Date.now()
    written.forEach(({ item }, i) => {
      const done = statuses[i] === 'D'
      waiters.finishLocal(item.key, item.version, done)
      if (done && report) {
        this.deps.emit('embedded', {
          key: item.key,
          version: item.version,
          ms: Math.max(0, now - item.version / 1000),
        })
      }
    })
  }

  /**
   * Items whose vector the write fence refused: the target holds a newer version than the item
   * (restored or foreign data), so nothing was written and nothing may be reported as embedded.
   * Each is given up at once (retrying cannot help) as a dead letter marked
   * `target-version-conflict`, without a zero vector (the fence would refuse it too); the
   * failure is published, so waiters in every process reject with `TargetVersionConflictError`.
   * An item whose text changed meanwhile is skipped by the script (its newer version is pending).
   */
  private async refuse(claim: ActiveClaim, items: ClaimedItem[]): Promise<void> {
    const now = Date.now()
    const letters: DeadLetter[] = items.map((item) => ({
      key: item.key,
      version: item.version,
      text: item.text,
      error: targetConflictMessage(item.version),
      reason: TARGET_VERSION_CONFLICT,
      attempts: item.attempts + 1,
      failedAt: now,
    }))
    const charged = await this.deps.scripts.fail(
      claim.token,
      letters.map((l) => ({
        key: l.key,
        version: l.version,
        mode: 'G',
        delayMs: 0,
        letter: JSON.stringify(l),
      })),
    )
    letters.forEach((letter, i) => {
      if (charged[i] === -1) return
      const error = new TargetVersionConflictError(letter.key, letter.version, letter.attempts, letter.error)
      this.deps.waiters.failLocal(letter)
      this.deps.emit('refused', { key: letter.key, version: letter.version, error })
      this.deps.emit('failed', { key: letter.key, version: letter.version, attempts: letter.attempts, error })
    })
  }

  private async fail(
    claim: ActiveClaim,
    failures: { item: ClaimedItem; error: EmbedderError }[],
  ): Promise<void> {
    const o = this.o
    const stopping = this.state !== WorkerState.Running
    // planIndex: where the give-up sits in `plan`, whose reply says whether it was charged.
    const giveUps: { item: ClaimedItem; error: EmbedderError; letter: DeadLetter; planIndex: number }[] = []
    const plan: FailItem[] = []
    // Rate-limited calls of this chunk (distinct errors), with how many items each returned.
    const rateLimited = new Map<EmbedderError, number>()
    for (const { item, error } of failures) {
      const redisDown = error.cause instanceof Error && isTransientRedisError(error.cause)
      const released = stopping && (claim.controller.signal.aborted || error === this.notStarted)
      if (
        error.stopsDrain ||
        redisDown ||
        released ||
        error === this.deferred ||
        error === this.held ||
        error.rateLimited
      ) {
        // Not the item's fault: give it back uncharged. A rate limit pauses the queue first
        // (below), so the item is not claimed again before the pause ends.
        plan.push({ key: item.key, version: item.version, mode: 'N', delayMs: 0, letter: '' })
        if (error.rateLimited && !released) rateLimited.set(error, (rateLimited.get(error) ?? 0) + 1)
        continue
      }
      const attempts = item.attempts + 1
      if (attempts >= o.maxAttempts) {
        const letter: DeadLetter = {
          key: item.key,
          version: item.version,
          text: item.text,
          error: error.message,
          attempts,
          failedAt: Date.now(),
          ...(error.status !== undefined ? { status: error.status } : {}),
        }
        giveUps.push({ item, error, letter, planIndex: plan.length })
        plan.push({
          key: item.key,
          version: item.version,
          mode: 'G',
          delayMs: 0,
          letter: JSON.stringify(letter),
        })
      } else {
        const delayMs = backoffMs(attempts, o.backoffBaseMs, o.backoffMaxMs, error.retryAfterMs)
        plan.push({ key: item.key, version: item.version, mode: 'R', delayMs, letter: '' })
        this.deps.emit('retrying', { key: item.key, version: item.version, attempts, delayMs, error })
      }
    }
    const auth = failures.find((f) => f.error.stopsDrain)
    if (auth) {
      this.pausedUntil = Date.now() + o.authPauseMs
      this.deps.emit('error', auth.error)
    }
    // The pause is in Redis before the items are back in pending: no claim sees them earlier.
    for (const [error, items] of rateLimited) {
      if (!this.pausedFor.has(error)) await this.pauseForRateLimit(error, items)
    }
    if (giveUps.length && o.zeroVectorOnFailure) {
      const zero = encodeVector(new Float32Array(this.embedder.dimensions))
      await this.deps.targets.write(
        giveUps.map(({ item }) => ({ key: item.key, version: item.version, blob: zero, placeholder: true })),
      )
    }
    const attemptsCharged = await this.deps.scripts.fail(claim.token, plan)
    giveUps.forEach(({ item, error, letter, planIndex }) => {
      if (attemptsCharged[planIndex] !== -1) {
        this.deps.waiters.failLocal(letter)
        this.deps.emit('failed', { key: item.key, version: item.version, attempts: letter.attempts, error })
      }
    })
  }

  /**
   * Pauses every worker of the queue for the wait a rate-limited call asked for (or the
   * default, doubling along a streak of rate limits), and reports it. A wait longer than
   * `quotaPauseThresholdMs`, or a quota the provider says is exhausted, is a quota pause,
   * reported once per pause with a `QuotaExhaustedError`.
   */
  private async pauseForRateLimit(error: EmbedderError, items: number): Promise<void> {
    const o = this.o
    const quota = error.quotaExhausted || (error.retryAfterMs ?? 0) > o.quotaPauseThresholdMs
    const reason: PauseReason = quota ? 'quota' : 'rate-limit'
    const maxMs = Math.max(o.rateLimitPauseMs, o.backoffMaxMs)
    const asked = error.retryAfterMs ?? (error.quotaExhausted ? o.quotaPauseThresholdMs : undefined)
    const res = await this.deps.scripts.pause({
      // A daily quota resets within a day; a longer wait is a server's mistake, not a plan.
      delayMs: asked === undefined ? undefined : Math.min(asked, MAX_RATE_LIMIT_PAUSE_MS),
      baseMs: o.rateLimitPauseMs,
      maxMs,
      reason,
      quotaId: error.quotaId,
      message: error.message.slice(0, 300),
      streakWindowMs: Math.max(60_000, 2 * maxMs),
    })
    this.inRateLimitStreak = true
    const resumesAt = new Date(Date.now() + res.leftMs)
    this.deps.emit('rateLimited', { items, pausedForMs: res.leftMs, resumesAt, reason, error })
    if (res.quotaStarted) {
      const what = error.quotaId ? `quota ${error.quotaId}` : 'a provider quota'
      this.deps.emit(
        'error',
        new QuotaExhaustedError(
          `${what} is exhausted: every worker of queue "${o.name}" pauses until ${resumesAt.toISOString()} (nothing is charged): ${error.message}`,
          resumesAt,
          error.quotaId,
          { cause: error },
        ),
      )
    }
  }

  /** Set after this worker paused the queue for a rate limit, until one of its calls succeeds. */
  private inRateLimitStreak = false

  /** A call of this worker succeeded after it hit a rate limit: the next one starts a new streak. */
  private noteSuccess(outcomes: Outcome[]): void {
    if (!this.inRateLimitStreak || !outcomes.some((out) => 'vector' in out)) return
    this.inRateLimitStreak = false
    this.deps.scripts.endRateLimitStreak().catch((err) => this.deps.emit('error', toError(err)))
  }

  /** This worker's registry entry (lastSeenAt is stamped by the script on Redis's clock). */
  private info(): string {
    return JSON.stringify({
      id: this.id,
      host: hostname(),
      pid: process.pid,
      startedAt: this.startedAt,
      concurrency: this.o.concurrency,
      inflight: this.inflightCount,
      embedder: this.embedder.id ?? 'custom',
      version: VERSION,
      paused: this.pausedBy !== null,
    })
  }

  /** Writes the registry entry; it expires after WORKER_TTL_BEATS heartbeats without one. */
  private async beat(): Promise<void> {
    try {
      await this.deps.scripts.workerBeat(this.id, this.info(), WORKER_TTL_BEATS * heartbeatMs(this.o.leaseMs))
    } catch (err) {
      this.deps.emit('error', toError(err))
    }
  }

  /** Feeds the per-minute history from the worker's own events. */
  private recordHistory(event: keyof WorkerEvents, info: unknown): void {
    const h = this.history
    if (event === 'embedded') {
      h.add('embedded')
      h.latency((info as { ms: number }).ms)
    } else if (event === 'failed') h.add('failed')
    else if (event === 'retrying') h.add('retried')
    else if (event === 'call') {
      h.add('providerCalls')
      h.add('tokens', (info as { tokens: number }).tokens)
    } else if (event === 'rateLimited') h.add('rateLimited')
  }

  /** Writes the counts gathered since the last flush (kept for the next one if Redis fails). */
  private async flushHistory(): Promise<void> {
    if (this.history.empty) return
    const args = this.history.take()
    try {
      await this.deps.scripts.history(HISTORY_MINUTES, HISTORY_WIDTH, args)
    } catch (err) {
      this.history.restore(args)
      this.deps.emit('error', toError(err))
    }
  }

  private async heartbeat(): Promise<void> {
    void this.beat()
    for (const claim of this.claims) {
      if (claim.keys.size === 0) continue
      try {
        const lost = await this.deps.scripts.renew(claim.token, this.o.leaseMs, [...claim.keys.keys()])
        for (const k of lost) claim.keys.delete(k)
      } catch (err) {
        this.deps.emit('error', toError(err))
      }
    }
  }

  /** Where the eviction repair continues (see lua/repair-11.lua). */
  private repairAt: RepairCursor = { phase: 'p', cursor: '0' }

  /**
   * Returns expired leases to pending, then repairs up to a few bounded pages of bookkeeping
   * that eviction left inconsistent and reports the loss (`LostToEvictionError`).
   */
  private async sweep(): Promise<void> {
    try {
      const n = await this.deps.scripts.reclaim(1000)
      if (n > 0) this.kick()
      const lost: string[] = []
      const requeued: string[] = []
      // At most 8 pages of ~500 entries per sweep; a small queue is one cycle of 4 pages.
      for (let page = 0; page < 8 && this.state === WorkerState.Running; page++) {
        const r = await this.deps.scripts.repair(this.repairAt, 500)
        this.repairAt = r.next
        lost.push(...r.lost)
        requeued.push(...r.requeued)
        if (r.next.phase === 'p' && r.next.cursor === '0') break
      }
      if (requeued.length) this.kick()
      if (lost.length || requeued.length) this.deps.emit('error', new LostToEvictionError(lost, requeued))
    } catch (err) {
      this.deps.emit('error', toError(err))
    }
  }

  /**
   * Stops claiming, lets running chunks finish within `stopGraceMs`, then aborts the rest;
   * aborted items go back to pending uncharged. Resolves when nothing of ours is in flight.
   */
  async stop(): Promise<void> {
    if (this.state === WorkerState.Idle) {
      this.state = WorkerState.Stopped
      return
    }
    if (this.state !== WorkerState.Running) return
    this.state = WorkerState.Stopping
    if (this.wakeTimer) clearTimeout(this.wakeTimer)
    if (this.reclaimTimer) clearInterval(this.reclaimTimer)
    const all = (): Promise<unknown> => Promise.allSettled([...this.settling])
    let graceTimer: NodeJS.Timeout | undefined
    const grace = new Promise<'timeout'>((r) => {
      graceTimer = setTimeout(() => r('timeout'), this.o.stopGraceMs)
    })
    const first = await Promise.race([all().then(() => 'done' as const), grace])
    clearTimeout(graceTimer)
    if (first === 'timeout') {
      for (const c of this.claims) c.controller.abort(new Error('embedq worker stopping'))
      await Promise.race([all(), sleep(2_000)])
    }
    // Whatever is still claimed (an embedder that ignores abort) goes back to pending now.
    for (const c of this.claims) {
      if (c.keys.size === 0) continue
      try {
        await this.deps.scripts.fail(
          c.token,
          [...c.keys].map(([key, version]) => ({ key, version, mode: 'N' as const, delayMs: 0, letter: '' })),
        )
      } catch (err) {
        this.deps.emit('error', toError(err))
      }
    }
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer)
    if (this.historyTimer) clearInterval(this.historyTimer)
    this.claims.clear()
    // The last history counts and the registry entry: skipped when Redis is unreachable (stop()
    // must not wait on it; the entry expires by itself, the counts since the last flush are lost).
    const status = (this.o.redis as { status?: string }).status
    if (status === undefined || status === 'ready') {
      await Promise.all([
        this.flushHistory(),
        this.deps.scripts.workerBeat(this.id, null, 0).catch((err) => this.deps.emit('error', toError(err))),
      ])
    }
    this.state = WorkerState.Stopped
  }
}
