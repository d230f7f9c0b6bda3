/**
 * `embedq backfill --match 'msg:*' --text-field text [--missing-only]`: SCAN existing hashes
 * (every master of a cluster), enqueue the ones that need a vector, with a progress bar.
 *
 * Memory stays bounded for millions of keys: keys are handled one SCAN page at a time and
 * nothing is kept (the producer queue uses `trackResults: false`). Progress (the SCAN cursors) is saved in Redis after each page
 * is durably enqueued; a second run continues from there unless `--restart`.
 */
import type { Command } from 'commander'
import type { Cluster, Redis } from 'ioredis'
import { inKeySpace, queueKeys } from '../keys.js'
import type { EmbeddingBatchQueue } from '../queue.js'
import {
  BACKFILL_STATE_TTL_SECONDS,
  backfillId,
  backfillStateKey,
  noSkips,
  type SavedBackfill,
} from './backfill-state.js'
import { type ScanNode, scanNodes } from './scan.js'
import {
  CliError,
  type ConnectionFlags,
  connect,
  connectionOptions,
  ExitCode,
  fmtDuration,
  fmtInt,
  intArg,
  jsonOption,
  onStopSignal,
  out,
  printJson,
  producerQueue,
  sleep,
} from './shared.js'

/** Items enqueued through one producer queue before it is replaced (bounds its waiter map). */
interface BackfillFlags extends ConnectionFlags {
  match: string
  textField: string
  field: string
  missingOnly?: boolean
  count: number
  limit?: number
  restart?: boolean
  maxUnfinished: number
  json?: boolean
  quiet?: boolean
  bulk?: boolean
}

export interface BackfillSummary {
  match: string
  /** Every matching hash was visited. */
  done: boolean
  /** Why it stopped early: `limit` or `interrupted`. */
  stoppedBy?: 'limit' | 'interrupted'
  /** This run continued a saved one. */
  resumed: boolean
  /** Totals over every run of this backfill. */
  scanned: number
  enqueued: number
  skipped: SavedBackfill['skipped']
  /** This run only. */
  run: { scanned: number; enqueued: number; elapsedMs: number }
  nodes: number
}

/** How far the scan of every node has come, in [0, 1], each node weighed by its size. */
function scanFraction(nodes: readonly ScanNode[], state: SavedBackfill): number {
  let total = 0
  let done = 0
  for (const n of nodes) {
    const c = state.cursors[n.id]
    const weight = Math.max(1, n.size)
    total += weight
    done += weight * (c === 'done' ? 1 : c === undefined || c === '0' ? 0 : n.progress(c))
  }
  return total ? done / total : 0
}

/** Renders progress on stderr: a rewritten line on a terminal, a line per second otherwise. */
class Progress {
  private lastDraw = 0
  private readonly tty = process.stderr.isTTY === true
  constructor(
    private readonly quiet: boolean,
    private readonly nodes: ScanNode[],
    private readonly started: number,
    private readonly startFraction: number,
  ) {}

