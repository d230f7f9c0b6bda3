/**
 * The bulk contract: what a provider's batch API (Gemini Batch Mode, the OpenAI Batch API) must
 * offer for the half-price lane. An `Embedder` that has one exposes it as `embedder.bulk`.
 *
 * A bulk job's life, as the queue drives it:
 *
 * 1. The queue picks a `label` that is unique per submission attempt and records it (with the
 *    items) in Redis **before** calling `submit`.
 * 2. `submit(requests, { label })` creates the job at the provider and returns its `id`; the queue
 *    records the id. A crash (or a lost response) between the two leaves a job the queue does not
 *    know: on restart it calls `findByLabel(label)` and adopts the newest job found, and only
 *    submits again when none is. That is the whole window in which an item can be embedded twice.
 * 3. `get(id)` until the state is terminal (`succeeded`, `failed`, `expired`, `cancelled`).
 * 4. `results(id)`: one entry per request that the provider processed, matched by `id`, in no
 *    particular order. A request **absent** from the results was never processed (the job
 *    failed, expired or was cancelled before reaching it): requeue it without charging an
 *    attempt. A request with an `error` was processed and failed: the normal attempt and
 *    dead-letter rules apply, with `error.retryable` saying whether another attempt can help.
 *
 * Every method rejects with an `EmbedderError` (`retryable`, `status`, `retryAfterMs`); no
 * message or URL it produces ever contains the API key.
 */
import type { EmbedderError } from './errors.js'

/** One text of a bulk job. */
export interface BulkRequest {
  /**
   * Our identity of the request inside its job (OpenAI `custom_id`, Gemini `metadata.key` /
   * `key`): a non-empty string, unique per job, at most {@link BULK_MAX_ID_LENGTH} characters.
   * Results come back under it.
   */
  id: string
  /** The text to embed; not blank (blank texts never reach a provider: their vector is zeros). */
  text: string
}

/**
 * A job's state, common to every provider. `pending` and `running` are live; the other four
 * are terminal and never change again.
 */
export type BulkJobState = 'pending' | 'running' | 'succeeded' | 'failed' | 'expired' | 'cancelled'

/** Whether `state` is final (the job will not change again and its results can be read). */
export function isTerminalBulkState(state: BulkJobState): boolean {
  return state !== 'pending' && state !== 'running'
}

/** A provider batch job as last seen. */
export interface BulkJob {
  /** The provider's job id (`batches/…` for Gemini, `batch_…` for OpenAI). */
  id: string
  state: BulkJobState
  /** The label given at `submit`, when the provider reports it back. */
  label?: string
  /** When the provider created the job, in epoch milliseconds. */
  createdAt?: number
  /** The provider's progress counters, when it reports them. */
  requestCounts?: { total: number; completed: number; failed: number }
  /** Why a job failed (the provider's words, key redacted). */
  error?: string
}

/** One request's outcome: its vector, or why the provider could not embed it. */
export type BulkItemResult = { id: string; vector: Float32Array } | { id: string; error: EmbedderError }

export interface BulkCallOptions {
  /** Aborting it rejects the call at once (retryable). */
  signal?: AbortSignal
}

export interface BulkSubmitOptions extends BulkCallOptions {
  /**
   * Identifies the submission so it can be found again after a crash between `submit` and
   * recording the returned id (Gemini `displayName`, OpenAI `metadata.embedq_label`).
   * Non-empty, at most {@link BULK_MAX_LABEL_LENGTH} printable ASCII characters.
   */
  label: string
}

/** A provider's batch API, as the bulk lane uses it. */
export interface BulkEmbedder {
  /** Most requests one job may hold (OpenAI: 50,000; Gemini: 50,000, our choice). */
  readonly maxRequestsPerJob: number
  /**
   * Most UTF-8 bytes of text one job may hold, summed over its requests. It leaves room for
   * the provider's per-request envelope; pack jobs below it and `submit` will not refuse them
   * for size. (OpenAI: the 200 MB file limit; Gemini: what we build in memory for the Files API.)
   */
  readonly maxBytesPerJob: number
  /**
   * Creates a job embedding `requests` and returns it (usually `pending`). Rejects without
   * creating anything when the requests are invalid (non-retryable) or the provider refuses
   * (e.g. 429: retryable, with `retryAfterMs`). After a retryable failure the job may still have
   * been created (the response was lost): call `findByLabel` before submitting again.
   */
  submit(requests: readonly BulkRequest[], opts: BulkSubmitOptions): Promise<BulkJob>
  /** The job's current state. */
  get(jobId: string, opts?: BulkCallOptions): Promise<BulkJob>
  /**
   * Jobs submitted with exactly this label, newest first (for crash recovery). Searches the
   * provider's most recent jobs only (a bounded number of list pages).
   */
  findByLabel?(label: string, opts?: BulkCallOptions): Promise<BulkJob[]>
  /**
   * The outcome of every processed request of a terminal job (see the module header for what
   * an absent request means). Rejects with a retryable error while the job is still live.
   */
  results(jobId: string, opts?: BulkCallOptions): Promise<BulkItemResult[]>
  /** Asks the provider to stop the job; poll `get` until it is `cancelled` (partial results may remain). */
  cancel?(jobId: string, opts?: BulkCallOptions): Promise<void>
  /**
   * Estimated USD price per 1M input tokens, online and in bulk, for the saving report.
   * Undefined for models whose price we do not know.
   */
  readonly pricing?: { onlinePerMTokens: number; bulkPerMTokens: number }
}

/** Longest accepted {@link BulkRequest.id}. */
export const BULK_MAX_ID_LENGTH = 256
/** Longest accepted label (Gemini display names and OpenAI metadata values both fit it). */
export const BULK_MAX_LABEL_LENGTH = 128
