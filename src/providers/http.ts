/**
 * Plumbing shared by the remote providers: one deadline per call (timeout + the caller's
 * `AbortSignal`), JSON POST over Node's global `fetch`, mapping of every failure to an
 * `EmbedderError` (status, retryable, retryAfterMs), and splitting a call into batch-sized
 * chunks. Gemini goes through its SDK but reuses the deadline, the error mapping and the splitting.
 *
 * Retry policy, as the queue expects it:
 * - 408, 429 and 5xx other than 501/505: retryable (with the provider's retry hint, if any);
 * - every other 4xx: not retryable, so the queue isolates the input that causes it;
 * - 401/403: not retryable, and `err.isAuthError` tells the queue to pause;
 * - timeouts, connection refused/reset and other network failures: retryable, `status` undefined;
 * - an abort by the caller's signal: retryable (the texts were never the problem), `cause` = the reason.
 */
import { EmbedderError } from '../errors.js'
import { describe } from './normalize.js'
import { googleQuotaIds, isDailyQuotaId, nextPacificMidnight, openAIResetFrom } from './quota.js'

/** What every remote call needs to know to bound itself. */
export interface CallContext {
  /** Prefix of every error message, e.g. `openai`. */
  provider: string
  /** Upper bound of one HTTP call, response body included. */
  timeoutMs: number
  /** The caller's signal; aborting it rejects the call at once. */
  signal?: AbortSignal | undefined
}

/** The largest delay `setTimeout` accepts (about 24.8 days). */
export const MAX_TIMEOUT_MS = 2_147_483_647

/** The error a caller's abort turns into: retryable, with the abort reason as `cause`. */
export function abortedError(provider: string, reason: unknown): EmbedderError {
  return new EmbedderError(`${provider}: the call was aborted by the caller`, {
    retryable: true,
    cause: reason,
  })
}

/**
 * Runs `run` with a signal that fires when `timeoutMs` elapses or the caller aborts, and rejects
 * as soon as either happens even if `run` ignores its signal. Failures of `run` go through
 * `mapError` (by default {@link errorFromThrown}).
 */
export async function withDeadline<T>(
  ctx: CallContext,
  run: (signal: AbortSignal) => Promise<T>,
  mapError: (err: unknown) => EmbedderError = (err) => errorFromThrown(ctx.provider, err),
): Promise<T> {
  const { provider, timeoutMs, signal: caller } = ctx
  if (caller?.aborted) throw abortedError(provider, caller.reason)

  const controller = new AbortController()
  let interrupt!: (err: EmbedderError) => void
  const interrupted = new Promise<never>((_, reject) => {
    interrupt = reject
  })
  const stop = (err: EmbedderError): void => {
    controller.abort(err)
    interrupt(err)
  }
  const timer = setTimeout(() => {
    stop(
      new EmbedderError(`${provider}: no response within ${timeoutMs} ms (timeoutMs)`, {
        retryable: true,
        cause: new DOMException('The call timed out', 'TimeoutError'),
      }),
    )
  }, timeoutMs)
  const onAbort = (): void => stop(abortedError(provider, caller?.reason))
  caller?.addEventListener('abort', onAbort, { once: true })

  const work = (async () => {
    try {
      return await run(controller.signal)
    } catch (err) {
      // Once aborted, whatever `run` throws is a consequence of the abort: report the abort.
      if (controller.signal.aborted) throw controller.signal.reason
      throw mapError(err)
    }
  })()
  // Whichever promise loses the race below must not surface as an unhandled rejection.
  work.catch(() => {})
  interrupted.catch(() => {})
  try {
    return await Promise.race([work, interrupted])
  } finally {
    clearTimeout(timer)
    caller?.removeEventListener('abort', onAbort)
  }
}

/** Error codes (Node and undici) of failures where the same request can succeed later. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
  'ENOTFOUND',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
])

/** The first network error code found along `err`'s cause chain, if any. */
export function networkErrorCode(err: unknown): string | undefined {
  let current: unknown = err
  for (let depth = 0; depth < 5 && typeof current === 'object' && current !== null; depth++) {
    const code = (current as { code?: unknown }).code
    if (typeof code === 'string' && NETWORK_CODES.has(code)) return code
    current = (current as { cause?: unknown }).cause
  }
  return undefined
}

