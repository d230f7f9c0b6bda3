/**
 * `embedq import-python`: moves the items of the original Python `EmbeddingBatchQueue` into an
 * embedq queue, so a service switches over without losing what was queued.
 *
 * The Python queue kept, under `embed_queue:` by default:
 * - `pending`: ZSET of JSON members `{"redis_key": …, "text": …}` scored by enqueue time (s);
 * - `inflight`: the same members, claimed by a worker that may have died with them;
 * - `dedup` (the keys it held) and `retries` (attempts per key): bookkeeping, not imported.
 *
 * Both ZSETs are read page by page (ZRANGE by rank) and merged oldest first, so embedq sees
 * the items in their enqueue order and the newest text of a key wins. An old item is
 * superseded (skipped, and deleted with `--delete`) when embedq already holds newer text for
 * its key: an unfinished version, or a vector's `embedding_version`, later than the old
 * enqueue time (embedq versions are Redis-clock microseconds; the old score is seconds, or
 * milliseconds when it is larger than 1e11). That lets producers switch to embedq before the
 * import without an old text overwriting a newer one. Each page is enqueued
 * with `enqueueMany` (durable when it resolves), then recorded in `<prefix>:{<name>}:imported`
 * (hash of the old member's digest → embedq version), which makes a second run skip what the
 * first one imported. With `--delete`, imported members (of this run or an earlier one) are
 * then removed from the old ZSETs, and their keys from `dedup` and `retries`. A member that is
 * not valid JSON of that shape, or that embedq refuses (`InvalidInputError`), is left where it
 * is and reported; the command then exits 1.
 *
 * Stop the Python workers first: a worker that keeps claiming shifts the ranks under the pages.
 */
import { createHash } from 'node:crypto'
import type { Command } from 'commander'
import type { Cluster, Redis } from 'ioredis'
import { InvalidInputError } from '../errors.js'
import { queueKeys } from '../keys.js'
import type { EmbeddingBatchQueue } from '../queue.js'
import {
  CliError,
  type ConnectionFlags,
  clip,
  connect,
  connectionOptions,
  ExitCode,
  fmtInt,
  intArg,
  jsonOption,
  out,
  printJson,
  producerQueue,
} from './shared.js'

/**
 * What imports did, in one hash: digest of (old key, score, member) → embedq version (or
 * `superseded`), and `key:<target key>` → "<version> <old enqueue time in µs>" of the last
 * import of that key, so a version an import handed out is judged by the old item's time.
 */
export const importStateKey = (prefix: string, name: string): string => `${prefix}:{${name}}:imported`

/** The Python queue's key names. */
export interface PythonKeys {
  pending: string
  inflight: string
  dedup: string
  retries: string
}

export const pythonKeys = (fromPrefix: string): PythonKeys => ({
  pending: `${fromPrefix}:pending`,
  inflight: `${fromPrefix}:inflight`,
  dedup: `${fromPrefix}:dedup`,
  retries: `${fromPrefix}:retries`,
})

interface ImportFlags extends ConnectionFlags {
  versionField: string
  fromPrefix: string
  pendingKey?: string
  inflightKey?: string
  dedupKey?: string
  retriesKey?: string
  inflight: boolean
  dryRun?: boolean
  delete?: boolean
  batchSize: number
  json?: boolean
}

/** One old member that could not be imported, and why. */
export interface RejectedMember {
  from: string
  member: string
  reason: string
}

export interface ImportSummary {
  queue: string
  dryRun: boolean
  /** Members read from each old ZSET. */
  read: { pending: number; inflight: number }
  /** Items enqueued into embedq by this run (would be, with --dry-run). */
  imported: number
  /** Members a previous run imported already (skipped). */
  alreadyImported: number
  /** Members whose key has newer text in embedq already (skipped). */
  superseded: number
  /** Members with blank text: nothing to embed (embedq resolves them with a zero vector). */
  blank: number
  /** Members left in place: not `{redis_key, text}` JSON, or refused by embedq. */
  rejected: number
  /** The first few rejected members. */
  rejectedSample: RejectedMember[]
  /** Members removed from the old ZSETs (with --delete). */
  deleted: number
}

