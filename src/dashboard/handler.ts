/**
 * `dashboardHandler()`: the page, its two assets and the JSON API as one node:http handler
 * that mounts under any path. Reads are GET; mutations are POST only and need, in this order:
 * not read-only, the `X-Embedq-Csrf: 1` header (a cross-site page cannot send it without a CORS
 * preflight, and preflights are never answered), no `Sec-Fetch-Site: cross-site`, the bearer
 * token and/or the `authorize(req)` hook, then a JSON body (Content-Type application/json, at
 * most 64 KiB). Origin is not compared with Host: reverse proxies often rewrite Host.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { QueueAdmin } from '../admin.js'
import { dashboardAssets } from '../generated/dashboard-assets.js'
import { isValidKeyPart } from '../keys.js'
import { type Logger, silentLogger } from '../logger.js'
import { failedPage, listQueues, queueDetail } from './api.js'
import { discoverQueues } from './discover.js'
import { CACHE, readJsonBody, send, sendError, sendJson } from './http.js'
import { pageHtml } from './page.js'
import type { DashboardHandler, DashboardOptions, DashboardSource } from './types.js'
import {
  ApiError,
  cursorParam,
  filterFromBody,
  filterFromQuery,
  intParam,
  LIMITS,
  queueName,
  targetKey,
} from './validate.js'

/** The header a mutation must carry (a simple cross-site form or fetch cannot set it). */
export const CSRF_HEADER = 'x-embedq-csrf'

/** How mutations are authorized, as the page is told (so it can ask for a token). */
export type MutationAuth = 'read-only' | 'token' | 'hook' | 'token+hook' | 'none'

const READS = 'GET, HEAD'

/**
 * The default source: every queue under the prefix, discovered in Redis (the handler caches
 * the list for `discoveryTtlMs`), each read and changed through a `QueueAdmin` (one per name).
 */
function defaultSource(opts: DashboardOptions, prefix: string): DashboardSource {
  const redis = opts.redis!
  const admins = new Map<string, QueueAdmin>()
  return {
    listQueues: () => discoverQueues(redis, prefix),
    queue(name) {
      let admin = admins.get(name)
      if (!admin) {
        admin = new QueueAdmin({ redis, prefix, name, ...(opts.logger ? { logger: opts.logger } : {}) })
        // Names come from discovery or a validated URL; keep the cache from growing without end.
        if (admins.size >= 1_000) admins.clear()
        admins.set(name, admin)
      }
      return admin
    },
  }
}

function sameToken(given: string, expected: string): boolean {
  // Hash both so the comparison takes the same time whatever the lengths.
  const a = createHash('sha256').update(given).digest()
  const b = createHash('sha256').update(expected).digest()
  return timingSafeEqual(a, b)
}

function normalizeBasePath(basePath: string | undefined): string | undefined {
  if (basePath === undefined) return undefined
  if (
    typeof basePath !== 'string' ||
    !/^\/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$/.test(basePath) ||
    basePath.startsWith('//')
  )
    throw new TypeError(
      `dashboardHandler: basePath must be a path like '/admin/embedq', received ${JSON.stringify(basePath)}`,
    )
  return basePath.replace(/\/+$/, '')
}

