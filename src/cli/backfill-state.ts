/**
 * Saved progress of `embedq backfill`, so an interrupted run resumes where it stopped. One
 * hash per queue, `<prefix>:{<name>}:backfill` (the queue's slot), one field per backfill
 * (a hash of its match pattern and fields), holding the SCAN cursor of every node. It is
 * written after each batch is durably enqueued, so a crash re-reads at most one batch.
 */
import { createHash } from 'node:crypto'

export const backfillStateKey = (prefix: string, name: string): string => `${prefix}:{${name}}:backfill`

/** Saved progress expires this long after the last batch (a forgotten run does not linger). */
export const BACKFILL_STATE_TTL_SECONDS = 7 * 24 * 3600

export interface BackfillSkips {
  /** Already had a vector (`--missing-only`). */
  hasVector: number
  /** No text field. */
  noText: number
  /** Text is blank: nothing to embed. */
  blank: number
  /** Refused by the queue (key or text too long…). */
  invalid: number
  /** Not a hash (only on servers without SCAN … TYPE). */
  wrongType: number
}

export interface SavedBackfill {
  match: string
  textField: string
  field: string
  missingOnly: boolean
  /** Node id (`host:port`) → SCAN cursor to continue from, or `'done'`. */
  cursors: Record<string, string>
  scanned: number
  enqueued: number
  skipped: BackfillSkips
  /** ms since the epoch */
  startedAt: number
  updatedAt: number
}

export function backfillId(match: string, textField: string, field: string, missingOnly: boolean): string {
  return createHash('sha1')
    .update(JSON.stringify([match, textField, field, missingOnly]))
    .digest('hex')
    .slice(0, 16)
}

export const noSkips = (): BackfillSkips => ({ hasVector: 0, noText: 0, blank: 0, invalid: 0, wrongType: 0 })
