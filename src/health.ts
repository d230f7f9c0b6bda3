/**
 * A tiny HTTP server for orchestrators and Prometheus (node:http, no dependency):
 *
 * - `GET /livez`: 200 while the server runs (the process is alive and its event loop answers).
 *   Use it as the liveness probe: a Redis blip must not get every pod restarted.
 * - `GET /readyz`: 200 when Redis answers a PING within `readyTimeoutMs` and the worker is
 *   draining (or `requireWorker: false`); 503 otherwise. Use it as the readiness probe.
 * - `GET /healthz`: 200 `{"status":"ok",…}` while the Redis client is connected and the queue's
 *   worker is draining; 503 `{"status":"unavailable",…}` otherwise (connecting, reconnecting,
 *   stopping). Kept as it was.
 * - `GET /metrics`: the Prometheus text of `metrics` (see `createQueueMetrics`); 404 without it.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Cluster, Redis } from 'ioredis'
import type { EmbeddingBatchQueue } from './queue.js'

export interface HealthServerOptions {
  /** The queue to report on. */
  queue: Pick<EmbeddingBatchQueue, 'name' | 'isRunning'>
  /** The queue's Redis client: its connection status decides health. */
  redis: Redis | Cluster
  /** Port to listen on; 0 picks a free one (read it from the returned `port`). */
  port: number
  /** Interface to listen on. Use `'0.0.0.0'` to be reachable from other hosts. @default '127.0.0.1' */
  host?: string
  /** Served at `/metrics` (a `createQueueMetrics` result fits). @default none: 404 */
  metrics?: { metrics(): Promise<string>; readonly contentType: string }
  /**
   * Whether `/healthz` requires the queue's worker to be draining. Set `false` for a
   * producer-only instance (then only the Redis connection counts). @default true
   */
  requireWorker?: boolean
  /** How long `/readyz` waits for Redis's PING answer. @default 1_000 */
  readyTimeoutMs?: number
}

export interface HealthServer {
  /** The port it listens on (the one chosen when `port` was 0). */
  readonly port: number
  /** `http://<host>:<port>` */
  readonly url: string
  /** Stops listening and closes open connections. Idempotent. */
  close(): Promise<void>
}

/** What `/healthz` answers, also usable without the server. */
export function healthStatus(opts: Pick<HealthServerOptions, 'queue' | 'redis' | 'requireWorker'>): {
  ok: boolean
  body: { status: 'ok' | 'unavailable'; queue: string; redis: string; worker: 'draining' | 'not draining' }
} {
  // `status` is absent on clients that do not model connections (ioredis-mock): connected.
  const redisStatus = (opts.redis as { status?: string }).status ?? 'ready'
  const draining = opts.queue.isRunning
  const ok = redisStatus === 'ready' && (draining || opts.requireWorker === false)
  return {
    ok,
    body: {
      status: ok ? 'ok' : 'unavailable',
      queue: opts.queue.name,
      redis: redisStatus,
      worker: draining ? 'draining' : 'not draining',
    },
  }
}

/** What `/readyz` answers: Redis answers a PING in time, and the worker drains. */
export async function readiness(
  opts: Pick<HealthServerOptions, 'queue' | 'redis' | 'requireWorker' | 'readyTimeoutMs'>,
): Promise<{
  ok: boolean
  body: {
    status: 'ready' | 'not ready'
    queue: string
    redis: 'ok' | string
    worker: 'draining' | 'not draining'
  }
}> {
  const ms = opts.readyTimeoutMs ?? 1_000
  let redis: string
  const status = (opts.redis as { status?: string }).status
  if (status !== undefined && status !== 'ready') redis = status
  else {
    let timer: NodeJS.Timeout | undefined
    try {
      await Promise.race([
        (opts.redis as Redis).ping(),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no PING answer within ${ms} ms`)), ms)
        }),
      ])
      redis = 'ok'
    } catch (err) {
      redis = (err as Error).message
    } finally {
      clearTimeout(timer)
    }
  }
  const draining = opts.queue.isRunning
  const ok = redis === 'ok' && (draining || opts.requireWorker === false)
  return {
    ok,
    body: {
      status: ok ? 'ready' : 'not ready',
      queue: opts.queue.name,
      redis,
      worker: draining ? 'draining' : 'not draining',
    },
  }
}

function send(res: ServerResponse, status: number, type: string, body: string, head: boolean): void {
  res.writeHead(status, {
    'content-type': type,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  })
  res.end(head ? undefined : body)
}

const json = (value: unknown): string => `${JSON.stringify(value)}\n`

/**
 * Starts the server; resolves once it listens.
 *
 * @example
 * const metrics = await createQueueMetrics(queue)
 * const health = await startHealthServer({ queue, redis, port: 9464, metrics })
 * // … on shutdown:
 * await queue.stop()
 * await health.close()
 */
export async function startHealthServer(opts: HealthServerOptions): Promise<HealthServer> {
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65_535) {
    throw new RangeError(`embedq: option \`port\` must be an integer in [0, 65535], received ${opts.port}`)
  }
  const host = opts.host ?? '127.0.0.1'
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?')[0]
    const head = req.method === 'HEAD'
    if (req.method !== 'GET' && !head) {
      res.setHeader('allow', 'GET, HEAD')
      send(res, 405, 'application/json', json({ error: 'method not allowed' }), false)
      return
    }
    if (path === '/livez') {
      send(res, 200, 'application/json', json({ status: 'alive', queue: opts.queue.name }), head)
    } else if (path === '/readyz') {
      const { ok, body } = await readiness(opts)
      send(res, ok ? 200 : 503, 'application/json', json(body), head)
    } else if (path === '/healthz') {
      const { ok, body } = healthStatus(opts)
      send(res, ok ? 200 : 503, 'application/json', json(body), head)
    } else if (path === '/metrics' && opts.metrics) {
      try {
        send(res, 200, opts.metrics.contentType, await opts.metrics.metrics(), head)
      } catch (err) {
        send(res, 500, 'text/plain; charset=utf-8', `metrics failed: ${(err as Error).message}\n`, head)
      }
    } else {
      send(
        res,
        404,
        'application/json',
        json({ error: 'not found', paths: ['/livez', '/readyz', '/healthz', '/metrics'] }),
        head,
      )
    }
  }
  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', 'internal error\n', false)
      else res.destroy()
    })
  })
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void =>
      reject(
        new Error(`embedq: health server cannot listen on ${host}:${opts.port}: ${err.code ?? err.message}`),
      )
    server.once('error', onError)
    server.listen(opts.port, host, () => {
      server.off('error', onError)
      resolve()
    })
  })
  const port = (server.address() as AddressInfo).port
  let closing: Promise<void> | undefined
  return {
    port,
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
      return closing
    },
  }
}
