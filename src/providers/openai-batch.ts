/**
 * The OpenAI Batch API for `/v1/embeddings`: half the online price, a 24-hour completion window.
 * Plain `fetch`, `Authorization: Bearer <key>`.
 *
 * - Input: a JSONL file, one request per line, `{ custom_id, method: 'POST', url: '/v1/embeddings',
 *   body: { model, input, encoding_format: 'float', dimensions? } }`, uploaded with
 *   `POST {base}/files` (multipart, `purpose=batch`; at most 50,000 requests and 200 MB). One input
 *   per line: the batch is capped at 50,000 embedding inputs anyway, so packing several per line
 *   would gain no capacity, and one bad text would fail its whole line.
 * - `POST {base}/batches` `{ input_file_id, endpoint: '/v1/embeddings', completion_window: '24h',
 *   metadata: { embedq_label } }` → a batch `{ id, status, created_at (s), request_counts: { total,
 *   completed, failed }, output_file_id, error_file_id, errors: { data: [{ code, message, line }] },
 *   metadata }`; `GET {base}/batches/{id}`; `GET {base}/batches?limit=&after=` (newest first,
 *   `has_more`, `last_id`); `POST {base}/batches/{id}/cancel`.
 * - Statuses: validating → pending; in_progress, finalizing, cancelling → running; completed →
 *   succeeded; failed, expired, cancelled as such.
 * - Results: `GET {base}/files/{output_file_id}/content` (successes) and `{error_file_id}` (failures),
 *   one `{ id, custom_id, response: { status_code, body } | null, error: { code, message } | null }`
 *   per line, in no particular order. Requests an expired or cancelled batch never ran come back
 *   with `error.code` `batch_expired` / `batch_cancelled`: we leave them out of the results (not
 *   processed, so the queue requeues them uncharged).
 */
import {
  type BulkCallOptions,
  type BulkEmbedder,
  type BulkItemResult,
  type BulkJob,
  type BulkJobState,
  type BulkRequest,
  type BulkSubmitOptions,
  isTerminalBulkState,
} from '../bulk.js'
import { EmbedderError } from '../errors.js'
import {
  callJson,
  callSignal,
  checkJobId,
  checkPricing,
  checkSubmit,
  itemVector,
  readJsonLines,
  redactor,
  redactText,
  toCount,
  toEpochMs,
} from './batch-http.js'
import { type CallContext, errorFromHttp, MAX_TIMEOUT_MS, truncateText } from './http.js'
import { checkBaseUrl, checkBoolean, checkHeaders, checkInteger, checkString, describe } from './normalize.js'

export interface OpenAIBatchOptions {
  /** Sent as `Authorization: Bearer <apiKey>`; required for api.openai.com. */
  apiKey?: string
  /** API root; `/files` and `/batches` are appended. @default 'https://api.openai.com/v1' */
  baseUrl?: string
  /** @default 'text-embedding-3-small' */
  model?: string
  /** Length every vector is checked against. @default 1536 */
  dimensions?: number
  /** Send `dimensions` in each request (for models that can shorten). @default false */
  sendDimensions?: boolean
  /** @default true */
  normalize?: boolean
  /** Longer texts are cut to this many UTF-16 code units. @default 32000 */
  maxInputChars?: number
  /** Extra headers on every call. @default {} */
  headers?: Record<string, string>
  /** Upper bound of one API call, the upload included, in milliseconds. @default 120000 */
  timeoutMs?: number
  /** Upper bound of reading a job's result files. @default 600000 */
  downloadTimeoutMs?: number
  /** Most requests per job (the API's limit is 50,000). @default 50000 */
  maxRequestsPerJob?: number
  /** Pages of 100 batches `findByLabel` looks through (newest first). @default 10 */
  maxListPages?: number
  /** Price per 1M input tokens for models not in our table. */
  pricing?: { onlinePerMTokens: number; bulkPerMTokens: number }
}

const OPENAI_BASE_URL = 'https://api.openai.com/v1'
/** The Batch API's cap on requests per file and on embedding inputs per batch. */
export const OPENAI_BULK_MAX_REQUESTS = 50_000
/** The Batch API's cap on an input file. */
const OPENAI_MAX_FILE_BYTES = 200 * 1024 * 1024
/**
 * Text bytes per job we advertise: the file limit minus room for each line's envelope
 * (about 150 bytes plus the id) at 50,000 requests.
 */