  line(state: SavedBackfill, runScanned: number): string {
    const f = Math.min(1, scanFraction(this.nodes, state))
    const elapsed = (Date.now() - this.started) / 1000
    const rate = elapsed > 0 ? runScanned / elapsed : 0
    const width = 20
    const filled = Math.round(f * width)
    const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(f * 100).toFixed(0).padStart(3)}%`
    const skipped = Object.values(state.skipped).reduce((a, b) => a + b, 0)
    const parts = [
      `backfill ${state.match} ${bar}`,
      `scanned ${fmtInt(state.scanned)}`,
      `enqueued ${fmtInt(state.enqueued)}`,
      `skipped ${fmtInt(skipped)}`,
      `${fmtInt(Math.round(rate))} keys/s`,
    ]
    const progressed = f - this.startFraction
    if (f >= 1) parts.push('ETA 0s')
    else if (progressed > 0.001 && elapsed > 0.5) {
      parts.push(`ETA ${fmtDuration(((1 - f) * elapsed * 1000) / progressed)}`)
      if (f > 0.01) parts.push(`~${fmtInt(Math.round(state.scanned / f))} matching`)
    }
    return parts.join(' · ')
  }

  update(state: SavedBackfill, runScanned: number, final = false): void {
    if (this.quiet) return
    const now = Date.now()
    if (!final && now - this.lastDraw < (this.tty ? 200 : 1_000)) return
    this.lastDraw = now
    const text = this.line(state, runScanned)
    if (this.tty) process.stderr.write(`\r\x1b[K${text}${final ? '\n' : ''}`)
    else process.stderr.write(`${text}\n`)
  }

  note(message: string): void {
    if (this.quiet) return
    process.stderr.write(`${this.tty ? '\r\x1b[K' : ''}${message}\n`)
  }
}

type Outcome = 'enqueue' | keyof SavedBackfill['skipped']

/** Reads text and vector presence of one page of keys from the node that returned them. */
async function readPage(
  redis: Redis | Cluster,
  node: ScanNode,
  keys: string[],
  flags: BackfillFlags,
): Promise<Array<{ outcome: Outcome; text?: string }>> {
  const perKey = flags.missingOnly ? 2 : 1
  const pipe = node.client.pipeline()
  for (const key of keys) {
    pipe.hget(key, flags.textField)
    if (flags.missingOnly) pipe.hexists(key, flags.field)
  }
  const replies = (await pipe.exec()) ?? []
  return Promise.all(
    keys.map(async (key, i) => {
      let [textErr, text] = replies[i * perKey] ?? [null, null]
      let [hasErr, has] = flags.missingOnly ? (replies[i * perKey + 1] ?? [null, 0]) : [null, 0]
      if ((textErr && /MOVED|ASK/.test(textErr.message)) || (hasErr && /MOVED|ASK/.test(hasErr.message))) {
        // The slot moved since SCAN returned the key: ask the cluster.
        ;[textErr, text] = [null, await redis.hget(key, flags.textField)]
        ;[hasErr, has] = [null, flags.missingOnly ? await redis.hexists(key, flags.field) : 0]
      }
      const err = textErr ?? hasErr
      if (err) {
        if (/WRONGTYPE/.test(err.message)) return { outcome: 'wrongType' as const }
        throw err
      }
      if (typeof text !== 'string') return { outcome: 'noText' as const }
      if (text.trim() === '') return { outcome: 'blank' as const }
      if (Number(has) === 1) return { outcome: 'hasVector' as const }
      return { outcome: 'enqueue' as const, text }
    }),
  )
}

/** SCAN with TYPE hash where the server supports it (Redis ≥ 6), plain SCAN otherwise. */
function scanner(): (
  node: ScanNode,
  cursor: string,
  match: string,
  count: number,
) => Promise<[string, string[]]> {
  let typed = true
  return async (node, cursor, match, count) => {
    if (typed) {
      try {
        return await node.client.scan(cursor, 'MATCH', match, 'COUNT', count, 'TYPE', 'hash')
      } catch (err) {
        if (!/syntax|TYPE/i.test((err as Error).message)) throw err
        typed = false
      }
    }
    return node.client.scan(cursor, 'MATCH', match, 'COUNT', count)
  }
}

async function runBackfill(flags: BackfillFlags): Promise<BackfillSummary> {
  const conn = await connect(flags, { command: 'backfill' })
  const { redis } = conn
  const started = Date.now()
  const stateKey = backfillStateKey(flags.prefix, flags.name)
  const id = backfillId(flags.match, flags.textField, flags.field, !!flags.missingOnly)
  let queue: EmbeddingBatchQueue | undefined
  const stop = onStopSignal()
  try {
    const nodes = await scanNodes(redis)
    if (flags.restart) await redis.hdel(stateKey, id)
    const raw = await redis.hget(stateKey, id)
    let state: SavedBackfill | undefined
    try {
      state = raw ? (JSON.parse(raw) as SavedBackfill) : undefined
    } catch {
      process.stderr.write(
        `embedq: the saved backfill progress in ${stateKey} is unreadable: starting over\n`,
      )
    }
    const ids = nodes.map((n) => n.id).sort()
    if (state && Object.keys(state.cursors).sort().join() !== ids.join()) {
      process.stderr.write(
        `embedq: the saved backfill scanned nodes [${Object.keys(state.cursors).join(', ')}], now the masters are [${ids.join(', ')}]: starting over\n`,
      )
      state = undefined
    }
    const resumed = !!state
    state ??= {
      match: flags.match,
      textField: flags.textField,
      field: flags.field,
      missingOnly: !!flags.missingOnly,
      cursors: Object.fromEntries(ids.map((n) => [n, '0'])),
      scanned: 0,
      enqueued: 0,
      skipped: noSkips(),
      startedAt: started,
      updatedAt: started,
    }
    const s = state
    const bar = new Progress(!!flags.quiet, nodes, started, scanFraction(nodes, s))
    if (resumed)
      bar.note(
        `resuming backfill of ${flags.match}: ${fmtInt(s.scanned)} scanned and ${fmtInt(s.enqueued)} enqueued so far`,
      )
    const versionsKey = queueKeys(flags.prefix, flags.name).versions
    const scan = scanner()
    let runScanned = 0
    let runEnqueued = 0
    let stoppedBy: BackfillSummary['stoppedBy']
    const invalidShown = new Set<string>()

    const save = async (): Promise<void> => {
      s.updatedAt = Date.now()
      await redis
        .multi()
        .hset(stateKey, id, JSON.stringify(s))
        .expire(stateKey, BACKFILL_STATE_TTL_SECONDS)
        .exec()
    }

    scanning: for (const node of nodes) {
      while (s.cursors[node.id] !== 'done') {
        if (stop.signal.aborted) {
          stoppedBy = 'interrupted'
          break scanning
        }
        if (flags.limit !== undefined && runEnqueued >= flags.limit) {
          stoppedBy = 'limit'
          break scanning
        }
        // Backpressure: let the workers catch up before queueing more.
        while (flags.maxUnfinished > 0 && !stop.signal.aborted) {
          const unfinished = await redis.zcard(versionsKey)
          if (unfinished <= flags.maxUnfinished) break
          bar.note(
            `waiting: the queue holds ${fmtInt(unfinished)} unfinished items (--max-unfinished ${fmtInt(flags.maxUnfinished)})`,
          )
          await sleep(1_000, stop.signal)
        }
        if (stop.signal.aborted) continue
        const cursor = s.cursors[node.id] ?? '0'
        const [next, keys] = await scan(node, cursor, flags.match, flags.count)
        // The queue's own keys (and cache / rate-limit keys) match a broad pattern too: never
        // read or enqueue them (a vector written there would corrupt the queue).
        const own = keys.filter((key) => inKeySpace(flags.prefix, key))
        if (own.length) {
          s.skipped.invalid += own.length
          const shown = own.slice(0, 5).map((k) => JSON.stringify(k))
          if (own.length > 5) shown.push(`… (${own.length - 5} more)`)
          bar.note(
            `skipped ${own.length} key(s) inside embedq's own key space (${flags.prefix}:), never enqueued: ${shown.join(', ')}`,
          )
        }
        const targets = own.length ? keys.filter((key) => !inKeySpace(flags.prefix, key)) : keys
        if (targets.length) {
          const page = await readPage(redis, node, targets, flags)
          const items: Array<{ key: string; text: string }> = []
          page.forEach((p, i) => {
            if (p.outcome === 'enqueue') items.push({ key: targets[i]!, text: p.text! })
            else s.skipped[p.outcome]++
          })
          if (items.length) {
            queue ??= producerQueue(redis, flags)
            const jobs = await queue.enqueueMany(items, { lane: flags.bulk ? 'bulk' : 'online' })
            for (const job of jobs) {
              if (job.error) {
                s.skipped.invalid++
                if (invalidShown.size < 5 && !invalidShown.has(job.error.message)) {
                  invalidShown.add(job.error.message)
                  bar.note(`skipped ${job.key}: ${job.error.message}`)
                }
              } else {
                s.enqueued++
                runEnqueued++
              }
            }
          }
        }
        s.scanned += keys.length
        runScanned += keys.length
        s.cursors[node.id] = next === '0' ? 'done' : next
        await save()
        bar.update(s, runScanned)
      }
    }
    const done = Object.values(s.cursors).every((c) => c === 'done')
    if (done) await redis.hdel(stateKey, id)
    bar.update(s, runScanned, true)
    return {
      match: flags.match,
      done,
      ...(done ? {} : { stoppedBy: stoppedBy ?? 'interrupted' }),
      resumed,
      scanned: s.scanned,
      enqueued: s.enqueued,
      skipped: s.skipped,
      run: { scanned: runScanned, enqueued: runEnqueued, elapsedMs: Date.now() - started },
      nodes: nodes.length,
    }
  } finally {
    stop.dispose()
    await queue?.stop().catch(() => {})
    await conn.close()
  }
}

