/**
 * A fault-injecting embedder for the chaos suite. Every call draws its fate from a seeded PRNG
 * (so a failing run can be replayed with the seed it printed): random latency, 429 with a
 * retry-after, 500, or a "timeout" that hangs until the call is aborted (or ~1 s) and then
 * fails retryably. A text containing the poison marker makes the whole call fail with a
 * non-retryable 400, as a provider rejecting one bad input would. Vectors come from
 * `fakeVector(text)`, so the final check can compare every stored blob with the expected one.
 */
import type { Embedder, EmbedOptions } from '../../src/embedder.js'
import { EmbedderError } from '../../src/errors.js'
import { fakeVector } from '../helpers/fixtures.js'

/** The marker that makes a text impossible to embed. */
export const POISON = '☠POISON☠'

/** mulberry32: a small, fast, seedable PRNG returning floats in [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** Derives a sub-seed (per worker, per incarnation) from a base seed. */
export function mixSeed(...parts: number[]): number {
  let h = 2166136261
  for (const p of parts) {
    h = Math.imul(h ^ (p >>> 0), 16777619) >>> 0
    h = Math.imul(h ^ (h >>> 13), 0x5bd1e995) >>> 0
  }
  return h >>> 0
}

export type CallOutcome = 'ok' | '429' | '500' | 'timeout' | 'poison' | 'aborted'

export interface CallStart {
  id: number
  at: number
  texts: string[]
}

export interface CallEnd {
  id: number
  at: number
  outcome: CallOutcome
}

export interface FaultEmbedderOptions {
  seed: number
  /** @default 8 */
  dims?: number
  /** Uniform latency range of every call, ms. @default [0, 80] */
  latencyMs?: readonly [number, number]
  /** @default 0.05 */
  rate429?: number
  /** Range of the retry-after of a 429, ms. @default [100, 300] */
  retryAfterMs?: readonly [number, number]
  /** @default 0.05 */
  rate500?: number
  /** @default 0.03 */
  rateTimeout?: number
  /** How long a "timeout" hangs unless aborted first, ms. @default 1_000 */
  hangMs?: number
  onStart?: (call: CallStart) => void
  onEnd?: (call: CallEnd) => void
}

export interface FaultEmbedder extends Embedder {
  readonly counts: Record<CallOutcome, number>
}

export function faultEmbedder(opts: FaultEmbedderOptions): FaultEmbedder {
  const dims = opts.dims ?? 8
  const [latMin, latMax] = opts.latencyMs ?? [0, 80]
  const [raMin, raMax] = opts.retryAfterMs ?? [100, 300]
  const p429 = opts.rate429 ?? 0.05
  const p500 = opts.rate500 ?? 0.05
  const pTimeout = opts.rateTimeout ?? 0.03
  const hangMs = opts.hangMs ?? 1_000
  const random = prng(opts.seed)
  const counts: Record<CallOutcome, number> = { ok: 0, '429': 0, '500': 0, timeout: 0, poison: 0, aborted: 0 }
  let nextId = 0

  /** Waits `ms`, or rejects when the signal aborts first. */
  const pause = (ms: number, signal: AbortSignal | undefined): Promise<void> =>
    new Promise((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason ?? new Error('aborted'))
        return
      }
      const onAbort = (): void => {
        clearTimeout(timer)
        reject(signal?.reason ?? new Error('aborted'))
      }
      const timer = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort)
        resolve()
      }, ms)
      signal?.addEventListener('abort', onAbort, { once: true })
    })

  return {
    dimensions: dims,
    id: 'chaos-fault-embedder',
    counts,
    async embed(texts: string[], o?: EmbedOptions): Promise<Float32Array[]> {
      // Draw everything up front: the call's fate depends only on the seed and the call index.
      const id = nextId++
      const roll = random()
      const latency = latMin + Math.floor(random() * (latMax - latMin + 1))
      const retryAfterMs = raMin + Math.floor(random() * (raMax - raMin + 1))
      opts.onStart?.({ id, at: Date.now(), texts })
      let outcome: CallOutcome = 'ok'
      try {
        if (roll < pTimeout) {
          outcome = 'timeout'
          await pause(hangMs, o?.signal)
          throw new EmbedderError(`provider did not answer within ${hangMs} ms`, { retryable: true })
        }
        await pause(latency, o?.signal)
        if (roll < pTimeout + p429) {
          outcome = '429'
          throw new EmbedderError('429 Too Many Requests', { status: 429, retryable: true, retryAfterMs })
        }
        if (roll < pTimeout + p429 + p500) {
          outcome = '500'
          throw new EmbedderError('500 Internal Server Error', { status: 500, retryable: true })
        }
        if (texts.some((t) => t.includes(POISON))) {
          outcome = 'poison'
          throw new EmbedderError('400 Bad Request: input rejected by the content filter', {
            status: 400,
            retryable: false,
          })
        }
        return texts.map((t) => fakeVector(t, dims))
      } catch (err) {
        if (o?.signal?.aborted) outcome = 'aborted'
        throw err
      } finally {
        counts[outcome]++
        opts.onEnd?.({ id, at: Date.now(), outcome })
      }
    },
  }
}
