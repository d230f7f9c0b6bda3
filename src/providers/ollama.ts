/**
 * Ollama's native batch endpoint `POST {baseUrl}/api/embed`: request
 * `{ model, input: [...], truncate, dimensions?, keep_alive? }`, response
 * `{ model, embeddings: [[...], ...] }` in input order, errors `{ error: "..." }`.
 * (For Ollama's OpenAI-compatible `/v1/embeddings`, use `openAIEmbedder`.)
 */
import type { Embedder, EmbedOptions } from '../embedder.js'
import { EmbedderError } from '../errors.js'
import { providerSecrets, withSecrets } from '../redact.js'
import { embedInChunks, MAX_TIMEOUT_MS, postJson } from './http.js'
import {
  checkBaseUrl,
  checkBoolean,
  checkHeaders,
  checkInteger,
  checkSignal,
  checkString,
  checkVectors,
  describe,
} from './normalize.js'

export interface OllamaEmbedderOptions {
  /**
   * Where Ollama listens.
   * @default 'http://127.0.0.1:11434'
   */
  baseUrl?: string
  /**
   * Embedding model, pulled beforehand (`ollama pull nomic-embed-text`).
   * @default 'nomic-embed-text'
   */
  model?: string
  /**
   * Length of the returned vectors; every vector is checked against it. When you set it, it is
   * also sent as the request's `dimensions` (Ollama shortens the vectors of models that support
   * it); when unset, the default is only checked, so a model of another size fails loudly
   * instead of being cut silently.
   * @default 768 (the size of `nomic-embed-text`), not sent
   */
  dimensions?: number
  /**
   * Let Ollama cut inputs longer than the model's context instead of failing the batch.
   * @default true
   */
  truncate?: boolean
  /**
   * How long Ollama keeps the model loaded after a call (`'5m'`, seconds as a number, `-1` for
   * ever). Unset: Ollama's own default.
   * @default undefined
   */
  keepAlive?: string | number
  /**
   * Inputs per request; larger arrays passed to `embed` are split.
   * @default 128
   */
  maxBatchSize?: number
  /**
   * L2-normalize every vector.
   * @default true
   */
  normalize?: boolean
  /**
   * Extra request headers, e.g. `Authorization` for an Ollama behind an authenticating proxy.
   * @default {}
   */
  headers?: Record<string, string>
  /**
   * Upper bound of one HTTP call in milliseconds, body included. A cold model load counts
   * against it. Past it the call fails with a retryable error.
   * @default 30000
   */
  timeoutMs?: number
}

/**
 * An `Embedder` for a local (or remote) Ollama server.
 *
 * @example
 * const embedder = ollamaEmbedder({ model: 'nomic-embed-text' })
 */
export function ollamaEmbedder(opts: OllamaEmbedderOptions = {}): Embedder {
  const factory = 'ollamaEmbedder'
  if (typeof opts !== 'object' || opts === null) {
    throw new TypeError(`${factory}: options must be an object, received ${String(opts)}`)
  }
  const baseUrl = checkBaseUrl(factory, 'baseUrl', opts.baseUrl ?? 'http://127.0.0.1:11434')
  const model = checkString(factory, 'model', opts.model ?? 'nomic-embed-text')
  const sendDimensions = opts.dimensions !== undefined
  const dimensions = checkInteger(factory, 'dimensions', opts.dimensions ?? 768, 1)
  const truncate = checkBoolean(factory, 'truncate', opts.truncate ?? true)
  const keepAlive = opts.keepAlive
  if (keepAlive !== undefined && typeof keepAlive !== 'number' && typeof keepAlive !== 'string') {
    throw new TypeError(
      `${factory}: option \`keepAlive\` must be a string or a number, received ${describe(keepAlive)}`,
    )
  }
  const maxBatchSize = checkInteger(factory, 'maxBatchSize', opts.maxBatchSize ?? 128, 1)
  const normalize = checkBoolean(factory, 'normalize', opts.normalize ?? true)
  const headers = checkHeaders(factory, 'headers', opts.headers ?? {})
  const timeoutMs = checkInteger(factory, 'timeoutMs', opts.timeoutMs ?? 30_000, 1, MAX_TIMEOUT_MS)
  const url = `${baseUrl}/api/embed`

  const callChunk = async (chunk: string[], signal: AbortSignal | undefined): Promise<Float32Array[]> => {
    const body: Record<string, unknown> = { model, input: chunk, truncate }
    if (sendDimensions) body.dimensions = dimensions
    if (keepAlive !== undefined) body.keep_alive = keepAlive
    const json = await postJson({ provider: 'ollama', timeoutMs, signal }, url, headers, body)
    const embeddings = (json as { embeddings?: unknown } | null)?.embeddings
    if (!Array.isArray(embeddings)) {
      throw new EmbedderError(`ollama: the response has no \`embeddings\` array (${describe(json)})`, {
        retryable: false,
      })
    }
    return checkVectors('ollama', embeddings, chunk.length, dimensions, normalize)
  }

  return withSecrets(
    {
      dimensions,
      maxBatchSize,
      id: `ollama:${model}:${dimensions}`,
      async embed(texts: string[], embedOpts?: EmbedOptions): Promise<Float32Array[]> {
        const signal = checkSignal('ollama', embedOpts?.signal)
        return embedInChunks('ollama', texts, { dimensions, maxBatchSize }, signal, (chunk) =>
          callChunk(chunk, signal),
        )
      },
    },
    providerSecrets(undefined, headers, baseUrl),
  )
}
