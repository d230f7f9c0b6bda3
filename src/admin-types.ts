/**
 * The operator's view of a queue: what `embedq status|workers|inspect|pause|resume|failed`, the
 * dashboard and `EmbeddingBatchQueue`'s operator methods return. `QueueAdmin` (src/admin.ts)
 * implements `QueueAdminApi` from Redis alone (no embedder needed), so one process can look
 * at every queue under a prefix.
 */

/** One live worker instance, as it heartbeats into the queue's keys. */
export interface WorkerInfo {
  /** Unique per worker instance (host, pid and a random part). */
  id: string
  host: string
  pid: number
  /** Epoch ms. */
  startedAt: number
  /** Epoch ms of the last heartbeat. */
  lastSeenAt: number
  concurrency: number
  /** Items this worker holds claimed right now. */
  inflight: number
  /** The embedder's `id` (provider:model:dims…), or 'custom'. */
  embedder: string
  /** embedq library version of the worker. */
  version: string
  /** The worker sees the queue paused (operator or rate-limit pause). */
  paused: boolean
}

/** Both kinds of pause, as every process sees them. */
export interface PauseState {
  /** An operator paused the queue (`pause()`); it stays until `resume()`. */
  operator: { paused: boolean; since: number | null; by: string | null }
  /** A provider's 429 or an exhausted quota paused claims until `until` (epoch ms). */
  rateLimit: { paused: boolean; until: number | null; reason: 'rate-limit' | 'quota' | null }
}

export type ItemState = 'pending' | 'delayed' | 'inflight' | 'failed' | 'done' | 'unknown'

/** Everything the queue knows about one target key. */
export interface Inspection {
  key: string
  state: ItemState
  /** Version of the latest text queued for the key (null when nothing is queued). */
  version: number | null
  /** Failed attempts so far (or of the dead letter). */
  attempts: number
  lastError: string | null
  /** Epoch ms when a delayed item's backoff ends (state 'delayed'). */
  dueAt: number | null
  /** Claim token of the lease holder and the lease expiry (state 'inflight'). */
  lease: { holder: string; expiresAt: number } | null
  /** `embedding_version` stored in the target hash (null: no vector there). */
  targetVersion: number | null
  /** The target holds the given-up mark (`failedField`). */
  targetFailed: boolean
  /** First 200 characters of the queued text (or of the dead letter's text). */
  textPreview: string | null
}

/** Filters of dead letters, for listing, retrying and deleting alike. */
export interface FailedFilter {
  /** HSCAN MATCH pattern on the target key (glob). */
  match?: string
  /** Only dead letters with this HTTP status. */
  status?: number
  /** Only dead letters whose error contains this text. */
  error?: string
  /** Exactly these keys. */
  keys?: readonly string[]
}

export interface FailedPage<Letter> {
  items: Letter[]
  /** Pass back to get the next page; '0' when done. */
  cursor: string
}

/** One minute of history (epoch ms of the minute's start). */
export interface HistoryPoint {
  minute: number
  embedded: number
  failed: number
  retried: number
  providerCalls: number
  tokens: number
  rateLimited: number
  /** Enqueue-to-vector latency of items finished in this minute, ms (null: none finished). */
  p50Ms: number | null
  p95Ms: number | null
}

/** A resumable `embedq backfill` run saved in the queue's keys. */
export interface BackfillInfo {
  id: string
  match: string
  scanned: number
  enqueued: number
  updatedAt: number | null
  done: boolean
}

/** The operator's calls on one queue (implemented by `QueueAdmin`, delegated to by the queue). */
export interface QueueAdminApi<Stats, Letter> {
  readonly name: string
  /** The same figures as `queue.stats()`. */
  stats(): Promise<Stats>
  /** Live workers (a worker silent for a few lease periods is gone). */
  workers(): Promise<WorkerInfo[]>
  pause(opts?: { by?: string }): Promise<void>
  resume(): Promise<void>
  /** True when an operator paused the queue (see `pauseState()` for both kinds). */
  isPaused(): Promise<boolean>
  pauseState(): Promise<PauseState>
  inspect(key: string): Promise<Inspection>
  /** One page of dead letters (HSCAN), filtered. */
  failed(opts?: FailedFilter & { cursor?: string; count?: number }): Promise<FailedPage<Letter>>
  /** Re-enqueues the dead letters that match; returns how many. */
  retryFailed(filter?: FailedFilter): Promise<number>
  /** Deletes the dead letters that match (their targets keep their zero vectors); returns how many. */
  deleteFailed(filter?: FailedFilter): Promise<number>
  /** Per-minute history, oldest first, for the last `minutes` (at most 1440). */
  history(opts?: { minutes?: number }): Promise<HistoryPoint[]>
  backfills(): Promise<BackfillInfo[]>
}
