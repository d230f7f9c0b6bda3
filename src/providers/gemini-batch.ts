/**
 * Gemini Batch Mode for embeddings, over REST with Node's `fetch` (the key in `x-goog-api-key`,
 * never in a URL). Half the online price, target turnaround 24 hours.
 *
 * Why not the SDK: `@google/genai` has `ai.batches.createEmbeddings` (since 1.18), but it is
 * marked experimental and warns through the console on every call, which a library must not do to its
 * users' logs; it also drops response headers and gives no way to stream a responses file. The
 * wire format below was read from the API reference and from the SDK's converters
 * (`createEmbeddingsBatchJobParametersToMldev`, `batchJobFromMldev`, `tRecvBatchJobDestination`).
 *
 * - Create: `POST {base}/v1beta/models/{model}:asyncBatchEmbedContent` with
 *   `{ batch: { displayName, model, inputConfig } }`, where `inputConfig` is either
 *   `{ requests: { requests: [{ request: { model, content: { parts: [{ text }] }, taskType,
 *   outputDimensionality }, metadata: { key } }] } }` (inline, under about 20 MB) or
 *   `{ fileName: 'files/…' }`, a JSONL file of `{ key, request }` lines uploaded first through the
 *   Files API's resumable protocol (`POST {base}/upload/v1beta/files` with
 *   `X-Goog-Upload-Protocol: resumable` + `Command: start` → `x-goog-upload-url`; then one
 *   `POST` to that URL with `Command: upload, finalize` and `Offset: 0`).
 * - The answer is a long-running operation: `{ name: 'batches/…', metadata: { displayName, state:
 *   'BATCH_STATE_…', createTime, batchStats: { requestCount, successfulRequestCount,
 *   failedRequestCount, pendingRequestCount } (int64, so strings), output? }, done?, error?,
 *   response?: { output } }`. `GET {base}/v1beta/batches/{id}` returns the same shape;
 *   `GET {base}/v1beta/batches?pageSize=&pageToken=` lists them as `{ operations, nextPageToken }`;
 *   `POST {base}/v1beta/batches/{id}:cancel` cancels.
 * - Output: `inlinedResponses.inlinedResponses[]` (the SDK also accepts the name
 *   `inlinedEmbedContentResponses`) of `{ metadata: { key }, response: { embedding: { values } } }`
 *   or `{ metadata, error: google.rpc.Status }`; or `responsesFile: 'files/…'`, downloaded from
 *   `GET {base}/download/v1beta/files/…:download?alt=media`, one `{ key, response | error }` per line.
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
  type HttpCall,
  itemVector,
  readJsonLines,
  redactor,
  redactText,
  toCount,
  toEpochMs,
} from './batch-http.js'
import { type CallContext, googleDetails, type HttpFailure, MAX_TIMEOUT_MS, truncateText } from './http.js'
import { checkBaseUrl, checkBoolean, checkInteger, checkString, describe } from './normalize.js'

export interface GeminiBatchOptions {
  /** Gemini API key, sent in `x-goog-api-key`. Required. */
  apiKey: string
  /** @default 'gemini-embedding-001' */
  model?: string
  /** `outputDimensionality` of every request, and the length every vector is checked against. @default 768 */
  dimensions?: number
  /** @default 'RETRIEVAL_DOCUMENT' */
  taskType?: string
  /** @default 'https://generativelanguage.googleapis.com' */
  baseUrl?: string
  /** L2-normalize vectors (only 3072-dimension output comes normalized). @default true unless 3072 */
  normalize?: boolean
  /** Longer texts are cut to this many UTF-16 code units before sending. @default 8000 */
  maxInputChars?: number
  /**
   * Jobs whose create request would be larger than this many bytes go through the Files API
   * instead of inline (Google documents about 20 MB for inline requests).
   * @default 19000000
   */
  maxInlineBytes?: number
  /** Upper bound of one API call, uploads included, in milliseconds. @default 120000 */
  timeoutMs?: number
  /** Upper bound of reading a job's results (a responses file can be hundreds of MB). @default 600000 */
  downloadTimeoutMs?: number
  /** Most requests per job. @default 50000 */
  maxRequestsPerJob?: number
  /** Pages of 100 jobs `findByLabel` looks through (newest first). @default 10 */
  maxListPages?: number
  /** Price per 1M input tokens, online and in bulk, for models not in our table. */
  pricing?: { onlinePerMTokens: number; bulkPerMTokens: number }
}

