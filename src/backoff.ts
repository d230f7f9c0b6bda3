/**
 * Delay before attempt `attempt + 1` after `attempt` failures: exponential from `baseMs`,
 * capped at `maxMs`, with "equal jitter" (half fixed, half random) so retries of one batch
 * spread out, and never shorter than what the provider asked for.
 */
export function backoffMs(
  attempt: number,
  baseMs: number,
  maxMs: number,
  retryAfterMs?: number,
  random: () => number = Math.random,
): number {
  const exp = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1))
  const jittered = exp / 2 + random() * (exp / 2)
  return Math.max(Math.round(jittered), retryAfterMs ?? 0)
}
