/** Small helpers for timing and summarising samples. */
import { performance } from 'node:perf_hooks'

export const now = (): number => performance.now()

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** Nearest-rank percentile of unsorted samples. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return Number.NaN
  const sorted = [...samples].sort((a, b) => a - b)
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[rank]!
}

export function median(samples: readonly number[]): number {
  return percentile(samples, 50)
}

/** Items per second. */
export const rate = (items: number, ms: number): number => (ms > 0 ? (items * 1000) / ms : Number.NaN)

/** Rounds to `digits` significant-ish decimals for JSON output. */
export function round(x: number, digits = 2): number {
  if (!Number.isFinite(x)) return x
  const f = 10 ** digits
  return Math.round(x * f) / f
}

/** Runs `fn` over `items` with at most `limit` promises in flight. */
export async function inFlight<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<unknown>,
): Promise<void> {
  let next = 0
  const lane = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++]!
      await fn(item)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane))
}

/** Splits `list` into slices of `size`. */
export function chunks<T>(list: readonly T[], size: number): T[][] {
  const out: T[][] = []
  for (let i = 0; i < list.length; i += size) out.push(list.slice(i, i + size))
  return out
}
