/**
 * A fake OpenAI-compatible `/v1/embeddings`: `Authorization: Bearer <key>`, body `{ model,
 * input, encoding_format, dimensions? }`, answer `{ object: 'list', data: [{ object:
 * 'embedding', index, embedding }], model, usage }`, with the `data` items deliberately
 * reversed (clients must order by `index`). Validates like the real API (at most 2,048 inputs,
 * no empty string, context length, `dimensions` only for models that support it) and answers
 * faults with OpenAI's error bodies and `retry-after-ms` / `retry-after` headers.
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

export const OPENAI_KEY = 'sk-test-openai-key'
/** Longest text the fake accepts, standing in for the 8,192-token context. */
export const OPENAI_FAKE_MAX_CHARS = 8192 * 4
export const OPENAI_FAKE_MAX_INPUTS = 2048
/** OpenAI's cap on the tokens of all inputs of one request (the fake counts 4 characters a token). */
export const OPENAI_FAKE_MAX_REQUEST_TOKENS = 300_000

/** Native sizes of the models the fake knows. */
const MODELS: Record<string, { dimensions: number; shortenable: boolean }> = {
  'text-embedding-3-small': { dimensions: 1536, shortenable: true },
  'text-embedding-3-large': { dimensions: 3072, shortenable: true },
  'text-embedding-ada-002': { dimensions: 1536, shortenable: false },
}

