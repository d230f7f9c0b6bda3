/**
 * The bulk lane's worker loop: gathers bulk items into provider batch jobs (half price, hours
 * of turnaround), submits them, polls them with backoff, writes their vectors through the
 * fenced write path and settles every item through the same ack/fail scripts as the online lane.
 *
 * A job's life in Redis (see docs/notes-b2.md):
 *
 *   gather ──▶ 'submitting' ──submit──▶ pending/running ──poll…──▶ terminal ──settle──▶ deleted
 *
 * The gather script records the job (label, items) BEFORE anything is sent; the provider's job
 * id is recorded right after `submit` returns. Every job carries a due tick and a lease: any
 * worker leases due jobs (a few per tick), so a job whose worker died is resumed by another
 * after the lease runs out; a 'submitting' record found that way is looked up by its label.
 */
import { createHash, randomBytes } from 'node:crypto'
import type { Redis } from 'ioredis'
import { backoffMs } from './backoff.js'
import {
  type BulkEmbedder,
  type BulkItemResult,
  type BulkJob,
  type BulkJobState,
  isTerminalBulkState,
} from './bulk.js'
import { type DeadLetter, encodeVector } from './codec.js'
import { toEmbedderError } from './embedder-guard.js'
import {
  TARGET_VERSION_CONFLICT,
  TargetVersionConflictError,
  targetConflictMessage,
  toError,
} from './errors.js'
import { bulkJobKey, type QueueKeys } from './keys.js'
import type { ResolvedOptions } from './options.js'
import type { FailItem, QueueScripts } from './scripts.js'
import type { TargetStore } from './target-store.js'
import type { Waiters } from './waiters.js'
import type { WorkerDeps } from './worker.js'

/** A bulk job as recorded in Redis (`…:bulkjobs`, JSON). */
export interface BulkJobRecord {
  /** Our id of the job (also in its item list's key `…:bulkjob:<id>`). */
  id: string
  /** The label it is submitted under (found again with `findByLabel` after a crash). */
  label: string
  /** 'submitting' until the provider's id is recorded; then the provider's state as last seen. */
  state: 'submitting' | BulkJobState
  count: number
  bytes: number
  /** When the items were gathered (ms). */
  createdAt: number
  providerJobId?: string
  submittedAt?: number
  lastPolledAt?: number
  nextPollAt?: number
  polls: number
  /** Submissions tried (a retryable refusal such as 429 keeps the record and tries later). */
  attempts?: number
  completed?: number
  failed?: number
  error?: string
}

export interface BulkLaneDeps {
  options: ResolvedOptions
  scripts: QueueScripts
  keys: QueueKeys
  targets: TargetStore
  waiters: Waiters
  bulk: BulkEmbedder
  emit: WorkerDeps['emit']
  hasListeners: WorkerDeps['hasListeners']
}

/** Items settled per script call when a job finishes. */
const SETTLE_CHUNK = 500
/** Jobs one worker leases per tick. */
const LEASE_PER_TICK = 4

/** Our request id of a key: the key itself when short, else a digest (recomputable on resume). */
export function bulkRequestId(key: string): string {
  return key.length <= 200 ? key : `#sha256:${createHash('sha256').update(key).digest('hex')}`
}

/** Tokens of a text as the bulk lane estimates them for the saving report (~4 characters each). */
export function estimateTokens(text: string): number {
  return Math.ceil(text.length / 4)
}

export class BulkLane {
  private running = false
  private timer: NodeJS.Timeout | undefined
  private ticking: Promise<void> | undefined
  private again = false
  private force = false
  private readonly controller = new AbortController()
  private readonly token = `bulk:${randomBytes(8).toString('hex')}`
  private readonly o: ResolvedOptions
  private readonly d: BulkLaneDeps

  constructor(deps: BulkLaneDeps) {
    this.d = deps
    this.o = deps.options
  }

  start(): void {
    if (this.running) return
    this.running = true
    this.schedule(0)
  }

