/** Settings shared by the chaos suite and its worker processes, so both sides agree on them. */

export const CHAOS_DIMS = 8

/** Options of every worker process's queue (the producer uses the same batch size). */
export const WORKER_OPTIONS = {
  leaseMs: 1_500,
  reclaimIntervalMs: 300,
  // 8, not 5: with ~13 % of calls failing at random, a healthy text fails 5 times in a row with
  // p ≈ 4e-5, so a run over ~3,600 texts would dead-letter a healthy one about 1 time in 8.
  // At 8 attempts that is ≈ 3e-4 per run; the poison text still dies within ~3 s of backoff.
  maxAttempts: 8,
  backoffBaseMs: 50,
  backoffMaxMs: 500,
  pollIntervalMs: 100,
  flushIntervalMs: 200,
  concurrency: 3,
  maxBatchSize: 25,
  stopGraceMs: 2_000,
} as const

/** One line a worker process prints on stdout (JSON). Times are `Date.now()` ms of that process. */
export type WorkerLine =
  | { ev: 'ready'; at: number }
  | { ev: 'call'; id: number; at: number; texts: string[] }
  | { ev: 'end'; id: number; at: number; outcome: string }
  /** A claim script call: sent at `s`, reply at `r`; items are [key, version]. */
  | { ev: 'claim'; tok: string; s: number; r: number; items: [string, number][] }
  /** A heartbeat that reached Redis: `lost` are the keys whose lease was gone. */
  | { ev: 'renew'; tok: string; s: number; r: number; keys: string[]; lost: string[] }
  /** An ack or fail script call is about to be sent: the claim may release these leases from `s` on. */
  | { ev: 'release'; kind: 'ack' | 'fail'; tok: string; s: number; keys: string[] }
  /** An ack script answered at `r`: these [key, version] were finished (their done message went out). */
  | { ev: 'acked'; r: number; done: [string, number][] }
  | { ev: 'error'; at: number; message: string }
  | { ev: 'stopped'; at: number }
  | { ev: 'fatal'; at: number; message: string }
