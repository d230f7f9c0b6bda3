/**
 * An in-memory `DashboardSource` with realistic queues, for the dashboard's tests until
 * QueueAdmin exists. It implements `QueueAdminApi` with the same semantics the real one
 * documents (filters, paging, retry moves a dead letter back to pending) and records every
 * mutation, so tests can check what the page asked for.
 */

import { newLocalCounts } from '../../src/admin.js'
import type {
  BackfillInfo,
  FailedFilter,
  FailedPage,
  HistoryPoint,
  Inspection,
  PauseState,
  QueueAdminApi,
  WorkerInfo,
} from '../../src/admin-types.js'
import type { DeadLetter } from '../../src/codec.js'
import type { DashboardSource } from '../../src/dashboard/types.js'
import type { QueueStats } from '../../src/queue.js'

export type Mutation =
  | { queue: string; op: 'pause'; by?: string }
  | { queue: string; op: 'resume' }
  | { queue: string; op: 'retryFailed' | 'deleteFailed'; filter: FailedFilter; count: number }

export interface FakeQueueState {
  pending: Map<string, string>
  inflight: number
  retrying: number
  oldestAgeMs: number | null
  failed: Map<string, DeadLetter>
  workers: WorkerInfo[]
  pause: PauseState
  history: HistoryPoint[]
  backfills: BackfillInfo[]
  finishedLastMinute: number
}

/** Glob (Redis MATCH syntax: `*`, `?`, `[...]`) to RegExp. */
function globToRegExp(glob: string): RegExp {
  let re = ''
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!
    if (c === '*') re += '.*'
    else if (c === '?') re += '.'
    else if (c === '\\' && i + 1 < glob.length) re += `\\${glob[++i]}`
    else if (c === '[') {
      const end = glob.indexOf(']', i + 1)
      if (end === -1) re += '\\['
      else {
        re += `[${glob.slice(i + 1, end).replace(/\\/g, '\\\\')}]`
        i = end
      }
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&')
  }
  return new RegExp(`^${re}$`, 's')
}

export function matches(letter: DeadLetter, filter: FailedFilter): boolean {
  if (filter.keys && !filter.keys.includes(letter.key)) return false
  if (filter.match && !globToRegExp(filter.match).test(letter.key)) return false
  if (filter.status !== undefined && letter.status !== filter.status) return false
  if (filter.error && !letter.error.includes(filter.error)) return false
  return true
}

const idle = (): PauseState => ({
  operator: { paused: false, since: null, by: null },
  rateLimit: { paused: false, until: null, reason: null },
})

/** Deterministic pseudo-random numbers (so screenshots and assertions are stable). */
function rng(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0
    return s / 2 ** 32
  }
}

function makeHistory(now: number, minutes: number, scale: number, seed: number): HistoryPoint[] {
  const rand = rng(seed)
  const start = Math.floor(now / 60_000) * 60_000 - (minutes - 1) * 60_000
  const points: HistoryPoint[] = []
  for (let i = 0; i < minutes; i++) {
    const wave = 0.6 + 0.4 * Math.sin(i / 37)
    const embedded = Math.round(scale * wave * (0.8 + rand() * 0.4))
    const failed = rand() < 0.08 ? Math.round(rand() * 4) : 0
    points.push({
      minute: start + i * 60_000,
      embedded,
      failed,
      retried: failed + (rand() < 0.1 ? 2 : 0),
      providerCalls: Math.ceil(embedded / 64),
      tokens: embedded * 42,
      rateLimited: rand() < 0.03 ? 1 : 0,
      p50Ms: embedded ? Math.round(180 + rand() * 60) : null,
      p95Ms: embedded ? Math.round(650 + rand() * 400) : null,
    })
  }
  return points
}

class FakeQueue implements QueueAdminApi<QueueStats, DeadLetter> {
  constructor(
    readonly name: string,
    readonly state: FakeQueueState,
    private readonly log: Mutation[],
  ) {}

