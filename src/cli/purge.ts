/**
 * `embedq purge --yes`: delete every key of the queue (pending, in flight, payloads, retries,
 * dead letters, counters, saved backfill progress, the queue-scoped rate limiter). Target
 * hashes and the vectors already written stay.
 */
import type { Command } from 'commander'
import { queueKeys, rateLimitKeys } from '../keys.js'
import { backfillStateKey } from './backfill-state.js'
import { importStateKey } from './import-python.js'
import {
  type ConnectionFlags,
  connect,
  connectionOptions,
  fmtInt,
  jsonOption,
  out,
  printJson,
  producerQueue,
  usageError,
} from './shared.js'

interface PurgeFlags extends ConnectionFlags {
  yes?: boolean
  json?: boolean
}

/** Every key the queue owns (all in its hash slot). Channels are not keys, so they are left out. */
export function ownedKeys(prefix: string, name: string): string[] {
  const { doneChannel: _d, wakeChannel: _w, ...keys } = queueKeys(prefix, name)
  const limiter = rateLimitKeys(prefix, name)
  return [
    ...Object.values(keys),
    backfillStateKey(prefix, name),
    importStateKey(prefix, name),
    limiter.log,
    limiter.total,
  ]
}

export function registerPurge(program: Command): void {
  connectionOptions(
    program
      .command('purge')
      .description(
        "delete the queue's keys: queued items, dead letters, progress (not your hashes or their vectors)",
      ),
  )
    .option('--yes', 'really delete (required)')
    .addOption(jsonOption())
    .action(async (flags: PurgeFlags) => {
      const conn = await connect(flags, { command: 'purge' })
      const queue = producerQueue(conn.redis, flags)
      try {
        const stats = await queue.stats()
        if (!flags.yes) {
          throw usageError(
            `refusing to purge queue "${flags.name}" (${fmtInt(stats.unfinished)} unfinished items, ${fmtInt(stats.failed)} dead letters) without --yes`,
          )
        }
        const keys = ownedKeys(flags.prefix, flags.name)
        const existing = (await Promise.all(keys.map((k) => conn.redis.exists(k)))).map(Number)
        const present = keys.filter((_, i) => existing[i] === 1)
        // One slot: a single DEL works on a cluster too.
        const deleted = present.length ? await conn.redis.del(...present) : 0
        const running = stats.inflight > 0
        if (flags.json) {
          printJson({
            queue: flags.name,
            purged: true,
            unfinished: stats.unfinished,
            deadLetters: stats.failed,
            inflight: stats.inflight,
            keys: present,
            deleted,
          })
        } else {
          out(
            `purged queue "${flags.name}": ${fmtInt(stats.unfinished)} unfinished items and ${fmtInt(stats.failed)} dead letters dropped (${deleted} keys deleted)`,
          )
        }
        if (running) {
          process.stderr.write(
            `embedq: warning: ${fmtInt(stats.inflight)} items were in flight; workers still running will write their vectors and find nothing to acknowledge\n`,
          )
        }
      } finally {
        await queue.stop().catch(() => {})
        await conn.close()
      }
    })
}
