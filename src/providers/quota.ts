/**
 * What a 429 says about quotas, in the dialects the providers speak:
 * - Google (`google.rpc.QuotaFailure` in `error.details`): each violation names its `quotaId`,
 *   e.g. `EmbedContentRequestsPerDayPerProjectPerModel-FreeTier`. A `PerDay` quota resets at
 *   midnight Pacific time (Google's documented reset), whatever `RetryInfo` says: Gemini sends
 *   a `retryDelay` of a few seconds with daily quotas too, and retrying then only fails again.
 * - OpenAI (`error.code` / `error.type` `insufficient_quota`): the account is out of credit; no
 *   reset time is known.
 * - OpenAI's `x-ratelimit-reset-requests` / `x-ratelimit-reset-tokens` headers (`"1s"`,
 *   `"6m0s"`, `"20ms"`): how long until the exhausted bucket is full again; used when a 429 has
 *   no `Retry-After`.
 */

const PACIFIC = 'America/Los_Angeles'
const HOUR = 3_600_000

/** The `quotaId`s of the `google.rpc.QuotaFailure` entries of a Google-style error body. */
export function googleQuotaIds(details: readonly Record<string, unknown>[]): string[] {
  const ids: string[] = []
  for (const d of details) {
    const type = d['@type']
    if (typeof type !== 'string' || !type.endsWith('google.rpc.QuotaFailure')) continue
    const violations = d.violations
    if (!Array.isArray(violations)) continue
    for (const v of violations) {
      const id = (v as { quotaId?: unknown } | null)?.quotaId
      if (typeof id === 'string' && id !== '') ids.push(id)
    }
  }
  return ids
}

/** Whether a Google `quotaId` names a daily quota (`…PerDay…`). */
export const isDailyQuotaId = (id: string): boolean => /PerDay/i.test(id)

/**
 * The next midnight in America/Los_Angeles after `now` (epoch ms), when Google resets daily
 * quotas. Uses the runtime's time-zone data (Intl); on a runtime without it, the US daylight
 * saving rules in force since 2007 (PDT from the second Sunday of March to the first Sunday
 * of November).
 */
export function nextPacificMidnight(now: number = Date.now()): number {
  let offset: (at: number) => number
  try {
    offset = intlOffset()
    offset(now)
  } catch {
    offset = usRulesOffset
  }
  // Local wall-clock date of `now`, then midnight of the next day as a local time.
  const local = new Date(now + offset(now))
  const target = Date.UTC(local.getUTCFullYear(), local.getUTCMonth(), local.getUTCDate() + 1)
  // Midnight is never inside a DST gap there (changes happen at 02:00): two passes settle it.
  let at = target - offset(now)
  at = target - offset(at)
  return at
}

/** Pacific offset from UTC in ms at an instant, read from the runtime's time-zone data. */
function intlOffset(): (at: number) => number {
  const fmt = new Intl.DateTimeFormat('en-US', {
    timeZone: PACIFIC,
    hourCycle: 'h23',
    year: 'numeric',
    month: 'numeric',
    day: 'numeric',
    hour: 'numeric',
    minute: 'numeric',
    second: 'numeric',
  })
  return (at) => {
    const p: Record<string, number> = {}
    for (const part of fmt.formatToParts(new Date(at))) p[part.type] = Number(part.value)
    const wall = Date.UTC(p.year!, p.month! - 1, p.day!, p.hour! % 24, p.minute!, p.second!)
    const offset = wall - (at - (((at % 1000) + 1000) % 1000))
    if (!Number.isFinite(offset)) throw new RangeError('no time-zone data')
    return offset
  }
}

/** Pacific offset from UTC in ms by the US rules: -7 h during daylight saving time, else -8 h. */
export function usRulesOffset(at: number): number {
  const year = new Date(at).getUTCFullYear()
  const sunday = (month: number, n: number): number => {
    const first = new Date(Date.UTC(year, month, 1)).getUTCDay()
    return 1 + ((7 - first) % 7) + 7 * (n - 1)
  }
  const start = Date.UTC(year, 2, sunday(2, 2), 10) // 02:00 PST
  const end = Date.UTC(year, 10, sunday(10, 1), 9) // 02:00 PDT
  return at >= start && at < end ? -7 * HOUR : -8 * HOUR
}

/** Parses OpenAI's reset durations (`"1s"`, `"6m0s"`, `"20ms"`, `"1h2m3.5s"`) into ms. */
export function parseResetDuration(value: string | null | undefined): number | undefined {
  if (value == null) return undefined
  const text = value.trim()
  if (text === '' || !/^(\d+(\.\d+)?(h|ms|m|s))+$/.test(text)) return undefined
  const unit: Record<string, number> = { h: HOUR, m: 60_000, s: 1000, ms: 1 }
  let total = 0
  for (const m of text.matchAll(/(\d+(?:\.\d+)?)(h|ms|m|s)/g)) total += Number(m[1]) * unit[m[2]!]!
  return Math.round(total)
}

/**
 * The wait OpenAI's `x-ratelimit-*` headers imply: the reset of the bucket that is empty
 * (requests or tokens), or the longer of the two when neither says it is empty.
 */
export function openAIResetFrom(headers: Headers | undefined): number | undefined {
  if (!headers) return undefined
  const requests = parseResetDuration(headers.get('x-ratelimit-reset-requests'))
  const tokens = parseResetDuration(headers.get('x-ratelimit-reset-tokens'))
  const empty = (name: string): boolean => headers.get(name)?.trim() === '0'
  const waits: number[] = []
  if (empty('x-ratelimit-remaining-requests') && requests !== undefined) waits.push(requests)
  if (empty('x-ratelimit-remaining-tokens') && tokens !== undefined) waits.push(tokens)
  if (waits.length === 0) {
    if (requests !== undefined) waits.push(requests)
    if (tokens !== undefined) waits.push(tokens)
  }
  return waits.length ? Math.max(...waits) : undefined
}