/**
 * Maps a thrown value that is not an HTTP error response: network failures are retryable
 * with `status` undefined; anything else (an invalid header value, a bug) is not.
 */
export function errorFromThrown(provider: string, err: unknown): EmbedderError {
  if (err instanceof EmbedderError) return err
  const code = networkErrorCode(err)
  // undici reports every network failure as `TypeError: fetch failed` (or `terminated` when the
  // connection dies while the body streams), with the system error as `cause`.
  const fetchFailure =
    err instanceof TypeError && (err.message === 'fetch failed' || err.message === 'terminated')
  const message = err instanceof Error ? err.message : String(err)
  if (code !== undefined || fetchFailure) {
    const detail = code ?? causeMessage(err) ?? message
    return new EmbedderError(`${provider}: network error (${detail})`, { retryable: true, cause: err })
  }
  return new EmbedderError(`${provider}: ${message}`, { retryable: false, cause: err })
}

function causeMessage(err: unknown): string | undefined {
  const cause = (err as { cause?: unknown } | null)?.cause
  return cause instanceof Error ? cause.message : undefined
}

/** Whether an HTTP status means "the same request can succeed later". */
export function isRetryableStatus(status: number): boolean {
  if (status === 408 || status === 429) return true
  return status >= 500 && status <= 599 && status !== 501 && status !== 505
}

/**
 * Parses a `Retry-After` header: delay-seconds (`"2"`, `"1.5"`) or an HTTP date. Returns
 * milliseconds, or undefined when absent or unreadable.
 */
export function parseRetryAfter(value: string | null | undefined, now = Date.now()): number | undefined {
  if (value == null) return undefined
  const text = value.trim()
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000)
  if (!/[a-z]/i.test(text)) return undefined
  const at = Date.parse(text)
  return Number.isNaN(at) ? undefined : Math.max(0, at - now)
}

/**
 * Parses a protobuf `Duration` as JSON encodes it (`"7s"`, `"0.250s"`) or as an object
 * (`{ seconds, nanos }`). Returns milliseconds, or undefined.
 */
export function parseDuration(value: unknown): number | undefined {
  if (typeof value === 'string') {
    const m = /^\s*(\d+(?:\.\d+)?)s\s*$/.exec(value)
    return m ? Math.round(Number(m[1]) * 1000) : undefined
  }
  if (typeof value === 'object' && value !== null) {
    const { seconds, nanos } = value as { seconds?: unknown; nanos?: unknown }
    const s = Number(seconds ?? 0)
    const n = Number(nanos ?? 0)
    if (Number.isFinite(s) && Number.isFinite(n) && (seconds !== undefined || nanos !== undefined)) {
      return Math.max(0, Math.round(s * 1000 + n / 1e6))
    }
  }
  return undefined
}

/** `google.rpc.RetryInfo.retryDelay` from a Google-style error body, in milliseconds. */
export function googleRetryDelay(body: unknown): number | undefined {
  for (const detail of googleDetails(body)) {
    const type = detail['@type']
    if (typeof type === 'string' && type.endsWith('google.rpc.RetryInfo')) {
      const ms = parseDuration(detail.retryDelay)
      if (ms !== undefined) return ms
    }
  }
  return undefined
}

/** The `error.details` entries of a Google-style error body (`{ error: { details: [...] } }`). */
export function googleDetails(body: unknown): Record<string, unknown>[] {
  const details = errorObject(body)?.details
  if (!Array.isArray(details)) return []
  return details.filter((d): d is Record<string, unknown> => typeof d === 'object' && d !== null)
}

/**
 * The wait a failed response asks for, in milliseconds: the body's `google.rpc.RetryInfo`
 * first, then the `retry-after-ms` header (OpenAI), then `Retry-After`.
 */
export function retryAfterFrom(body: unknown, headers?: Headers): number | undefined {
  const fromBody = googleRetryDelay(body)
  if (fromBody !== undefined) return fromBody
  if (!headers) return undefined
  const ms = headers.get('retry-after-ms')
  if (ms !== null && /^\s*\d+(\.\d+)?\s*$/.test(ms)) return Math.round(Number(ms))
  return parseRetryAfter(headers.get('retry-after'))
}

function errorObject(body: unknown): Record<string, unknown> | undefined {
  const error = (body as { error?: unknown } | null | undefined)?.error
  return typeof error === 'object' && error !== null ? (error as Record<string, unknown>) : undefined
}

