import type { BulkEmbedder } from './bulk.js'

/**
 * What the queue needs from an embedding provider. Each provider is a factory in
 * `src/providers/` that returns one of these; anything with this shape works.
 */
export interface EmbedOptions {
  /** Aborted when the queue stops or the call's lease is lost: stop the HTTP call. */
  signal?: AbortSignal
  /**
   * What the texts are for: `'document'` (stored and searched; the default) or `'query'` (a
   * search query, from `queue.embedQuery()` and `vectorIndex().search(text)`). Providers with
   * asymmetric models use it (Gemini: `RETRIEVAL_DOCUMENT` vs `RETRIEVAL_QUERY`); others ignore it.
   */
  purpose?: 'document' | 'query'
}

export interface Embedder {
  /** Length of every vector `embed` returns. */
  readonly dimensions: number
  /** The provider's per-call limit on inputs (Gemini: 100). The queue splits claims to it. */
  readonly maxBatchSize?: number
  /**
   * Embeds `texts` and returns one vector per text, in the same order.
   * Throw `EmbedderError` to say whether a retry can help; any other throw counts as retryable.
   */
  embed(texts: string[], opts?: EmbedOptions): Promise<ArrayLike<number>[]>
  /**
   * Optional: a short identity (provider, model, dimensions, task) used by caches and logs.
   */
  readonly id?: string
  /**
   * Optional: the provider's batch API (half price, answers within hours), used by the bulk lane.
   * Providers without one (Ollama) leave it out. See `BulkEmbedder` in `src/bulk.ts`.
   */
  readonly bulk?: BulkEmbedder
  /**
   * Optional: secrets this embedder was configured with (API keys, bearer tokens). The queue
   * replaces them with `[redacted]` in every error message it records or reports (dead letters,
   * events, logs), also when a remote server echoed one back. The built-in providers fill it.
   */
  readonly secrets?: readonly string[]
}
