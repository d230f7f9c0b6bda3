/**
 * Plumbing shared by the batch clients (`gemini-batch.ts`, `openai-batch.ts`): a bounded HTTP
 * call of any method that maps failures with `http.ts`'s policy, a streaming JSONL reader for
 * result files (so a file of tens of thousands of vectors is never one giant string), the
 * checks of `submit`'s input, and redaction of the API key from everything we throw.
 */
import {
  BULK_MAX_ID_LENGTH,
  BULK_MAX_LABEL_LENGTH,
  type BulkCallOptions,
  type BulkItemResult,
  type BulkRequest,
} from '../bulk.js'
import { EmbedderError } from '../errors.js'
import {
  type CallContext,
  errorFromHttp,
  type HttpFailure,
  isBlank,
  parseJson,
  withDeadline,
} from './http.js'
import { checkVectors, describe } from './normalize.js'

/** What a successful call returns. */
export interface HttpReply {
  status: number
  json: unknown
  headers: Headers
}

/** How one call is made. */
export interface HttpCall {
  method: 'GET' | 'POST'
  url: string
  headers: Record<string, string>
  body?: string | Uint8Array | FormData
  /** Reinterprets a failure before it is mapped (e.g. Gemini's bad key sent as 400). */
  adjust?: (failure: HttpFailure) => HttpFailure
}

/**
 * One HTTP call within the context's deadline; resolves with the parsed JSON body of a 2xx
 * (undefined for an empty body) and its headers. Non-2xx answers become `EmbedderError`s.
 */
export async function callJson(ctx: CallContext, call: HttpCall): Promise<HttpReply> {
  return withDeadline(ctx, async (signal) => {
    const res = await fetch(call.url, {
      method: call.method,
      headers: { accept: 'application/json', ...call.headers },
      ...(call.body === undefined ? {} : { body: call.body }),
      signal,
    })
    const text = await res.text()
    const json = text === '' ? undefined : parseJson(text)
    if (!res.ok) throw failureError(ctx.provider, res, json, text, call.adjust)
    if (text !== '' && json === undefined) {
      throw new EmbedderError(
        `${ctx.provider}: HTTP ${res.status} with a body that is not JSON: ${describe(text)}`,
        { retryable: true },
      )
    }
    return { status: res.status, json, headers: res.headers }
  })
}

function failureError(
  provider: string,
  res: Response,
  json: unknown,
  text: string,
  adjust: HttpCall['adjust'],
): EmbedderError {
  const failure: HttpFailure = { provider, status: res.status, body: json, text, headers: res.headers }
  return errorFromHttp(adjust ? adjust(failure) : failure)
}

/**
 * Streams a JSONL body from `url` and hands each parsed line to `onLine`, within the context's
 * deadline (use a generous one: result files are large). Blank lines are skipped; a line that
 * is not JSON is reported to `onLine` as undefined so the caller can decide.
 */
export async function readJsonLines(
  ctx: CallContext,
  call: Omit<HttpCall, 'method' | 'body'>,
  onLine: (line: unknown) => void,
): Promise<void> {
  await withDeadline(ctx, async (signal) => {
    const res = await fetch(call.url, { method: 'GET', headers: call.headers, signal })
    if (!res.ok) {
      const text = await res.text()
      throw failureError(ctx.provider, res, parseJson(text), text, call.adjust)
    }
    if (!res.body) return
    const decoder = new TextDecoder()
    let rest = ''
    const emit = (line: string): void => {
      if (line.trim() !== '') onLine(parseJson(line))
    }
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      rest += decoder.decode(chunk, { stream: true })
      let newline = rest.indexOf('\n')
      while (newline !== -1) {
        emit(rest.slice(0, newline))
        rest = rest.slice(newline + 1)
        newline = rest.indexOf('\n')
      }
    }
    emit(rest + decoder.decode())
  })
}

/** Rejects `submit` input that no provider should see, before any request is made. */
export function checkSubmit(
  provider: string,
  requests: unknown,
  label: unknown,
  maxRequests: number,
): asserts requests is readonly BulkRequest[] {
  const refuse = (message: string): never => {
    throw new EmbedderError(`${provider}: bulk submit: ${message}`, { retryable: false })
  }
  if (typeof label !== 'string' || label === '' || label.length > BULK_MAX_LABEL_LENGTH) {
    refuse(
      `\`label\` must be a string of 1 to ${BULK_MAX_LABEL_LENGTH} characters, received ${describe(label)}`,
    )
  }
  if (!/^[\x20-\x7e]+$/.test(label as string)) refuse('`label` must be printable ASCII')
  if (!Array.isArray(requests) || requests.length === 0) {
    refuse(`expects a non-empty array of requests, received ${describe(requests)}`)
  }
  const list = requests as unknown[]
  if (list.length > maxRequests) refuse(`${list.length} requests exceed the ${maxRequests} a job may hold`)
  const seen = new Set<string>()
  for (let i = 0; i < list.length; i++) {
    const r = list[i] as { id?: unknown; text?: unknown } | null
    const id = r?.id
    if (typeof id !== 'string' || id === '' || id.length > BULK_MAX_ID_LENGTH) {
      refuse(`request ${i} has an invalid id ${describe(id)} (1 to ${BULK_MAX_ID_LENGTH} characters)`)
    }
    if (seen.has(id as string)) refuse(`request id ${JSON.stringify(id)} appears twice`)
    seen.add(id as string)
    if (typeof r?.text !== 'string')
      refuse(`request ${JSON.stringify(id)} has no text (${describe(r?.text)})`)
    if (isBlank(r?.text as string)) refuse(`request ${JSON.stringify(id)} has a blank text`)
  }
}

