/**
 * A fake OpenAI Batch API speaking the real wire format (see src/providers/openai-batch.ts):
 * `POST /v1/files` (multipart, `purpose=batch`, JSONL validated like the real one: unique
 * `custom_id`, `POST /v1/embeddings`, at most 50,000 requests and embedding inputs),
 * `POST /v1/batches`, `GET /v1/batches/{id}` whose `status` walks a plan one step per GET,
 * `GET /v1/batches?limit=&after=` (newest first, `has_more`, `last_id`), `POST …/cancel`
 * (`cancelling`, then `cancelled` with partial results), and `GET /v1/files/{id}/content`.
 * Results: successes in the output file and failures in the error file, both in shuffled order;
 * texts containing `POISON` fail with a 400 line; an expired or cancelled batch completes its
 * first half and reports the rest as `batch_expired` / `batch_cancelled`. Faults answer with
 * OpenAI's error bodies; a wrong key is echoed back in full so the client's redaction is tested.
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

export const OPENAI_BATCH_KEY = 'sk-fake-batch-key-0123456789'
export const POISON = 'POISON'
/** Texts containing this fail on their own with a 500 line (worth another attempt). */
export const FLAKY = 'FLAKY'
export const FAKE_MAX_REQUESTS = 50_000

/** Our state → the wire status the fake shows for it. */
const WIRE: Record<BulkJobState, string> = {
  pending: 'validating',
  running: 'in_progress',
  succeeded: 'completed',
  failed: 'failed',
  expired: 'expired',
  cancelled: 'cancelled',
}
type Status =
  | 'validating'
  | 'in_progress'
  | 'finalizing'
  | 'completed'
  | 'failed'
  | 'expired'
  | 'cancelling'
  | 'cancelled'
const TERMINAL = new Set<Status>(['completed', 'failed', 'expired', 'cancelled'])

interface Line {
  custom_id: string
  input: string
  dimensions: number | undefined
  model: string
}

interface Batch {
  id: string
  created_at: number
  input_file_id: string
  metadata: Record<string, string> | null
  lines: Line[]
  plan: Status[]
  step: number
  status: Status
  output_file_id: string | null
  error_file_id: string | null
  errors: unknown
}

export interface FakeOpenAIBatch extends FakeServer {
  /** Statuses the next created batch walks through, one per GET (our names or wire names). */
  plan(states: (BulkJobState | Status)[]): void
  /** The `errors` a batch planned to fail reports. @default token_limit_exceeded */
  failWith(errors: { code: string; message: string }[]): void
  jobCount(): number
  fileUploads(): number
  vector(text: string, dimensions: number): number[]
}

function openAIError(
  status: number,
  message: string,
  type: string,
  code: string | null = null,
  headers?: Record<string, string>,
): Reply {
  return { status, json: { error: { message, type, param: null, code } }, ...(headers ? { headers } : {}) }
}

/** The parts of a multipart/form-data body (text parts only, which is all a JSONL upload has). */
function parseMultipart(
  contentType: string | undefined,
  raw: string,
): Map<string, { filename?: string; value: string }> {
  const parts = new Map<string, { filename?: string; value: string }>()
  const boundary = /boundary=(?:"([^"]+)"|([^;]+))/i.exec(contentType ?? '')
  if (!boundary) return parts
  const delimiter = `--${boundary[1] ?? boundary[2]}`
  for (const chunk of raw.split(delimiter).slice(1)) {
    if (chunk.startsWith('--')) break
    const headerEnd = chunk.indexOf('\r\n\r\n')
    if (headerEnd === -1) continue
    const head = chunk.slice(0, headerEnd)
    const value = chunk.slice(headerEnd + 4).replace(/\r\n$/, '')
    const name = /name="([^"]*)"/.exec(head)?.[1]
    const filename = /filename="([^"]*)"/.exec(head)?.[1]
    if (name !== undefined) parts.set(name, { ...(filename === undefined ? {} : { filename }), value })
  }
  return parts
}

