/**
 * The dashboard's contract: where its data comes from and how it is mounted.
 */
import type { IncomingMessage } from 'node:http'
import type { Cluster, Redis } from 'ioredis'
import type { QueueAdminApi } from '../admin-types.js'
import type { DeadLetter } from '../codec.js'
import type { Logger } from '../logger.js'
import type { QueueStats } from '../queue.js'

/** Where the dashboard reads and changes queues: every queue under one prefix. */
export interface DashboardSource {
  /** Queue names under the prefix (discovered from Redis by default, see `discoverQueues`). */
  listQueues(): Promise<string[]>
  /** The operator's calls on one queue (a queue with no keys reads as empty). */
  queue(name: string): QueueAdminApi<QueueStats, DeadLetter>
}

export interface DashboardOptions {
  /**
   * The Redis client holding the queues (the caller's: the dashboard never quits it).
   * Required unless `source` is given.
   */
  redis?: Redis | Cluster
  /**
   * Prefix of the queue keys; every queue under it is shown.
   * @default 'embedq'
   */
  prefix?: string
  /**
   * Refuse every mutation (pause, resume, retry, delete) with 403.
   * @default false
   */
  readOnly?: boolean
  /**
   * Mutations need `Authorization: Bearer <token>` when set (compared in constant time).
   * With neither `token` nor `authorize`, mutations are refused: a dashboard mounted behind
   * your own auth middleware can pass `authorize: () => true`.
   */
  token?: string
  /**
   * Decides whether a mutation request is allowed (e.g. from your session middleware's
   * `req.user`). With `token` also set, both must allow it.
   */
  authorize?: (req: IncomingMessage) => boolean | Promise<boolean>
  /**
   * Path the handler is mounted under (e.g. '/admin/embedq') when the framework passes the
   * full URL in `req.url` (Fastify raw routes, Hono). Without it, the mount is read from
   * `req.originalUrl` vs `req.url` (Express, middie), else the handler serves at the root.
   */
  basePath?: string
  /** Where the data comes from; by default every queue under `prefix` in `redis`. */
  source?: DashboardSource
  /** Logs failed API calls (pino-compatible); silent by default. */
  logger?: Logger
  /**
   * How long the list of queues is cached, ms (the list comes from a SCAN).
   * @default 5_000
   */
  discoveryTtlMs?: number
}

/** A node:http handler that also works as Connect/Express middleware (`next` for 404s). */
export type DashboardHandler = (
  req: IncomingMessage,
  res: import('node:http').ServerResponse,
  next?: (err?: unknown) => void,
) => void