  /** Looks at the lane now; `force` submits whatever waits, even below `minJobSize`. */
  kick(force = false): void {
    if (!this.running) return
    if (force) this.force = true
    if (this.ticking) this.again = true
    else this.schedule(0)
  }

  private schedule(ms: number): void {
    if (this.timer) clearTimeout(this.timer)
    this.timer = setTimeout(() => {
      this.timer = undefined
      void this.tick()
    }, ms)
  }

  private get tickMs(): number {
    const b = this.o.bulk
    return Math.max(10, Math.min(1_000, b.pollIntervalMs, Math.max(10, b.gatherMs)))
  }

  private async tick(): Promise<void> {
    if (!this.running || this.ticking) return
    let next = this.tickMs
    this.ticking = (async () => {
      try {
        const waitMs = await this.gatherAll()
        if (waitMs >= 0) next = Math.max(10, Math.min(next, waitMs))
        await this.pollDue()
      } catch (err) {
        if (this.running) this.d.emit('error', toError(err))
      }
    })()
    await this.ticking
    this.ticking = undefined
    if (!this.running) return
    if (this.again) {
      this.again = false
      next = 0
    }
    this.schedule(next)
  }

  /** Stops gathering and polling; a job being worked on keeps its lease until it runs out. */
  async stop(): Promise<void> {
    if (!this.running) return
    this.running = false
    if (this.timer) clearTimeout(this.timer)
    this.timer = undefined
    this.controller.abort(new Error('embedq bulk lane stopping'))
    // A provider call in progress was aborted above; wait for the tick to notice, boundedly.
    let bound: NodeJS.Timeout | undefined
    await Promise.race([
      this.ticking ?? Promise.resolve(),
      new Promise<void>((r) => {
        bound = setTimeout(r, 5_000)
      }),
    ])
    clearTimeout(bound)
  }

  private label(id: string): string {
    const name = this.o.name.replace(/[^\x21-\x7e]/g, '_').slice(0, 60)
    return `embedq:${name}:${id}`
  }

  /** Gathers and submits jobs while the policy says one is due; returns ms until the next is. */
  private async gatherAll(): Promise<number> {
    const b = this.o.bulk
    const bulk = this.d.bulk
    for (;;) {
      if (!this.running) return -1
      const id = randomBytes(6).toString('hex')
      const label = this.label(id)
      const force = this.force
      const r = await this.d.scripts.bulkGather({
        id,
        label,
        token: this.token,
        maxItems: Math.min(b.maxJobSize, bulk.maxRequestsPerJob),
        maxBytes: bulk.maxBytesPerJob,
        minItems: b.minJobSize,
        gatherMs: b.gatherMs,
        force,
        submitLeaseMs: b.leaseMs,
      })
      if (r.items.length === 0) {
        if (force && r.waitMs === -1) this.force = false
        return r.waitMs
      }
      const record: BulkJobRecord = {
        id,
        label,
        state: 'submitting',
        count: r.items.length,
        bytes: r.items.reduce((n, it) => n + Buffer.byteLength(it.text), 0),
        createdAt: Date.now(),
        polls: 0,
      }
      await this.submit(record, r.items)
    }
  }

