/**
 * `embedq status [--watch]`: what the queue holds and how fast it moves.
 */
import type { Command } from 'commander'
import type { Cluster, Redis } from 'ioredis'
import type { DeadLetter } from '../codec.js'
import { type QueueKeys, queueKeys } from '../keys.js'
import type { QueueStats } from '../queue.js'
import { backfillStateKey, type SavedBackfill } from './backfill-state.js'
import {
  type ConnectionFlags,
  clip,
  connect,
  connectionOptions,
  fmtDuration,
  fmtInt,
  intArg,
  jsonOption,
  onStopSignal,
  out,
  plural,
  printJson,
  queueAdmin,
  sleep,
} from './shared.js'

/** Hash entries read for the attempts histogram and the dead letters, at most. */
const READ_CAP = 10_000

export interface StatusReport {
  queue: string
  prefix: string
  /** Redis server time of the report (ISO). */
  time: string
  /** Items not finished: waiting, in flight, or backing off. */
  unfinished: number
  /** Items waiting for a worker. */
  pending: number
  /**
   * Of the pending items, those due at once (covered by a flush: `flushNow`/`flushAndWait`,
   * retries, reclaims). The others wait for a full batch or the workers' flush interval.
   */
  ready: number
  /** Items claimed by a worker now. */
  inflight: number
  /** Items backing off after a failed attempt. */
  retrying: number
  /** Unfinished items with failed attempts, by number of failed attempts. */
  attempts: Record<string, number>
  /** True when the attempts were counted over the first READ_CAP items only. */
  attemptsSampled: boolean
  deadLetters: {
    count: number
    /** The latest ones, newest first (without their text). */
    latest: Array<Omit<DeadLetter, 'text'>>
    sampled: boolean
  }
  /** Age of the oldest unfinished item, ms (null when empty). */
  oldestAgeMs: number | null
  /** Claims are paused (provider rate limit or quota) for this long, ms. */
  pausedForMs: number
  /** The shared rate-limit pause: why, until when, and rate-limited calls so far. */
  rateLimit: {
    pausedForMs: number
    reason: 'rate-limit' | 'quota' | null
    /** ISO time the workers resume; null when not paused. */
    resumesAt: string | null
    since: string | null
    quotaId: string | null
    message: string | null
    rateLimitedCalls: number
  }
  /** The operator pause (`embedq pause`), distinct from the rate-limit pause. */
  operatorPause: { paused: boolean; since: string | null; by: string | null }
  /** Live workers (heartbeating into the queue's keys). */
  workers: number
  /** Unfinished items and no live worker: nothing drains the queue. */
  backlogWithoutWorker: boolean
  throughput: { lastMinute: number; perSecond: number }
  /** The bulk lane: waiting items, provider jobs (state, requests, age), totals and the saving. */
  bulk: {
    waiting: number
    inJobs: number
    jobs: Array<{
      id: string
      state: string
      providerJobId: string | null
      requests: number
      completed: number
      failed: number
      ageMs: number
      lastPolledAt: string | null
      error: string | null
    }>
    submittedJobs: number
    submittedRequests: number
    tokensSent: number
    estimatedSavingUsd: number
    pausedUntil: string | null
  }
  /** Backfills that stopped before the end and can be resumed. */
  backfills: Array<Pick<SavedBackfill, 'match' | 'scanned' | 'enqueued' | 'updatedAt'>>
}

/** HSCAN up to `cap` entries (a small hash comes back in one call). */
async function hscanCapped(
  redis: Redis | Cluster,
  key: string,
  cap: number,
): Promise<{ entries: Array<[string, string]>; complete: boolean }> {
  const entries: Array<[string, string]> = []
  let cursor = '0'
  do {
    const [next, flat] = await redis.hscan(key, cursor, 'COUNT', 1000)
    for (let i = 0; i + 1 < flat.length; i += 2) entries.push([flat[i]!, flat[i + 1]!])
    cursor = next
  } while (cursor !== '0' && entries.length < cap)
  return { entries, complete: cursor === '0' }
}

