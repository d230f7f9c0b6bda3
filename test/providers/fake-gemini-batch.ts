/**
 * A fake Gemini Batch Mode speaking the REST wire format (see src/providers/gemini-batch.ts for
 * the shapes): `models/{model}:asyncBatchEmbedContent` with inline requests or a `fileName`, the
 * Files API's resumable upload (start → `x-goog-upload-url` on Google's host, which the client must
 * move onto its base URL → `upload, finalize`), `batches/{id}` long-running operations whose
 * `metadata.state` walks a plan one step per GET, `batches` listing with page tokens (oldest
 * first, so the client must sort), `:cancel`, inline responses or a responses file downloaded
 * from `/download/v1beta/files/…:download?alt=media`, per-request `google.rpc.Status` errors for
 * texts containing `POISON`, and Google's error bodies (429 with `RetryInfo`; a bad key as 400
 * `API_KEY_INVALID`, echoing the key it was sent so the client's redaction is put to the test).
 */
import type { BulkJobState } from '../../src/bulk.js'
import {
  type FakeServer,
  type Fault,
  fakeRawVector,
  type RecordedRequest,
  type Reply,
  startFakeServer,
} from './fake-http.js'

export const GEMINI_BATCH_KEY = 'AIza-fake-batch-key-0123456789'
/** Texts containing this fail on their own with INVALID_ARGUMENT. */
export const POISON = 'POISON'
/** Texts containing this fail on their own with UNAVAILABLE (worth another attempt). */
export const FLAKY = 'FLAKY'

const WIRE: Record<BulkJobState, string> = {
  pending: 'BATCH_STATE_PENDING',
  running: 'BATCH_STATE_RUNNING',
  succeeded: 'BATCH_STATE_SUCCEEDED',
  failed: 'BATCH_STATE_FAILED',
  expired: 'BATCH_STATE_EXPIRED',
  cancelled: 'BATCH_STATE_CANCELLED',
}
const TERMINAL = new Set<BulkJobState>(['succeeded', 'failed', 'expired', 'cancelled'])

interface Item {
  key: string
  text: string
  dimensions: number
}

interface Job {
  id: string
  displayName: string
  model: string
  createTime: string
  items: Item[]
  fromFile: boolean
  plan: BulkJobState[]
  step: number
  state: BulkJobState
}

export interface FakeGeminiBatchOptions {
  /** Where the output goes in the operation: `metadata.output` (what the SDK reads) or `response.output`. */
  outputIn?: 'metadata' | 'response'
  /** Write results to a responses file even for inline jobs. @default false */
  fileResponses?: boolean
  /** Jobs per `batches` list page at most. @default 100 */
  pageSize?: number
}

export interface FakeGeminiBatch extends FakeServer {
  /** States the next created job walks through, one per GET. Default: pending, running, succeeded. */
  plan(states: BulkJobState[]): void
  /** Forces a job's state (e.g. an operator cancelled it in the console). */
  setState(jobId: string, state: BulkJobState): void
  jobCount(): number
  /** Finished resumable uploads. */
  fileUploads(): number
  /** The vector the fake model returns for `text` (before the client normalizes it). */
  vector(text: string, dimensions: number): number[]
}

function googleError(code: number, status: string, message: string, details: unknown[] = []): Reply {
  return { status: code, json: { error: { code, message, status, ...(details.length ? { details } : {}) } } }
}

