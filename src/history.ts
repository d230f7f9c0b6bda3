/**
 * Per-minute history of a queue, kept in Redis for 24 h with bounded memory: one HASH
 * (`…:history`), one field per minute (epoch minutes) holding a CSV of fixed counters, so the
 * hash never holds more than HISTORY_MINUTES + 2 minute fields (lua/history-1.lua prunes
 * minutes as they age out).
 *
 * Workers count locally (`HistoryRecorder`) and flush every HISTORY_FLUSH_MS and on stop: a
 * SIGKILLed worker loses at most that interval of counts. Nothing here reads or writes
 * the target hashes.
 */
import type { HistoryPoint } from './admin-types.js'

/** Minutes of history kept (24 h). */
export const HISTORY_MINUTES = 1440

/** How often a worker writes its counts (a SIGKILL loses at most this much). */
export const HISTORY_FLUSH_MS = 5_000

/**
 * Upper bounds (ms) of the enqueue-to-vector latency buckets; the last bucket is everything
 * longer. p50/p95 are read as the upper bound of the bucket holding that rank (the longest
 * bucket reports its lower bound).
 */
export const LATENCY_BUCKETS_MS = [
  100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 300_000, 900_000, 3_600_000,
] as const

/** CSV positions: the six counters, then one count per latency bucket (plus the overflow one). */
const COUNTERS = ['embedded', 'failed', 'retried', 'providerCalls', 'tokens', 'rateLimited'] as const
type Counter = (typeof COUNTERS)[number]
export const HISTORY_WIDTH = COUNTERS.length + LATENCY_BUCKETS_MS.length + 1

const bucketOf = (ms: number): number => {
  const i = LATENCY_BUCKETS_MS.findIndex((bound) => ms <= bound)
  return i === -1 ? LATENCY_BUCKETS_MS.length : i
}

/** Counts of this process, per minute, until the next flush. */
export class HistoryRecorder {
  private readonly minutes = new Map<number, number[]>()

  private row(now: number): number[] {
    const minute = Math.floor(now / 60_000)
    let row = this.minutes.get(minute)
    if (!row) {
      row = new Array<number>(HISTORY_WIDTH).fill(0)
      this.minutes.set(minute, row)
    }
    return row
  }

  add(counter: Counter, n = 1, now = Date.now()): void {
    const row = this.row(now)
    row[COUNTERS.indexOf(counter)]! += n
  }

  /** One item finished `ms` after it was enqueued. */
  latency(ms: number, now = Date.now()): void {
    this.row(now)[COUNTERS.length + bucketOf(ms)]! += 1
  }

  get empty(): boolean {
    return this.minutes.size === 0
  }

  /** The counts so far as script arguments (minute, CSV, …), and forgets them. */
  take(): string[] {
    const args: string[] = []
    for (const [minute, row] of this.minutes) args.push(String(minute), row.join(','))
    this.minutes.clear()
    return args
  }

  /** Puts counts back that could not be written (merged with newer ones). */
  restore(args: readonly string[]): void {
    for (let i = 0; i + 1 < args.length; i += 2) {
      const minute = Number(args[i])
      const deltas = args[i + 1]!.split(',').map(Number)
      const row = this.row(minute * 60_000)
      deltas.forEach((d, j) => {
        row[j]! += d
      })
    }
  }
}

/** The latency (ms) at rank `q` (0..1) of the bucket counts, or null without any. */
function quantile(buckets: readonly number[], q: number): number | null {
  const total = buckets.reduce((a, b) => a + b, 0)
  if (total === 0) return null
  const rank = Math.max(1, Math.ceil(q * total))
  let seen = 0
  for (let i = 0; i < buckets.length; i++) {
    seen += buckets[i]!
    if (seen >= rank) return LATENCY_BUCKETS_MS[i] ?? LATENCY_BUCKETS_MS[LATENCY_BUCKETS_MS.length - 1]!
  }
  return null
}

/** One minute's point from its stored CSV (missing or unreadable: zeros). */
export function historyPoint(minute: number, csv: string | null | undefined): HistoryPoint {
  const v = (csv ?? '').split(',').map((x) => Number(x) || 0)
  const at = (i: number): number => v[i] ?? 0
  const buckets = Array.from({ length: LATENCY_BUCKETS_MS.length + 1 }, (_, i) => at(COUNTERS.length + i))
  return {
    minute: minute * 60_000,
    embedded: at(0),
    failed: at(1),
    retried: at(2),
    providerCalls: at(3),
    tokens: at(4),
    rateLimited: at(5),
    p50Ms: quantile(buckets, 0.5),
    p95Ms: quantile(buckets, 0.95),
  }
}