async function report(
  redis: Redis | Cluster,
  flags: ConnectionFlags,
  keys: QueueKeys,
  deadLetterLimit: number,
): Promise<StatusReport> {
  {
    const [stats, time, flushTick] = await Promise.all([
      queueAdmin(redis, flags).stats(),
      redis.time(),
      redis.get(keys.flush),
    ])
    const nowUs = Number(time[0]) * 1e6 + Number(time[1])
    const [ready, retries, failed, backfills] = await Promise.all([
      flushTick ? redis.zcount(keys.pending, '-inf', flushTick) : Promise.resolve(0),
      hscanCapped(redis, keys.retries, READ_CAP),
      hscanCapped(redis, keys.failed, READ_CAP),
      redis.hvals(backfillStateKey(flags.prefix, flags.name)),
    ])
    const attempts: Record<string, number> = {}
    for (const [, n] of retries.entries) attempts[n] = (attempts[n] ?? 0) + 1
    const letters: Array<Omit<DeadLetter, 'text'>> = []
    for (const [, raw] of failed.entries) {
      try {
        const { text: _text, ...rest } = JSON.parse(raw) as DeadLetter
        letters.push(rest)
      } catch {
        // not ours: skip
      }
    }
    letters.sort((a, b) => b.failedAt - a.failedAt)
    return {
      queue: flags.name,
      prefix: flags.prefix,
      time: new Date(nowUs / 1000).toISOString(),
      unfinished: stats.unfinished,
      pending: stats.pending,
      ready,
      inflight: stats.inflight,
      retrying: stats.retrying,
      attempts,
      attemptsSampled: !retries.complete,
      deadLetters: {
        count: stats.failed,
        latest: letters.slice(0, deadLetterLimit),
        sampled: !failed.complete,
      },
      oldestAgeMs: stats.oldestAgeMs,
      pausedForMs: stats.pausedForMs,
      rateLimit: {
        ...stats.rateLimit,
        resumesAt: stats.rateLimit.resumesAt?.toISOString() ?? null,
        since: stats.rateLimit.since?.toISOString() ?? null,
      },
      operatorPause: {
        paused: stats.paused.paused,
        since: stats.paused.since === null ? null : new Date(stats.paused.since).toISOString(),
        by: stats.paused.by,
      },
      workers: stats.workers,
      backlogWithoutWorker: stats.backlogWithoutWorker,
      bulk: bulkReport(stats.bulk),
      throughput: {
        lastMinute: stats.finishedLastMinute,
        perSecond: Math.round((stats.finishedLastMinute / 60) * 10) / 10,
      },
      backfills: backfills.flatMap((raw) => {
        try {
          const b = JSON.parse(raw) as SavedBackfill
          return [{ match: b.match, scanned: b.scanned, enqueued: b.enqueued, updatedAt: b.updatedAt }]
        } catch {
          return []
        }
      }),
    }
  }
}

function bulkReport(b: QueueStats['bulk']): StatusReport['bulk'] {
  if (!b)
    return {
      waiting: 0,
      inJobs: 0,
      jobs: [],
      submittedJobs: 0,
      submittedRequests: 0,
      tokensSent: 0,
      estimatedSavingUsd: 0,
      pausedUntil: null,
    }
  return {
    ...b,
    jobs: b.jobs.map((j) => ({ ...j, lastPolledAt: j.lastPolledAt?.toISOString() ?? null })),
    pausedUntil: b.pausedUntil?.toISOString() ?? null,
  }
}

/** The "bulk" section of `embedq status`: nothing when the lane was never used. */
export function renderBulk(b: StatusReport['bulk']): string[] {
  if (b.waiting === 0 && b.inJobs === 0 && b.jobs.length === 0 && b.submittedJobs === 0) return []
  const lines = [
    `bulk lane: ${fmtInt(b.waiting)} waiting, ${fmtInt(b.inJobs)} in ${plural(b.jobs.length, 'job')}; ${fmtInt(b.submittedRequests)} requests in ${plural(b.submittedJobs, 'job')} so far, ~${fmtInt(b.tokensSent)} tokens, est. saving $${b.estimatedSavingUsd.toFixed(4)}`,
  ]
  if (b.pausedUntil) lines.push(`  new jobs paused until ${b.pausedUntil} (the provider refused a submit)`)
  for (const j of b.jobs) {
    const progress =
      j.completed || j.failed ? `, ${fmtInt(j.completed)} done, ${fmtInt(j.failed)} failed` : ''
    lines.push(
      `  ${j.id}  ${j.state.padEnd(10)} ${plural(j.requests, 'request')}${progress}, age ${fmtDuration(j.ageMs)}${j.providerJobId ? `  ${j.providerJobId}` : ''}${j.error ? `  ${clip(j.error, 100)}` : ''}`,
    )
  }
  return lines
}