/** A relative redirect to the mount point with a trailing slash (never an absolute URL). */
function redirectToSlash(req: IncomingMessage, res: ServerResponse, path: string, search: string): boolean {
  const last = path.slice(path.lastIndexOf('/') + 1)
  if (!/^[A-Za-z0-9._~%!$&'()*+,;=:@-]+$/.test(last)) return false
  send(req, res, 308, 'text/plain; charset=utf-8', 'moved\n', CACHE.page, { Location: `${last}/${search}` })
  return true
}

export function dashboardHandler(opts: DashboardOptions): DashboardHandler {
  if (opts === null || typeof opts !== 'object') throw new TypeError('dashboardHandler: options are required')
  const prefix = opts.prefix ?? 'embedq'
  if (!isValidKeyPart(prefix))
    throw new TypeError(
      `dashboardHandler: prefix must be a non-empty string without braces or spaces, received ${JSON.stringify(prefix)}`,
    )
  if (opts.token !== undefined && (typeof opts.token !== 'string' || opts.token.length < 8))
    throw new TypeError('dashboardHandler: token must be a string of at least 8 characters')
  if (opts.authorize !== undefined && typeof opts.authorize !== 'function')
    throw new TypeError('dashboardHandler: authorize must be a function (req) => boolean | Promise<boolean>')
  if (!opts.source && !opts.redis) throw new TypeError('dashboardHandler: pass `redis` (or a `source`)')
  const basePath = normalizeBasePath(opts.basePath)
  const readOnly = opts.readOnly === true
  const logger: Logger = opts.logger ?? silentLogger
  const source = opts.source ?? defaultSource(opts, prefix)
  const ttl = opts.discoveryTtlMs ?? 5_000
  const auth: MutationAuth = readOnly
    ? 'read-only'
    : opts.token && opts.authorize
      ? 'token+hook'
      : opts.token
        ? 'token'
        : opts.authorize
          ? 'hook'
          : 'none'
  const jsPath = `/assets/app-${dashboardAssets.hash}.js`
  const cssPath = `/assets/app-${dashboardAssets.hash}.css`
  const html = pageHtml(jsPath.slice(1), cssPath.slice(1))

  let cached: { at: number; names: Promise<string[]> } | undefined
  const queueNames = (): Promise<string[]> => {
    const now = Date.now()
    if (!cached || now - cached.at > ttl) {
      const names = source.listQueues()
      cached = { at: now, names }
      names.catch(() => {
        if (cached?.names === names) cached = undefined
      })
    }
    return cached.names
  }

  async function authorizeMutation(req: IncomingMessage): Promise<void> {
    const refuse = (code: string, message: string): ApiError => new ApiError(403, code, message)
    if (readOnly) throw refuse('read_only', 'this dashboard is read-only')
    if (req.headers[CSRF_HEADER] !== '1') throw refuse('csrf', 'mutations need the header X-Embedq-Csrf: 1')
    if (req.headers['sec-fetch-site'] === 'cross-site')
      throw refuse('cross_origin', 'cross-site mutations are refused')
    if (auth === 'none')
      throw refuse(
        'no_authorization',
        'mutations need a token or an authorize hook on the dashboard (none is configured)',
      )
    if (opts.token) {
      const header = req.headers.authorization ?? ''
      const m = /^Bearer ([^\s]+)$/.exec(header)
      if (!m || !sameToken(m[1]!, opts.token)) throw refuse('unauthorized', 'missing or wrong bearer token')
    }
    if (opts.authorize) {
      let ok = false
      try {
        ok = (await opts.authorize(req)) === true
      } catch (err) {
        logger.warn({ err }, 'embedq dashboard: authorize hook threw')
      }
      if (!ok) throw refuse('forbidden', 'not authorized')
    }
  }

  async function api(req: IncomingMessage, res: ServerResponse, parts: string[], url: URL): Promise<void> {
    const method = req.method ?? 'GET'
    const read = method === 'GET' || method === 'HEAD'
    const needRead = (): void => {
      if (!read) throw new ApiError(405, 'method_not_allowed', 'use GET', READS)
    }
    // parts: ['queues'] | ['queues', name] | ['queues', name, sub] | ['queues', name, 'failed', action]
    if (parts[0] !== 'queues' || parts.length > 4) throw new ApiError(404, 'not_found', 'no such API route')
    if (parts.length === 1) {
      needRead()
      const names = await queueNames()
      const queues = await listQueues(source, names)
      return sendJson(req, res, 200, { prefix, auth, time: Date.now(), queues })
    }
    const name = queueName(parts[1]!)
    const q = source.queue(name)
    const route = parts.slice(2).join('/')
    const mutations: Record<string, (body: unknown) => Promise<unknown>> = {
      pause: async () => {
        await q.pause({ by: 'dashboard' })
        return { paused: true }
      },
      resume: async () => {
        await q.resume()
        return { paused: false }
      },
      'failed/retry': async (body) => ({ retried: await q.retryFailed(filterFromBody(body)) }),
      'failed/delete': async (body) => ({ deleted: await q.deleteFailed(filterFromBody(body)) }),
    }
    const mutation = mutations[route]
    if (mutation) {
      if (method !== 'POST') throw new ApiError(405, 'method_not_allowed', 'use POST', 'POST')
      await authorizeMutation(req)
      const body = await readJsonBody(req, LIMITS.bodyBytes)
      const result = await mutation(body)
      logger.info({ queue: name, action: route }, 'embedq dashboard: mutation')
      return sendJson(req, res, 200, result)
    }
    const params = url.searchParams
    switch (route) {
      case '':
        needRead()
        return sendJson(req, res, 200, await queueDetail(source, name))
      case 'history': {
        needRead()
        const minutes = intParam('minutes', params.get('minutes'), 1, LIMITS.minutes, 60)
        return sendJson(req, res, 200, { minutes, points: await q.history({ minutes }) })
      }
      case 'workers':
        needRead()
        return sendJson(req, res, 200, { time: Date.now(), workers: await q.workers() })
      case 'failed': {
        needRead()
        const page = await failedPage(source, name, {
          ...filterFromQuery(params),
          cursor: cursorParam(params.get('cursor')),
          count: intParam('count', params.get('count'), 1, LIMITS.pageCount, 50),
        })
        return sendJson(req, res, 200, page)
      }
      case 'inspect':
        needRead()
        return sendJson(req, res, 200, await q.inspect(targetKey(params.get('key') ?? undefined)))
      default:
        throw new ApiError(404, 'not_found', 'no such API route')
    }
  }

  async function serve(
    req: IncomingMessage,
    res: ServerResponse,
    next?: (err?: unknown) => void,
  ): Promise<void> {
    let url: URL
    try {
      url = new URL(req.url ?? '/', 'http://localhost')
    } catch {
      throw new ApiError(400, 'bad_request', 'unreadable URL')
    }
    let path = url.pathname
    if (basePath !== undefined) {
      if (path === basePath && basePath !== '') {
        if (redirectToSlash(req, res, path, url.search)) return
      }
      if (!path.startsWith(`${basePath}/`)) {
        if (next) return next()
        throw new ApiError(404, 'not_found', 'not found')
      }
      path = path.slice(basePath.length)
    } else {
      const original = (req as IncomingMessage & { originalUrl?: string }).originalUrl
      if (original && path === '/') {
        const originalPath = new URL(original, 'http://localhost').pathname
        // Mounted (Express, middie) and asked for without the trailing slash: relative URLs need it.
        if (
          originalPath !== '/' &&
          !originalPath.endsWith('/') &&
          redirectToSlash(req, res, originalPath, url.search)
        )
          return
      }
    }
    const method = req.method ?? 'GET'
    if (path.startsWith('/api/')) return api(req, res, path.slice(5).split('/'), url)
    const read = method === 'GET' || method === 'HEAD'
    const asset = (type: string, body: string): void => {
      if (!read) throw new ApiError(405, 'method_not_allowed', 'use GET', READS)
      send(req, res, 200, type, body, CACHE.asset)
    }
    if (path === '/' || path === '/index.html') {
      if (!read) throw new ApiError(405, 'method_not_allowed', 'use GET', READS)
      return send(req, res, 200, 'text/html; charset=utf-8', html, CACHE.page)
    }
    if (path === jsPath) return asset('text/javascript; charset=utf-8', dashboardAssets.js)
    if (path === cssPath) return asset('text/css; charset=utf-8', dashboardAssets.css)
    if (next) return next()
    throw new ApiError(404, 'not_found', 'not found')
  }

  return (req, res, next) => {
    serve(req, res, next).catch((err: unknown) => {
      if (err instanceof ApiError) return sendError(req, res, err)
      logger.error({ err, url: req.url?.split('?')[0] }, 'embedq dashboard: request failed')
      sendError(req, res, new ApiError(500, 'internal', 'the request failed (see the server log)'))
    })
  }
}
