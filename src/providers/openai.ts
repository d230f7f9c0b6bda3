/**
 * Any OpenAI-compatible `POST {baseUrl}/embeddings` endpoint: OpenAI itself, OpenRouter, vLLM,
 * Hugging Face TEI, LiteLLM, Ollama's `/v1`. Plain `fetch`, no SDK.
 *
 * Request `{ model, input: [...], encoding_format: 'float', dimensions? }` with
 * `Authorization: Bearer <key>`; response `{ data: [{ index, embedding }] }`, put back in input
 * order by `index`; errors `{ error: { message, type, code } }` with `retry-after-ms` /
 * `retry-after` headers on 429.
 */
import type { Embedder, EmbedOptions } from '../embedder.js'
import { EmbedderError } from '../errors.js'
import { providerSecrets, withSecrets } from '../redact.js'
import { embedInChunks, MAX_TIMEOUT_MS, postJson, truncateText } from './http.js'
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
import { openAIBatch } from './openai-batch.js'

export interface OpenAIEmbedderOptions {
  /**
   * API root; `/embeddings` is appended. Examples: `https://openrouter.ai/api/v1`,
   * `http://127.0.0.1:8000/v1` (vLLM), `http://127.0.0.1:11434/v1` (Ollama).
   * @default 'https://api.openai.com/v1'
   */
  baseUrl?: string
  /**
   * Sent as `Authorization: Bearer <apiKey>`. Required for `api.openai.com`; local servers
   * usually need none, and then no `Authorization` header is sent.
   * @default process.env.OPENAI_API_KEY
   */
  apiKey?: string
  /**
   * Embedding model name as the server knows it.
   * @default 'text-embedding-3-small'
   */
  model?: string
  /**
   * Length of the returned vectors; every vector is checked against it. When you set it, it is
   * also sent as the request's `dimensions` so models that support shortening (OpenAI
   * `text-embedding-3-*`) return vectors of this size. Leave it unset for models that reject the
   * field (e.g. `text-embedding-ada-002`), and it is only checked.
   * @default 1536 (the size of `text-embedding-3-small`), not sent
   */
  dimensions?: number
  /**
   * Inputs per request; larger arrays passed to `embed` are split. OpenAI accepts 2,048; many
   * self-hosted servers accept fewer (TEI: 32 by default).
   * @default 2048
   */
  maxBatchSize?: number
  /**
   * Longer texts are cut to this many characters (UTF-16 code units) before sending, so one long
   * message cannot fail its batch with "maximum context length". The default is about 8,191
   * tokens at ~4 characters per token; lower it for models with shorter context or for scripts
   * with more tokens per character.
   * @default 32000
   */
  maxInputChars?: number
  /**
   * Characters per request, summed over its inputs: OpenAI also caps a request at 300,000
   * tokens in total, so a batch of long texts is split further. The default leaves room for
   * text with more tokens per character than English; a single text longer than this (up to
   * `maxInputChars`) goes in a request of its own.
   * @default 600000
   */
  maxRequestChars?: number
  /**
   * L2-normalize every vector (OpenAI's already are; some self-hosted models' are not).
   * @default true
   */
  normalize?: boolean
  /**
   * Extra request headers, e.g. OpenRouter's `HTTP-Referer` and `X-Title`.
   * @default {}
   */
  headers?: Record<string, string>
  /**
   * Upper bound of one HTTP call in milliseconds, body included; past it the call fails with a
   * retryable error.
   * @default 30000
   */
  timeoutMs?: number
}

const OPENAI_BASE_URL = 'https://api.openai.com/v1'

/**
 * An `Embedder` for OpenAI and OpenAI-compatible `/v1/embeddings` servers.
 *
 * @example
 * const embedder = openAIEmbedder({ model: 'text-embedding-3-small', dimensions: 512 })
 */
