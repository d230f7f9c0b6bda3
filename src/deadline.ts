/**
 * Deadlines the queue enforces itself on Redis calls of its public API. A client that is
 * reconnecting queues commands (ioredis' offline queue) for as long as its retry settings say
 * — about 9 s with the default `maxRetriesPerRequest: 20`, forever with `null`, which BullMQ
 * users configure. Every public method races its Redis calls against a timer here instead of
 * hoping the client gives up in time.
 */
import type { Cluster, Redis } from 'ioredis'
import { RedisUnavailableError } from './errors.js'

/** Errors that say the connection, not the command, failed. */
export function isConnectionError(err: unknown): boolean {
  if (!(err instanceof Error)) return false
  return (
    err.name === 'MaxRetriesPerRequestError' ||
    /Connection is closed|Stream isn't writeable|enableOfflineQueue|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|EHOSTUNREACH|None of startup nodes/.test(
      err.message,
    )
  )
}

/** setTimeout fires at once for delays above 2^31 − 1 ms: clamp (an "infinite" timeout stays long). */
export const clampTimer = (ms: number): number => Math.min(Math.max(0, ms), 2_147_483_647)

const statusOf = (redis: Redis | Cluster): string => (redis as { status?: string }).status ?? 'unknown'

/**
 * Runs `call` and settles within `ms`: its own result, or `RedisUnavailableError` when the
 * timer wins or the connection failed. Errors Redis answered (WRONGTYPE, OOM…) pass through.
 * `written: 'unknown'` is for a write that may already be on its way to Redis.
 */
export function withDeadline<T>(
  redis: Redis | Cluster,
  operation: string,
  ms: number,
  call: () => Promise<T>,
  written: 'nothing' | 'unknown' = 'nothing',
): Promise<T> {
  if (statusOf(redis) === 'end')
    return Promise.reject(new RedisUnavailableError('end', 0, { operation, written: 'nothing' }))
  const started = Date.now()
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new RedisUnavailableError(statusOf(redis), ms, { operation, written })),
      clampTimer(ms),
    )
    let running: Promise<T>
    try {
      running = call()
    } catch (err) {
      running = Promise.reject(err)
    }
    running.then(
      (value) => {
        clearTimeout(timer)
        resolve(value)
      },
      (err: unknown) => {
        clearTimeout(timer)
        reject(
          isConnectionError(err)
            ? new RedisUnavailableError(statusOf(redis), Date.now() - started, {
                operation,
                written,
                cause: err,
              })
            : err,
        )
      },
    )
  })
}
