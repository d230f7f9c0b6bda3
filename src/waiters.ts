/**
 * Result waiters of one queue instance. One subscriber connection serves every waiter
 * (a million waiting promises still use one connection). A waiter resolves with the vector
 * of its version or of any newer version of the same key: the latest text wins.
 *
 * No lost wake-up: the keys of an enqueue are announced (`expect`) after the subscription
 * is live and before the enqueue script runs; a done entry that a worker elsewhere publishes
 * before the script's reply comes back is kept and replayed when the waiters register.
 * `watch()` (for keys enqueued elsewhere) subscribes first, then checks Redis.
 *
 * Waiting scales with what happens, not with what waits:
 * - A waiter is one small object in a per-key chain; result timeouts share one timer
 *   (`DeadlineHeap`), so a million waiters are a million objects, not a million timers.
 * - Lost pub/sub messages are found through the done log, a capped stream the ack and fail
 *   scripts append to next to each PUBLISH. Every message carries its log position
 *   (`#<prev id>:<id>:`), so a message whose `prev` is not the last ID seen here reveals a gap.
 *   After a gap, a reconnect, or on the safety-net tick, the log is read from the last ID
 *   seen: one `XREVRANGE … COUNT 1` when nothing was missed, O(missed) entries otherwise.
 *   Only when the log no longer reaches back that far (trimmed, deleted, a failover that lost
 *   entries) are the waiters rechecked against their targets, one bounded page at a time.
 * - `close()` rejects every waiter with one shared `QueueStoppedError`: no copy of the map,
 *   no error object per waiter.
 */
import type { Cluster, Redis } from 'ioredis'
import {
  compareStreamIds,
  type DeadLetter,
  type DoneEntry,
  type DoneLogPosition,
  decodeVector,
  nextStreamId,
  readDoneMessage,
} from './codec.js'
import { type Deadline, DeadlineHeap } from './deadline-heap.js'
import {
  deadLetterError,
  EmbeddingFailedError,
  EmbedTimeoutError,
  ForeignVectorError,
  QueueStoppedError,
} from './errors.js'
import type { QueueKeys } from './keys.js'
import type { Logger } from './logger.js'
import { isInProcessMock, type RedisLike } from './scripts.js'
import type { StoredVector, TargetStore } from './target-store.js'

/** The done log is checked this often even when no message says something was missed. */
const SAFETY_NET_MS = 5_000
/** Done-log entries read per XRANGE while catching up. */
const LOG_PAGE = 100
/** Targets (or dead letters) read per step: catch-up reads and paged rechecks. */
const READ_PAGE = 1_000
/** Log positions of messages that arrived out of chain order, remembered to link them later. */
const MAX_UNCHAINED = 1_000
/** A result announced done but not found in its target is read again this often… */
const REREAD_MS = 1_000
/** …this many times (read errors do not count: those are retried while the waiter waits). */
const MAX_REREADS = 5

interface Waiter extends Deadline {
  readonly key: string
  readonly version: number
  /** 0: no timeout. */
  readonly timeoutMs: number
  readonly resolve: (vector: Float32Array) => void
  readonly reject: (err: Error) => void
  /** The next waiter of the same key. */
  next: Waiter | undefined
}

type Outcome = { vector: Float32Array } | { error: Error }

export interface WaitersDeps {
  redis: RedisLike
  keys: QueueKeys
  targets: TargetStore
  dimensions: number
  logger: Logger
  /** A worker wake-up arrived (full batch, flush, reclaim). */
  onWake(reason: string): void
  /** Some item finished (any process): flushAndWait re-checks. */
  onActivity(): void
  /** The safety-net interval (tests shorten it). @default 5_000 */
  safetyNetMs?: number
  /** CLIENT SETNAME of the subscriber connection (e.g. `embedq:<queue>:sub`). */
  connectionName?: string
}

