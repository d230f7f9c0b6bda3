/**
 * Gemini embeddings through the official SDK `@google/genai` (an optional peer dependency,
 * imported on the first `embed` call so users of other providers never load it).
 *
 * What the SDK (2.x) does with our call, verified against its source and our fake server:
 * `ai.models.embedContent({ model, contents, config })` on the Gemini Developer API sends one
 * `POST {baseUrl}/v1beta/models/{model}:batchEmbedContents` with the key in `x-goog-api-key` and
 * the body `{ requests: [{ model: 'models/…', content: { parts: [{ text }] }, taskType,
 * outputDimensionality }] }`, and reads `{ embeddings: [{ values }] }`. A non-2xx response
 * becomes an `ApiError` whose `status` is the HTTP status and whose `message` is the JSON error
 * body; the response headers are dropped, so we read `Retry-After` through our own `fetch`. The
 * SDK retries only when `httpOptions.retryOptions` is set; we never set it, so a 429 reaches the
 * queue, whose backoff is in charge.
 */
import type { GoogleGenAI } from '@google/genai'
import type { Embedder, EmbedOptions } from '../embedder.js'
import { EmbedderError } from '../errors.js'
import { providerSecrets, withSecrets } from '../redact.js'
import { geminiBatch } from './gemini-batch.js'
import {
  embedInChunks,
  errorFromHttp,
  errorFromThrown,
  googleDetails,
  MAX_TIMEOUT_MS,
  parseJson,
  truncateText,
  withDeadline,
} from './http.js'
import {
  checkBaseUrl,
  checkBoolean,
  checkInteger,
  checkSignal,
  checkString,
  checkVectors,
} from './normalize.js'

/** Task types the Gemini embedding models accept; the model optimizes the vector for it. */
export type GeminiTaskType =
  | 'RETRIEVAL_DOCUMENT'
  | 'RETRIEVAL_QUERY'
  | 'SEMANTIC_SIMILARITY'
  | 'CLASSIFICATION'
  | 'CLUSTERING'
  | 'QUESTION_ANSWERING'
  | 'FACT_VERIFICATION'
  | 'CODE_RETRIEVAL_QUERY'

export interface GeminiEmbedderOptions {
  /**
   * Embedding model, with or without the `models/` prefix.
   * @default 'gemini-embedding-001'
   */
  model?: string
  /**
   * Length of the returned vectors (Matryoshka truncation by the API). `gemini-embedding-001`
   * accepts 128–3072; 768, 1536 and 3072 are the sizes Google recommends. This is also the
   * embedder's `dimensions`, and every returned vector is checked against it.
   * @default 768
   */
  outputDimensionality?: number
  /**
   * What stored texts' vectors are for (the queue embeds documents).
   * @default 'RETRIEVAL_DOCUMENT'
   */
  taskType?: GeminiTaskType | (string & {})
  /**
   * The task type of search queries (`embed(texts, { purpose: 'query' })`, used by
   * `queue.embedQuery()` and `vectorIndex().search(text)`).
   * @default 'RETRIEVAL_QUERY' when `taskType` is 'RETRIEVAL_DOCUMENT', else `taskType`
   */
  queryTaskType?: GeminiTaskType | (string & {})
  /**
   * Gemini API key, sent in the `x-goog-api-key` header.
   * @default process.env.GEMINI_API_KEY, then process.env.GOOGLE_API_KEY
   */
  apiKey?: string
  /**
   * API root for proxies and tests; the SDK appends `/v1beta/models/…`.
   * @default 'https://generativelanguage.googleapis.com' (the SDK's own default)
   */
  baseUrl?: string
  /**
   * L2-normalize every vector. Only 3072-dimension output comes normalized from the API;
   * truncated sizes do not, and cosine/inner-product indexes expect unit vectors.
   * @default true, except when `outputDimensionality` is 3072
   */
  normalize?: boolean
  /**
   * Longer texts are cut to this many characters (UTF-16 code units) before sending: the model
   * reads at most 2,048 tokens and the Developer API has no `autoTruncate`. The default assumes
   * about 4 characters per token (English); lower it for scripts that use more tokens per
   * character, such as Chinese or Japanese.
   * @default 8000
   */
  maxInputChars?: number
  /**
   * Texts per `batchEmbedContents` call; the API rejects more than 100. Larger arrays passed to
   * `embed` are split into calls of this size.
   * @default 100
   */
  maxBatchSize?: number
  /**
   * Upper bound of one API call in milliseconds; past it the call fails with a retryable error.
   * @default 30000
   */
  timeoutMs?: number
}

