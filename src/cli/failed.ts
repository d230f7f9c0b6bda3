/**
 * `embedq failed`: list dead letters (newest first, or one HSCAN page with --cursor/--count),
 * filtered by --match (glob on the key), --status and --error. `embedq retry-failed [KEY…]`:
 * put them back in the queue with their text (the same filters select them).
 * `embedq delete-failed … --yes`: delete them. Nothing reads the whole hash at once.
 */
import type { Command } from 'commander'
import type { Cluster, Redis } from 'ioredis'
import type { FailedFilter } from '../admin-types.js'
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
  queueAdmin,
  usageError,
} from './shared.js'

interface FilterFlags {
  match?: string
  status?: number
  error?: string
}

/** The filter the flags ask for (empty: every dead letter). */
const filterOf = (f: FilterFlags): FailedFilter => ({
  ...(f.match !== undefined ? { match: f.match } : {}),
  ...(f.status !== undefined ? { status: f.status } : {}),
  ...(f.error !== undefined ? { error: f.error } : {}),
})

const hasFilter = (f: FilterFlags): boolean => Object.keys(filterOf(f)).length > 0

/** --match, --status, --error on a command. */
function filterOptions(cmd: Command): Command {
  return cmd
    .option('--match <glob>', 'only dead letters whose key matches this glob (HSCAN MATCH)')
    .option('--status <code>', 'only dead letters with this HTTP status', intArg(0, 999))
    .option('--error <text>', 'only dead letters whose error contains this text')
}

/**
 * The `limit` newest dead letters (all with limit 0), read with HSCAN so memory stays
 * bounded by `limit` however many there are.
 */
export async function newestDeadLetters(
  redis: Redis | Cluster,
  key: string,
  limit: number,
  filter: FailedFilter = {},
): Promise<{ total: number; letters: DeadLetter[] }> {
  let kept: DeadLetter[] = []
  let cursor = '0'
  do {
    const [next, flat] = await (redis.hscan as (...a: unknown[]) => Promise<[string, string[]]>).call(
      redis,
      key,
      cursor,
      ...(filter.match !== undefined ? ['MATCH', filter.match] : []),
      'COUNT',
      1000,
    )
    for (let i = 1; i < flat.length; i += 2) {
      try {
        const letter = JSON.parse(flat[i]!) as DeadLetter
        if (filter.status !== undefined && letter.status !== filter.status) continue
        if (filter.error !== undefined && !String(letter.error).includes(filter.error)) continue
        kept.push(letter)
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

interface FailedFlags extends ConnectionFlags, FilterFlags {
  json?: boolean
  limit: number
  cursor?: string
  count?: number
}

interface RetryFlags extends ConnectionFlags, FilterFlags {
  json?: boolean
}

interface DeleteFlags extends ConnectionFlags, FilterFlags {
  json?: boolean
  yes?: boolean
}

function printLetter(d: DeadLetter): void {
  const status = d.status === undefined ? '' : ` [${d.status}]`
  out(
    `  ${d.key}  ${plural(d.attempts, 'attempt')}  ${new Date(d.failedAt).toISOString()}${status}  ${clip(d.error, 120)}`,
  )
}

export function registerFailed(program: Command): void {
  filterOptions(
    connectionOptions(
      program
        .command('failed')
        .description('list dead letters, newest first (or one page of them with --cursor/--count)'),
    ),
  )
    .option('--limit <n>', 'how many to show (0: all)', intArg(0), 100)
    .option('--cursor <cursor>', 'page through the dead letters from this HSCAN cursor (0: the first page)')
    .option('--count <n>', 'dead letters per page (HSCAN COUNT), with --cursor', intArg(1, 10_000))
    .addOption(jsonOption())
    .action(async (flags: FailedFlags) => {
      const conn = await connect(flags, { command: 'failed' })
      try {
        if (flags.cursor !== undefined || flags.count !== undefined) {
          if (flags.cursor !== undefined && !/^\d+$/.test(flags.cursor))
            throw usageError(
              `--cursor must be a cursor printed by a previous page, received ${JSON.stringify(flags.cursor)}`,
            )
          const page = await queueAdmin(conn.redis, flags).failed({
            ...filterOf(flags),
            cursor: flags.cursor ?? '0',
            count: flags.count ?? 100,
          })
          if (flags.json) printJson({ queue: flags.name, ...page })
          else {
            for (const d of page.items) printLetter(d)
            out(page.cursor === '0' ? '(last page)' : `next page: --cursor ${page.cursor}`)
          }
          return
        }
        const { total, letters } = await newestDeadLetters(
          conn.redis,
          queueKeys(flags.prefix, flags.name).failed,
          flags.limit,
          filterOf(flags),
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
        for (const d of letters) printLetter(d)
        out('retry them with: embedq retry-failed [KEY…] [--match GLOB]')
      } finally {
        await conn.close()
      }
    })

  filterOptions(
    connectionOptions(
      program
        .command('retry-failed')
        .description(
          'put dead letters back in the queue with their text (all of them, the given keys, or those the filters select)',
        )
        .argument('[keys...]', 'target keys of the dead letters to retry (default: all)'),
    ),
  )
    .addOption(jsonOption())
    .action(async (keys: string[], flags: RetryFlags) => {
      if (keys.length && hasFilter(flags))
        throw usageError('give either KEYs or --match/--status/--error, not both')
      const conn = await connect(flags, { command: 'retry-failed' })
      if (hasFilter(flags)) {
        try {
          const retried = await queueAdmin(conn.redis, flags).retryFailed(filterOf(flags))
          if (flags.json) printJson({ queue: flags.name, retried })
          else
            out(`retried ${fmtInt(retried)} dead letter${retried === 1 ? '' : 's'} of queue "${flags.name}"`)
        } finally {
          await conn.close()
        }
        return
      }
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

  filterOptions(
    connectionOptions(
      program
        .command('delete-failed')
        .description('delete dead letters (the given keys, or those the filters select); needs --yes')
        .argument('[keys...]', 'target keys of the dead letters to delete'),
    ),
  )
    .option('--yes', 'really delete (without it, only count what would be deleted)')
    .addOption(jsonOption())
    .action(async (keys: string[], flags: DeleteFlags) => {
      if (keys.length && hasFilter(flags))
        throw usageError('give either KEYs or --match/--status/--error, not both')
      const conn = await connect(flags, { command: 'delete-failed' })
      try {
        const admin = queueAdmin(conn.redis, flags)
        const filter: FailedFilter = keys.length ? { keys: [...new Set(keys)] } : filterOf(flags)
        if (!flags.yes) {
          let n = 0
          let cursor = '0'
          do {
            const page = await admin.failed({ ...filter, cursor, count: 1_000 })
            n += page.items.length
            cursor = page.cursor
          } while (cursor !== '0')
          throw usageError(
            `would delete ${fmtInt(n)} dead letter${n === 1 ? '' : 's'} of queue "${flags.name}": add --yes to delete them`,
          )
        }
        const deleted = await admin.deleteFailed(filter)
        if (flags.json) printJson({ queue: flags.name, deleted })
        else out(`deleted ${fmtInt(deleted)} dead letter${deleted === 1 ? '' : 's'} of queue "${flags.name}"`)
      } finally {
        await conn.close()
      }
    })
}