/** A duplicate of `redis` whose connections carry `name` (CLIENT SETNAME on every connect). */
function duplicateNamed(redis: Redis | Cluster, name: string | undefined): Redis | Cluster {
  if (name === undefined) return redis.duplicate() as Redis | Cluster
  if ((redis as { isCluster?: boolean }).isCluster === true) {
    const c = redis as Cluster
    return c.duplicate(undefined, { redisOptions: { ...c.options.redisOptions, connectionName: name } })
  }
  return (redis as Redis).duplicate({ connectionName: name })
}

export class Waiters {
  private sub: Redis | Cluster | undefined
  private subscribed: Promise<void> | undefined
  /** key -> first waiter of the key (the others follow through `next`). */
  private readonly byKey = new Map<string, Waiter>()
  private readonly deadlines = new DeadlineHeap<Waiter>((w) => this.expire(w))
  /** Vectors this process is acknowledging right now: a done message for them needs no read. */
  private readonly local = new Map<string, { version: number; vector: Float32Array }>()
  /** Keys whose enqueue script is in flight (count per key), and done entries seen for them. */
  private readonly expected = new Map<string, number>()
  private readonly early = new Map<string, DoneEntry>()
  private closed = false
  private count = 0

  /** Whether acks append to the done log (not on the in-process mock, see `isInProcessMock`). */
  private readonly logOn: boolean
  /** The done-log ID up to which every message was seen here (undefined: not known). */
  private seen: string | undefined
  /** prev -> id of messages that did not chain onto `seen` (yet). */
  private readonly unchained = new Map<string, string>()
  /** Something may have been missed: the next catch-up reads the log even with no waiter. */
  private gap = false
  private catchingUp = false
  private catchUpAgain = false
  private catchUpTimer: NodeJS.Timeout | undefined
  private safetyNet: NodeJS.Timeout | undefined
  private sweeping = false
  private sweepAgain = false
  /** Results announced done but not readable yet: key -> version and reads so far. */
  private readonly rereads = new Map<string, { version: number; reads: number; letter: boolean }>()
  private rereadTimer: NodeJS.Timeout | undefined

  constructor(private readonly deps: WaitersDeps) {
    this.logOn = !isInProcessMock(deps.redis)
  }

  /** Number of promises waiting here. */
  get size(): number {
    return this.count
  }

  /** Opens the one subscriber connection (once) and resolves when it listens. */
  ensureSubscribed(): Promise<void> {
    if (this.closed) return Promise.reject(new QueueStoppedError('queue stopped'))
    if (!this.subscribed) {
      const sub = duplicateNamed(this.deps.redis, this.deps.connectionName)
      this.sub = sub
      let first = true
      sub.on('error', (err: Error) => this.deps.logger.warn({ err }, 'embedq subscriber connection error'))
      sub.on('ready', () => {
        if (first) {
          first = false
          return
        }
        // Reconnected: whatever was published meanwhile is gone from pub/sub; read the log.
        this.suspectGap(0)
      })
      if ((sub as { isCluster?: boolean }).isCluster === true) {
        // A Cluster moves its subscriber connection to another node when that node goes away,
        // with no 'ready' event; messages published meanwhile are gone. '-node' is the hint.
        sub.on('-node', () => this.suspectGap(500))
      }
      if ((sub as { status?: string }).status === undefined) {
        // ioredis-mock emits only 'message' (strings); real ioredis emits both, so use one.
        sub.on('message', (channel: string, message: string) => this.onMessage(channel, Buffer.from(message)))
      } else {
        sub.on('messageBuffer', (channel: Buffer, message: Buffer) =>
          this.onMessage(channel.toString(), message),
        )
      }
      const subscribed = (async () => {
        await sub.subscribe(this.deps.keys.doneChannel, this.deps.keys.wakeChannel)
        // Messages from here on reach us; where the log ends now is where "seen" starts.
        if (this.logOn) await this.startLogPosition()
        if (this.closed || !this.logOn) return
        // The safety net against a message lost in a way we cannot see (the last one before
        // a silent drop): one O(1) look at the log per tick while anything waits.
        this.safetyNet ??= setInterval(() => this.catchUpSoon(0), this.deps.safetyNetMs ?? SAFETY_NET_MS)
      })()
      this.subscribed = subscribed
      subscribed.catch(() => {
        if (this.subscribed !== subscribed) return
        this.subscribed = undefined
        // Do not leave a half-open connection behind; the next call opens a new one.
        if (this.sub === sub) this.sub = undefined
        sub.removeAllListeners()
        sub.on('error', () => {})
        sub.disconnect()
      })
    }
    return this.subscribed
  }