export const OPENAI_BULK_MAX_BYTES = OPENAI_MAX_FILE_BYTES - 25 * 1024 * 1024

/** USD per 1M input tokens (OpenAI pricing page: Standard and Batch tiers). */
const OPENAI_PRICING: Record<string, { onlinePerMTokens: number; bulkPerMTokens: number }> = {
  'text-embedding-3-small': { onlinePerMTokens: 0.02, bulkPerMTokens: 0.01 },
  'text-embedding-3-large': { onlinePerMTokens: 0.13, bulkPerMTokens: 0.065 },
}

const STATES: Record<string, BulkJobState> = {
  validating: 'pending',
  in_progress: 'running',
  finalizing: 'running',
  cancelling: 'running',
  completed: 'succeeded',
  failed: 'failed',
  expired: 'expired',
  cancelled: 'cancelled',
}

const JOB_ID = /^[A-Za-z0-9_-]{1,128}$/
const FILE_ID = /^[A-Za-z0-9_-]{1,128}$/
/** The metadata key the label is stored under. */
export const OPENAI_LABEL_KEY = 'embedq_label'
/** Per-request error codes that mean "never run". */
const NOT_RUN = new Set(['batch_expired', 'batch_cancelled'])

/**
 * A `BulkEmbedder` over the OpenAI Batch API. `openAIEmbedder()` attaches one as `bulk`; call
 * this directly to tune the batch-only options.
 */