export async function startFakeOpenAIBatch(): Promise<FakeOpenAIBatch> {
  const files = new Map<string, { purpose: string; content: string; filename: string }>()
  const batches = new Map<string, Batch>()
  const order: string[] = []
  let nextPlan: Status[] | undefined
  let failErrors = [
    {
      code: 'token_limit_exceeded',
      message:
        'Enqueued token limit reached for text-embedding-3-small in organization org-fake. Limit: 3,000,000 enqueued tokens. Please try again once some in_progress batches have been completed.',
    },
  ]
  let seq = 0
  let uploads = 0

  const vector = (text: string, dimensions: number): number[] =>
    fakeRawVector(text, dimensions).map((v) => v * 3)

  const writeResults = (batch: Batch): void => {
    const ran = batch.status === 'completed' ? batch.lines.length : Math.floor(batch.lines.length / 2)
    const out: string[] = []
    const err: string[] = []
    batch.lines.forEach((line, i) => {
      const reqId = `batch_req_${batch.id}_${i}`
      if (i >= ran) {
        const code = batch.status === 'expired' ? 'batch_expired' : 'batch_cancelled'
        err.push(
          JSON.stringify({
            id: reqId,
            custom_id: line.custom_id,
            response: null,
            error: {
              code,
              message: 'This request could not be executed before the completion window expired.',
            },
          }),
        )
      } else if (line.input.includes(FLAKY)) {
        err.push(
          JSON.stringify({
            id: reqId,
            custom_id: line.custom_id,
            response: {
              status_code: 500,
              request_id: `req_${i}`,
              body: {
                error: {
                  message: 'The server had an error processing your request.',
                  type: 'server_error',
                  param: null,
                  code: null,
                },
              },
            },
            error: null,
          }),
        )
      } else if (line.input.includes(POISON)) {
        err.push(
          JSON.stringify({
            id: reqId,
            custom_id: line.custom_id,
            response: {
              status_code: 400,
              request_id: `req_${i}`,
              body: {
                error: {
                  message: `'$.input' is invalid: ${POISON}`,
                  type: 'invalid_request_error',
                  param: null,
                  code: null,
                },
              },
            },
            error: null,
          }),
        )
      } else {
        const embedding = vector(line.input, line.dimensions ?? 1536)
        const tokens = Math.ceil(line.input.length / 4)
        out.push(
          JSON.stringify({
            id: reqId,
            custom_id: line.custom_id,
            response: {
              status_code: 200,
              request_id: `req_${i}`,
              body: {
                object: 'list',
                data: [{ object: 'embedding', index: 0, embedding }],
                model: line.model,
                usage: { prompt_tokens: tokens, total_tokens: tokens },
              },
            },
            error: null,
          }),
        )
      }
    })
    // No ordering guarantee: shuffle deterministically (reverse).
    out.reverse()
    if (out.length > 0) {
      batch.output_file_id = `file-out${++seq}`
      files.set(batch.output_file_id, {
        purpose: 'batch_output',
        content: `${out.join('\n')}\n`,
        filename: 'batch_output.jsonl',
      })
    }
    if (err.length > 0) {
      batch.error_file_id = `file-err${++seq}`
      files.set(batch.error_file_id, {
        purpose: 'batch_output',
        content: `${err.join('\n')}\n`,
        filename: 'batch_error.jsonl',
      })
    }
  }

  const setStatus = (batch: Batch, status: Status): void => {
    batch.status = status
    if (status === 'failed')
      batch.errors = { object: 'list', data: failErrors.map((e) => ({ ...e, param: null, line: null })) }
    if (status === 'completed' || status === 'expired' || status === 'cancelled') writeResults(batch)
  }

  const view = (batch: Batch): unknown => {
    const done = TERMINAL.has(batch.status)
    const total = batch.status === 'validating' || batch.status === 'failed' ? 0 : batch.lines.length
    const failed =
      done && batch.status !== 'failed'
        ? batch.lines.filter((l) => l.input.includes(POISON) || l.input.includes(FLAKY)).length
        : 0
    return {
      id: batch.id,
      object: 'batch',
      endpoint: '/v1/embeddings',
      errors: batch.errors,
      input_file_id: batch.input_file_id,
      completion_window: '24h',
      status: batch.status,
      output_file_id: batch.output_file_id,
      error_file_id: batch.error_file_id,
      created_at: batch.created_at,
      expires_at: batch.created_at + 86_400,
      request_counts: { total, completed: done && batch.status !== 'failed' ? total - failed : 0, failed },
      metadata: batch.metadata,
    }
  }

  const route = (req: RecordedRequest, fault: Fault | undefined): Reply => {
    const auth = req.headers.authorization
    if (auth !== `Bearer ${OPENAI_BATCH_KEY}`) {
      const sent = String(auth ?? '').replace(/^Bearer /, '')
      return openAIError(
        401,
        `Incorrect API key provided: ${sent}. You can find your API key at https://platform.openai.com/account/api-keys.`,
        'invalid_request_error',
        'invalid_api_key',
      )
    }
    if (fault?.kind === 'rate-limit') {
      const ms = fault.retryAfterMs ?? 2000
      return openAIError(
        429,
        'Rate limit reached for requests per min (RPM) on batches.',
        'requests',
        'rate_limit_exceeded',
        {
          'retry-after-ms': String(ms),
          'retry-after': String(Math.ceil(ms / 1000)),
        },
      )
    }
    if (fault?.kind === 'server-error')
      return openAIError(
        fault.status,
        'The server had an error while processing your request.',
        'server_error',
      )
    if (fault?.kind === 'hang') return { hang: true }
    const url = new URL(req.url, 'http://fake')
    const path = url.pathname

    if (req.method === 'POST' && path === '/v1/files') {
      const parts = parseMultipart(req.headers['content-type'], req.rawBody)
      const purpose = parts.get('purpose')?.value
      const file = parts.get('file')
      if (purpose !== 'batch' || !file?.filename) {
        return openAIError(
          400,
          "Invalid file format or purpose: expected purpose 'batch' and a file",
          'invalid_request_error',
        )
      }
      const lines = file.value.split('\n').filter((l) => l.trim() !== '')
      if (lines.length > FAKE_MAX_REQUESTS)
        return openAIError(
          400,
          `The batch input file has ${lines.length} requests; the limit is 50000.`,
          'invalid_request_error',
        )
      const ids = new Set<string>()
      for (const [i, l] of lines.entries()) {
        let parsed: { custom_id?: unknown; method?: unknown; url?: unknown; body?: { model?: unknown } }
        try {
          parsed = JSON.parse(l)
        } catch {
          return openAIError(400, `Line ${i + 1} is not valid JSON.`, 'invalid_request_error')
        }
        if (typeof parsed.custom_id !== 'string' || ids.has(parsed.custom_id)) {
          return openAIError(
            400,
            `Line ${i + 1}: custom_id must be a unique string.`,
            'invalid_request_error',
          )
        }
        ids.add(parsed.custom_id)
        if (
          parsed.method !== 'POST' ||
          parsed.url !== '/v1/embeddings' ||
          typeof parsed.body?.model !== 'string'
        ) {
          return openAIError(
            400,
            `Line ${i + 1}: expected POST /v1/embeddings with a body.model.`,
            'invalid_request_error',
          )
        }
      }
      const id = `file-in${++seq}`
      files.set(id, { purpose: 'batch', content: file.value, filename: file.filename })
      uploads++
      return {
        status: 200,
        json: {
          id,
          object: 'file',
          bytes: Buffer.byteLength(file.value),
          created_at: 1_767_225_600 + seq,
          filename: file.filename,
          purpose: 'batch',
        },
      }
    }

    if (req.method === 'POST' && path === '/v1/batches') {
      const body = req.body as
        | { input_file_id?: unknown; endpoint?: unknown; completion_window?: unknown; metadata?: unknown }
        | undefined
      if (body?.endpoint !== '/v1/embeddings')
        return openAIError(400, 'Invalid endpoint.', 'invalid_request_error')
      if (body.completion_window !== '24h')
        return openAIError(400, "completion_window must be '24h'.", 'invalid_request_error')
      const file = typeof body.input_file_id === 'string' ? files.get(body.input_file_id) : undefined
      if (file?.purpose !== 'batch')
        return openAIError(
          400,
          `No file with id ${String(body.input_file_id)} and purpose batch.`,
          'invalid_request_error',
        )
      const meta = body.metadata as Record<string, unknown> | undefined
      if (
        meta !== undefined &&
        Object.entries(meta).some(([k, v]) => k.length > 64 || typeof v !== 'string' || v.length > 512)
      ) {
        return openAIError(400, 'Invalid metadata.', 'invalid_request_error')
      }
      const lines: Line[] = file.content
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => {
          const p = JSON.parse(l) as {
            custom_id: string
            body: { input: string; dimensions?: number; model: string }
          }
          return {
            custom_id: p.custom_id,
            input: p.body.input,
            dimensions: p.body.dimensions,
            model: p.body.model,
          }
        })
      const plan = nextPlan ?? ['validating', 'in_progress', 'finalizing', 'completed']
      nextPlan = undefined
      const id = `batch_fake${++seq}`
      const batch: Batch = {
        id,
        created_at: 1_767_225_600 + seq,
        input_file_id: body.input_file_id as string,
        metadata: (meta as Record<string, string> | undefined) ?? null,
        lines,
        plan,
        step: 0,
        status: 'validating',
        output_file_id: null,
        error_file_id: null,
        errors: null,
      }
      setStatus(batch, plan[0]!)
      batches.set(id, batch)
      order.push(id)
      return { status: 200, json: view(batch) }
    }

    if (req.method === 'GET' && path === '/v1/batches') {
      const limit = Number(url.searchParams.get('limit') ?? 20)
      const newestFirst = [...order].reverse()
      const after = url.searchParams.get('after')
      const start = after ? newestFirst.indexOf(after) + 1 : 0
      const page = newestFirst.slice(start, start + limit)
      return {
        status: 200,
        json: {
          object: 'list',
          data: page.map((id) => view(batches.get(id)!)),
          first_id: page[0] ?? null,
          last_id: page.at(-1) ?? null,
          has_more: start + limit < newestFirst.length,
        },
      }
    }

    const one = /^\/v1\/batches\/([^/]+)(\/cancel)?$/.exec(path)
    if (one) {
      const batch = batches.get(one[1]!)
      if (!batch) return openAIError(404, `No batch found with id '${one[1]}'.`, 'invalid_request_error')
      if (req.method === 'POST' && one[2]) {
        if (TERMINAL.has(batch.status))
          return openAIError(
            400,
            `Cannot cancel a batch with status '${batch.status}'.`,
            'invalid_request_error',
          )
        batch.status = 'cancelling'
        batch.plan = ['cancelling', 'cancelled']
        batch.step = 0
        return { status: 200, json: view(batch) }
      }
      if (req.method === 'GET' && !one[2]) {
        if (!TERMINAL.has(batch.status)) {
          batch.step = Math.min(batch.step + 1, batch.plan.length - 1)
          setStatus(batch, batch.plan[batch.step]!)
        }
        return { status: 200, json: view(batch) }
      }
    }

    const content = /^\/v1\/files\/([^/]+)\/content$/.exec(path)
    if (req.method === 'GET' && content) {
      const file = files.get(content[1]!)
      if (!file) return openAIError(404, `No such File object: ${content[1]}`, 'invalid_request_error')
      return { status: 200, text: file.content, headers: { 'content-type': 'application/octet-stream' } }
    }
    return openAIError(404, `Invalid URL (${req.method} ${path})`, 'invalid_request_error')
  }

  const server = await startFakeServer(route)
  return {
    ...server,
    plan: (states) => {
      nextPlan = states.map((s) => (s in WIRE ? WIRE[s as BulkJobState] : s) as Status)
    },
    failWith: (errors) => {
      failErrors = errors
    },
    jobCount: () => batches.size,
    fileUploads: () => uploads,
    vector,
  }
}