/** Rejects a job id that is not one the provider hands out (it becomes part of a URL path). */
export function checkJobId(provider: string, jobId: unknown, pattern: RegExp): string {
  if (typeof jobId !== 'string' || !pattern.test(jobId)) {
    throw new EmbedderError(`${provider}: not a batch job id: ${describe(jobId)}`, { retryable: false })
  }
  return jobId
}

/** Throws unless `opts.signal` is an `AbortSignal` or absent. */
export function callSignal(provider: string, opts: BulkCallOptions | undefined): AbortSignal | undefined {
  const signal = opts?.signal
  if (signal === undefined || signal instanceof AbortSignal) return signal
  throw new TypeError(`${provider}: option \`signal\` must be an AbortSignal, received ${describe(signal)}`)
}

/** A vector of one result line, checked on its own so one bad vector fails only its request. */
export function itemVector(
  provider: string,
  id: string,
  values: unknown,
  dimensions: number,
  normalize: boolean,
): BulkItemResult {
  try {
    const [vector] = checkVectors(provider, [values], 1, dimensions, normalize)
    return { id, vector: vector! }
  } catch (err) {
    return { id, error: err as EmbedderError }
  }
}

/**
 * Returns a function that rethrows any error with `secret` cut out of its message (a server may
 * echo the key back, e.g. "Incorrect API key provided: sk-…"). Non-`EmbedderError`s are wrapped.
 */
export function redactor(provider: string, secret: string | undefined): (err: unknown) => EmbedderError {
  return (err) => {
    const e =
      err instanceof EmbedderError
        ? err
        : new EmbedderError(`${provider}: ${err instanceof Error ? err.message : String(err)}`, {
            retryable: false,
            cause: err,
          })
    const message = redactText(e.message, secret)
    const causeLeaks =
      secret !== undefined &&
      secret !== '' &&
      e.cause !== undefined &&
      describeCause(e.cause).includes(secret)
    if (message === e.message && !causeLeaks) return e
    return new EmbedderError(message, {
      ...(e.status === undefined ? {} : { status: e.status }),
      retryable: e.retryable,
      ...(e.retryAfterMs === undefined ? {} : { retryAfterMs: e.retryAfterMs }),
      configuration: e.configuration,
      // A cause that holds the key is dropped rather than rewritten: it may be any object.
      ...(causeLeaks || e.cause === undefined ? {} : { cause: e.cause }),
    })
  }
}

function describeCause(cause: unknown): string {
  if (cause instanceof Error) return `${cause.message} ${String((cause as { cause?: unknown }).cause ?? '')}`
  return String(cause)
}

/** The same text with `secret` cut out (for per-item error messages). */
export function redactText(text: string, secret: string | undefined): string {
  return secret === undefined || secret === '' ? text : text.split(secret).join('[redacted]')
}

/** Throws unless `value` is `{ onlinePerMTokens, bulkPerMTokens }` of non-negative numbers, or undefined. */
export function checkPricing(
  factory: string,
  value: unknown,
): { onlinePerMTokens: number; bulkPerMTokens: number } | undefined {
  if (value === undefined) return undefined
  const p = value as { onlinePerMTokens?: unknown; bulkPerMTokens?: unknown } | null
  const ok = (n: unknown): n is number => typeof n === 'number' && Number.isFinite(n) && n >= 0
  if (!ok(p?.onlinePerMTokens) || !ok(p?.bulkPerMTokens)) {
    throw new TypeError(
      `${factory}: option \`pricing\` must be { onlinePerMTokens, bulkPerMTokens } in USD, received ${describe(value)}`,
    )
  }
  return { onlinePerMTokens: p.onlinePerMTokens, bulkPerMTokens: p.bulkPerMTokens }
}

/** Parses an RFC 3339 timestamp or Unix seconds into epoch milliseconds. */
export function toEpochMs(value: unknown): number | undefined {
  if (typeof value === 'number' && Number.isFinite(value)) return value * 1000
  if (typeof value === 'string') {
    const ms = Date.parse(value)
    return Number.isNaN(ms) ? undefined : ms
  }
  return undefined
}

/** A non-negative count from a JSON number or an int64 string (how protobuf JSON writes int64). */
export function toCount(value: unknown): number {
  const n = typeof value === 'string' ? Number(value) : value
  return typeof n === 'number' && Number.isFinite(n) && n >= 0 ? Math.floor(n) : 0
}
