/**
 * Reads the worker processes' logs after a chaos run: provider calls, texts embedded more than
 * once, calls that embedded the same text at overlapping times, and — the check behind
 * invariant 4 — claims of a key taken while another claim's lease on it was still valid.
 *
 * Lease validity is judged conservatively from send/reply times measured in the workers (all
 * processes and redis-server share this machine's clock; Redis scripts use its TIME):
 * - claim A of key k started its lease at or after A's send time `sA`; each heartbeat that
 *   answered (and did not report k lost) before claim B was sent extended it from at least its
 *   own send time. So A's lease was valid at least until `max(sA, renew sends) + leaseMs`.
 * - claim B took k no later than its reply time `rB`.
 * - A may have released k (ack/fail) from the moment it sent that script on.
 * A violation is a claim B with `rB + margin` before A's lower bound while A had not released k.
 * A lease that expired (its holder killed, or cut off from Redis during the restart) and was
 * claimed again is legitimate; its calls show up as overlapping embeds and duplicates instead.
 */
import type { WorkerLine } from './config.js'
import type { Incarnation } from './worker-pool.js'

type Line<E extends WorkerLine['ev']> = Extract<WorkerLine, { ev: E }>

export interface CallRecord {
  inc: string
  texts: string[]
  start: number
  /** When the call returned, or when its process was killed (Infinity if neither is known). */
  end: number
  outcome: string
}

export interface ClaimViolation {
  key: string
  first: { inc: string; tok: string; sentAt: number; validUntil: number }
  second: { inc: string; tok: string; answeredAt: number }
}

export interface Analysis {
  calls: CallRecord[]
  /** Calls per outcome (ok, 429, 500, timeout, poison, aborted, killed). */
  outcomes: Record<string, number>
  /** Texts returned by successful calls (counting repeats). */
  textsEmbedded: number
  /** Successful embeddings of a text beyond its first. */
  duplicatesEmbedded: number
  /** Distinct texts embedded successfully more than once. */
  textsEmbeddedTwice: number
  /** Pairs of calls that embedded the same text at overlapping times (after a lease expired). */
  overlappingEmbeds: number
  /** Kills that landed while the process had a provider call running. */
  killsMidCall: number
  claims: number
  violations: ClaimViolation[]
  errors: string[]
  /** When the first ack that finished `key` at `version` or newer answered (undefined: none seen). */
  finishedAt(key: string, version: number): number | undefined
}

const MARGIN_MS = 5

export function analyze(incarnations: readonly Incarnation[], leaseMs: number): Analysis {
  const calls: CallRecord[] = []
  const outcomes: Record<string, number> = {}
  let killsMidCall = 0
  const errors: string[] = []

  interface Lease {
    inc: string
    tok: string
    s: number
    r: number
  }
  const leasesByKey = new Map<string, Lease[]>()
  const renewsByTok = new Map<string, Line<'renew'>[]>()
  const releasesByTok = new Map<string, Line<'release'>[]>()
  const acksByKey = new Map<string, { version: number; r: number }[]>()

  for (const inc of incarnations) {
    const open = new Map<number, CallRecord>()
    for (const line of inc.lines) {
      switch (line.ev) {
        case 'call': {
          const rec: CallRecord = {
            inc: inc.label,
            texts: line.texts,
            start: line.at,
            end: Number.POSITIVE_INFINITY,
            outcome: 'running',
          }
          open.set(line.id, rec)
          calls.push(rec)
          break
        }
        case 'end': {
          const rec = open.get(line.id)
          if (rec) {
            rec.end = line.at
            rec.outcome = line.outcome
            open.delete(line.id)
          }
          break
        }
        case 'claim':
          for (const [key] of line.items) {
            const list = leasesByKey.get(key)
            const lease = { inc: inc.label, tok: line.tok, s: line.s, r: line.r }
            if (list) list.push(lease)
            else leasesByKey.set(key, [lease])
          }
          break
        case 'renew':
          pushTo(renewsByTok, line.tok, line)
          break
        case 'release':
          pushTo(releasesByTok, line.tok, line)
          break
        case 'acked':
          for (const [key, version] of line.done) pushTo(acksByKey, key, { version, r: line.r })
          break
        case 'error':
        case 'fatal':
          errors.push(`${inc.label}: ${line.message}`)
          break
        default:
          break
      }
    }
    if (open.size > 0 && inc.killedAt !== undefined) killsMidCall++
    for (const rec of open.values()) {
      rec.end = inc.killedAt ?? Number.POSITIVE_INFINITY
      rec.outcome = inc.killedAt !== undefined ? 'killed' : 'unfinished'
    }
  }
  for (const c of calls) outcomes[c.outcome] = (outcomes[c.outcome] ?? 0) + 1

  // Texts: how often each was embedded, and calls that ran at the same time on the same text.
  const okCount = new Map<string, number>()
  const callsByText = new Map<string, CallRecord[]>()
  let textsEmbedded = 0
  for (const c of calls) {
    for (const t of c.texts) {
      pushTo(callsByText, t, c)
      if (c.outcome === 'ok') {
        textsEmbedded++
        okCount.set(t, (okCount.get(t) ?? 0) + 1)
      }
    }
  }
  let duplicatesEmbedded = 0
  let textsEmbeddedTwice = 0
  for (const n of okCount.values()) {
    if (n > 1) {
      duplicatesEmbedded += n - 1
      textsEmbeddedTwice++
    }
  }
  let overlappingEmbeds = 0
  for (const list of callsByText.values()) {
    if (list.length < 2) continue
    for (let i = 0; i < list.length; i++) {
      for (let j = i + 1; j < list.length; j++) {
        const a = list[i]!
        const b = list[j]!
        // Bisection calls of one claim run one after the other in one process: never overlapping.
        if (a.start < b.end && b.start < a.end) overlappingEmbeds++
      }
    }
  }

  // Invariant 4: no claim while another claim's lease on the key is valid.
  const violations: ClaimViolation[] = []
  let claims = 0
  for (const [key, leases] of leasesByKey) {
    claims += leases.length
    for (const b of leases) {
      for (const a of leases) {
        if (a === b || a.tok === b.tok || a.r >= b.s) continue
        let base = a.s
        for (const renew of renewsByTok.get(a.tok) ?? []) {
          if (renew.r < b.s && renew.keys.includes(key) && !renew.lost.includes(key))
            base = Math.max(base, renew.s)
        }
        const validUntil = base + leaseMs
        const released = (releasesByTok.get(a.tok) ?? []).some(
          (rel) => rel.s <= b.r + MARGIN_MS && rel.keys.includes(key),
        )
        if (!released && b.r + MARGIN_MS < validUntil) {
          violations.push({
            key,
            first: { inc: a.inc, tok: a.tok, sentAt: a.s, validUntil },
            second: { inc: b.inc, tok: b.tok, answeredAt: b.r },
          })
        }
      }
    }
  }

  return {
    calls,
    outcomes,
    textsEmbedded,
    duplicatesEmbedded,
    textsEmbeddedTwice,
    overlappingEmbeds,
    killsMidCall,
    claims,
    violations,
    errors,
    finishedAt(key, version) {
      let first: number | undefined
      for (const ack of acksByKey.get(key) ?? []) {
        if (ack.version >= version && (first === undefined || ack.r < first)) first = ack.r
      }
      return first
    },
  }
}

function pushTo<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key)
  if (list) list.push(value)
  else map.set(key, [value])
}