  async stats(): Promise<QueueStats> {
    const s = this.state
    const pending = s.pending.size
    return {
      unfinished: pending + s.inflight + s.retrying,
      pending,
      inflight: s.inflight,
      retrying: s.retrying,
      failed: s.failed.size,
      oldestAgeMs: pending + s.inflight + s.retrying > 0 ? s.oldestAgeMs : null,
      pausedForMs: s.pause.rateLimit.until ? Math.max(0, s.pause.rateLimit.until - Date.now()) : 0,
      finishedLastMinute: s.finishedLastMinute,
      paused: s.pause.operator,
      workers: s.workers.length,
      backlogWithoutWorker: pending + s.inflight + s.retrying > 0 && s.workers.length === 0,
      rateLimit: {
        pausedForMs: s.pause.rateLimit.until ? Math.max(0, s.pause.rateLimit.until - Date.now()) : 0,
        reason: s.pause.rateLimit.reason,
        resumesAt: s.pause.rateLimit.until ? new Date(s.pause.rateLimit.until) : null,
        since: null,
        quotaId: null,
        message: null,
        rateLimitedCalls: 0,
      },
      local: { ...newLocalCounts(), waiting: 0 },
    }
  }
  async workers(): Promise<WorkerInfo[]> {
    const paused = this.state.pause.operator.paused || this.state.pause.rateLimit.paused
    // Live workers heartbeat every second or so: each read sees a fresh lastSeenAt.
    const now = Date.now()
    return this.state.workers.map((w, i) => ({
      ...w,
      lastSeenAt: now - 300 - ((now + i * 370) % 900),
      paused,
    }))
  }
  async pause(opts?: { by?: string }): Promise<void> {
    this.log.push({ queue: this.name, op: 'pause', ...(opts?.by ? { by: opts.by } : {}) })
    this.state.pause.operator = { paused: true, since: Date.now(), by: opts?.by ?? null }
  }
  async resume(): Promise<void> {
    this.log.push({ queue: this.name, op: 'resume' })
    this.state.pause.operator = { paused: false, since: null, by: null }
  }
  async isPaused(): Promise<boolean> {
    return this.state.pause.operator.paused
  }
  async pauseState(): Promise<PauseState> {
    return structuredClone(this.state.pause)
  }
  async inspect(key: string): Promise<Inspection> {
    const base: Inspection = {
      key,
      state: 'unknown',
      version: null,
      attempts: 0,
      lastError: null,
      dueAt: null,
      lease: null,
      targetVersion: null,
      targetFailed: false,
      textPreview: null,
    }
    const letter = this.state.failed.get(key)
    if (letter)
      return {
        ...base,
        state: 'failed',
        version: letter.version,
        attempts: letter.attempts,
        lastError: letter.error,
        targetVersion: 0,
        targetFailed: true,
        textPreview: letter.text.slice(0, 200),
      }
    const text = this.state.pending.get(key)
    if (text !== undefined) return { ...base, state: 'pending', version: 7, textPreview: text.slice(0, 200) }
    return base
  }
  async failed(
    opts: FailedFilter & { cursor?: string; count?: number } = {},
  ): Promise<FailedPage<DeadLetter>> {
    const all = [...this.state.failed.values()].filter((l) => matches(l, opts))
    const from = Number(opts.cursor ?? '0')
    const count = opts.count ?? 50
    const items = all.slice(from, from + count)
    return { items, cursor: from + count < all.length ? String(from + count) : '0' }
  }
  async retryFailed(filter: FailedFilter = {}): Promise<number> {
    let n = 0
    for (const letter of [...this.state.failed.values()]) {
      if (!matches(letter, filter)) continue
      this.state.failed.delete(letter.key)
      this.state.pending.set(letter.key, letter.text)
      n++
    }
    this.log.push({ queue: this.name, op: 'retryFailed', filter, count: n })
    return n
  }
  async deleteFailed(filter: FailedFilter = {}): Promise<number> {
    let n = 0
    for (const letter of [...this.state.failed.values()]) {
      if (!matches(letter, filter)) continue
      this.state.failed.delete(letter.key)
      n++
    }
    this.log.push({ queue: this.name, op: 'deleteFailed', filter, count: n })
    return n
  }
  async history(opts: { minutes?: number } = {}): Promise<HistoryPoint[]> {
    const minutes = Math.min(1440, opts.minutes ?? 60)
    return this.state.history.slice(-minutes)
  }
  async backfills(): Promise<BackfillInfo[]> {
    return this.state.backfills.map((b) => ({ ...b }))
  }
}

export interface FakeSource extends DashboardSource {
  readonly states: Map<string, FakeQueueState>
  readonly mutations: Mutation[]
  /** Every `queue(name)` call, to check names arrive decoded and validated. */
  readonly opened: string[]
}