  /**
   * Submits a recorded job and records the provider's id. A retryable refusal (429, a lost
   * response) keeps the record 'submitting' and pauses new jobs for the provider's wait: when
   * the record is due again, its label is looked up first (the job may exist), and its items are
   * requeued uncharged when it does not.
   */
  private async submit(record: BulkJobRecord, items: { key: string; version: number; text: string }[]) {
    const { scripts, bulk } = this.d
    const b = this.o.bulk
    record.attempts = (record.attempts ?? 0) + 1
    let job: BulkJob
    try {
      job = await bulk.submit(
        items.map((it) => ({ id: bulkRequestId(it.key), text: it.text })),
        { label: record.label, signal: this.controller.signal },
      )
    } catch (err) {
      const e = toEmbedderError(err)
      record.error = e.message
      if (!this.running) {
        // Stopping aborted the call: whether the job was created is unknown. Due at once, so
        // any worker looks its label up (and adopts or requeues) without waiting for a lease.
        await scripts.bulkSave(record.id, this.token, JSON.stringify(record), 0, true)
        return
      }
      if (e.retryable) {
        const waitMs = Math.max(e.retryAfterMs ?? 0, backoffMs(record.attempts, 1_000, b.maxPollIntervalMs))
        await (this.o.redis as Redis).hset(this.d.keys.bulkStats, 'pausedUntil', String(Date.now() + waitMs))
        await scripts.bulkSave(record.id, this.token, JSON.stringify(record), waitMs, true)
        this.d.emit('error', e)
        return
      }
      this.d.emit('error', e)
      await this.settle(record, 'failed', [])
      return
    }
    b.afterSubmit?.(job.id)
    const now = Date.now()
    record.providerJobId = job.id
    record.state = job.state
    record.submittedAt = now
    record.nextPollAt = now + b.pollIntervalMs
    delete record.error
    const saved = await scripts.bulkSave(
      record.id,
      this.token,
      JSON.stringify(record),
      b.pollIntervalMs,
      true,
    )
    if (saved) await this.count(items)
  }

  /** Totals for stats and metrics: requests, tokens sent and the estimated saving. */
  private async count(items: { text: string }[]): Promise<void> {
    const tokens = items.reduce((n, it) => n + estimateTokens(it.text), 0)
    const price = this.d.bulk.pricing
    const saving = price ? (tokens / 1e6) * (price.onlinePerMTokens - price.bulkPerMTokens) : 0
    await (this.o.redis as Redis)
      .multi()
      .hincrby(this.d.keys.bulkStats, 'jobs', 1)
      .hincrby(this.d.keys.bulkStats, 'requests', items.length)
      .hincrby(this.d.keys.bulkStats, 'tokens', tokens)
      .hincrbyfloat(this.d.keys.bulkStats, 'savingUsd', saving)
      .exec()
  }

  /** Leases due jobs and moves each one step: resume a submit, poll, or settle. */
  private async pollDue(): Promise<void> {
    if (!this.running) return
    const { jobs } = await this.d.scripts.bulkLease(this.token, this.o.bulk.leaseMs, LEASE_PER_TICK)
    for (const { id, record } of jobs) {
      if (!this.running) return
      let rec: BulkJobRecord
      try {
        rec = JSON.parse(record) as BulkJobRecord
      } catch {
        this.d.emit(
          'error',
          new Error(`embedq: bulk job ${id} has an unreadable record; it is dropped and its items requeued`),
        )
        rec = { id, label: '', state: 'submitting', count: 0, bytes: 0, createdAt: Date.now(), polls: 0 }
        await this.settle(rec, 'expired', [])
        continue
      }
      try {
        await this.step(rec)
      } catch (err) {
        if (!this.running) {
          // Stopping aborted this step: hand the job back at once rather than after the lease.
          await this.d.scripts.bulkSave(rec.id, this.token, JSON.stringify(rec), 0, true).catch(() => {})
          return
        }
        this.d.emit('error', toError(err))
        // Try again after a backoff; the lease is released so any worker may.
        await this.d.scripts
          .bulkSave(rec.id, this.token, JSON.stringify(rec), this.pollDelay(rec), true)
          .catch(() => {})
      }
    }
  }

  private pollDelay(rec: BulkJobRecord): number {
    const b = this.o.bulk
    return Math.min(b.maxPollIntervalMs, Math.round(b.pollIntervalMs * 1.5 ** Math.min(30, rec.polls)))
  }