  /**
   * Registers a waiter for `key` at `version`. The caller must have awaited
   * `ensureSubscribed()` before the version was written to Redis.
   */
  register(key: string, version: number, timeoutMs: number): Promise<Float32Array> {
    return new Promise<Float32Array>((resolve, reject) => {
      if (this.closed) {
        reject(new QueueStoppedError('queue stopped'))
        return
      }
      const waiter: Waiter = {
        key,
        version,
        timeoutMs,
        resolve,
        reject,
        next: this.byKey.get(key),
        deadline: 0,
        slot: -1,
      }
      this.byKey.set(key, waiter)
      this.count++
      if (timeoutMs > 0) {
        waiter.deadline = Date.now() + timeoutMs
        this.deadlines.add(waiter)
      }
    })
  }

  /** Waits for a key enqueued anywhere: subscribe, register, then check Redis. */
  async watch(key: string, version: number, timeoutMs: number): Promise<Float32Array> {
    await this.ensureSubscribed()
    const p = this.register(key, version, timeoutMs)
    p.catch(() => {}) // its timeout may fire while the recheck still waits for Redis
    await this.recheck([key])
    return p
  }

  /** A result timeout: the heap has already dropped the waiter. */
  private expire(waiter: Waiter): void {
    if (this.unlink(waiter)) waiter.reject(new EmbedTimeoutError(waiter.key, waiter.timeoutMs))
  }

  /** Takes `waiter` out of its key's chain (and the deadline heap). */
  private unlink(waiter: Waiter): boolean {
    const head = this.byKey.get(waiter.key)
    if (!head) return false
    if (head === waiter) {
      if (waiter.next) this.byKey.set(waiter.key, waiter.next)
      else this.byKey.delete(waiter.key)
    } else {
      let prev = head
      while (prev.next && prev.next !== waiter) prev = prev.next
      if (!prev.next) return false
      prev.next = waiter.next
    }
    waiter.next = undefined
    this.deadlines.remove(waiter)
    this.count--
    return true
  }

  /** Settles every waiter of `key` whose version is at most `version`. */
  private settle(key: string, version: number, outcome: Outcome): void {
    let w = this.byKey.get(key)
    if (!w) return
    let head: Waiter | undefined
    let tail: Waiter | undefined
    while (w) {
      const next: Waiter | undefined = w.next
      w.next = undefined
      if (w.version > version) {
        // Waits for newer text: keep it.
        if (tail) tail.next = w
        else head = w
        tail = w
      } else {
        this.deadlines.remove(w)
        this.count--
        if ('vector' in outcome) w.resolve(outcome.vector)
        else w.reject(outcome.error)
      }
      w = next
    }
    if (head) this.byKey.set(key, head)
    else this.byKey.delete(key)
  }

  private waitsFor(key: string, version: number): boolean {
    for (let w = this.byKey.get(key); w; w = w.next) if (w.version <= version) return true
    return false
  }

  /**
   * Settles the waiters of `key` with what its target holds, if it is the result they wait
   * for (version high enough). A blob that is not `dimensions × 4` bytes is not one of this
   * queue's vectors: they reject with `ForeignVectorError` instead of resolving with it.
   * Returns whether the target held a result.
   */
  private settleStored(key: string, stored: StoredVector): boolean {
    const { blob, version } = stored
    if (!blob || version === null) return false
    const expected = this.deps.dimensions * 4
    if (blob.length !== expected) {
      this.settle(key, version, { error: new ForeignVectorError(key, version, blob.length, expected) })
    } else {
      this.settle(key, version, { vector: decodeVector(blob) })
    }
    return true
  }

  /** The local worker is about to acknowledge these vectors. */
  offerLocal(key: string, version: number, vector: Float32Array): void {
    this.local.set(key, { version, vector })
  }