export function openAIEmbedder(opts: OpenAIEmbedderOptions = {}): Embedder {
  const factory = 'openAIEmbedder'
  if (typeof opts !== 'object' || opts === null) {
    throw new TypeError(`${factory}: options must be an object, received ${String(opts)}`)
  }
  const baseUrl = checkBaseUrl(factory, 'baseUrl', opts.baseUrl ?? OPENAI_BASE_URL)
  const apiKey = opts.apiKey ?? process.env.OPENAI_API_KEY
  if (apiKey !== undefined) checkString(factory, 'apiKey', apiKey)
  else if (new URL(baseUrl).hostname === 'api.openai.com') {
    throw new TypeError(
      `${factory}: option \`apiKey\` is required for ${baseUrl} (or set OPENAI_API_KEY), received undefined`,
    )
  }
  const model = checkString(factory, 'model', opts.model ?? 'text-embedding-3-small')
  const sendDimensions = opts.dimensions !== undefined
  const dimensions = checkInteger(factory, 'dimensions', opts.dimensions ?? 1536, 1)
  const maxBatchSize = checkInteger(factory, 'maxBatchSize', opts.maxBatchSize ?? 2048, 1)
  const maxInputChars = checkInteger(factory, 'maxInputChars', opts.maxInputChars ?? 32_000, 1)
  const maxRequestChars = checkInteger(factory, 'maxRequestChars', opts.maxRequestChars ?? 600_000, 1)
  const normalize = checkBoolean(factory, 'normalize', opts.normalize ?? true)
  const extraHeaders = checkHeaders(factory, 'headers', opts.headers ?? {})
  const timeoutMs = checkInteger(factory, 'timeoutMs', opts.timeoutMs ?? 30_000, 1, MAX_TIMEOUT_MS)

  const url = `${baseUrl}/embeddings`
  const headers: Record<string, string> = { ...extraHeaders }
  if (apiKey !== undefined) headers.authorization = `Bearer ${apiKey}`

  const callChunk = async (chunk: string[], signal: AbortSignal | undefined): Promise<Float32Array[]> => {
    const body: Record<string, unknown> = {
      model,
      input: chunk,
      encoding_format: 'float',
    }
    if (sendDimensions) body.dimensions = dimensions
    let json: unknown
    try {
      json = await postJson({ provider: 'openai', timeoutMs, signal }, url, headers, body)
    } catch (err) {
      throw withMessageRetryHint(err)
    }
    return checkVectors('openai', inIndexOrder(json, chunk.length), chunk.length, dimensions, normalize)
  }

  return withSecrets(
    {
      dimensions,
      maxBatchSize,
      id: `openai:${model}:${dimensions}`,
      bulk: openAIBatch({
        baseUrl,
        model,
        dimensions,
        sendDimensions,
        normalize,
        maxInputChars,
        headers: extraHeaders,
        ...(apiKey === undefined ? {} : { apiKey }),
      }),
      async embed(texts: string[], embedOpts?: EmbedOptions): Promise<Float32Array[]> {
        const signal = checkSignal('openai', embedOpts?.signal)
        const plan = {
          dimensions,
          maxBatchSize,
          maxChunkChars: maxRequestChars,
          prepare: (text: string) => truncateText(text, maxInputChars),
        }
        return embedInChunks('openai', texts, plan, signal, (chunk) => callChunk(chunk, signal))
      },
    },
    providerSecrets(apiKey, extraHeaders, baseUrl),
  )
}

/**
 * The `embedding` arrays of a response, placed by each item's `index`. Items without any
 * `index` (some compatible servers) are taken in order; a missing, repeated or out-of-range
 * index is an error rather than a guess.
 */
function inIndexOrder(json: unknown, expected: number): unknown[] {
  const data = (json as { data?: unknown } | null)?.data
  if (!Array.isArray(data)) {
    throw new EmbedderError(`openai: the response has no \`data\` array (${describe(json)})`, {
      retryable: false,
    })
  }
  const items = data as { index?: unknown; embedding?: unknown }[]
  if (items.every((item) => item?.index === undefined)) return items.map((item) => item?.embedding)
  if (items.length !== expected) return items.map((item) => item?.embedding) // checkVectors reports the count
  const out = new Array<unknown>(expected)
  const seen = new Set<number>()
  for (const item of items) {
    const index = item?.index
    if (
      typeof index !== 'number' ||
      !Number.isInteger(index) ||
      index < 0 ||
      index >= expected ||
      seen.has(index)
    ) {
      throw new EmbedderError(
        `openai: the response has a missing, repeated or out-of-range index ${describe(index)} for ${expected} input(s)`,
        { retryable: false },
      )
    }
    seen.add(index)
    out[index] = item.embedding
  }
  return out
}

/**
 * OpenAI's 429s often carry the wait only in the message ("Please try again in 1.5s."). Use it
 * when no header said how long to wait.
 */
function withMessageRetryHint(err: unknown): unknown {
  if (!(err instanceof EmbedderError) || err.status !== 429 || err.retryAfterMs !== undefined) return err
  const m = /try again in (\d+(?:\.\d+)?)\s*(ms|s)\b/i.exec(err.message)
  if (!m) return err
  const retryAfterMs = Math.round(Number(m[1]) * (m[2]!.toLowerCase() === 'ms' ? 1 : 1000))
  return new EmbedderError(err.message, {
    status: err.status,
    retryable: err.retryable,
    retryAfterMs,
    cause: err.cause,
  })
}