/**
 * The vendor's own words from an error body, whichever dialect it speaks: Google and OpenAI
 * (`{error:{message}}`), Ollama and TEI (`{error:"..."}`), vLLM (`{message}`), FastAPI (`{detail}`).
 */
export function vendorMessage(body: unknown, text?: string): string | undefined {
  const error = errorObject(body)
  const b = body as { error?: unknown; message?: unknown; detail?: unknown } | null | undefined
  const said = [error?.message, b?.error, b?.message, b?.detail, text].find(
    (m): m is string => typeof m === 'string' && m.trim() !== '',
  )
  // An HTML error page from a gateway can be long; the start says enough.
  return said === undefined ? undefined : said.trim().slice(0, 500)
}

/** A short machine label for the failure: Google's `status`, else OpenAI's `code` or `type`. */
export function vendorLabel(body: unknown): string | undefined {
  const error = errorObject(body)
  for (const field of ['status', 'code', 'type'] as const) {
    const v = error?.[field]
    if (typeof v === 'string' && v !== '') return v
  }
  return undefined
}

/** Everything known about a non-2xx response. */
export interface HttpFailure {
  provider: string
  /** The HTTP status the error reports (see `note` when it differs from the wire status). */
  status: number
  /** The parsed JSON body, if it was JSON. */
  body?: unknown
  /** The raw body text, used when the body carries no readable message. */
  text?: string
  headers?: Headers
  /** Appended to the label, e.g. why the status was reinterpreted. */
  note?: string
  cause?: unknown
}

/** Maps a non-2xx response to an `EmbedderError` following the policy in this module's header. */
export function errorFromHttp(failure: HttpFailure): EmbedderError {
  const { provider, status, body, text, headers, note } = failure
  const retryable = isRetryableStatus(status)
  const label = [vendorLabel(body), note].filter(Boolean).join(', ')
  const said = vendorMessage(body, text) ?? 'no message'
  let message = `${provider}: HTTP ${status}${label ? ` (${label})` : ''}: ${said}`
  if (status === 401 || status === 403) {
    message += ' — authentication failed: check the API key and its permissions'
  }
  const limit = rateLimitFrom(status, body, headers)
  return new EmbedderError(message, {
    status,
    retryable,
    retryAfterMs: limit ? limit.retryAfterMs : retryable ? retryAfterFrom(body, headers) : undefined,
    ...(limit ? { rateLimited: true, quotaExhausted: limit.quotaExhausted, quotaId: limit.quotaId } : {}),
    cause: failure.cause,
  })
}

/** What a rate-limited response says: is it a quota, which one, and how long to wait. */
export interface RateLimitInfo {
  /** A quota that resets in hours (Google `PerDay`, OpenAI `insufficient_quota`). */
  quotaExhausted: boolean
  quotaId?: string
  /** The wait: a daily quota's reset, else the server's delay; undefined when none was given. */
  retryAfterMs?: number
}

/**
 * Reads a failed response for a rate limit: HTTP 429 or Google's `RESOURCE_EXHAUSTED`.
 * Returns undefined for any other failure. The wait comes from (first found): a daily
 * quota's reset (midnight Pacific), `google.rpc.RetryInfo`, `retry-after-ms`, `Retry-After`
 * (seconds or HTTP date), then OpenAI's `x-ratelimit-reset-*`.
 */
export function rateLimitFrom(
  status: number,
  body: unknown,
  headers?: Headers,
  now: number = Date.now(),
): RateLimitInfo | undefined {
  if (status !== 429 && vendorLabel(body) !== 'RESOURCE_EXHAUSTED') return undefined
  const delay = retryAfterFrom(body, headers) ?? openAIResetFrom(headers)
  const quotaIds = googleQuotaIds(googleDetails(body))
  const daily = quotaIds.find(isDailyQuotaId)
  if (daily !== undefined) {
    return {
      quotaExhausted: true,
      quotaId: daily,
      retryAfterMs: Math.max(delay ?? 0, nextPacificMidnight(now) - now),
    }
  }
  const error = errorObject(body)
  const billing = error?.code === 'insufficient_quota' || error?.type === 'insufficient_quota'
  return {
    quotaExhausted: billing,
    ...(billing ? { quotaId: 'insufficient_quota' } : quotaIds[0] ? { quotaId: quotaIds[0] } : {}),
    ...(delay !== undefined ? { retryAfterMs: delay } : {}),
  }
}