  /** The local acknowledgement returned: settle waiters of finished items, forget the rest. */
  finishLocal(key: string, version: number, done: boolean): void {
    const entry = this.local.get(key)
    if (entry && entry.version === version) {
      this.local.delete(key)
      if (done) this.settle(key, version, { vector: entry.vector })
    }
  }

  /** A local give-up (the same is published for other processes). */
  failLocal(letter: DeadLetter): void {
    this.settle(letter.key, letter.version, {
      error: deadLetterError(letter),
    })
  }

  private onMessage(channel: string, message: Buffer): void {
    if (channel === this.deps.keys.wakeChannel) {
      this.deps.onWake(message.toString())
      return
    }
    if (channel !== this.deps.keys.doneChannel) return
    let parsed: ReturnType<typeof readDoneMessage>
    try {
      parsed = readDoneMessage(message)
    } catch (err) {
      this.deps.logger.warn({ err }, 'embedq: ignoring malformed done message')
      return
    }
    if (parsed.log && this.logOn) this.noteLogPosition(parsed.log)
    void this.handleEntries(parsed.entries)
    this.deps.onActivity()
  }

  /**
   * Settles the waiters of these done entries: from memory when this process wrote the
   * vector, else by reading the targets (and, for failures the log lists without their
   * dead letter, the `failed` hash). Resolves when the reads are done.
   */
  private async handleEntries(entries: readonly DoneEntry[]): Promise<void> {
    const toRead: { key: string; version: number }[] = []
    const letters: { key: string; version: number }[] = []
    for (const e of entries) {
      if (!this.waitsFor(e.key, e.version)) {
        // Its enqueue reply is still on the way: keep the entry for the waiter about to come.
        if (this.expected.has(e.key)) {
          const prev = this.early.get(e.key)
          if (!prev || prev.version <= e.version) this.early.set(e.key, e)
        }
        continue
      }
      if (e.status === 'F') {
        if (e.message === '') letters.push({ key: e.key, version: e.version })
        else this.failFromJson(e.key, e.version, e.message)
        continue
      }
      const mine = this.local.get(e.key)
      if (mine && mine.version === e.version) this.settle(e.key, e.version, { vector: mine.vector })
      else toRead.push({ key: e.key, version: e.version })
    }
    if (toRead.length) await this.readAndSettle(toRead)
    if (letters.length) await this.readDeadLetters(letters)
  }

  private failFromJson(key: string, version: number, json: string): void {
    try {
      this.failLocal(JSON.parse(json) as DeadLetter)
    } catch {
      this.settle(key, version, { error: new EmbeddingFailedError(key, 0, 'unreadable dead letter') })
    }
  }

  /**
   * Announces keys about to be written by an enqueue script. A worker in another process can
   * finish them before the script's reply reaches us; their done entries are kept until
   * `registerExpected` has registered the waiters, then replayed.
   */
  expect(keys: readonly string[]): void {
    for (const k of keys) this.expected.set(k, (this.expected.get(k) ?? 0) + 1)
  }

  /** Registers the waiters of an announced chunk and replays done entries that came early. */
  registerExpected(
    items: readonly { key: string; version: number }[],
    timeoutMs: number,
  ): Promise<Float32Array>[] {
    const promises = items.map((it) => this.register(it.key, it.version, timeoutMs))
    const early: DoneEntry[] = []
    for (const it of items) {
      const e = this.early.get(it.key)
      if (e) early.push(e)
    }
    this.unexpect(items.map((i) => i.key))
    if (early.length) void this.handleEntries(early)
    return promises
  }

  /** Withdraws an announcement (after registering, or when the enqueue failed). */
  unexpect(keys: readonly string[]): void {
    for (const k of keys) {
      const n = (this.expected.get(k) ?? 0) - 1
      if (n > 0) this.expected.set(k, n)
      else {
        this.expected.delete(k)
        this.early.delete(k)
      }
    }
  }

