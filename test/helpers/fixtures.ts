/** Shared test fixtures: fake embedders that record what they were asked, and small utilities. */
import { randomBytes } from 'node:crypto'
import type { Redis } from 'ioredis'
import type { Embedder, EmbedOptions } from '../../src/embedder.js'

/** A deterministic vector per text: the same text always gives the same vector. */
export function fakeVector(text: string, dims: number): Float32Array {
  let h = 2166136261
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619) >>> 0
  const v = new Float32Array(dims)
  for (let j = 0; j < dims; j++) {
    h = Math.imul(h ^ (h >>> 15), 2246822507) >>> 0
    v[j] = (h % 2001) / 1000 - 1
  }
  return v
}

export interface RecordedCall {
  texts: string[]
  startedAt: number
  endedAt?: number
}

export interface FakeEmbedder extends Embedder {
  calls: RecordedCall[]
  /** Most calls that ran at the same time. */
  maxConcurrent: number
  /** Every text embedded, in call order. */
  readonly texts: string[]
}

export interface FakeEmbedderOptions {
  dims?: number
  maxBatchSize?: number
  latencyMs?: number | ((texts: string[]) => number)
  /** Return an error to throw for this call (before the latency). */
  fail?: (texts: string[], callIndex: number) => Error | undefined
}

export function fakeEmbedder(opts: FakeEmbedderOptions = {}): FakeEmbedder {
  const dims = opts.dims ?? 8
  let running = 0
  const e: FakeEmbedder = {
    dimensions: dims,
    ...(opts.maxBatchSize !== undefined ? { maxBatchSize: opts.maxBatchSize } : {}),
    calls: [],
    maxConcurrent: 0,
    get texts() {
      return e.calls.flatMap((c) => c.texts)
    },
    async embed(texts: string[], o?: EmbedOptions) {
      const call: RecordedCall = { texts: [...texts], startedAt: Date.now() }
      const index = e.calls.length
      e.calls.push(call)
      running++
      e.maxConcurrent = Math.max(e.maxConcurrent, running)
      try {
        const err = opts.fail?.(texts, index)
        if (err) throw err
        const latency = typeof opts.latencyMs === 'function' ? opts.latencyMs(texts) : (opts.latencyMs ?? 0)
        if (latency > 0) {
          await new Promise<void>((resolve, reject) => {
            const t = setTimeout(resolve, latency)
            o?.signal?.addEventListener('abort', () => {
              clearTimeout(t)
              reject(o.signal?.reason ?? new Error('aborted'))
            })
          })
        }
        return texts.map((t) => fakeVector(t, dims))
      } finally {
        running--
        call.endedAt = Date.now()
      }
    },
  }
  return e
}

export const uniqueName = (label = 'q'): string => `${label}-${randomBytes(5).toString('hex')}`

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** Polls `check` until it returns true or `timeoutMs` passes (then throws). */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(10)
  }
}

export async function readVector(
  redis: Redis,
  key: string,
  field = 'embedding',
): Promise<Float32Array | null> {
  const blob = await redis.hgetBuffer(key, field)
  if (!blob) return null
  return new Float32Array(blob.buffer.slice(blob.byteOffset, blob.byteOffset + blob.length))
}

/** Calls of a command since the last CONFIG RESETSTAT, from INFO commandstats. */
export async function commandCalls(redis: Redis): Promise<Record<string, number>> {
  const info = await redis.info('commandstats')
  const out: Record<string, number> = {}
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) out[m[1]!] = Number(m[2])
  return out
}