/** The API's limit on requests per `batchEmbedContents` call. */
export const GEMINI_MAX_BATCH = 100

/** Error reasons (`google.rpc.ErrorInfo.reason`) that mean "bad key", although sent as HTTP 400. */
const BAD_KEY_REASONS = new Set(['API_KEY_INVALID', 'API_KEY_EXPIRED'])

/**
 * An `Embedder` for the Gemini Developer API. Requires the optional package `@google/genai`.
 *
 * @example
 * const embedder = geminiEmbedder({ outputDimensionality: 768 }) // key from GEMINI_API_KEY
 */
export function geminiEmbedder(opts: GeminiEmbedderOptions = {}): Embedder {
  const factory = 'geminiEmbedder'
  if (typeof opts !== 'object' || opts === null) {
    throw new TypeError(`${factory}: options must be an object, received ${String(opts)}`)
  }
  const model = checkString(factory, 'model', opts.model ?? 'gemini-embedding-001')
  if (model.includes('..') || model.includes('?') || model.includes('&') || /\s/.test(model)) {
    throw new TypeError(
      `${factory}: option \`model\` must be a model name, received ${JSON.stringify(model)}`,
    )
  }
  const dimensions = checkInteger(factory, 'outputDimensionality', opts.outputDimensionality ?? 768, 1)
  const taskType = checkString(factory, 'taskType', opts.taskType ?? 'RETRIEVAL_DOCUMENT')
  const queryTaskType = checkString(
    factory,
    'queryTaskType',
    opts.queryTaskType ?? (taskType === 'RETRIEVAL_DOCUMENT' ? 'RETRIEVAL_QUERY' : taskType),
  )
  const apiKey = opts.apiKey ?? process.env.GEMINI_API_KEY ?? process.env.GOOGLE_API_KEY
  if (apiKey === undefined || apiKey === '') {
    throw new TypeError(
      `${factory}: option \`apiKey\` is required (or set GEMINI_API_KEY), received ${JSON.stringify(apiKey)}`,
    )
  }
  checkString(factory, 'apiKey', apiKey)
  const baseUrl = opts.baseUrl === undefined ? undefined : checkBaseUrl(factory, 'baseUrl', opts.baseUrl)
  const normalize = checkBoolean(factory, 'normalize', opts.normalize ?? dimensions !== 3072)
  const maxInputChars = checkInteger(factory, 'maxInputChars', opts.maxInputChars ?? 8000, 1)
  const maxBatchSize = checkInteger(
    factory,
    'maxBatchSize',
    opts.maxBatchSize ?? GEMINI_MAX_BATCH,
    1,
    GEMINI_MAX_BATCH,
  )
  const timeoutMs = checkInteger(factory, 'timeoutMs', opts.timeoutMs ?? 30_000, 1, MAX_TIMEOUT_MS)

  let client: Promise<GoogleGenAI> | undefined
  const getClient = (): Promise<GoogleGenAI> => {
    client ??= import('@google/genai').then(
      // vertexai: false, so GOOGLE_GENAI_USE_VERTEXAI in the environment cannot reroute the calls.
      ({ GoogleGenAI }) =>
        new GoogleGenAI({ apiKey, vertexai: false, httpOptions: baseUrl ? { baseUrl } : {} }),
      (err: unknown) => {
        client = undefined
        throw new EmbedderError(
          'gemini: the optional package @google/genai is not installed; run `npm install @google/genai`',
          { retryable: false, configuration: true, cause: err },
        )
      },
    )
    return client
  }

  const callChunk = async (
    chunk: string[],
    signal: AbortSignal | undefined,
    task: string,
  ): Promise<Float32Array[]> => {
    // The SDK drops the headers of a failed response; keep them for `Retry-After`.
    let failedHeaders: Headers | undefined
    const fetchKeepingHeaders = async (
      input: Parameters<typeof fetch>[0],
      init?: RequestInit,
    ): Promise<Response> => {
      const res = await fetch(input, init)
      if (!res.ok) failedHeaders = res.headers
      return res
    }
    return withDeadline(
      { provider: 'gemini', timeoutMs, signal },
      async (callSignal) => {
        const ai = await getClient()
        const res = await ai.models.embedContent({
          model,
          // Content objects, not bare strings: the SDK merges a string array into one multi-part
          // content (one vector) for `gemini-embedding-2*` models.
          contents: chunk.map((text) => ({ parts: [{ text }] })),
          config: {
            outputDimensionality: dimensions,
            taskType: task,
            abortSignal: callSignal,
            httpOptions: { fetch: fetchKeepingHeaders },
          },
        })
        const vectors = Array.isArray(res.embeddings) ? res.embeddings.map((e) => e?.values) : []
        return checkVectors('gemini', vectors, chunk.length, dimensions, normalize)
      },
      (err) => geminiError(err, failedHeaders),
    )
  }

  return withSecrets(
    {
      dimensions,
      maxBatchSize,
      id: `gemini:${model.replace(/^models\//, '')}:${dimensions}:${taskType}`,
      bulk: geminiBatch({
        apiKey,
        model,
        dimensions,
        taskType,
        normalize,
        maxInputChars,
        ...(baseUrl === undefined ? {} : { baseUrl }),
      }),
      async embed(texts: string[], embedOpts?: EmbedOptions): Promise<Float32Array[]> {
        const signal = checkSignal('gemini', embedOpts?.signal)
        const plan = {
          dimensions,
          maxBatchSize,
          prepare: (text: string) => truncateText(text, maxInputChars),
        }
        const task = embedOpts?.purpose === 'query' ? queryTaskType : taskType
        return embedInChunks('gemini', texts, plan, signal, (chunk) => callChunk(chunk, signal, task))
      },
    },
    providerSecrets(apiKey, {}, baseUrl),
  )
}