  /**
   * Reads the targets of results announced as done, one page at a time, and settles their
   * waiters. A target that does not hold the result (yet), or a read that failed, is read
   * again later (`rereads`).
   */
  private async readAndSettle(items: readonly { key: string; version: number }[]): Promise<void> {
    for (let i = 0; i < items.length && !this.closed; i += READ_PAGE) {
      const page = items.slice(i, i + READ_PAGE)
      let stored: StoredVector[]
      try {
        stored = await this.deps.targets.read(page.map((it) => it.key))
      } catch (err) {
        this.deps.logger.warn({ err }, 'embedq: reading finished vectors failed; they are read again later')
        this.readAgain(page, false)
        continue
      }
      const unread: { key: string; version: number }[] = []
      page.forEach((it, j) => {
        const s = stored[j]!
        if (s.version === null || s.version < it.version || !this.settleStored(it.key, s)) unread.push(it)
      })
      if (unread.length) this.readAgain(unread, true)
    }
  }

  /**
   * Schedules another read of results announced as done: their target did not hold the
   * result (`counted`: at most MAX_REREADS times), or the read failed (retried while the
   * waiter waits). `letter`: what is read again is the dead letter.
   */
  private readAgain(
    items: readonly { key: string; version: number }[],
    counted: boolean,
    letter = false,
  ): void {
    for (const it of items) {
      const prev = this.rereads.get(it.key)
      const reads = (prev?.reads ?? 0) + (counted ? 1 : 0)
      if (reads > MAX_REREADS) {
        this.rereads.delete(it.key)
        this.deps.logger.warn(
          { key: it.key, version: it.version },
          'embedq: a result announced as done is not in its target hash; its waiters wait for their timeout',
        )
        continue
      }
      this.rereads.set(it.key, { version: Math.max(prev?.version ?? 0, it.version), reads, letter })
    }
    if (this.rereads.size === 0 || this.rereadTimer || this.closed) return
    this.rereadTimer = setTimeout(() => {
      this.rereadTimer = undefined
      const vectors: { key: string; version: number }[] = []
      const letters: { key: string; version: number }[] = []
      for (const [key, r] of this.rereads) {
        if (!this.waitsFor(key, r.version)) this.rereads.delete(key)
        else (r.letter ? letters : vectors).push({ key, version: r.version })
      }
      void (async () => {
        await this.readAndSettle(vectors)
        await this.readDeadLetters(letters)
        for (const it of vectors.concat(letters)) {
          if (!this.waitsFor(it.key, it.version)) this.rereads.delete(it.key)
        }
      })()
    }, REREAD_MS)
  }

  /** Reads the dead letters of failures the log listed without their body. Never throws. */
  private async readDeadLetters(items: readonly { key: string; version: number }[]): Promise<void> {
    for (let i = 0; i < items.length && !this.closed; i += READ_PAGE) {
      const page = items.slice(i, i + READ_PAGE)
      let letters: (string | null)[]
      try {
        letters = await (this.deps.redis as Redis).hmget(this.deps.keys.failed, ...page.map((it) => it.key))
      } catch (err) {
        this.deps.logger.warn({ err }, 'embedq: reading dead letters failed; they are read again later')
        this.readAgain(page, false, true)
        continue
      }
      page.forEach((it, j) => {
        const raw = letters[j]
        // No letter any more: the key was enqueued again; its waiters wait for the new text.
        if (raw) this.failFromJson(it.key, it.version, raw)
      })
    }
  }

  /**
   * Looks in Redis for waiters of `keys` whose result is already there (for `watch()`, and
   * one page at a time when the done log cannot tell what was missed).
   */
  async recheck(keys: readonly string[]): Promise<void> {
    if (keys.length === 0 || this.closed) return
    const stored = await this.deps.targets.read(keys)
    const failed = await (this.deps.redis as Redis).hmget(this.deps.keys.failed, ...keys)
    keys.forEach((key, i) => {
      const letterRaw = failed[i]
      if (letterRaw) {
        try {
          this.failLocal(JSON.parse(letterRaw) as DeadLetter)
        } catch {
          // unreadable dead letter: leave the waiter to its timeout
        }
      }
      this.settleStored(key, stored[i]!)
    })
  }