interface OldItem {
  from: string
  member: string
  score: number
  scoreText: string
}

/** One old ZSET read in rank order, a page at a time. */
class OldZset {
  private offset = 0
  private buffer: OldItem[] = []
  private exhausted = false
  read = 0

  constructor(
    private readonly redis: Redis | Cluster,
    readonly key: string,
    private readonly pageSize: number,
  ) {}

  async peek(): Promise<OldItem | undefined> {
    if (this.buffer.length === 0 && !this.exhausted) {
      const flat = await this.redis.zrange(
        this.key,
        this.offset,
        this.offset + this.pageSize - 1,
        'WITHSCORES',
      )
      for (let i = 0; i + 1 < flat.length; i += 2) {
        const scoreText = flat[i + 1]!
        this.buffer.push({ from: this.key, member: flat[i]!, score: Number(scoreText), scoreText })
      }
      this.offset += this.buffer.length
      this.read += this.buffer.length
      if (this.buffer.length < this.pageSize) this.exhausted = true
    }
    return this.buffer[0]
  }

  shift(): OldItem {
    return this.buffer.shift()!
  }

  /** `n` members before the read position were removed: the ranks after them moved down. */
  removed(n: number): void {
    this.offset -= n
  }
}

function parseMember(member: string): { key: string; text: string } | string {
  let value: unknown
  try {
    value = JSON.parse(member)
  } catch {
    return 'not JSON'
  }
  const v = value as { redis_key?: unknown; text?: unknown } | null
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'not a JSON object'
  if (typeof v.redis_key !== 'string') return '`redis_key` is not a string'
  if (typeof v.text !== 'string') return '`text` is not a string'
  return { key: v.redis_key, text: v.text }
}

const digest = (item: OldItem): string =>
  `python:${createHash('sha256').update(`${item.from}\n${item.scoreText}\n${item.member}`).digest('hex')}`

/** The old score as Redis-clock microseconds: seconds (`time.time()`), or ms above 1e11. */
const oldTimeMicros = (score: number): number => (score > 1e11 ? score * 1e3 : score * 1e6)

/** The newest version embedq has for `key`: unfinished, or stored with its vector; 0 if none. */
async function newestEmbedqVersion(
  redis: Redis | Cluster,
  versionsKey: string,
  key: string,
  versionField: string,
): Promise<number> {
  const [unfinished, stored] = await Promise.all([
    redis.zscore(versionsKey, key),
    redis.hget(key, versionField).catch(() => null), // not a hash: no vector of ours
  ])
  return Math.max(Number(unfinished ?? 0), Number(stored ?? 0)) || 0
}

/** Removes `keys` from the Python `dedup`/`retries` bookkeeping, whatever type it had. */
async function forgetKeys(redis: Redis | Cluster, key: string, keys: string[]): Promise<void> {
  if (keys.length === 0) return
  const type = await redis.type(key)
  if (type === 'set') await redis.srem(key, ...keys)
  else if (type === 'hash') await redis.hdel(key, ...keys)
  else if (type === 'zset') await redis.zrem(key, ...keys)
}