/** The fake model's (deliberately not normalized) vector, as a self-hosted server might return it. */
export function openAIVector(text: string, dimensions: number): number[] {
  return fakeRawVector(text, dimensions).map((v) => v * 3)
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

/** A duration as OpenAI's reset headers write it: `"20ms"`, `"1.5s"`, `"6m0s"`. */
export function goDuration(ms: number): string {
  if (ms < 1000) return `${ms}ms`
  const m = Math.floor(ms / 60_000)
  const s = (ms % 60_000) / 1000
  return m > 0 ? `${m}m${s}s` : `${s}s`
}

function faultReply(fault: Fault): Reply | undefined {
  switch (fault.kind) {
    case 'rate-limit': {
      const ms = fault.retryAfterMs ?? 1500
      const via = fault.via ?? 'header'
      if (via === 'body') {
        return openAIError(
          429,
          `Rate limit reached for text-embedding-3-small in organization org-x on requests per min (RPM): Limit 3000, Used 3000, Requested 1. Please try again in ${ms}ms.`,
          'requests',
          'rate_limit_exceeded',
        )
      }
      // OpenAI sends its x-ratelimit-* headers with every answer; on a 429 the empty bucket
      // says 0 remaining, and its reset is the time until it is full again.
      const buckets: Record<string, string> = {
        'x-ratelimit-limit-requests': '3000',
        'x-ratelimit-limit-tokens': '1000000',
        'x-ratelimit-remaining-requests': '2999',
        'x-ratelimit-remaining-tokens': '0',
        'x-ratelimit-reset-requests': '20ms',
        'x-ratelimit-reset-tokens': goDuration(ms),
      }
      const headers: Record<string, string> =
        via === 'header'
          ? { ...buckets, 'retry-after-ms': String(ms), 'retry-after': String(Math.ceil(ms / 1000)) }
          : via === 'date'
            ? { 'retry-after': retryAfterDate(ms) }
            : via === 'reset-headers'
              ? buckets
              : {}
      return openAIError(
        429,
        'Rate limit reached for text-embedding-3-small in organization org-x on tokens per min (TPM).',
        'tokens',
        'rate_limit_exceeded',
        headers,
      )
    }
    case 'quota':
      // Out of credit: a 429 too, but nothing will change until someone pays.
      return openAIError(
        429,
        'You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.',
        'insufficient_quota',
        'insufficient_quota',
      )
    case 'server-error':
      if (fault.status === 502 || fault.status === 504) {
        return {
          status: fault.status,
          text: `<html><head><title>${fault.status} Bad Gateway</title></head><body><center><h1>${fault.status}</h1></center><hr><center>cloudflare</center></body></html>`,
          headers: { 'content-type': 'text/html' },
        }
      }
      return fault.status === 503
        ? openAIError(503, 'The engine is currently overloaded, please try again later', 'server_error')
        : openAIError(
            500,
            'The server had an error while processing your request. Sorry about that!',
            'server_error',
          )
    case 'bad-request':
      return openAIError(
        400,
        "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.",
        'invalid_request_error',
      )
    case 'unauthenticated':
      return openAIError(
        401,
        'Incorrect API key provided: sk-test-***-key. You can find your API key at https://platform.openai.com/account/api-keys.',
        'invalid_request_error',
        'invalid_api_key',
      )
    case 'forbidden':
      return openAIError(
        403,
        'Country, region, or territory not supported',
        'request_forbidden',
        'unsupported_country_region_territory',
      )
    case 'hang':
      return { hang: true }
    case 'reset':
      return { reset: true }
    case 'not-json':
      return { status: 200, text: '<html>captive portal</html>', headers: { 'content-type': 'text/html' } }
    default:
      return undefined
  }
}

export interface FakeOpenAIOptions {
  /** Require `Authorization: Bearer OPENAI_KEY` (a local server would not). @default true */
  requireKey?: boolean
  /** Return `data` in reverse order. @default true */
  shuffle?: boolean
  /** Omit `index` from the items (some compatible servers). @default false */
  omitIndex?: boolean
}

export interface FakeOpenAI extends FakeServer {
  /** The `input` of each call, in order. */
  batches(): string[][]
}

export async function startFakeOpenAI(opts: FakeOpenAIOptions = {}): Promise<FakeOpenAI> {
  const { requireKey = true, shuffle = true, omitIndex = false } = opts
  const route = (req: RecordedRequest, fault: Fault | undefined): Reply => {
    if (req.method !== 'POST' || req.url !== '/v1/embeddings') {
      return openAIError(404, `Invalid URL (${req.method} ${req.url})`, 'invalid_request_error')
    }
    if (requireKey && req.headers.authorization !== `Bearer ${OPENAI_KEY}`) {
      return openAIError(
        401,
        "You didn't provide an API key, or it is incorrect.",
        'invalid_request_error',
        'invalid_api_key',
      )
    }
    const early = fault ? faultReply(fault) : undefined
    if (early) return early
    const body = req.body as
      | { model?: unknown; input?: unknown; encoding_format?: unknown; dimensions?: unknown }
      | undefined
    const model = typeof body?.model === 'string' ? MODELS[body.model] : undefined
    if (!model)
      return openAIError(
        404,
        `The model \`${String(body?.model)}\` does not exist or you do not have access to it.`,
        'invalid_request_error',
        'model_not_found',
      )
    const input = typeof body?.input === 'string' ? [body.input] : body?.input
    if (
      !Array.isArray(input) ||
      input.length === 0 ||
      input.length > OPENAI_FAKE_MAX_INPUTS ||
      input.some((t) => typeof t !== 'string' || t === '')
    ) {
      return openAIError(
        400,
        "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.",
        'invalid_request_error',
      )
    }
    if (
      body?.encoding_format !== undefined &&
      body.encoding_format !== 'float' &&
      body.encoding_format !== 'base64'
    ) {
      return openAIError(
        400,
        `'${String(body.encoding_format)}' is not one of ['float', 'base64'] - 'encoding_format'`,
        'invalid_request_error',
      )
    }
    let dimensions = model.dimensions
    if (body?.dimensions !== undefined) {
      if (!model.shortenable)
        return openAIError(400, 'This model does not support specifying dimensions.', 'invalid_request_error')
      if (typeof body.dimensions !== 'number' || body.dimensions < 1 || body.dimensions > model.dimensions) {
        return openAIError(
          400,
          `Invalid value for 'dimensions' = ${String(body.dimensions)}.`,
          'invalid_request_error',
        )
      }
      dimensions = body.dimensions
    }
    for (const text of input as string[]) {
      if (text.length > OPENAI_FAKE_MAX_CHARS) {
        return openAIError(
          400,
          `This model's maximum context length is 8192 tokens, however you requested ${Math.ceil(text.length / 4)} tokens (${Math.ceil(text.length / 4)} in your prompt; 0 for the completion). Please reduce your prompt; or completion length.`,
          'invalid_request_error',
        )
      }
    }
    const tokens = (input as string[]).reduce((n, t) => n + Math.ceil(t.length / 4), 0)
    if (tokens > OPENAI_FAKE_MAX_REQUEST_TOKENS) {
      return openAIError(
        400,
        `Requested ${tokens} tokens, max ${OPENAI_FAKE_MAX_REQUEST_TOKENS} tokens per request`,
        'max_tokens_per_request',
        'max_tokens_per_request',
      )
    }
    let data = (input as string[]).map((text, index) => {
      const embedding = openAIVector(text, dimensions)
      if (fault?.kind === 'wrong-dimensions') embedding.push(0.5)
      return omitIndex ? { object: 'embedding', embedding } : { object: 'embedding', index, embedding }
    })
    if (fault?.kind === 'short-response') data = data.slice(1)
    // Reversed: any client that trusts the array order instead of `index` gets every vector wrong.
    if (shuffle) data.reverse()
    return {
      status: 200,
      json: {
        object: 'list',
        data,
        model: body?.model,
        usage: { prompt_tokens: tokens, total_tokens: tokens },
      },
    }
  }
  const server = await startFakeServer(route)
  return {
    ...server,
    batches: () => server.requests.map((r) => ((r.body as { input?: string[] })?.input ?? []).slice()),
  }
}