  /**
   * Rechecks every waiter against its target and dead letter, `READ_PAGE` keys per step (no
   * copy of the waiter map). Only when the done log cannot say what was missed.
   */
  private async recheckAll(): Promise<void> {
    if (this.sweeping) {
      this.sweepAgain = true
      return
    }
    this.sweeping = true
    try {
      do {
        this.sweepAgain = false
        // A Map iterator survives deletions and insertions; `total` bounds the walk.
        const total = this.byKey.size
        const keys = this.byKey.keys()
        for (let visited = 0; visited < total && !this.closed; ) {
          const page: string[] = []
          for (let r = keys.next(); !r.done; r = keys.next()) {
            page.push(r.value)
            if (page.length === READ_PAGE) break
          }
          if (page.length === 0) break
          visited += page.length
          await this.recheck(page)
        }
      } while (this.sweepAgain && !this.closed)
    } finally {
      this.sweeping = false
    }
  }

  private recheckAllSoon(): void {
    void this.recheckAll().catch((err) => {
      this.deps.logger.warn({ err }, 'embedq recheck failed; the next safety-net tick tries again')
      this.gap = true
      this.seen = undefined
    })
  }

  // --- the done log ------------------------------------------------------------------------

  /** The ID of the done log's last entry (undefined: no log). One O(1) command. */
  private async latestLogId(): Promise<string | undefined> {
    const last = (await (this.deps.redis as Redis).xrevrange(
      this.deps.keys.doneStream,
      '+',
      '-',
      'COUNT',
      1,
    )) as [string, string[]][]
    return last[0]?.[0]
  }

  /** Right after subscribing: messages after the log's current end will reach us. */
  private async startLogPosition(): Promise<void> {
    try {
      this.seen = (await this.latestLogId()) ?? '0-0'
      this.linkUnchained()
    } catch (err) {
      // Unknown: the first catch-up starts from the end and rechecks the waiters once.
      this.deps.logger.warn({ err }, 'embedq: could not read the done log; waiters are rechecked later')
      this.seen = undefined
      this.gap = true
    }
  }

  /** A done message's log position: advance `seen`, or note a gap and catch up. */
  private noteLogPosition({ prev, id }: DoneLogPosition): void {
    const seen = this.seen
    if (seen !== undefined && prev === seen) {
      this.seen = id
      this.linkUnchained()
      return
    }
    // Already covered (a message that raced the start position).
    if (seen !== undefined && compareStreamIds(id, seen) <= 0) return
    if (this.unchained.size >= MAX_UNCHAINED) this.unchained.clear()
    this.unchained.set(prev, id)
    // Before the start position is known, the race is expected; after, it is a gap.
    if (seen !== undefined) this.suspectGap(0)
  }

  /** Follows remembered positions that chain onto `seen`; drops those it has passed. */
  private linkUnchained(): void {
    if (this.seen === undefined || this.unchained.size === 0) return
    for (let next = this.unchained.get(this.seen); next !== undefined; next = this.unchained.get(this.seen)) {
      this.unchained.delete(this.seen)
      this.seen = next
    }
    for (const [prev, id] of this.unchained) {
      if (compareStreamIds(id, this.seen) <= 0) this.unchained.delete(prev)
    }
    if (this.unchained.size > 0) this.suspectGap(0)
  }

  private suspectGap(ms: number): void {
    this.gap = true
    this.catchUpSoon(ms)
  }

  /** Reads the done log soon (calls coalesce). */
  private catchUpSoon(ms: number): void {
    if (this.catchUpTimer || this.closed || !this.logOn) return
    this.catchUpTimer = setTimeout(() => {
      this.catchUpTimer = undefined
      void this.catchUp().catch((err) => {
        this.gap = true
        this.deps.logger.warn({ err }, 'embedq: reading the done log failed; the next tick tries again')
      })
    }, ms)
  }

