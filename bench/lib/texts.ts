/** Deterministic bench input: N texts of 100–300 characters (seeded, identical in every run). */

export interface Item {
  key: string
  text: string
}

const WORDS = (
  'the a queue vector redis batch message user said that we should embed search retrieval chat ' +
  'context model token answer question latency worker process memory index score result cluster ' +
  'hash slot lease retry flush pending durable provider gemini openai ollama about with from into'
).split(' ')

/** mulberry32: a tiny seeded PRNG. */
function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const cache = new Map<number, string[]>()

/** The first `n` texts (each 100–300 characters). */
export function texts(n: number): string[] {
  const hit = cache.get(n)
  if (hit) return hit
  const next = rng(7)
  const out: string[] = new Array(n)
  for (let i = 0; i < n; i++) {
    const target = 100 + Math.floor(next() * 201)
    let s = `#${i}`
    while (s.length < target) s += ` ${WORDS[Math.floor(next() * WORDS.length)]}`
    out[i] = s.slice(0, target)
  }
  cache.set(n, out)
  return out
}

/** `n` items whose keys live under `namespace` (each workload uses its own). */
export function items(namespace: string, n: number): Item[] {
  return texts(n).map((text, i) => ({ key: `${namespace}:msg:${i}`, text }))
}