/** Parses a response body that should be JSON; returns undefined when it is not. */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

/** A JSON POST to `url` within the call's deadline. Resolves with the parsed 2xx body. */
export async function postJson(
  ctx: CallContext,
  url: string,
  headers: Record<string, string>,
  body: unknown,
): Promise<unknown> {
  return withDeadline(ctx, async (signal) => {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json', ...headers },
      body: JSON.stringify(body),
      signal,
    })
    const text = await res.text()
    const json = parseJson(text)
    if (!res.ok)
      throw errorFromHttp({
        provider: ctx.provider,
        status: res.status,
        body: json,
        text,
        headers: res.headers,
      })
    if (json === undefined) {
      // A 2xx that is not JSON comes from something in between (a proxy, a captive portal),
      // not from the texts, so it is worth another try later.
      throw new EmbedderError(
        `${ctx.provider}: HTTP ${res.status} with a body that is not JSON: ${describe(text)}`,
        { retryable: true },
      )
    }
    return json
  })
}

/** Whether a text has nothing to embed; such texts get a zero vector without an API call. */
export function isBlank(text: string): boolean {
  return text.trim() === ''
}

/** How `embedInChunks` cuts a call into API requests. */
export interface ChunkPlan {
  /** Length of every vector (blank texts get this many zeros). */
  dimensions: number
  /** Texts per request. */
  maxBatchSize: number
  /** Characters per request, summed over its texts (after `prepare`); a longer text goes alone. */
  maxChunkChars?: number
  /** Applied to each text before sending, e.g. truncation. */
  prepare?: (text: string) => string
}

/**
 * Embeds `texts` in order, in requests of at most `maxBatchSize` texts (and `maxChunkChars`
 * characters), one request at a time (the queue decides concurrency). Blank texts are not sent:
 * their vector is all zeros, since most APIs reject empty input. A non-string text is a caller
 * bug and fails without a request.
 */
export async function embedInChunks(
  provider: string,
  texts: readonly string[],
  plan: ChunkPlan,
  signal: AbortSignal | undefined,
  call: (chunk: string[]) => Promise<Float32Array[]>,
): Promise<Float32Array[]> {
  if (!Array.isArray(texts)) {
    throw new EmbedderError(`${provider}: embed() expects an array of strings, received ${describe(texts)}`, {
      retryable: false,
    })
  }
  const { dimensions, maxBatchSize, maxChunkChars = Number.POSITIVE_INFINITY, prepare } = plan
  const out = new Array<Float32Array>(texts.length)
  const chunks: { indices: number[]; texts: string[] }[] = []
  let current: { indices: number[]; texts: string[] } | undefined
  let chars = 0
  for (let i = 0; i < texts.length; i++) {
    const text: unknown = texts[i]
    if (typeof text !== 'string') {
      throw new EmbedderError(`${provider}: text ${i} is not a string (${describe(text)})`, {
        retryable: false,
      })
    }
    if (isBlank(text)) {
      out[i] = new Float32Array(dimensions)
      continue
    }
    const sent = prepare ? prepare(text) : text
    if (
      !current ||
      current.texts.length >= maxBatchSize ||
      (chars + sent.length > maxChunkChars && chars > 0)
    ) {
      current = { indices: [], texts: [] }
      chunks.push(current)
      chars = 0
    }
    current.indices.push(i)
    current.texts.push(sent)
    chars += sent.length
  }
  for (const chunk of chunks) {
    if (signal?.aborted) throw abortedError(provider, signal.reason)
    const vectors = await call(chunk.texts)
    for (let k = 0; k < chunk.indices.length; k++) out[chunk.indices[k]!] = vectors[k]!
  }
  return out
}

/**
 * Cuts `text` to at most `maxChars` UTF-16 code units without splitting a surrogate pair,
 * so an over-long input is embedded by its beginning instead of being rejected.
 */
export function truncateText(text: string, maxChars: number): string {
  if (text.length <= maxChars) return text
  let end = maxChars
  const last = text.charCodeAt(end - 1)
  if (last >= 0xd800 && last <= 0xdbff) end -= 1
  return text.slice(0, end)
}