  private async step(rec: BulkJobRecord): Promise<void> {
    const { bulk, scripts } = this.d
    const signal = this.controller.signal
    if (rec.state === 'submitting' || !rec.providerJobId) {
      // Its worker died (or was refused) between recording and recording the provider's id.
      const found = bulk.findByLabel ? await bulk.findByLabel(rec.label, { signal }) : []
      const job = found[0]
      if (job) {
        rec.providerJobId = job.id
        rec.state = job.state
        rec.submittedAt ??= job.createdAt ?? Date.now()
        delete rec.error
        await scripts.bulkSave(rec.id, this.token, JSON.stringify(rec), 0, true)
        // The worker that submitted it died before counting it.
        const keys = [...(await this.items(rec.id)).keys()]
        const texts = keys.length ? await (this.o.redis as Redis).hmget(this.d.keys.jobs, ...keys) : []
        await this.count(texts.map((text) => ({ text: text ?? '' })))
        return
      }
      // Never created: every item goes back to the lane uncharged (a new job submits them).
      await this.settle(rec, 'expired', [])
      return
    }
    let job: BulkJob
    try {
      job = await bulk.get(rec.providerJobId, { signal })
    } catch (err) {
      const e = toEmbedderError(err)
      if (e.retryable) throw e
      // The provider does not know the job (or refuses to show it): its items are charged once.
      rec.error = e.message
      this.d.emit('error', e)
      await this.settle(rec, 'failed', [])
      return
    }
    rec.state = job.state
    rec.polls += 1
    rec.lastPolledAt = Date.now()
    if (job.requestCounts) {
      rec.completed = job.requestCounts.completed
      rec.failed = job.requestCounts.failed
    }
    if (job.error) rec.error = job.error
    if (!isTerminalBulkState(job.state)) {
      const delay = this.pollDelay(rec)
      rec.nextPollAt = Date.now() + delay
      await scripts.bulkSave(rec.id, this.token, JSON.stringify(rec), delay, true)
      return
    }
    // Keep the lease while the results are read and settled.
    await scripts.bulkSave(rec.id, this.token, JSON.stringify(rec), this.o.bulk.leaseMs, false)
    const results = job.state === 'failed' ? [] : await bulk.results(rec.providerJobId, { signal })
    await this.settle(rec, job.state, results)
  }

  /** The job's items: key -> version. */
  private async items(id: string): Promise<Map<string, number>> {
    const all = await (this.o.redis as Redis).hgetall(bulkJobKey(this.d.keys, id))
    return new Map(Object.entries(all).map(([k, v]) => [k, Number(v)]))
  }

  /**
   * Settles every item of a terminal job, a chunk at a time: vectors are written (fenced) and
   * acknowledged, per-item errors are charged, items absent from the results are requeued
   * (uncharged for an expired job, counted as a miss for a succeeded one, charged for a failed
   * or cancelled one). Then the job is deleted. Settling twice (a worker died midway) is safe:
   * acks of finished items are 'gone', requeues of requeued items are skipped.
   */
  private async settle(rec: BulkJobRecord, state: BulkJobState, results: BulkItemResult[]): Promise<void> {
    const { scripts, targets, waiters } = this.d
    const o = this.o
    const byId = new Map<string, BulkItemResult>()
    for (const r of results) byId.set(r.id, r)
    const all = [...(await this.items(rec.id))]
    const absentMode: 'U' | 'C' | 'M' = state === 'succeeded' ? 'M' : state === 'expired' ? 'U' : 'C'
    const jobError = rec.error ? `bulk job ${state}: ${rec.error}` : `bulk job ${state}`
    const report = this.d.hasListeners('embedded')
    for (let i = 0; i < all.length; i += SETTLE_CHUNK) {
      const chunk = all.slice(i, i + SETTLE_CHUNK).map(([key, version]) => ({ key, version }))
      // Out of the in-job set first: while settling, flushAndWait counts these items.
      await scripts.bulkRelease(chunk)
      const ok: { key: string; version: number; vector: Float32Array }[] = []
      const requeue: { key: string; version: number; mode: 'U' | 'C' | 'M'; error: string }[] = []
      for (const it of chunk) {
        const r = byId.get(bulkRequestId(it.key))
        if (!r) requeue.push({ ...it, mode: absentMode, error: jobError })
        else if ('vector' in r) ok.push({ ...it, vector: r.vector })
        else requeue.push({ ...it, mode: 'C', error: r.error.message })
      }
      const refused: { key: string; version: number }[] = []
      if (ok.length) {
        const errors = await targets.write(
          ok.map((it) => ({ key: it.key, version: it.version, blob: encodeVector(it.vector) })),
        )
        const written: typeof ok = []
        ok.forEach((it, j) => {
          const err = errors[j]
          if (!err) written.push(it)
          else if (err instanceof TargetVersionConflictError) refused.push(it)
          else requeue.push({ key: it.key, version: it.version, mode: 'U', error: err.message })
        })
        if (written.length) {
          for (const it of written) waiters.offerLocal(it.key, it.version, it.vector)
          let statuses: string[]
          try {
            statuses = await scripts.ack(this.token, written)
          } catch (err) {
            for (const it of written) waiters.finishLocal(it.key, it.version, false)
            throw err
          }
          const now = Date.now()
          written.forEach((it, j) => {
            const done = statuses[j] === 'D'
            waiters.finishLocal(it.key, it.version, done)
            if (done && report)
              this.d.emit('embedded', {
                key: it.key,
                version: it.version,
                ms: Math.max(0, now - it.version / 1000),
              })
          })
        }
      }
      const statuses = await scripts.bulkRequeue(requeue, o.maxAttempts, o.bulk.maxMisses)
      const giveUps = requeue.filter((_, j) => statuses[j] === 'G')
      requeue.forEach((it, j) => {
        if (statuses[j] === 'Q' && it.mode === 'C')
          this.d.emit('retrying', {
            key: it.key,
            version: it.version,
            attempts: 0,
            delayMs: 0,
            error: new Error(it.error),
          })
      })
      await this.giveUp(giveUps, refused)
    }
    await scripts.bulkFinish(rec.id, this.token)
  }