export async function importPython(
  redis: Redis | Cluster,
  queue: EmbeddingBatchQueue,
  opts: {
    keys: PythonKeys
    stateKey: string
    /** The queue's `versions` ZSET (unfinished items' latest versions). */
    versionsKey: string
    /** The target hash field holding the version of the stored vector. */
    versionField: string
    includeInflight: boolean
    dryRun: boolean
    delete: boolean
    batchSize: number
  },
): Promise<ImportSummary> {
  const summary: ImportSummary = {
    queue: queue.name,
    dryRun: opts.dryRun,
    read: { pending: 0, inflight: 0 },
    imported: 0,
    alreadyImported: 0,
    superseded: 0,
    blank: 0,
    rejected: 0,
    rejectedSample: [],
    deleted: 0,
  }
  const pending = new OldZset(redis, opts.keys.pending, opts.batchSize)
  const inflight = opts.includeInflight ? new OldZset(redis, opts.keys.inflight, opts.batchSize) : undefined
  const sources = inflight ? [inflight, pending] : [pending]
  const reject = (item: OldItem, reason: string): void => {
    summary.rejected++
    if (summary.rejectedSample.length < 5) {
      summary.rejectedSample.push({ from: item.from, member: clip(item.member, 200), reason })
    }
  }

  for (;;) {
    // The next page, oldest first across both ZSETs (an in-flight item first on a tie).
    const page: OldItem[] = []
    while (page.length < opts.batchSize) {
      let next: OldZset | undefined
      for (const source of sources) {
        const head = await source.peek()
        if (head && (!next || head.score < (await next.peek())!.score)) next = source
      }
      if (!next) break
      page.push(next.shift())
    }
    if (page.length === 0) break

    const fields = page.map(digest)
    const done = await redis.hmget(opts.stateKey, ...fields)
    const toEnqueue: Array<{ item: OldItem; field: string; key: string; text: string }> = []
    const finished: Array<{ item: OldItem; key: string }> = []
    page.forEach((item, i) => {
      const parsed = parseMember(item.member)
      if (typeof parsed === 'string') {
        reject(item, parsed)
        return
      }
      if (done[i] != null) {
        summary.alreadyImported++
        finished.push({ item, key: parsed.key })
        return
      }
      toEnqueue.push({ item, field: fields[i]!, ...parsed })
    })
    // Newer text in embedq (a producer already switched): the old item must not replace it.
    // A version an import handed out stands for the old item's enqueue time, not for "now".
    const newest = await Promise.all(
      toEnqueue.map(({ key }) => newestEmbedqVersion(redis, opts.versionsKey, key, opts.versionField)),
    )
    const importedAs = toEnqueue.length
      ? await redis.hmget(opts.stateKey, ...toEnqueue.map((e) => `key:${e.key}`))
      : []
    const superseded = new Set(
      toEnqueue.filter((e, i) => {
        const [version, at] = (importedAs[i] ?? '').split(' ').map(Number)
        const newestAt = version !== undefined && version === newest[i] ? (at ?? 0) : newest[i]!
        return newestAt > oldTimeMicros(e.item.score)
      }),
    )
    for (const e of superseded) {
      summary.superseded++
      finished.push({ item: e.item, key: e.key })
    }
    if (superseded.size > 0) {
      const kept = toEnqueue.filter((e) => !superseded.has(e))
      toEnqueue.length = 0
      toEnqueue.push(...kept)
      if (!opts.dryRun)
        await redis.hset(opts.stateKey, ...[...superseded].flatMap((e) => [e.field, 'superseded']))
    }
    if (opts.dryRun) {
      for (const e of toEnqueue) {
        if (e.text.trim() === '') summary.blank++
        else summary.imported++
      }
      continue
    }

    const jobs =
      toEnqueue.length > 0 ? await queue.enqueueMany(toEnqueue.map(({ key, text }) => ({ key, text }))) : []
    const record: string[] = []
    let fatal: Error | undefined
    jobs.forEach((job, i) => {
      const e = toEnqueue[i]!
      if (job.error) {
        // Refused as input: left in place. Anything else (a full queue) stops the import.
        if (job.error instanceof InvalidInputError) reject(e.item, job.error.message)
        else fatal ??= job.error
        return
      }
      if (job.version === 0) summary.blank++
      else summary.imported++
      record.push(
        e.field,
        String(job.version),
        `key:${e.key}`,
        `${job.version} ${oldTimeMicros(e.item.score)}`,
      )
      finished.push({ item: e.item, key: e.key })
    })
    if (record.length > 0) await redis.hset(opts.stateKey, ...record)
    if (fatal) throw fatal

    if (opts.delete && finished.length > 0) {
      for (const source of sources) {
        const members = finished.filter((f) => f.item.from === source.key).map((f) => f.item.member)
        if (members.length === 0) continue
        const removed = await redis.zrem(source.key, ...members)
        source.removed(removed)
        summary.deleted += removed
      }
      const keys = [...new Set(finished.map((f) => f.key))]
      await forgetKeys(redis, opts.keys.dedup, keys)
      await forgetKeys(redis, opts.keys.retries, keys)
    }
  }
  summary.read = { pending: pending.read, inflight: inflight?.read ?? 0 }
  return summary
}