const GEMINI_BASE_URL = 'https://generativelanguage.googleapis.com'
/** Our cap on requests per Gemini job (the API documents none below its 2 GB file limit). */
export const GEMINI_BULK_MAX_REQUESTS = 50_000
/**
 * Our cap on text bytes per Gemini job. The Files API takes files up to 2 GB, but the JSONL is
 * built in memory, so we stop well before; 200 MB matches OpenAI's file limit.
 */
export const GEMINI_BULK_MAX_BYTES = 180_000_000
/** Bytes of JSONL we allow per job (texts plus each request's envelope). */
const GEMINI_MAX_FILE_BYTES = 200_000_000

/**
 * USD per 1M input tokens, from the Gemini API pricing page and Google's announcement of batch
 * embeddings ("$0.075 per 1M input tokens", online $0.15), as of 2025-2026.
 */
const GEMINI_PRICING: Record<string, { onlinePerMTokens: number; bulkPerMTokens: number }> = {
  'gemini-embedding-001': { onlinePerMTokens: 0.15, bulkPerMTokens: 0.075 },
}

const STATES: Record<string, BulkJobState> = {
  BATCH_STATE_UNSPECIFIED: 'pending',
  BATCH_STATE_PENDING: 'pending',
  BATCH_STATE_RUNNING: 'running',
  BATCH_STATE_SUCCEEDED: 'succeeded',
  BATCH_STATE_FAILED: 'failed',
  BATCH_STATE_CANCELLED: 'cancelled',
  BATCH_STATE_EXPIRED: 'expired',
}

/** Batch ids as Gemini hands them out: `batches/<id>`. */
const JOB_ID = /^batches\/[A-Za-z0-9_-]{1,128}$/
/** File names as the Files API hands them out: `files/<id>`. */
const FILE_NAME = /^files\/[A-Za-z0-9_-]{1,128}$/
/** Error reasons that mean "bad key", although Google sends them as HTTP 400. */
const BAD_KEY_REASONS = new Set(['API_KEY_INVALID', 'API_KEY_EXPIRED'])

/**
 * A `BulkEmbedder` over Gemini Batch Mode. `geminiEmbedder()` attaches one as `bulk`; call this
 * directly to tune the batch-only options.
 */