export function renderStatus(r: StatusReport, url: string): string[] {
  const row = (label: string, value: string, note = ''): string =>
    `  ${label.padEnd(14)}${value.padStart(10)}${note ? `  ${note}` : ''}`
  const attempts = Object.entries(r.attempts)
    .sort(([a], [b]) => Number(a) - Number(b))
    .map(([n, count]) => `${fmtInt(count)} after ${n} failed`)
    .join(' · ')
  const lines = [
    `queue "${r.queue}" (keys ${r.prefix}:{${r.queue}}:*) at ${url}, ${r.time}`,
    ...(r.backlogWithoutWorker
      ? [`WARNING: ${fmtInt(r.unfinished)} unfinished item(s) and NO LIVE WORKER: start one (embedq worker)`]
      : []),
    row('unfinished', fmtInt(r.unfinished), 'waiting, in flight or backing off'),
    row('pending', fmtInt(r.pending), 'waiting for a worker'),
    row(
      'ready',
      fmtInt(r.ready),
      'of those, due now (flushed); the rest wait for a full batch or the flush interval',
    ),
    row('in flight', fmtInt(r.inflight), 'claimed by a worker'),
    row('retrying', fmtInt(r.retrying), 'backing off after a failed attempt'),
    row(
      'attempts',
      '',
      attempts ? `${attempts}${r.attemptsSampled ? ' (first 10,000 items)' : ''}` : 'no failed attempts',
    ),
    row(
      'dead letters',
      fmtInt(r.deadLetters.count),
      r.deadLetters.count ? 'embedq failed: list · embedq retry-failed: retry' : '',
    ),
    row('oldest item', r.oldestAgeMs === null ? '-' : fmtDuration(r.oldestAgeMs)),
    row(
      'throughput',
      fmtInt(r.throughput.lastMinute),
      `finished in the last minute (${r.throughput.perSecond}/s)`,
    ),
    row(
      'workers',
      fmtInt(r.workers),
      r.backlogWithoutWorker
        ? 'BACKLOG WITH NO LIVE WORKER: nothing drains the queue'
        : 'live (embedq workers: list)',
    ),
    row(
      'paused (op)',
      r.operatorPause.paused ? 'yes' : 'no',
      r.operatorPause.paused
        ? `by ${r.operatorPause.by ?? 'unknown'} since ${r.operatorPause.since ?? '?'} (embedq resume)`
        : '',
    ),
    row('paused', r.pausedForMs > 0 ? fmtDuration(r.pausedForMs) : 'no', pauseNote(r.rateLimit)),
    row(
      'rate-limited',
      fmtInt(r.rateLimit.rateLimitedCalls),
      'provider calls refused by a rate limit or quota (no attempt charged)',
    ),
  ]
  if (r.rateLimit.reason === 'quota') {
    lines.push(
      `QUOTA EXHAUSTED${r.rateLimit.quotaId ? ` (${r.rateLimit.quotaId})` : ''}: every worker waits until ${r.rateLimit.resumesAt}${r.rateLimit.message ? ` — ${clip(r.rateLimit.message, 160)}` : ''}`,
      `  (quota raised? resume every worker now: DEL ${r.prefix}:{${r.queue}}:pause)`,
    )
  }
  if (r.deadLetters.latest.length) {
    lines.push(`latest dead letters${r.deadLetters.sampled ? ' (of the first 10,000 read)' : ''}:`)
    for (const d of r.deadLetters.latest) {
      const status = d.status === undefined ? '' : ` [${d.status}]`
      lines.push(
        `  ${d.key}  ${plural(d.attempts, 'attempt')}  ${new Date(d.failedAt).toISOString()}${status}  ${clip(d.error, 100)}`,
      )
    }
  }
  lines.push(...renderBulk(r.bulk))
  for (const b of r.backfills) {
    lines.push(
      `resumable backfill of ${JSON.stringify(b.match)}: ${fmtInt(b.scanned)} scanned, ${fmtInt(b.enqueued)} enqueued, last progress ${new Date(b.updatedAt).toISOString()}`,
    )
  }
  return lines
}

function pauseNote(rl: StatusReport['rateLimit']): string {
  if (rl.reason === null) return ''
  const what = rl.reason === 'quota' ? 'provider quota exhausted' : 'provider rate limit'
  return `${what}, until ${rl.resumesAt}`
}

interface StatusFlags extends ConnectionFlags {
  json?: boolean
  watch?: boolean
  interval: number
  deadLetters: number
}

export function registerStatus(program: Command): void {
  connectionOptions(
    program
      .command('status')
      .description(
        'show the queue: pending, ready, in flight, retrying (with attempt counts), dead letters, oldest age, throughput',
      ),
  )
    .addOption(jsonOption())
    .option('-w, --watch', 'refresh until Ctrl-C (with --json: one JSON line per refresh)')
    .option('--interval <ms>', 'refresh interval of --watch', intArg(100), 2_000)
    .option('--dead-letters <n>', 'latest dead letters to show', intArg(0, 1000), 5)
    .action(async (flags: StatusFlags) => {
      const conn = await connect(flags, { command: 'status' })
      const keys = queueKeys(flags.prefix, flags.name)
      try {
        if (!flags.watch) {
          const r = await report(conn.redis, flags, keys, flags.deadLetters)
          if (flags.json) printJson(r)
          else for (const line of renderStatus(r, conn.url)) out(line)
          return
        }
        const stop = onStopSignal()
        const tty = process.stdout.isTTY && !flags.json
        try {
          while (!stop.signal.aborted) {
            const r = await report(conn.redis, flags, keys, flags.deadLetters)
            if (flags.json) printJson(r)
            else {
              if (tty) process.stdout.write('\x1b[2J\x1b[H')
              for (const line of renderStatus(r, conn.url)) out(line)
              out(tty ? `(every ${flags.interval} ms; Ctrl-C to stop)` : '')
            }
            await sleep(flags.interval, stop.signal)
          }
        } finally {
          stop.dispose()
        }
      } finally {
        await conn.close()
      }
    })
}
