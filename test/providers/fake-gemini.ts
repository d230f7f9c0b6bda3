/**
 * A fake Gemini Developer API speaking the wire format `@google/genai` uses for
 * `models.embedContent`: `POST /v1beta/models/{model}:batchEmbedContents`, key in
 * `x-goog-api-key`, body `{ requests: [{ model, content: { parts: [{ text }] }, taskType,
 * outputDimensionality }] }`, answer `{ embeddings: [{ values }] }`. It validates requests like
 * the real API (at most 100 per call, model path and body model agree, no empty or over-long
 * text) and answers faults with Google's error bodies, `google.rpc.RetryInfo` included.
 */
import {
  type FakeServer,
  type Fault,
  fakeRawVector,
  type RecordedRequest,
  type Reply,
  retryAfterDate,
  startFakeServer,
} from './fake-http.js'

export const GEMINI_KEY = 'test-gemini-key'
/** Longest text the fake accepts, standing in for the model's 2,048-token limit. */
export const GEMINI_FAKE_MAX_CHARS = 8192
const FULL_DIMENSIONS = 3072

/** What the real model does: a unit vector of 3072 values, cut (not renormalized) to the size asked. */
export function geminiVector(text: string, outputDimensionality = FULL_DIMENSIONS): number[] {
  const raw = fakeRawVector(text, FULL_DIMENSIONS)
  const norm = Math.sqrt(raw.reduce((s, v) => s + v * v, 0))
  return raw.slice(0, outputDimensionality).map((v) => v / norm)
}

function googleError(code: number, status: string, message: string, details: unknown[] = []): Reply {
  return { status: code, json: { error: { code, message, status, ...(details.length ? { details } : {}) } } }
}

/** `google.rpc.QuotaFailure` with one violation, as the Gemini API sends it. */
function quotaFailure(quotaId: string, quotaValue: string): Record<string, unknown> {
  return {
    '@type': 'type.googleapis.com/google.rpc.QuotaFailure',
    violations: [
      {
        quotaMetric: 'generativelanguage.googleapis.com/embed_content_free_tier_requests',
        quotaId,
        quotaDimensions: { model: 'gemini-embedding-001', location: 'global' },
        quotaValue,
      },
    ],
  }
}

