/**
 * `embedq failed`: list dead letters (newest first). `embedq retry-failed [KEY…]`: put them
 * back in the queue with their text.
 */
import type { Command } from 'commander'
import type { Cluster, Redis } from 'ioredis'
import type { DeadLetter } from '../codec.js'
import { queueKeys } from '../keys.js'
import {
  CliError,
  type ConnectionFlags,
  clip,
  connect,
  connectionOptions,
  fmtInt,
  intArg,
  jsonOption,
  out,
  plural,
  printJson,
  producerQueue,
} from './shared.js'

/**
 * The `limit` newest dead letters (all with limit 0), read with HSCAN so memory stays
 * bounded by `limit` however many there are.
 */
export async function newestDeadLetters(
  redis: Redis | Cluster,
  key: string,
  limit: number,
): Promise<{ total: number; letters: DeadLetter[] }> {
  let kept: DeadLetter[] = []
  let cursor = '0'
  do {
    const [next, flat] = await redis.hscan(key, cursor, 'COUNT', 1000)
    for (let i = 1; i < flat.length; i += 2) {
      try {
        kept.push(JSON.parse(flat[i]!) as DeadLetter)
      } catch {
        // not a dead letter of ours
      }
    }
    if (limit > 0 && kept.length > 2 * limit)
      kept = kept.sort((a, b) => b.failedAt - a.failedAt).slice(0, limit)
    cursor = next
  } while (cursor !== '0')
  kept.sort((a, b) => b.failedAt - a.failedAt)
  const total = await redis.hlen(key)
  return { total, letters: limit > 0 ? kept.slice(0, limit) : kept }
}

interface FailedFlags extends ConnectionFlags {
  json?: boolean
  limit: number
}

interface RetryFlags extends ConnectionFlags {
  json?: boolean
}

export function registerFailed(program: Command): void {
  connectionOptions(program.command('failed').description('list dead letters, newest first'))
    .option('--limit <n>', 'how many to show (0: all)', intArg(0), 100)
    .addOption(jsonOption())
    .action(async (flags: FailedFlags) => {
      const conn = await connect(flags)
      try {
        const { total, letters } = await newestDeadLetters(
          conn.redis,
          queueKeys(flags.prefix, flags.name).failed,
          flags.limit,
        )
        if (flags.json) {
          printJson({ queue: flags.name, total, deadLetters: letters })
          return
        }
        if (total === 0) {
          out(`queue "${flags.name}" has no dead letters`)
          return
        }
        out(
          `queue "${flags.name}": ${fmtInt(total)} dead letters${letters.length < total ? `, newest ${fmtInt(letters.length)}` : ''}`,
        )
        for (const d of letters) {
          const status = d.status === undefined ? '' : ` [${d.status}]`
          out(
            `  ${d.key}  ${plural(d.attempts, 'attempt')}  ${new Date(d.failedAt).toISOString()}${status}  ${clip(d.error, 120)}`,
          )
        }
        out('retry them with: embedq retry-failed [KEY…]')
      } finally {
        await conn.close()
      }
    })

  connectionOptions(
    program
      .command('retry-failed')
      .description('put dead letters back in the queue with their text (all of them, or the given keys)')
      .argument('[keys...]', 'target keys of the dead letters to retry (default: all)'),
  )
    .addOption(jsonOption())
    .action(async (keys: string[], flags: RetryFlags) => {
      const conn = await connect(flags)
      const queue = producerQueue(conn.redis, flags)
      try {
        const wanted = keys.length ? [...new Set(keys)] : undefined
        const jobs = await queue.retryFailed(wanted)
        const retried = jobs.filter((j) => !j.error).map((j) => j.key)
        const refused = jobs.filter((j) => j.error).map((j) => ({ key: j.key, error: j.error!.message }))
        const found = new Set(jobs.map((j) => j.key))
        const missing = wanted ? wanted.filter((k) => !found.has(k)) : []
        if (flags.json)
          printJson({ queue: flags.name, retried: retried.length, keys: retried, missing, refused })
        else {
          out(
            `retried ${fmtInt(retried.length)} dead letter${retried.length === 1 ? '' : 's'} of queue "${flags.name}"`,
          )
          for (const r of refused) out(`  refused ${r.key}: ${r.error}`)
        }
        if (missing.length || refused.length) {
          const parts = []
          if (missing.length) parts.push(`not dead letters: ${missing.join(', ')}`)
          if (refused.length) parts.push(`${refused.length} refused by the queue`)
          throw new CliError(parts.join('; '))
        }
      } finally {
        await queue.stop().catch(() => {})
        await conn.close()
      }
    })
}