  /**
   * Dead letters: items whose attempts are used up (zero vector first, as online) and items the
   * write fence refused (no zero vector: the fence would refuse it too). Through the fail script,
   * which publishes the failure and appends it to the done log.
   */
  private async giveUp(
    exhausted: { key: string; version: number; error: string }[],
    refused: { key: string; version: number }[],
  ): Promise<void> {
    if (exhausted.length === 0 && refused.length === 0) return
    const { scripts, targets, waiters } = this.d
    const o = this.o
    const keys = [...exhausted, ...refused].map((it) => it.key)
    const redis = o.redis as Redis
    const [texts, attempts] = await Promise.all([
      redis.hmget(this.d.keys.jobs, ...keys),
      redis.hmget(this.d.keys.retries, ...keys),
    ])
    const now = Date.now()
    const letters: DeadLetter[] = [
      ...exhausted.map((it, j) => ({
        key: it.key,
        version: it.version,
        text: texts[j] ?? '',
        error: it.error,
        attempts: Number(attempts[j] ?? 0) + 1,
        failedAt: now,
      })),
      ...refused.map((it, j) => ({
        key: it.key,
        version: it.version,
        text: texts[exhausted.length + j] ?? '',
        error: targetConflictMessage(it.version),
        reason: TARGET_VERSION_CONFLICT,
        attempts: Number(attempts[exhausted.length + j] ?? 0) + 1,
        failedAt: now,
      })),
    ]
    if (exhausted.length && o.zeroVectorOnFailure) {
      const zero = encodeVector(new Float32Array(o.embedder.dimensions))
      await targets.write(
        exhausted.map((it) => ({ key: it.key, version: it.version, blob: zero, placeholder: true })),
      )
    }
    const plan: FailItem[] = letters.map((l) => ({
      key: l.key,
      version: l.version,
      mode: 'G',
      delayMs: 0,
      letter: JSON.stringify(l),
    }))
    const charged = await scripts.fail(this.token, plan)
    letters.forEach((letter, j) => {
      if (charged[j] === -1) return
      waiters.failLocal(letter)
      const error: Error =
        letter.reason === TARGET_VERSION_CONFLICT
          ? new TargetVersionConflictError(letter.key, letter.version, letter.attempts, letter.error)
          : new Error(letter.error)
      if (error instanceof TargetVersionConflictError)
        this.d.emit('refused', { key: letter.key, version: letter.version, error })
      this.d.emit('failed', { key: letter.key, version: letter.version, attempts: letter.attempts, error })
    })
  }
}