/** `google.rpc.RetryInfo`: a protobuf Duration in its JSON form, e.g. `"0.25s"`. */
function retryInfo(ms: number): Record<string, unknown> {
  return { '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: `${ms / 1000}s` }
}

function helpLinks(): Record<string, unknown> {
  return {
    '@type': 'type.googleapis.com/google.rpc.Help',
    links: [{ description: 'Learn more', url: 'https://ai.google.dev/gemini-api/docs/rate-limits' }],
  }
}

/** A 429 RESOURCE_EXHAUSTED with the given details. */
function exhausted(details: unknown[]): Reply & { headers?: Record<string, string> } {
  return googleError(
    429,
    'RESOURCE_EXHAUSTED',
    'You exceeded your current quota, please check your plan and billing details.',
    details,
  ) as Reply & { headers?: Record<string, string> }
}

function invalid(message: string): Reply {
  return googleError(400, 'INVALID_ARGUMENT', message, [
    {
      '@type': 'type.googleapis.com/google.rpc.BadRequest',
      fieldViolations: [{ description: message }],
    },
  ])
}

function faultReply(fault: Fault): Reply | undefined {
  switch (fault.kind) {
    case 'rate-limit': {
      // A per-minute quota: RetryInfo in the body (Google's usual place), fractional seconds kept.
      const ms = fault.retryAfterMs ?? 7000
      const details: unknown[] = [
        quotaFailure('EmbedContentRequestsPerMinutePerProjectPerModel-FreeTier', '100'),
        helpLinks(),
      ]
      const via = fault.via ?? 'body'
      if (via === 'body') details.push(retryInfo(ms))
      const reply = exhausted(details)
      if (via === 'header') reply.headers = { 'retry-after': String(ms / 1000) }
      if (via === 'date') reply.headers = { 'retry-after': retryAfterDate(ms) }
      return reply
    }
    case 'quota': {
      // The daily quota: Gemini still sends a RetryInfo of a few seconds (useless until the reset).
      const details: unknown[] = [
        quotaFailure('EmbedContentRequestsPerDayPerProjectPerModel-FreeTier', '1000'),
        helpLinks(),
      ]
      if (fault.retryAfterMs !== undefined) details.push(retryInfo(fault.retryAfterMs))
      return exhausted(details)
    }
    case 'server-error':
      if (fault.status === 502) {
        // Google's front end answers 502 with an HTML page, not JSON.
        return {
          status: 502,
          text: '<!DOCTYPE html><title>Error 502 (Server Error)!!1</title>',
          headers: { 'content-type': 'text/html; charset=UTF-8' },
        }
      }
      return {
        500: googleError(
          500,
          'INTERNAL',
          'An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting',
        ),
        503: googleError(503, 'UNAVAILABLE', 'The model is overloaded. Please try again later.'),
        504: googleError(504, 'DEADLINE_EXCEEDED', 'Deadline expired before operation could complete.'),
      }[fault.status]
    case 'bad-request':
      return invalid('Request contains an invalid argument.')
    case 'unauthenticated':
      return googleError(
        401,
        'UNAUTHENTICATED',
        'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.',
      )
    case 'forbidden':
      return googleError(
        403,
        'PERMISSION_DENIED',
        'Generative Language API has not been used in project 123 before or it is disabled.',
        [
          {
            '@type': 'type.googleapis.com/google.rpc.ErrorInfo',
            reason: 'SERVICE_DISABLED',
            domain: 'googleapis.com',
          },
        ],
      )
    case 'hang':
      return { hang: true }
    case 'reset':
      return { reset: true }
    case 'not-json':
      return { status: 200, text: '<html>captive portal</html>', headers: { 'content-type': 'text/html' } }
    default:
      return undefined // short-response / wrong-dimensions: shape a normal answer below
  }
}

export interface FakeGemini extends FakeServer {
  /** The texts of each batchEmbedContents call, in order. */
  batches(): string[][]
}

export async function startFakeGemini(): Promise<FakeGemini> {
  const route = (req: RecordedRequest, fault: Fault | undefined): Reply => {
    // @google/genai 2.x calls /v1beta/…, 3.x calls /v1/….
    const m = /^\/v1(?:beta)?\/models\/([^/:]+):batchEmbedContents$/.exec(req.url)
    if (req.method !== 'POST' || !m) {
      return googleError(404, 'NOT_FOUND', `Method not found: ${req.method} ${req.url}`)
    }
    const key = req.headers['x-goog-api-key']
    if (key === undefined) {
      return googleError(
        403,
        'PERMISSION_DENIED',
        "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
      )
    }
    if (key !== GEMINI_KEY) {
      return googleError(400, 'INVALID_ARGUMENT', 'API key not valid. Please pass a valid API key.', [
        {
          '@type': 'type.googleapis.com/google.rpc.ErrorInfo',
          reason: 'API_KEY_INVALID',
          domain: 'googleapis.com',
          metadata: { service: 'generativelanguage.googleapis.com' },
        },
      ])
    }
    const early = fault ? faultReply(fault) : undefined
    if (early) return early
    const requests = (req.body as { requests?: unknown } | undefined)?.requests
    if (!Array.isArray(requests) || requests.length === 0)
      return invalid('* BatchEmbedContentsRequest.requests: must not be empty')
    if (requests.length > 100) {
      return invalid('* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch\n')
    }
    const embeddings: { values: number[] }[] = []
    for (const [i, r] of (requests as Record<string, unknown>[]).entries()) {
      if (r.model !== `models/${m[1]}`) {
        return invalid(
          `* BatchEmbedContentsRequest.requests[${i}].model: Model must be the same as the model in the path (models/${m[1]}), got ${String(r.model)}`,
        )
      }
      const parts = (r.content as { parts?: { text?: unknown }[] } | undefined)?.parts
      const text = parts?.[0]?.text
      if (typeof text !== 'string' || text === '') {
        return invalid(
          `* BatchEmbedContentsRequest.requests[${i}].content.parts[0].data: required oneof field 'data' must have one initialized field`,
        )
      }
      if (text.length > GEMINI_FAKE_MAX_CHARS) {
        return invalid(
          `* BatchEmbedContentsRequest.requests[${i}]: input token count exceeds the maximum number of tokens allowed (2048).`,
        )
      }
      const dims = r.outputDimensionality ?? FULL_DIMENSIONS
      if (typeof dims !== 'number' || dims < 1 || dims > FULL_DIMENSIONS) {
        return invalid(
          `* BatchEmbedContentsRequest.requests[${i}].output_dimensionality: must be between 1 and 3072`,
        )
      }
      const values = geminiVector(text, dims)
      if (fault?.kind === 'wrong-dimensions') values.push(0.5)
      embeddings.push({ values })
    }
    if (fault?.kind === 'short-response') embeddings.pop()
    return { status: 200, json: { embeddings } }
  }
  const server = await startFakeServer(route)
  return {
    ...server,
    batches: () =>
      server.requests.map((r) =>
        ((r.body as { requests?: { content: { parts: { text: string }[] } }[] })?.requests ?? []).map(
          (q) => q.content.parts[0]?.text ?? '',
        ),
      ),
  }
}