/** Maps whatever the SDK throws to an `EmbedderError`. */
function geminiError(err: unknown, headers: Headers | undefined): EmbedderError {
  if (err instanceof EmbedderError) return err
  const apiError = err as { name?: unknown; status?: unknown; message?: unknown } | null
  if (apiError?.name === 'ApiError' && typeof apiError.status === 'number') {
    const text = typeof apiError.message === 'string' ? apiError.message : ''
    const body = parseJson(text)
    let status = apiError.status
    let note: string | undefined
    // An invalid or expired key comes back as 400 INVALID_ARGUMENT. Report it as 401 so the
    // queue pauses instead of bisecting the batch in search of a bad text.
    const reason = googleDetails(body).find(
      (d) => typeof d.reason === 'string' && BAD_KEY_REASONS.has(d.reason),
    )
    if (status === 400 && reason) {
      status = 401
      note = `${String(reason.reason)}, sent as HTTP 400`
    }
    return errorFromHttp({ provider: 'gemini', status, body, text, headers, note, cause: err })
  }
  if (err instanceof SyntaxError) {
    // A 2xx whose body is not JSON comes from something in between, not from the texts.
    return new EmbedderError(`gemini: the response is not JSON (${err.message})`, {
      retryable: true,
      cause: err,
    })
  }
  return errorFromThrown('gemini', err)
}