export function openAIBatch(opts: OpenAIBatchOptions = {}): BulkEmbedder {
  const factory = 'openAIBatch'
  if (typeof opts !== 'object' || opts === null) {
    throw new TypeError(`${factory}: options must be an object, received ${String(opts)}`)
  }
  const baseUrl = checkBaseUrl(factory, 'baseUrl', opts.baseUrl ?? OPENAI_BASE_URL)
  const apiKey = opts.apiKey === undefined ? undefined : checkString(factory, 'apiKey', opts.apiKey)
  const model = checkString(factory, 'model', opts.model ?? 'text-embedding-3-small')
  const dimensions = checkInteger(factory, 'dimensions', opts.dimensions ?? 1536, 1)
  const sendDimensions = checkBoolean(factory, 'sendDimensions', opts.sendDimensions ?? false)
  const normalize = checkBoolean(factory, 'normalize', opts.normalize ?? true)
  const maxInputChars = checkInteger(factory, 'maxInputChars', opts.maxInputChars ?? 32_000, 1)
  const extraHeaders = checkHeaders(factory, 'headers', opts.headers ?? {})
  const timeoutMs = checkInteger(factory, 'timeoutMs', opts.timeoutMs ?? 120_000, 1, MAX_TIMEOUT_MS)
  const downloadTimeoutMs = checkInteger(
    factory,
    'downloadTimeoutMs',
    opts.downloadTimeoutMs ?? 600_000,
    1,
    MAX_TIMEOUT_MS,
  )
  const maxRequestsPerJob = checkInteger(
    factory,
    'maxRequestsPerJob',
    opts.maxRequestsPerJob ?? OPENAI_BULK_MAX_REQUESTS,
    1,
    OPENAI_BULK_MAX_REQUESTS,
  )
  const maxListPages = checkInteger(factory, 'maxListPages', opts.maxListPages ?? 10, 1)
  const pricing = checkPricing(factory, opts.pricing) ?? OPENAI_PRICING[model]

  const provider = 'openai'
  const redact = redactor(provider, apiKey)
  const headers: Record<string, string> = { ...extraHeaders }
  if (apiKey !== undefined) headers.authorization = `Bearer ${apiKey}`
  const ctx = (signal: AbortSignal | undefined, ms = timeoutMs): CallContext => ({
    provider,
    timeoutMs: ms,
    signal,
  })
  const getJson = async (signal: AbortSignal | undefined, path: string): Promise<unknown> =>
    (await callJson(ctx(signal), { method: 'GET', url: `${baseUrl}${path}`, headers })).json
  const postJson = async (signal: AbortSignal | undefined, path: string, body: unknown): Promise<unknown> =>
    (
      await callJson(ctx(signal), {
        method: 'POST',
        url: `${baseUrl}${path}`,
        headers: { ...headers, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      })
    ).json

  const guarded =
    <A extends unknown[], R>(run: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      try {
        return await run(...args)
      } catch (err) {
        throw redact(err)
      }
    }

  const submit = async (
    requests: readonly BulkRequest[],
    submitOpts: BulkSubmitOptions,
  ): Promise<BulkJob> => {
    const signal = callSignal(provider, submitOpts)
    checkSubmit(provider, requests, submitOpts?.label, maxRequestsPerJob)
    const label = submitOpts.label
    const lines = requests.map((r) => {
      const body: Record<string, unknown> = {
        model,
        input: truncateText(r.text, maxInputChars),
        encoding_format: 'float',
      }
      if (sendDimensions) body.dimensions = dimensions
      return JSON.stringify({ custom_id: r.id, method: 'POST', url: '/v1/embeddings', body })
    })
    const file = Buffer.from(`${lines.join('\n')}\n`)
    if (file.byteLength > OPENAI_MAX_FILE_BYTES) {
      throw new EmbedderError(
        `openai: bulk submit: the input file is ${file.byteLength} bytes, over the Batch API's ${OPENAI_MAX_FILE_BYTES}; submit fewer or shorter texts`,
        { retryable: false },
      )
    }
    const form = new FormData()
    form.append('purpose', 'batch')
    form.append('file', new Blob([file], { type: 'application/jsonl' }), `${label}.jsonl`)
    let uploaded: unknown
    try {
      uploaded = (
        await callJson(ctx(signal), { method: 'POST', url: `${baseUrl}/files`, headers, body: form })
      ).json
    } catch (err) {
      throw noBatchApi(err, baseUrl)
    }
    const fileId = (uploaded as { id?: unknown } | undefined)?.id
    if (typeof fileId !== 'string' || !FILE_ID.test(fileId)) {
      throw new EmbedderError(`openai: the file upload returned no file id (${describe(fileId)})`, {
        retryable: true,
      })
    }
    let batch: unknown
    try {
      batch = await postJson(signal, '/batches', {
        input_file_id: fileId,
        endpoint: '/v1/embeddings',
        completion_window: '24h',
        metadata: { [OPENAI_LABEL_KEY]: label },
      })
    } catch (err) {
      throw noBatchApi(err, baseUrl)
    }
    return toJob(batch)
  }

  const fetchBatch = async (jobId: string, signal: AbortSignal | undefined): Promise<unknown> =>
    getJson(signal, `/batches/${checkJobId(provider, jobId, JOB_ID)}`)

  const results = async (jobId: string, callOpts?: BulkCallOptions): Promise<BulkItemResult[]> => {
    const signal = callSignal(provider, callOpts)
    const batch = await fetchBatch(jobId, signal)
    const job = toJob(batch)
    if (!isTerminalBulkState(job.state)) {
      throw new EmbedderError(`openai: batch ${job.id} is still ${job.state}; its results are not ready`, {
        retryable: true,
      })
    }
    const b = batch as { output_file_id?: unknown; error_file_id?: unknown }
    const out: BulkItemResult[] = []
    const seen = new Set<string>()
    for (const fileId of [b.output_file_id, b.error_file_id]) {
      if (fileId === undefined || fileId === null) continue
      if (typeof fileId !== 'string' || !FILE_ID.test(fileId)) {
        throw new EmbedderError(`openai: the batch names an unexpected file ${describe(fileId)}`, {
          retryable: false,
        })
      }
      await readJsonLines(
        ctx(signal, downloadTimeoutMs),
        { url: `${baseUrl}/files/${fileId}/content`, headers },
        (line) => {
          const result = lineResult(line)
          if (result && !seen.has(result.id)) {
            seen.add(result.id)
            out.push(result)
          }
        },
      )
    }
    return out
  }

  /** One output or error line as a result; undefined when it carries no id or never ran. */
  const lineResult = (line: unknown): BulkItemResult | undefined => {
    const l = line as
      | {
          custom_id?: unknown
          response?: { status_code?: unknown; body?: unknown } | null
          error?: { code?: unknown; message?: unknown } | null
        }
      | undefined
    const id = l?.custom_id
    if (typeof id !== 'string') return undefined
    if (l?.error) {
      const code = typeof l.error.code === 'string' ? l.error.code : 'error'
      if (NOT_RUN.has(code)) return undefined
      const message = typeof l.error.message === 'string' ? l.error.message : 'no message'
      return {
        id,
        error: new EmbedderError(redactText(`openai: batch request failed (${code}): ${message}`, apiKey), {
          retryable: /rate_limit|server_error|timeout/.test(code),
        }),
      }
    }
    const status = l?.response?.status_code
    const body = l?.response?.body
    if (status !== 200) {
      const err = errorFromHttp({
        provider,
        status: typeof status === 'number' ? status : 500,
        body,
      })
      return { id, error: redact(err) }
    }
    const data = (body as { data?: { embedding?: unknown }[] } | undefined)?.data
    const values = Array.isArray(data) && data.length === 1 ? data[0]?.embedding : undefined
    return itemVector(provider, id, values, dimensions, normalize)
  }

  const findByLabel = async (label: string, callOpts?: BulkCallOptions): Promise<BulkJob[]> => {
    const signal = callSignal(provider, callOpts)
    const found: BulkJob[] = []
    let after: string | undefined
    for (let page = 0; page < maxListPages; page++) {
      const query = new URLSearchParams({ limit: '100' })
      if (after) query.set('after', after)
      const list = (await getJson(signal, `/batches?${query}`)) as
        | { data?: unknown; has_more?: unknown; last_id?: unknown }
        | undefined
      const batches = Array.isArray(list?.data) ? list.data : []
      for (const batch of batches) {
        const meta = (batch as { metadata?: Record<string, unknown> | null })?.metadata
        if (meta?.[OPENAI_LABEL_KEY] === label) found.push(toJob(batch))
      }
      after = list?.has_more === true && typeof list.last_id === 'string' ? list.last_id : undefined
      if (!after) break
    }
    return found.sort((a, b) => (b.createdAt ?? 0) - (a.createdAt ?? 0))
  }

  return {
    maxRequestsPerJob,
    maxBytesPerJob: OPENAI_BULK_MAX_BYTES,
    ...(pricing ? { pricing: { ...pricing } } : {}),
    submit: guarded(submit),
    get: guarded(async (jobId: string, callOpts?: BulkCallOptions) =>
      toJob(await fetchBatch(jobId, callSignal(provider, callOpts))),
    ),
    findByLabel: guarded(findByLabel),
    results: guarded(results),
    cancel: guarded(async (jobId: string, callOpts?: BulkCallOptions) => {
      await postJson(
        callSignal(provider, callOpts),
        `/batches/${checkJobId(provider, jobId, JOB_ID)}/cancel`,
        {},
      )
    }),
  }

  function toJob(batch: unknown): BulkJob {
    const b = batch as
      | {
          id?: unknown
          status?: unknown
          created_at?: unknown
          request_counts?: Record<string, unknown> | null
          errors?: { data?: unknown } | null
          metadata?: Record<string, unknown> | null
        }
      | undefined
    const id = b?.id
    if (typeof id !== 'string' || !JOB_ID.test(id)) {
      throw new EmbedderError(`openai: the answer names no batch (${describe(id)})`, { retryable: false })
    }
    const state = STATES[String(b?.status)]
    if (!state) {
      throw new EmbedderError(`openai: batch ${id} has an unknown status ${describe(b?.status)}`, {
        retryable: true,
      })
    }
    const job: BulkJob = { id, state }
    const label = b?.metadata?.[OPENAI_LABEL_KEY]
    if (typeof label === 'string') job.label = label
    const createdAt = toEpochMs(b?.created_at)
    if (createdAt !== undefined) job.createdAt = createdAt
    const counts = b?.request_counts
    if (counts && typeof counts === 'object') {
      job.requestCounts = {
        total: toCount(counts.total),
        completed: toCount(counts.completed),
        failed: toCount(counts.failed),
      }
    }
    const errors = Array.isArray(b?.errors?.data) ? (b.errors.data as Record<string, unknown>[]) : []
    if (errors.length > 0) {
      job.error = redactText(
        errors
          .slice(0, 5)
          .map((e) => `${String(e?.code ?? 'error')}: ${String(e?.message ?? '')}`)
          .join('; '),
        apiKey,
      )
    }
    return job
  }
}

/**
 * A 404/405 from `POST /files` or `POST /batches` means the server has no Batch API (many
 * OpenAI-compatible servers): a configuration error, not something a retry or another text fixes.
 */
function noBatchApi(err: unknown, baseUrl: string): unknown {
  if (!(err instanceof EmbedderError) || (err.status !== 404 && err.status !== 405)) return err
  return new EmbedderError(`${err.message} — the server at ${baseUrl} does not seem to offer the Batch API`, {
    status: err.status,
    retryable: false,
    configuration: true,
    cause: err,
  })
}
