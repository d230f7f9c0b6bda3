/**
 * HTTP plumbing of the dashboard: security headers on every answer, JSON replies, bounded
 * body reads. Nothing here knows about queues.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { ApiError } from './validate.js'

/**
 * Scripts and styles only from the dashboard's own asset routes (no inline script, no CDN),
 * data only from its own API, never framed.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ')

export const CACHE = {
  /** The page: revalidate each time (it names the current asset hashes). */
  page: 'no-cache',
  /** Assets are named by their content hash. */
  asset: 'public, max-age=31536000, immutable',
  /** API answers are live figures. */
  api: 'no-store',
} as const

export function securityHeaders(res: ServerResponse): void {
  res.setHeader('Content-Security-Policy', CONTENT_SECURITY_POLICY)
  res.setHeader('X-Content-Type-Options', 'nosniff')
  res.setHeader('X-Frame-Options', 'DENY')
  res.setHeader('Referrer-Policy', 'no-referrer')
  res.setHeader('Cross-Origin-Resource-Policy', 'same-origin')
  res.setHeader('Cross-Origin-Opener-Policy', 'same-origin')
}

export function send(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  type: string,
  body: string,
  cache: string,
  extra: Record<string, string> = {},
): void {
  if (res.headersSent) {
    res.end()
    return
  }
  securityHeaders(res)
  res.statusCode = status
  res.setHeader('Content-Type', type)
  res.setHeader('Cache-Control', cache)
  res.setHeader('Content-Length', Buffer.byteLength(body))
  for (const [k, v] of Object.entries(extra)) res.setHeader(k, v)
  res.end(req.method === 'HEAD' ? undefined : body)
}

export function sendJson(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  value: unknown,
  extra: Record<string, string> = {},
): void {
  send(req, res, status, 'application/json; charset=utf-8', JSON.stringify(value), CACHE.api, extra)
}

export function sendError(req: IncomingMessage, res: ServerResponse, err: ApiError): void {
  const extra: Record<string, string> = {}
  if (err.status === 405 && err.allow) extra.Allow = err.allow
  sendJson(req, res, err.status, { error: { code: err.code, message: err.message } }, extra)
}

/**
 * The JSON body of a request, at most `limit` bytes. A body a framework parsed already
 * (`req.body` from express.json()) is taken as is.
 */
export async function readJsonBody(
  req: IncomingMessage,
  limit: number,
  timeoutMs = 10_000,
): Promise<unknown> {
  const type = String(req.headers['content-type'] ?? '')
  if (!/^application\/json\s*(;|$)/i.test(type))
    throw new ApiError(415, 'unsupported_media_type', 'send the body as Content-Type: application/json')
  const parsed = (req as IncomingMessage & { body?: unknown }).body
  if (parsed !== undefined && req.readableEnded) {
    if (typeof parsed === 'string' || Buffer.isBuffer(parsed)) return parseJson(String(parsed), limit)
    return parsed
  }
  const declared = Number(req.headers['content-length'])
  if (Number.isFinite(declared) && declared > limit) throw tooLarge(limit)
  const chunks: Buffer[] = []
  let size = 0
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => finish(new ApiError(408, 'timeout', 'the body did not arrive in time')),
      timeoutMs,
    )
    const finish = (err?: Error): void => {
      clearTimeout(timer)
      req.off('data', onData)
      req.off('end', onEnd)
      req.off('error', onError)
      if (err) {
        req.resume() // drain what is left, without keeping it
        reject(err)
      } else resolve()
    }
    const onData = (chunk: Buffer): void => {
      size += chunk.length
      if (size > limit) finish(tooLarge(limit))
      else chunks.push(chunk)
    }
    const onEnd = (): void => finish()
    const onError = (e: Error): void => finish(new ApiError(400, 'bad_request', `body: ${e.message}`))
    req.on('data', onData)
    req.on('end', onEnd)
    req.on('error', onError)
  })
  return parseJson(Buffer.concat(chunks).toString('utf8'), limit)
}

const tooLarge = (limit: number): ApiError =>
  new ApiError(413, 'payload_too_large', `the body must be at most ${limit} bytes`)

function parseJson(text: string, limit: number): unknown {
  if (Buffer.byteLength(text) > limit) throw tooLarge(limit)
  if (text.trim() === '') return {}
  try {
    return JSON.parse(text)
  } catch {
    throw new ApiError(400, 'bad_request', 'body: not valid JSON')
  }
}