function worker(i: number, now: number, embedder: string): WorkerInfo {
  return {
    id: `web-${i}:${4100 + i}:${(0xa1b2c3 + i * 977).toString(16)}`,
    host: `web-${i}`,
    pid: 4100 + i,
    startedAt: now - (3 + i) * 3_600_000,
    lastSeenAt: now - 400 - i * 900,
    concurrency: 4,
    inflight: 2 + i,
    embedder,
    version: '0.1.0',
    paused: false,
  }
}

/** Three queues: `chat` (busy, two workers, dead letters), `docs` (backlog, no worker, rate-limited), `idle`. */
export function fakeSource(now = Date.now()): FakeSource {
  const mutations: Mutation[] = []
  const opened: string[] = []
  const rand = rng(7)
  const errors: Array<{ error: string; status?: number }> = [
    { error: 'provider rejected the input: text too long (8192 tokens max)', status: 400 },
    { error: 'provider rejected the input: text too long (8192 tokens max)', status: 400 },
    { error: 'provider rejected the input: text too long (8192 tokens max)', status: 400 },
    { error: 'vector has 3 NaN values', status: undefined },
    { error: 'quota exhausted for project', status: 429 },
  ]
  const chatFailed = new Map<string, DeadLetter>()
  for (let i = 0; i < 12; i++) {
    const e = errors[i % errors.length]!
    const key = `msg:chat:${1000 + i}`
    chatFailed.set(key, {
      key,
      version: 100 + i,
      text: `User ${i} wrote a long message about invoices, deliveries and the weather in Lisbon. `.repeat(4),
      error: e.error,
      ...(e.status ? { status: e.status } : {}),
      attempts: 5,
      failedAt: now - (12 - i) * 180_000,
    })
  }
  const chatPending = new Map<string, string>()
  for (let i = 0; i < 137; i++) chatPending.set(`msg:chat:${5000 + i}`, `pending message ${i}`)
  const docsPending = new Map<string, string>()
  for (let i = 0; i < 177; i++) docsPending.set(`doc:${i}`, `document ${i}`)
  const states = new Map<string, FakeQueueState>([
    [
      'chat',
      {
        pending: chatPending,
        inflight: 64,
        retrying: 9,
        oldestAgeMs: 4_200,
        failed: chatFailed,
        workers: [
          worker(1, now, 'openai:text-embedding-3-small:1536'),
          worker(2, now, 'openai:text-embedding-3-small:1536'),
        ],
        pause: idle(),
        history: makeHistory(now, 1440, 900, 11),
        backfills: [
          {
            id: 'bf-1',
            match: 'msg:chat:*',
            scanned: 182_000,
            enqueued: 41_230,
            updatedAt: now - 5_000,
            done: false,
          },
          {
            id: 'bf-0',
            match: 'msg:archive:*',
            scanned: 90_000,
            enqueued: 90_000,
            updatedAt: now - 86_400_000,
            done: true,
          },
        ],
        finishedLastMinute: Math.round(800 + rand() * 100),
      },
    ],
    [
      'docs',
      {
        pending: docsPending,
        inflight: 0,
        retrying: 0,
        oldestAgeMs: 18_000,
        failed: new Map(),
        workers: [],
        pause: {
          operator: { paused: false, since: null, by: null },
          rateLimit: { paused: true, until: now + 42_000, reason: 'rate-limit' },
        },
        history: makeHistory(now, 1440, 60, 23),
        backfills: [],
        finishedLastMinute: 0,
      },
    ],
    [
      'idle',
      {
        pending: new Map(),
        inflight: 0,
        retrying: 0,
        oldestAgeMs: null,
        failed: new Map(),
        workers: [worker(3, now, 'hashing:256')],
        pause: idle(),
        history: makeHistory(now, 1440, 0, 5),
        backfills: [],
        finishedLastMinute: 0,
      },
    ],
  ])
  const queues = new Map<string, FakeQueue>()
  return {
    states,
    mutations,
    opened,
    async listQueues() {
      return [...states.keys()].sort()
    },
    queue(name) {
      opened.push(name)
      let q = queues.get(name)
      if (!q) {
        let state = states.get(name)
        if (!state) {
          // A queue with no keys reads as empty, like the real one.
          state = {
            pending: new Map(),
            inflight: 0,
            retrying: 0,
            oldestAgeMs: null,
            failed: new Map(),
            workers: [],
            pause: idle(),
            history: [],
            backfills: [],
            finishedLastMinute: 0,
          }
        }
        q = new FakeQueue(name, state, mutations)
        queues.set(name, q)
      }
      return q
    },
  }
}
