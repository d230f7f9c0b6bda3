/**
 * A fake Ollama `/api/embed`: body `{ model, input, truncate, dimensions?, keep_alive? }`,
 * answer `{ model, embeddings: [[...]], total_duration, load_duration, prompt_eval_count }`,
 * errors `{ error: "..." }`. Like Ollama it knows only pulled models (404 otherwise), cuts
 * over-long inputs when `truncate` is true (400 when false), shortens to `dimensions` and
 * normalizes. Auth and rate-limit faults stand for a proxy in front of Ollama.
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

/** The models "pulled" on the fake, with their native sizes. */
export const OLLAMA_MODELS: Record<string, number> = { 'nomic-embed-text': 768, 'all-minilm': 384 }
/** Context of the fake models, in characters (standing in for 2,048 tokens). */
export const OLLAMA_FAKE_CONTEXT_CHARS = 8192

/** What Ollama returns: the model's vector, cut to `dimensions` if asked, then normalized. */
export function ollamaVector(text: string, native: number, dimensions = native): number[] {
  const raw = fakeRawVector(text, native).slice(0, dimensions)
  const norm = Math.sqrt(raw.reduce((s, v) => s + v * v, 0))
  return raw.map((v) => v / norm)
}

const error = (status: number, message: string, headers?: Record<string, string>): Reply => ({
  status,
  json: { error: message },
  ...(headers ? { headers } : {}),
})

function faultReply(fault: Fault): Reply | undefined {
  switch (fault.kind) {
    case 'rate-limit': {
      // A proxy in front of Ollama: Retry-After in seconds (or as an HTTP date), or nothing.
      const ms = fault.retryAfterMs ?? 2000
      const via = fault.via ?? 'header'
      if (via === 'none' || via === 'body' || via === 'reset-headers') return error(429, 'too many requests')
      return error(429, 'too many requests', {
        'retry-after': via === 'date' ? retryAfterDate(ms) : String(ms / 1000),
      })
    }
    case 'quota':
      // A metering proxy whose daily allowance is spent: a Retry-After of hours.
      return error(429, 'daily token allowance exhausted', {
        'retry-after': String(Math.round((fault.retryAfterMs ?? 6 * 3_600_000) / 1000)),
      })
    case 'server-error':
      if (fault.status === 503)
        return error(503, 'server busy, please try again.  maximum pending requests exceeded')
      if (fault.status === 500) return error(500, 'llama runner process has terminated: exit status 2')
      return { status: fault.status, text: `${fault.status} gateway error from the proxy` }
    case 'bad-request':
      return error(400, 'invalid input type')
    case 'unauthenticated':
      return error(401, 'unauthorized')
    case 'forbidden':
      return error(403, 'forbidden')
    case 'hang':
      return { hang: true }
    case 'reset':
      return { reset: true }
    case 'not-json':
      return { status: 200, text: '<html>proxy login</html>', headers: { 'content-type': 'text/html' } }
    default:
      return undefined
  }
}

export interface FakeOllama extends FakeServer {
  /** The `input` of each call, in order. */
  batches(): string[][]
}

export async function startFakeOllama(): Promise<FakeOllama> {
  const route = (req: RecordedRequest, fault: Fault | undefined): Reply => {
    if (req.method !== 'POST' || req.url !== '/api/embed') return { status: 404, text: '404 page not found' }
    const early = fault ? faultReply(fault) : undefined
    if (early) return early
    const body = req.body as
      | { model?: unknown; input?: unknown; truncate?: unknown; dimensions?: unknown; keep_alive?: unknown }
      | undefined
    if (body === undefined) return error(400, 'invalid character looking for beginning of value')
    const native = typeof body.model === 'string' ? OLLAMA_MODELS[body.model] : undefined
    if (native === undefined)
      return error(404, `model "${String(body.model)}" not found, try pulling it first`)
    const input = typeof body.input === 'string' ? [body.input] : body.input
    if (!Array.isArray(input) || input.some((t) => typeof t !== 'string' || t === '')) {
      return error(400, 'invalid input type')
    }
    const dimensions = body.dimensions === undefined ? native : body.dimensions
    if (typeof dimensions !== 'number' || dimensions < 1 || dimensions > native) {
      return error(400, `invalid dimensions ${String(body.dimensions)}`)
    }
    const embeddings: number[][] = []
    for (let text of input as string[]) {
      if (text.length > OLLAMA_FAKE_CONTEXT_CHARS) {
        if (body.truncate === false) return error(400, 'the input length exceeds the context length')
        text = text.slice(0, OLLAMA_FAKE_CONTEXT_CHARS)
      }
      const v = ollamaVector(text, native, dimensions)
      if (fault?.kind === 'wrong-dimensions') v.push(0.5)
      embeddings.push(v)
    }
    if (fault?.kind === 'short-response') embeddings.pop()
    return {
      status: 200,
      json: {
        model: body.model,
        embeddings,
        total_duration: 14143917,
        load_duration: 1019500,
        prompt_eval_count: input.length,
      },
    }
  }
  const server = await startFakeServer(route)
  return {
    ...server,
    batches: () => server.requests.map((r) => ((r.body as { input?: string[] })?.input ?? []).slice()),
  }
}
