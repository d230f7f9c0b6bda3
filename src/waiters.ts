/**
 * Result waiters of one queue instance. One subscriber connection serves every waiter
 * (twenty thousand waiting promises still use one connection). A waiter resolves with the
 * vector of its version or of any newer version of the same key: the latest text wins.
 *
 * No lost wake-up: the keys of an enqueue are announced (`expect`) after the subscription
 * is live and before the enqueue script runs; a done entry that a worker elsewhere publishes
 * before the script's reply comes back is kept and replayed when the waiters register.
 * `watch()` (for keys enqueued elsewhere) subscribes first, then checks Redis. After a reconnect every waiter is checked again, since messages sent
 * while the subscriber was away are gone.
 */
import type { Cluster, Redis } from 'ioredis'
import { type DeadLetter, type DoneEntry, decodeVector, parseDoneMessage } from './codec.js'
import { EmbeddingFailedError, EmbedTimeoutError, QueueStoppedError } from './errors.js'
import type { QueueKeys } from './keys.js'
import type { Logger } from './logger.js'
import type { RedisLike } from './scripts.js'
import type { TargetStore } from './target-store.js'

/** Waiters are checked against Redis this often even when no message says so. */
const RECHECK_INTERVAL_MS = 5_000

interface Waiter {
  version: number
  resolve(vector: Float32Array): void
  reject(err: Error): void
  timer: NodeJS.Timeout | undefined
}

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
}

export class Waiters {
  private sub: Redis | Cluster | undefined
  private subscribed: Promise<void> | undefined
  private readonly byKey = new Map<string, Waiter[]>()
  /** Vectors this process is acknowledging right now: a done message for them needs no read. */
  private readonly local = new Map<string, { version: number; vector: Float32Array }>()
  /** Keys whose enqueue script is in flight (count per key), and done entries seen for them. */
  private readonly expected = new Map<string, number>()
  private readonly early = new Map<string, DoneEntry>()
  private closed = false
  private safetyNet: NodeJS.Timeout | undefined
  private recheckTimer: NodeJS.Timeout | undefined
  private count = 0

  constructor(private readonly deps: WaitersDeps) {}

  /** Number of promises waiting here. */
  get size(): number {
    return this.count
  }