export function geminiBatch(opts: GeminiBatchOptions): BulkEmbedder {
  const factory = 'geminiBatch'
  if (typeof opts !== 'object' || opts === null) {
    throw new TypeError(`${factory}: options must be an object, received ${String(opts)}`)
  }
  const apiKey = checkString(factory, 'apiKey', opts.apiKey)
  const model = checkString(factory, 'model', opts.model ?? 'gemini-embedding-001')
  // Accepts every name `geminiEmbedder` accepts (so attaching `bulk` never breaks the online
  // embedder); each path segment is URL-encoded, so no name can reach another endpoint.
  if (model.includes('..')) {
    throw new TypeError(`${factory}: option \`model\` must be a model name, received ${describe(model)}`)
  }
  const dimensions = checkInteger(factory, 'dimensions', opts.dimensions ?? 768, 1)
  const taskType = checkString(factory, 'taskType', opts.taskType ?? 'RETRIEVAL_DOCUMENT')
  const baseUrl = checkBaseUrl(factory, 'baseUrl', opts.baseUrl ?? GEMINI_BASE_URL)
  const normalize = checkBoolean(factory, 'normalize', opts.normalize ?? dimensions !== 3072)
  const maxInputChars = checkInteger(factory, 'maxInputChars', opts.maxInputChars ?? 8000, 1)
  const maxInlineBytes = checkInteger(factory, 'maxInlineBytes', opts.maxInlineBytes ?? 19_000_000, 0)
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
    opts.maxRequestsPerJob ?? GEMINI_BULK_MAX_REQUESTS,
    1,
    GEMINI_BULK_MAX_REQUESTS,
  )
  const maxListPages = checkInteger(factory, 'maxListPages', opts.maxListPages ?? 10, 1)
  const modelPath = /^(models|tunedModels)\//.test(model) ? model : `models/${model}`
  const modelUrl = modelPath.split('/').map(encodeURIComponent).join('/')
  const pricing = checkPricing(factory, opts.pricing) ?? GEMINI_PRICING[modelPath.replace(/^models\//, '')]

  const provider = 'gemini'
  const redact = redactor(provider, apiKey)
  const headers = { 'x-goog-api-key': apiKey }
  const ctx = (signal: AbortSignal | undefined, ms = timeoutMs): CallContext => ({
    provider,
    timeoutMs: ms,
    signal,
  })
  const call = async (signal: AbortSignal | undefined, c: HttpCall): Promise<unknown> =>
    (await callJson(ctx(signal), { adjust: badKeyAs401, ...c })).json

  const guarded =
    <A extends unknown[], R>(run: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      try {
        return await run(...args)
      } catch (err) {
        throw redact(err)
      }
    }

  /** One inline request or one JSONL line's `request`. */
  const embedRequest = (text: string, withModel: boolean): Record<string, unknown> => ({
    ...(withModel ? { model: modelPath } : {}),
    content: { parts: [{ text: truncateText(text, maxInputChars) }] },
    taskType,
    outputDimensionality: dimensions,
  })

  const uploadJsonl = async (bytes: Uint8Array, label: string, signal: AbortSignal | undefined) => {
    const start = await callJson(ctx(signal), {
      method: 'POST',
      url: `${baseUrl}/upload/v1beta/files`,
      headers: {
        ...headers,
        'content-type': 'application/json',
        'x-goog-upload-protocol': 'resumable',
        'x-goog-upload-command': 'start',
        'x-goog-upload-header-content-length': String(bytes.byteLength),
        'x-goog-upload-header-content-type': 'application/jsonl',
      },
      body: JSON.stringify({ file: { displayName: `${label}.jsonl` } }),
      adjust: badKeyAs401,
    })
    const uploadUrl = sameOrigin(start.headers.get('x-goog-upload-url'), baseUrl)
    const done = await callJson(ctx(signal), {
      method: 'POST',
      url: uploadUrl,
      headers: {
        ...headers,
        'content-type': 'application/jsonl',
        'x-goog-upload-command': 'upload, finalize',
        'x-goog-upload-offset': '0',
      },
      body: bytes,
      adjust: badKeyAs401,
    })
    const status = done.headers.get('x-goog-upload-status')
    const name = (done.json as { file?: { name?: unknown } } | undefined)?.file?.name
    if ((status !== null && status !== 'final') || typeof name !== 'string' || !FILE_NAME.test(name)) {
      throw new EmbedderError(
        `gemini: the file upload did not finish (status ${describe(status)}, file ${describe(name)})`,
        { retryable: true },
      )
    }
    return name
  }

  const submit = async (
    requests: readonly BulkRequest[],
    submitOpts: BulkSubmitOptions,
  ): Promise<BulkJob> => {
    const signal = callSignal(provider, submitOpts)
    checkSubmit(provider, requests, submitOpts?.label, maxRequestsPerJob)
    const label = submitOpts.label
    // The texts alone already past the inline limit: go straight to a file, without building
    // an inline body only to throw it away.
    let textBytes = 0
    for (const r of requests) textBytes += Buffer.byteLength(r.text)
    let body =
      textBytes > maxInlineBytes
        ? undefined
        : JSON.stringify({
            batch: {
              displayName: label,
              model: modelPath,
              inputConfig: {
                requests: {
                  requests: requests.map((r) => ({
                    request: embedRequest(r.text, true),
                    metadata: { key: r.id },
                  })),
                },
              },
            },
          })
    if (body === undefined || Buffer.byteLength(body) > maxInlineBytes) {
      const jsonl = Buffer.from(
        requests.map((r) => JSON.stringify({ key: r.id, request: embedRequest(r.text, false) })).join('\n'),
      )
      if (jsonl.byteLength > GEMINI_MAX_FILE_BYTES) {
        throw new EmbedderError(
          `gemini: bulk submit: the job is ${jsonl.byteLength} bytes, over the ${GEMINI_MAX_FILE_BYTES} we upload; submit fewer or shorter texts`,
          { retryable: false },
        )
      }
      const fileName = await uploadJsonl(jsonl, label, signal)
      body = JSON.stringify({ batch: { displayName: label, model: modelPath, inputConfig: { fileName } } })
    }
    const op = await call(signal, {
      method: 'POST',
      url: `${baseUrl}/v1beta/${modelUrl}:asyncBatchEmbedContent`,
      headers: { ...headers, 'content-type': 'application/json' },
      body,
    })
    return toJob(op)
  }

  const fetchOperation = async (jobId: string, signal: AbortSignal | undefined): Promise<unknown> => {
    const id = checkJobId(provider, jobId, JOB_ID)
    return call(signal, { method: 'GET', url: `${baseUrl}/v1beta/${id}`, headers })
  }

  const results = async (jobId: string, callOpts?: BulkCallOptions): Promise<BulkItemResult[]> => {
    const signal = callSignal(provider, callOpts)
    const op = await fetchOperation(jobId, signal)
    const job = toJob(op)
    if (!isTerminalBulkState(job.state)) {
      throw new EmbedderError(`gemini: batch ${job.id} is still ${job.state}; its results are not ready`, {
        retryable: true,
      })
    }
    const out: BulkItemResult[] = []
    const seen = new Set<string>()
    const take = (key: unknown, response: unknown, error: unknown): void => {
      if (typeof key !== 'string' || seen.has(key)) return
      seen.add(key)
      out.push(itemResult(key, response, error))
    }
    const itemResult = (key: string, response: unknown, error: unknown): BulkItemResult => {
      if (error !== undefined && error !== null) return { id: key, error: statusError(error, apiKey) }
      const values = (response as { embedding?: { values?: unknown } } | undefined)?.embedding?.values
      return itemVector(provider, key, values, dimensions, normalize)
    }
    const output = outputOf(op)
    const inlined = inlinedResponses(output)
    if (inlined) {
      for (const item of inlined) {
        const i = item as { metadata?: { key?: unknown }; response?: unknown; error?: unknown } | null
        take(i?.metadata?.key, i?.response, i?.error)
      }
    }
    const file = (output as { responsesFile?: unknown } | undefined)?.responsesFile
    if (typeof file === 'string') {
      if (!FILE_NAME.test(file)) {
        throw new EmbedderError(`gemini: the batch names an unexpected responses file ${describe(file)}`, {
          retryable: false,
        })
      }
      await readJsonLines(
        ctx(signal, downloadTimeoutMs),
        { url: `${baseUrl}/download/v1beta/${file}:download?alt=media`, headers, adjust: badKeyAs401 },
        (line) => {
          const l = line as { key?: unknown; response?: unknown; error?: unknown } | undefined
          take(l?.key, l?.response, l?.error)
        },
      )
    }
    return out
  }

  const findByLabel = async (label: string, callOpts?: BulkCallOptions): Promise<BulkJob[]> => {
    const signal = callSignal(provider, callOpts)
    const found: BulkJob[] = []
    let pageToken: string | undefined
    for (let page = 0; page < maxListPages; page++) {
      const query = new URLSearchParams({ pageSize: '100' })
      if (pageToken) query.set('pageToken', pageToken)
      const list = (await call(signal, {
        method: 'GET',
        url: `${baseUrl}/v1beta/batches?${query}`,
        headers,
      })) as { operations?: unknown; nextPageToken?: unknown } | undefined
      const ops = Array.isArray(list?.operations) ? list.operations : []
      for (const op of ops) {
        if ((op as { metadata?: { displayName?: unknown } })?.metadata?.displayName === label) {
          found.push(toJob(op))
        }
      }
      pageToken =
        typeof list?.nextPageToken === 'string' && list.nextPageToken !== '' ? list.nextPageToken : undefined
      if (!pageToken) break
    }
    return found.sort((a, b) => (b.createdAt ?? 0) - (a.createdAt ?? 0))
  }

  return {
    maxRequestsPerJob,
    maxBytesPerJob: GEMINI_BULK_MAX_BYTES,
    ...(pricing ? { pricing: { ...pricing } } : {}),
    submit: guarded(submit),
    get: guarded(async (jobId: string, callOpts?: BulkCallOptions) =>
      toJob(await fetchOperation(jobId, callSignal(provider, callOpts))),
    ),
    findByLabel: guarded(findByLabel),
    results: guarded(results),
    cancel: guarded(async (jobId: string, callOpts?: BulkCallOptions) => {
      const id = checkJobId(provider, jobId, JOB_ID)
      await call(callSignal(provider, callOpts), {
        method: 'POST',
        url: `${baseUrl}/v1beta/${id}:cancel`,
        headers: { ...headers, 'content-type': 'application/json' },
        body: '{}',
      })
    }),
  }

  /** A batch operation as our `BulkJob`; anything without a batch name is a broken answer. */
  function toJob(op: unknown): BulkJob {
    const o = op as
      | { name?: unknown; done?: unknown; error?: { message?: unknown }; metadata?: Record<string, unknown> }
      | undefined
    const meta = o?.metadata ?? {}
    const id = typeof o?.name === 'string' ? o.name : meta.name
    if (typeof id !== 'string' || !JOB_ID.test(id)) {
      throw new EmbedderError(`gemini: the answer names no batch (${describe(id)})`, { retryable: false })
    }
    let state = STATES[String(meta.state)] ?? 'pending'
    // A finished operation with an error and no terminal state is a failed batch.
    if (o?.done === true && o.error && !isTerminalBulkState(state)) state = 'failed'
    const job: BulkJob = { id, state }
    if (typeof meta.displayName === 'string') job.label = meta.displayName
    const createdAt = toEpochMs(meta.createTime)
    if (createdAt !== undefined) job.createdAt = createdAt
    const stats = meta.batchStats as Record<string, unknown> | undefined
    if (stats && typeof stats === 'object') {
      job.requestCounts = {
        total: toCount(stats.requestCount),
        completed: toCount(stats.successfulRequestCount),
        failed: toCount(stats.failedRequestCount),
      }
    }
    if (o?.error && typeof o.error.message === 'string') job.error = redactText(o.error.message, apiKey)
    return job
  }
}

/** Where a batch keeps its output: the operation's `response.output`, else `metadata.output`. */
function outputOf(op: unknown): unknown {
  const o = op as { response?: { output?: unknown }; metadata?: { output?: unknown } } | undefined
  return o?.response?.output ?? o?.metadata?.output
}

function inlinedResponses(output: unknown): unknown[] | undefined {
  const o = output as
    | {
        inlinedResponses?: { inlinedResponses?: unknown }
        inlinedEmbedContentResponses?: { inlinedResponses?: unknown }
      }
    | undefined
  const list = o?.inlinedResponses?.inlinedResponses ?? o?.inlinedEmbedContentResponses?.inlinedResponses
  return Array.isArray(list) ? list : undefined
}

/** gRPC codes (`google.rpc.Code`) as the HTTP status Google maps them to. */
const GRPC_HTTP: Record<number, number> = {
  1: 499,
  2: 500,
  3: 400,
  4: 504,
  5: 404,
  6: 409,
  7: 403,
  8: 429,
  9: 400,
  10: 409,
  11: 400,
  12: 501,
  13: 500,
  14: 503,
  15: 500,
  16: 401,
}
/** Codes where the same request can succeed later. */
const GRPC_RETRYABLE = new Set([1, 4, 8, 10, 13, 14])

/** A per-request `google.rpc.Status` as an `EmbedderError`. */
function statusError(error: unknown, apiKey: string): EmbedderError {
  const e = error as { code?: unknown; message?: unknown; status?: unknown } | null
  const code = typeof e?.code === 'number' ? e.code : 2
  const label = typeof e?.status === 'string' ? ` (${e.status})` : ''
  const message = typeof e?.message === 'string' && e.message !== '' ? e.message : 'no message'
  const status = GRPC_HTTP[code]
  return new EmbedderError(redactText(`gemini: batch request failed${label}: ${message}`, apiKey), {
    ...(status === undefined ? {} : { status }),
    retryable: GRPC_RETRYABLE.has(code),
  })
}

/** An invalid or expired key comes back as 400 INVALID_ARGUMENT: report it as the 401 it is. */
function badKeyAs401(failure: HttpFailure): HttpFailure {
  if (failure.status !== 400) return failure
  const reason = googleDetails(failure.body).find(
    (d) => typeof d.reason === 'string' && BAD_KEY_REASONS.has(d.reason),
  )
  return reason ? { ...failure, status: 401, note: `${String(reason.reason)}, sent as HTTP 400` } : failure
}

/**
 * The resumable upload URL, moved onto `baseUrl`'s origin (as the SDK does, so proxies and test
 * servers keep working) — and it must be one: the key goes with it.
 */
function sameOrigin(uploadUrl: string | null, baseUrl: string): string {
  if (!uploadUrl) {
    throw new EmbedderError('gemini: the Files API did not return an upload URL (x-goog-upload-url)', {
      retryable: true,
    })
  }
  let url: URL
  try {
    url = new URL(uploadUrl, baseUrl)
  } catch {
    throw new EmbedderError('gemini: the Files API returned an unreadable upload URL', { retryable: true })
  }
  const base = new URL(baseUrl)
  url.protocol = base.protocol
  url.host = base.host
  return url.toString()
}