export function registerImportPython(program: Command): void {
  connectionOptions(
    program
      .command('import-python')
      .description(
        'import the pending and in-flight items of the Python EmbeddingBatchQueue (embed_queue:*) into this queue',
      ),
  )
    .option('--from-prefix <prefix>', 'prefix of the Python queue keys', 'embed_queue')
    .option('--pending-key <key>', 'the Python pending ZSET (default: <from-prefix>:pending)')
    .option('--inflight-key <key>', 'the Python in-flight ZSET (default: <from-prefix>:inflight)')
    .option('--dedup-key <key>', 'the Python dedup key (default: <from-prefix>:dedup)')
    .option('--retries-key <key>', 'the Python retries hash (default: <from-prefix>:retries)')
    .option(
      '--version-field <field>',
      "target hash field of the stored vector's version",
      'embedding_version',
    )
    .option('--no-inflight', 'leave the in-flight items alone (import pending items only)')
    .option('--dry-run', 'count what would be imported; write nothing')
    .option('--delete', 'remove imported members from the Python keys once they are enqueued')
    .option('--batch-size <n>', 'members read and enqueued per page', intArg(1, 10_000), 500)
    .addOption(jsonOption())
    .addHelpText(
      'after',
      `
Stop the Python workers first. Items are enqueued oldest first (pending and in-flight merged by
score), so the newest text of a key wins. Running it again skips what was imported already.`,
    )
    .action(async (flags: ImportFlags) => {
      if (flags.dryRun && flags.delete)
        throw new CliError('--dry-run and --delete exclude each other', ExitCode.Usage)
      const defaults = pythonKeys(flags.fromPrefix)
      const keys: PythonKeys = {
        pending: flags.pendingKey ?? defaults.pending,
        inflight: flags.inflightKey ?? defaults.inflight,
        dedup: flags.dedupKey ?? defaults.dedup,
        retries: flags.retriesKey ?? defaults.retries,
      }
      const conn = await connect(flags, { command: 'import-python' })
      const queue = producerQueue(conn.redis, flags)
      try {
        const summary = await importPython(conn.redis, queue, {
          keys,
          stateKey: importStateKey(flags.prefix, flags.name),
          versionsKey: queueKeys(flags.prefix, flags.name).versions,
          versionField: flags.versionField,
          includeInflight: flags.inflight,
          dryRun: !!flags.dryRun,
          delete: !!flags.delete,
          batchSize: flags.batchSize,
        })
        if (flags.json) printJson(summary)
        else {
          const verb = summary.dryRun ? 'would import' : 'imported'
          out(
            `${verb} ${fmtInt(summary.imported)} items into queue "${summary.queue}" ` +
              `(read ${fmtInt(summary.read.pending)} pending, ${fmtInt(summary.read.inflight)} in flight; ` +
              `${fmtInt(summary.alreadyImported)} imported before, ${fmtInt(summary.superseded)} superseded by newer text, ` +
              `${fmtInt(summary.blank)} blank, ` +
              `${fmtInt(summary.rejected)} rejected${flags.delete ? `, ${fmtInt(summary.deleted)} removed from the Python keys` : ''})`,
          )
          for (const r of summary.rejectedSample) out(`  rejected ${r.from} ${r.member}: ${r.reason}`)
        }
        if (summary.rejected > 0) {
          throw new CliError(
            `${fmtInt(summary.rejected)} members were not imported and were left in the Python keys`,
          )
        }
      } finally {
        await queue.stop()
        await conn.close()
      }
    })
}