  /** Opens the one subscriber connection (once) and resolves when it listens. */
  ensureSubscribed(): Promise<void> {
    if (this.closed) return Promise.reject(new QueueStoppedError('queue stopped'))
    if (!this.subscribed) {
      const sub = this.deps.redis.duplicate() as Redis | Cluster
      this.sub = sub
      let first = true
      sub.on('error', (err: Error) => this.deps.logger.warn({ err }, 'embedq subscriber connection error'))
      sub.on('ready', () => {
        if (first) {
          first = false
          return
        }
        // Reconnected: whatever was published meanwhile is lost, so look in Redis.
        void this.recheck().catch((err) => this.deps.logger.warn({ err }, 'embedq recheck failed'))
      })
      if ((sub as { isCluster?: boolean }).isCluster === true) {
        // A Cluster moves its subscriber connection to another node when that node goes away,
        // with no 'ready' event; messages published meanwhile are gone. '-node' is the hint.
        sub.on('-node', () => this.recheckSoon(500))
      }
      // The safety net for a message lost in any way we cannot see.
      this.safetyNet = setInterval(() => this.recheckSoon(0), RECHECK_INTERVAL_MS)
      if ((sub as { status?: string }).status === undefined) {
        // ioredis-mock emits only 'message' (strings); real ioredis emits both, so use one.
        sub.on('message', (channel: string, message: string) => this.onMessage(channel, Buffer.from(message)))
      } else {
        sub.on('messageBuffer', (channel: Buffer, message: Buffer) =>
          this.onMessage(channel.toString(), message),
        )
      }
      this.subscribed = sub
        .subscribe(this.deps.keys.doneChannel, this.deps.keys.wakeChannel)
        .then(() => undefined)
      this.subscribed.catch(() => {
        this.subscribed = undefined
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
      const waiter: Waiter = { version, resolve, reject, timer: undefined }
      if (timeoutMs > 0) {
        waiter.timer = setTimeout(() => {
          if (this.remove(key, waiter)) reject(new EmbedTimeoutError(key, timeoutMs))
        }, timeoutMs)
      }
      const list = this.byKey.get(key)
      if (list) list.push(waiter)
      else this.byKey.set(key, [waiter])
      this.count++
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

  private remove(key: string, waiter: Waiter): boolean {
    const list = this.byKey.get(key)
    if (!list) return false
    const i = list.indexOf(waiter)
    if (i === -1) return false
    list.splice(i, 1)
    if (list.length === 0) this.byKey.delete(key)
    if (waiter.timer) clearTimeout(waiter.timer)
    this.count--
    return true
  }

  /** Settles every waiter of `key` whose version is at most `version`. */
  private settle(key: string, version: number, outcome: { vector: Float32Array } | { error: Error }): void {
    const list = this.byKey.get(key)
    if (!list) return
    for (const w of [...list]) {
      if (w.version > version) continue
      this.remove(key, w)
      if ('vector' in outcome) w.resolve(outcome.vector)
      else w.reject(outcome.error)
    }
  }

  private waitsFor(key: string, version: number): boolean {
    return this.byKey.get(key)?.some((w) => w.version <= version) ?? false
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
      error: new EmbeddingFailedError(letter.key, letter.attempts, letter.error),
    })
  }

  private onMessage(channel: string, message: Buffer): void {
    if (channel === this.deps.keys.wakeChannel) {
      this.deps.onWake(message.toString())
      return
    }
    if (channel !== this.deps.keys.doneChannel) return
    let entries: DoneEntry[]
    try {
      entries = parseDoneMessage(message)
    } catch (err) {
      this.deps.logger.warn({ err }, 'embedq: ignoring malformed done message')
      return
    }
    this.handleEntries(entries)
    this.deps.onActivity()
  }

  private handleEntries(entries: readonly DoneEntry[]): void {
    const toRead: { key: string; version: number }[] = []
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
        try {
          this.failLocal(JSON.parse(e.message) as DeadLetter)
        } catch {
          this.settle(e.key, e.version, {
            error: new EmbeddingFailedError(e.key, 0, 'unreadable dead letter'),
          })
        }
        continue
      }
      const mine = this.local.get(e.key)
      if (mine && mine.version === e.version) this.settle(e.key, e.version, { vector: mine.vector })
      else toRead.push({ key: e.key, version: e.version })
    }
    if (toRead.length) void this.readAndSettle(toRead)
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
    if (early.length) this.handleEntries(early)
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

  private async readAndSettle(items: { key: string; version: number }[]): Promise<void> {
    try {
      const stored = await this.deps.targets.read(items.map((i) => i.key))
      let unread = 0
      items.forEach((it, i) => {
        const s = stored[i]!
        if (s.blob && s.version !== null && s.version >= it.version) {
          this.settle(it.key, s.version, { vector: decodeVector(s.blob) })
        } else unread++
      })
      // Announced as done but not readable (yet): a read that failed. Look again soon.
      if (unread > 0) this.recheckSoon(1_000)
    } catch (err) {
      this.deps.logger.warn({ err }, 'embedq: reading finished vectors failed; waiters are re-checked later')
      this.recheckSoon(1_000)
    }
  }

  /** Rechecks every waiter soon (calls coalesce). */
  private recheckSoon(ms: number): void {
    if (this.recheckTimer || this.closed || this.count === 0) return
    this.recheckTimer = setTimeout(() => {
      this.recheckTimer = undefined
      void this.recheck().catch((err) => this.deps.logger.warn({ err }, 'embedq recheck failed'))
    }, ms)
  }

  /**
   * Looks in Redis for waiters whose result is already there (after a reconnect, for
   * `watch()`, and periodically as a safety net).
   */
  async recheck(keys: readonly string[] = [...this.byKey.keys()]): Promise<void> {
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
      const s = stored[i]!
      if (s.blob && s.version !== null) this.settle(key, s.version, { vector: decodeVector(s.blob) })
    })
  }

  /** Rejects every waiter with `QueueStoppedError` and closes the subscriber this created. */
  async close(): Promise<void> {
    this.closed = true
    clearInterval(this.safetyNet)
    clearTimeout(this.recheckTimer)
    for (const [key, list] of [...this.byKey]) {
      for (const w of [...list]) {
        this.remove(key, w)
        w.reject(
          new QueueStoppedError(`queue stopped while waiting for ${JSON.stringify(key)} (it stays queued)`),
        )
      }
    }
    this.local.clear()
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
