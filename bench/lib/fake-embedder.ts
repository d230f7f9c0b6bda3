/**
 * The fake provider every contender calls: waits `latencyMs` per call, then returns one of a
 * few precomputed 768-dim vectors per text (picked by a cheap hash), so vector generation never
 * dominates what is measured.
 */
import type { Embedder } from '../../src/index.js'

export const DIMENSIONS = 768
const VARIANTS = 16

const vectors: Float32Array[] = Array.from({ length: VARIANTS }, (_, v) => {
  const vec = new Float32Array(DIMENSIONS)
  for (let i = 0; i < DIMENSIONS; i++) vec[i] = Math.sin((v + 1) * (i + 1)) / 10
  return vec
})

/** Little-endian float32 bytes of each variant, for contenders that write blobs themselves. */
export const blobs: Buffer[] = vectors.map((v) => Buffer.from(v.buffer, v.byteOffset, v.byteLength))

/** Index of the variant a text gets (deterministic, O(1)). */
export function variantOf(text: string): number {
  return (text.length + text.charCodeAt(0) + text.charCodeAt(text.length >> 1)) % VARIANTS
}

export function vectorOf(text: string): Float32Array {
  return vectors[variantOf(text)]!
}

export interface FakeEmbedder extends Embedder {
  /** Provider calls made so far. */
  readonly calls: number
  /** Texts embedded so far. */
  readonly texts: number
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** An `Embedder` with `maxBatchSize` 100 whose every call takes `latencyMs` (0: no timer at all). */
export function fakeEmbedder(latencyMs: number, maxBatchSize = 100): FakeEmbedder {
  let calls = 0
  let texts = 0
  return {
    dimensions: DIMENSIONS,
    maxBatchSize,
    id: `fake:${latencyMs}ms`,
    get calls() {
      return calls
    },
    get texts() {
      return texts
    },
    async embed(input: string[]): Promise<Float32Array[]> {
      calls++
      texts += input.length
      if (latencyMs > 0) await sleep(latencyMs)
      return input.map(vectorOf)
    },
  }
}