function rateLimited(fault: Extract<Fault, { kind: 'rate-limit' }>): Reply {
  const seconds = (fault.retryAfterMs ?? 7000) / 1000
  return googleError(429, 'RESOURCE_EXHAUSTED', 'Resource has been exhausted (e.g. check quota).', [
    {
      '@type': 'type.googleapis.com/google.rpc.QuotaFailure',
      violations: [
        {
          quotaMetric: 'generativelanguage.googleapis.com/batch_requests',
          quotaId: 'BatchRequestsPerMinute',
        },
      ],
    },
    { '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: `${seconds}s` },
  ])
}

export async function startFakeGeminiBatch(opts: FakeGeminiBatchOptions = {}): Promise<FakeGeminiBatch> {
  const { outputIn = 'metadata', fileResponses = false, pageSize: maxPage = 100 } = opts
  const jobs = new Map<string, Job>()
  const order: string[] = []
  const files = new Map<string, string>()
  const uploads = new Map<string, { length: number; displayName: unknown }>()
  let nextPlan: BulkJobState[] | undefined
  let seq = 0
  let finishedUploads = 0

  const vector = (text: string, dimensions: number): number[] => fakeRawVector(text, dimensions)

  const itemOutput = (item: Item): { response?: unknown; error?: unknown } => {
    if (item.text.includes(POISON)) {
      return {
        error: {
          code: 3,
          message: `Request contains an invalid argument: ${POISON}`,
          status: 'INVALID_ARGUMENT',
        },
      }
    }
    if (item.text.includes(FLAKY)) {
      return { error: { code: 14, message: 'The service is currently unavailable.', status: 'UNAVAILABLE' } }
    }
    return { response: { embedding: { values: vector(item.text, item.dimensions) } } }
  }

  const output = (job: Job): unknown => {
    if (job.state !== 'succeeded') return undefined
    if (job.fromFile || fileResponses) {
      const name = `files/batch-${job.id.split('/')[1]}-responses`
      if (!files.has(name)) {
        // Real files come back in input order; ours reversed, so the client must match by key.
        const lines = job.items
          .map((item) => JSON.stringify({ key: item.key, ...itemOutput(item) }))
          .reverse()
        files.set(name, `${lines.join('\n')}\n`)
      }
      return { responsesFile: name }
    }
    return {
      inlinedResponses: {
        inlinedResponses: job.items.map((item) => ({ metadata: { key: item.key }, ...itemOutput(item) })),
      },
    }
  }

  const operation = (job: Job): unknown => {
    const done = TERMINAL.has(job.state)
    const total = job.items.length
    const failed =
      job.state === 'succeeded'
        ? job.items.filter((i) => i.text.includes(POISON) || i.text.includes(FLAKY)).length
        : 0
    const succeeded = job.state === 'succeeded' ? total - failed : 0
    const out = output(job)
    const metadata: Record<string, unknown> = {
      '@type': 'type.googleapis.com/google.ai.generativelanguage.v1main.EmbedContentBatch',
      name: job.id,
      model: job.model,
      displayName: job.displayName,
      createTime: job.createTime,
      updateTime: job.createTime,
      // int64 fields: protobuf JSON writes them as strings.
      batchStats: {
        requestCount: String(total),
        successfulRequestCount: String(succeeded),
        failedRequestCount: String(failed),
        pendingRequestCount: String(done ? 0 : total),
      },
      state: WIRE[job.state],
    }
    const op: Record<string, unknown> = { name: job.id, metadata }
    if (done) op.done = true
    if (job.state === 'failed') op.error = { code: 13, message: 'The batch failed: internal error.' }
    if (out !== undefined) {
      if (outputIn === 'metadata') metadata.output = out
      else
        op.response = {
          '@type': 'type.googleapis.com/google.ai.generativelanguage.v1main.AsyncBatchEmbedContentResponse',
          output: out,
        }
    }
    return op
  }

  const advance = (job: Job): void => {
    if (TERMINAL.has(job.state)) return
    job.step = Math.min(job.step + 1, job.plan.length - 1)
    job.state = job.plan[job.step]!
  }

  const parseItems = (raw: unknown[], fromFile: boolean): Item[] | Reply => {
    const items: Item[] = []
    for (const [i, entry] of raw.entries()) {
      const e = entry as {
        key?: unknown
        metadata?: { key?: unknown }
        request?: {
          content?: { parts?: { text?: unknown }[] }
          outputDimensionality?: unknown
          output_dimensionality?: unknown
          taskType?: unknown
        }
      }
      const key = fromFile ? e?.key : e?.metadata?.key
      const text = e?.request?.content?.parts?.[0]?.text
      const dims = e?.request?.outputDimensionality ?? e?.request?.output_dimensionality ?? 3072
      if (typeof key !== 'string' || typeof text !== 'string' || text.trim() === '') {
        return googleError(
          400,
          'INVALID_ARGUMENT',
          `* BatchEmbedContentsRequest.requests[${i}]: invalid request`,
        )
      }
      if (typeof dims !== 'number' || dims < 1 || dims > 3072) {
        return googleError(400, 'INVALID_ARGUMENT', `requests[${i}].output_dimensionality is out of range`)
      }
      items.push({ key, text, dimensions: dims })
    }
    return items
  }

  const route = (req: RecordedRequest, fault: Fault | undefined): Reply => {
    const key = req.headers['x-goog-api-key']
    const url = new URL(req.url, 'http://fake')
    if (url.searchParams.has('key')) {
      return googleError(400, 'INVALID_ARGUMENT', 'the fake refuses keys in URLs: they end up in logs')
    }
    if (key !== GEMINI_BATCH_KEY) {
      return googleError(
        400,
        'INVALID_ARGUMENT',
        `API key not valid. Please pass a valid API key. (got ${String(key)})`,
        [
          {
            '@type': 'type.googleapis.com/google.rpc.ErrorInfo',
            reason: 'API_KEY_INVALID',
            domain: 'googleapis.com',
          },
        ],
      )
    }
    if (fault?.kind === 'rate-limit') return rateLimited(fault)
    if (fault?.kind === 'server-error')
      return googleError(fault.status, 'UNAVAILABLE', 'The service is currently unavailable.')
    if (fault?.kind === 'hang') return { hang: true }
    const path = url.pathname

    if (req.method === 'POST' && path === '/upload/v1beta/files') {
      const command = req.headers['x-goog-upload-command']
      if (req.headers['x-goog-upload-protocol'] === 'resumable' && command === 'start') {
        const length = Number(req.headers['x-goog-upload-header-content-length'])
        if (!Number.isInteger(length) || length <= 0)
          return googleError(400, 'INVALID_ARGUMENT', 'bad content length')
        const uploadId = `u${++seq}`
        uploads.set(uploadId, {
          length,
          displayName: (req.body as { file?: { displayName?: unknown } })?.file?.displayName,
        })
        return {
          status: 200,
          json: {},
          headers: {
            // Google's own host: the client must move it onto its base URL.
            'x-goog-upload-url': `https://generativelanguage.googleapis.com/upload/v1beta/files?upload_id=${uploadId}&upload_protocol=resumable`,
            'x-goog-upload-status': 'active',
          },
        }
      }
      const upload = uploads.get(url.searchParams.get('upload_id') ?? '')
      if (!upload) return googleError(404, 'NOT_FOUND', 'no such upload')
      if (command !== 'upload, finalize' || req.headers['x-goog-upload-offset'] !== '0') {
        return googleError(400, 'INVALID_ARGUMENT', `unexpected upload command ${String(command)}`)
      }
      if (Buffer.byteLength(req.rawBody) !== upload.length) {
        return googleError(400, 'INVALID_ARGUMENT', 'the upload does not match the declared length')
      }
      uploads.delete(url.searchParams.get('upload_id') ?? '')
      const name = `files/in${++seq}`
      files.set(name, req.rawBody)
      finishedUploads++
      return {
        status: 200,
        json: {
          file: {
            name,
            displayName: upload.displayName,
            mimeType: 'application/jsonl',
            sizeBytes: String(upload.length),
            state: 'ACTIVE',
          },
        },
        headers: { 'x-goog-upload-status': 'final' },
      }
    }

    const create = /^\/v1beta\/models\/([^/:]+):asyncBatchEmbedContent$/.exec(path)
    if (req.method === 'POST' && create) {
      const batch = (req.body as { batch?: Record<string, unknown> } | undefined)?.batch
      if (!batch || typeof batch.displayName !== 'string' || batch.displayName === '') {
        return googleError(400, 'INVALID_ARGUMENT', 'batch.display_name is required')
      }
      const input = batch.inputConfig as { requests?: { requests?: unknown }; fileName?: unknown } | undefined
      let raw: unknown[]
      let fromFile = false
      if (typeof input?.fileName === 'string') {
        const content = files.get(input.fileName)
        if (content === undefined) return googleError(404, 'NOT_FOUND', `File ${input.fileName} not found`)
        raw = content
          .split('\n')
          .filter((l) => l.trim() !== '')
          .map((l) => JSON.parse(l))
        fromFile = true
      } else if (Array.isArray(input?.requests?.requests)) {
        raw = input.requests.requests
        if (Buffer.byteLength(req.rawBody) > 20 * 1024 * 1024) {
          return googleError(
            400,
            'INVALID_ARGUMENT',
            'Request payload size exceeds the limit: 20971520 bytes.',
          )
        }
      } else {
        return googleError(400, 'INVALID_ARGUMENT', 'batch.input_config is required')
      }
      const items = parseItems(raw, fromFile)
      if (!Array.isArray(items)) return items
      const id = `batches/fake${++seq}`
      const plan = nextPlan ?? ['pending', 'running', 'succeeded']
      nextPlan = undefined
      const job: Job = {
        id,
        displayName: batch.displayName,
        model: `models/${create[1]}`,
        createTime: new Date(Date.UTC(2026, 0, 1) + seq * 1000).toISOString(),
        items,
        fromFile,
        plan,
        step: 0,
        state: plan[0]!,
      }
      jobs.set(id, job)
      order.push(id)
      return { status: 200, json: operation(job) }
    }

    if (req.method === 'GET' && path === '/v1beta/batches') {
      const size = Math.min(Number(url.searchParams.get('pageSize') ?? 50), maxPage)
      const start = Number(url.searchParams.get('pageToken') ?? 0)
      const page = order.slice(start, start + size)
      const next = start + size < order.length ? String(start + size) : undefined
      return {
        status: 200,
        json: {
          operations: page.map((id) => operation(jobs.get(id)!)),
          ...(next ? { nextPageToken: next } : {}),
        },
      }
    }

    const one = /^\/v1beta\/(batches\/[^/:]+)(:cancel)?$/.exec(path)
    if (one) {
      const job = jobs.get(one[1]!)
      if (!job) return googleError(404, 'NOT_FOUND', `Batch ${one[1]} not found.`)
      if (req.method === 'POST' && one[2]) {
        if (!TERMINAL.has(job.state)) job.state = 'cancelled'
        return { status: 200, json: {} }
      }
      if (req.method === 'GET' && !one[2]) {
        advance(job)
        return { status: 200, json: operation(job) }
      }
    }

    const download = /^\/download\/v1beta\/(files\/[^/:]+):download$/.exec(path)
    if (req.method === 'GET' && download && url.searchParams.get('alt') === 'media') {
      const content = files.get(download[1]!)
      if (content === undefined) return googleError(404, 'NOT_FOUND', 'file not found')
      return { status: 200, text: content, headers: { 'content-type': 'application/octet-stream' } }
    }
    return googleError(404, 'NOT_FOUND', `no route ${req.method} ${path}`)
  }

  const server = await startFakeServer(route)
  return {
    ...server,
    plan: (states) => {
      nextPlan = states
    },
    setState: (jobId, state) => {
      const job = jobs.get(jobId)
      if (job) job.state = state
    },
    jobCount: () => jobs.size,
    fileUploads: () => finishedUploads,
    vector,
  }
}