export function registerBackfill(program: Command): void {
  connectionOptions(
    program
      .command('backfill')
      .description(
        'SCAN existing hashes and enqueue the ones that need a vector (resumable; every master of a cluster)',
      ),
  )
    .requiredOption('--match <pattern>', "SCAN pattern of the target hashes, e.g. 'msg:*'")
    .option('--text-field <field>', 'hash field that holds the text', 'text')
    .option('--field <field>', 'hash field that receives the vector', 'embedding')
    .option('--missing-only', 'skip hashes that already have the vector field')
    .option('--count <n>', 'SCAN COUNT hint: keys per page', intArg(1, 100_000), 1_000)
    .option('--limit <n>', 'stop after enqueuing this many in this run (progress is saved)', intArg(1))
    .option('--restart', 'ignore saved progress and scan from the start')
    .option(
      '--bulk',
      'queue into the half-price bulk lane (provider batch jobs, answered within hours; workers need a provider with a batch API)',
    )
    .option(
      '--max-unfinished <n>',
      'pause while the queue holds more unfinished items than this (0: never)',
      intArg(0),
      0,
    )
    .option('-q, --quiet', 'no progress on stderr')
    .addOption(jsonOption())
    .action(async (flags: BackfillFlags) => {
      const r = await runBackfill(flags)
      const skipped = r.skipped
      if (flags.json) printJson(r)
      else {
        const why = r.stoppedBy === 'limit' ? 'stopped at --limit' : 'interrupted'
        out(
          `${r.done ? 'backfill done' : `backfill ${why}`}: ${fmtInt(r.scanned)} hash${r.scanned === 1 ? '' : 'es'} matching ${JSON.stringify(r.match)} scanned, ${fmtInt(r.enqueued)} enqueued` +
            ` (skipped: ${fmtInt(skipped.hasVector)} with a vector, ${fmtInt(skipped.noText)} without text, ${fmtInt(skipped.blank)} blank, ${fmtInt(skipped.invalid)} invalid${skipped.wrongType ? `, ${fmtInt(skipped.wrongType)} not hashes` : ''})` +
            `; this run: ${fmtInt(r.run.enqueued)} enqueued in ${fmtDuration(r.run.elapsedMs)}`,
        )
        if (!r.done)
          out('progress is saved: run the same command again to continue (--restart to start over)')
      }
      if (r.stoppedBy === 'interrupted') throw new CliError('', ExitCode.Interrupted)
    })
}
