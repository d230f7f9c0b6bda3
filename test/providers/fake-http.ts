/**
 * The plumbing under the fake vendor servers: a node:http server on 127.0.0.1 (port 0) that
 * records every request, answers through a vendor-specific route, and plays scripted faults.
 * `close()` drops open connections (a hanging request included) so no test leaks a handle.
 */
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface RecordedRequest {
  method: string
  /** Path and query, e.g. `/v1beta/models/gemini-embedding-001:batchEmbedContents`. */
  url: string
  headers: IncomingHttpHeaders
  /** The parsed JSON body, or undefined when it was not JSON. */
  body: unknown
  rawBody: string
  /** When the request arrived (Date.now()). */
  at: number
}

/** What a route answers. */
export type Reply =
  | { status: number; json: unknown; headers?: Record<string, string> }
  | { status: number; text: string; headers?: Record<string, string> }
  /** Never answer (the client's timeout or abort must end the call). */
  | { hang: true }
  /** Destroy the socket without answering (a connection reset). */
  | { reset: true }

/** Failures the vendor fakes can play, each translated into that vendor's wire format. */
export type Fault =
  /**
   * A 429. `via`: where the wait is announced — the vendor's usual place by default; `body`
   * (Google RetryInfo, OpenAI's "try again in" message), `header` (Retry-After seconds),
   * `date` (Retry-After as an HTTP date), `reset-headers` (OpenAI's x-ratelimit-* only), or
   * `none` (no wait at all).
   */
  | { kind: 'rate-limit'; retryAfterMs?: number; via?: 'body' | 'header' | 'date' | 'reset-headers' | 'none' }
  /**
   * An exhausted quota: Gemini's QuotaFailure with a `PerDay` quotaId (with RetryInfo when
   * `retryAfterMs` is set), OpenAI's `insufficient_quota`, a proxy's long Retry-After for Ollama.
   */
  | { kind: 'quota'; retryAfterMs?: number }
  | { kind: 'server-error'; status: 500 | 502 | 503 | 504 }
  | { kind: 'bad-request' }
  | { kind: 'unauthenticated' }
  | { kind: 'forbidden' }
  | { kind: 'hang' }
  | { kind: 'reset' }
  /** A 200 with one vector fewer than inputs. */
  | { kind: 'short-response' }
  /** A 200 whose vectors have one value too many. */
  | { kind: 'wrong-dimensions' }
  /** A 200 whose body is not JSON (a proxy's HTML page). */
  | { kind: 'not-json' }

export interface FakeServer {
  readonly url: string
  readonly requests: RecordedRequest[]
  /** Plays `fault` on the next request (faults queue up, one per request). */
  fail(fault: Fault): void
  /** Plays `fault` on every `n`-th request from now on (after queued faults), until `reset()`. */
  failEvery(n: number, fault: Fault): void
  /** Forgets recorded requests and pending faults. */
  reset(): void
  close(): Promise<void>
}

export type Route = (req: RecordedRequest, fault: Fault | undefined) => Reply

export async function startFakeServer(route: Route): Promise<FakeServer> {
  const requests: RecordedRequest[] = []
  const faults: Fault[] = []
  let every: { n: number; fault: Fault; seen: number } | undefined
  const nextFault = (): Fault | undefined => {
    const queued = faults.shift()
    if (queued || !every) return queued
    every.seen++
    return every.seen % every.n === 0 ? every.fault : undefined
  }
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const rawBody = Buffer.concat(chunks).toString('utf8')
      let body: unknown
      try {
        body = rawBody === '' ? undefined : JSON.parse(rawBody)
      } catch {
        body = undefined
      }
      const recorded: RecordedRequest = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body,
        rawBody,
        at: Date.now(),
      }
      requests.push(recorded)
      let reply: Reply
      try {
        reply = route(recorded, nextFault())
      } catch (err) {
        reply = { status: 599, text: `fake server bug: ${String(err)}` }
      }
      send(res, reply)
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    fail: (fault) => {
      faults.push(fault)
    },
    failEvery: (n, fault) => {
      every = { n, fault, seen: 0 }
    },
    reset: () => {
      requests.length = 0
      faults.length = 0
      every = undefined
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

function send(res: ServerResponse, reply: Reply): void {
  if ('hang' in reply) return
  if ('reset' in reply) {
    res.socket?.destroy()
    return
  }
  const headers = { ...reply.headers }
  let payload: string
  if ('json' in reply) {
    payload = JSON.stringify(reply.json)
    headers['content-type'] = 'application/json; charset=UTF-8'
  } else {
    payload = reply.text
    headers['content-type'] ??= 'text/plain; charset=UTF-8'
  }
  res.writeHead(reply.status, headers)
  res.end(payload)
}

/** A URL on which nothing listens (a port that was free a moment ago). */
export async function refusedUrl(): Promise<string> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  const { port } = server.address() as AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return `http://127.0.0.1:${port}`
}

/**
 * The fake model: a deterministic pseudo-random vector per text (FNV-1a seed, mulberry32), with
 * values in [-1, 1] and no particular length. Vendor fakes shape it like their vendor does.
 */
export function fakeRawVector(text: string, dimensions: number): number[] {
  let seed = 0x811c9dc5
  for (let i = 0; i < text.length; i++) seed = Math.imul(seed ^ text.charCodeAt(i), 0x01000193)
  let state = seed >>> 0
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  return Array.from({ length: dimensions }, () => next() * 2 - 1)
}

/** `Retry-After` as an HTTP date (IMF-fixdate), rounded up to the next whole second. */
export function retryAfterDate(ms: number, now = Date.now()): string {
  return new Date(Math.ceil((now + ms) / 1000) * 1000).toUTCString()
}