  /** Reads what was missed from the done log (one run at a time; calls made meanwhile rerun it). */
  async catchUp(): Promise<void> {
    if (!this.logOn) return
    if (this.catchingUp) {
      this.catchUpAgain = true
      return
    }
    this.catchingUp = true
    try {
      do {
        this.catchUpAgain = false
        await this.catchUpOnce()
      } while (this.catchUpAgain && !this.closed)
    } finally {
      this.catchingUp = false
    }
  }

  private async catchUpOnce(): Promise<void> {
    const idle = this.count === 0 && this.expected.size === 0
    if (this.closed || (idle && !this.gap)) return
    const seen = this.seen
    const latest = await this.latestLogId()
    if (idle || seen === undefined) {
      // Nothing waits (what was missed concerns nobody), or where we stood is unknown:
      // resume from the log's end, and in the second case recheck the waiters once.
      this.seen = latest ?? '0-0'
      this.unchained.clear()
      this.gap = false
      if (seen === undefined && !idle) this.recheckAllSoon()
      return
    }
    if (latest === undefined || compareStreamIds(latest, seen) < 0) {
      this.gap = false
      if (latest === undefined && seen === '0-0') return
      // The log is gone or was recreated behind us (deleted, flushed, a restart without
      // persistence, a failover that lost entries): it cannot say what was missed.
      this.seen = latest ?? '0-0'
      this.unchained.clear()
      this.recheckAllSoon()
      return
    }
    if (latest === seen) {
      this.gap = false
      return
    }
    let cursor = seen
    let broken = false
    for (;;) {
      const page = await this.readLog(nextStreamId(cursor))
      const entries: DoneEntry[] = []
      for (const e of page) {
        // Each entry names the one before it: a different one means entries were trimmed
        // (or the log was recreated) between what we saw and what is there now.
        if (e.prev !== cursor) broken = true
        cursor = e.id
        try {
          for (const d of readDoneMessage(e.body).entries) entries.push(d)
        } catch (err) {
          this.deps.logger.warn({ err }, 'embedq: ignoring a malformed done-log entry')
          broken = true
        }
      }
      await this.handleEntries(entries)
      if (page.length < LOG_PAGE || this.closed) break
    }
    if (this.seen === undefined || compareStreamIds(cursor, this.seen) > 0) this.seen = cursor
    this.gap = false
    this.linkUnchained()
    if (broken) this.recheckAllSoon()
  }

  /** Up to LOG_PAGE done-log entries from `start` (inclusive). */
  private async readLog(start: string): Promise<{ id: string; prev: string; body: Buffer }[]> {
    const raw = (await (this.deps.redis as Redis).xrangeBuffer(
      this.deps.keys.doneStream,
      start,
      '+',
      'COUNT',
      LOG_PAGE,
    )) as unknown as [Buffer, Buffer[]][]
    return raw.map(([id, fields]) => {
      let prev = ''
      let body: Buffer = Buffer.alloc(0)
      for (let i = 0; i + 1 < fields.length; i += 2) {
        const name = fields[i]!.toString()
        if (name === 'p') prev = fields[i + 1]!.toString()
        else if (name === 'm') body = fields[i + 1]!
      }
      return { id: id.toString(), prev, body }
    })
  }

  /**
   * Rejects every waiter with one shared `QueueStoppedError` and closes the subscriber this
   * created. Walks the waiters once, copies nothing.
   */
  async close(): Promise<void> {
    this.closed = true
    clearInterval(this.safetyNet)
    clearTimeout(this.catchUpTimer)
    clearTimeout(this.rereadTimer)
    this.deadlines.clear()
    if (this.count > 0) {
      const stopped = new QueueStoppedError(
        `queue stopped while ${this.count} result(s) were awaited here (the items stay queued)`,
      )
      for (const head of this.byKey.values()) {
        for (let w: Waiter | undefined = head; w; w = w.next) w.reject(stopped)
      }
    }
    this.byKey.clear()
    this.count = 0
    this.local.clear()
    this.rereads.clear()
    this.unchained.clear()
    const sub = this.sub
    this.sub = undefined
    if (sub) {
      sub.removeAllListeners('messageBuffer')
      sub.removeAllListeners('message')
      try {
        await sub.quit()
      } catch {
        sub.disconnect()
      }
    }
  }
}
