import { describe, expect, it } from 'vitest'
import { hash32, hashingEmbedder, hashingVector, tokenize } from '../../src/providers/hashing.js'
import { describeConformance } from './conformance.js'

describeConformance('hashing', { remote: false }, async () => ({
  make: () => hashingEmbedder({ dimensions: 256 }),
  close: async () => {},
}))

const cosine = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let dot = 0
  for (let i = 0; i < a.length; i++) dot += a[i]! * b[i]!
  return dot
}

describe('hashingEmbedder', () => {
  it('defaults to 256 dimensions, id hashing:256, no batch limit', () => {
    const e = hashingEmbedder()
    expect(e).toMatchObject({ dimensions: 256, id: 'hashing:256' })
    expect(e.maxBatchSize).toBeUndefined()
    expect(hashingEmbedder({ dimensions: 64 }).id).toBe('hashing:64')
  })

  it('is stable across versions and machines: pinned hash values', () => {
    // Changing these changes every stored vector; bump the id if you ever must.
    expect([hash32(''), hash32('hello'), hash32('hello', 0x9e3779b9)]).toEqual([
      2872998923, 2290972270, 1173805141,
    ])
    // 4 unigrams + 3 bigrams, each ±1 in its bucket; two of them share bucket 10.
    const t = 1 / 3
    const expected = [0, 0, 0, -t, -t, 0, 0, -t, -t, -t, 2 * t, 0, 0, 0, 0, 0]
    const actual = Array.from(hashingVector('the quick brown fox', 16))
    for (const [i, x] of expected.entries()) expect(actual[i]).toBeCloseTo(x, 6)
  })

  it('tokenizes words of any script, lowercased, NFKC-normalized, CJK per character', () => {
    expect(tokenize('Hello, WORLD! x2')).toEqual(['hello', 'world', 'x2'])
    expect(tokenize('Ｆｕｌｌ－ｗｉｄｔｈ')).toEqual(['full', 'width'])
    expect(tokenize('हिन्दी में')).toEqual(['हिन्दी', 'में'])
    expect(tokenize('你好世界')).toEqual(['你', '好', '世', '界'])
    expect(tokenize('東京タワーへ')).toEqual(['東', '京', 'タ', 'ワ', 'ー', 'へ'])
    expect(tokenize('🚀 !!! ...')).toEqual([])
  })

  it('lexical similarity: shared words and word order bring texts closer', async () => {
    const e = hashingEmbedder({ dimensions: 1024 })
    const [a, b, c, d] = await e.embed([
      'the cat sat on the mat',
      'the cat sat on a mat',
      'stock markets fell sharply today',
      'mat the on sat cat the',
    ])
    expect(cosine(a!, b!)).toBeGreaterThan(0.6)
    expect(cosine(a!, c!)).toBeLessThan(0.2)
    // Same words, other order: unigrams match, bigrams do not.
    expect(cosine(a!, d!)).toBeLessThan(cosine(a!, a!))
    expect(cosine(a!, d!)).toBeGreaterThan(cosine(a!, c!))
  })

  it('is case- and punctuation-insensitive', async () => {
    const [a, b] = await hashingEmbedder().embed(['Hello, World!', 'hello world'])
    expect(Array.from(a!)).toEqual(Array.from(b!))
  })

  it('text without letters or digits gets a zero vector', async () => {
    const [v] = await hashingEmbedder().embed(['🚀 !!!'])
    expect(Array.from(v!).every((x) => x === 0)).toBe(true)
  })

  it('rejects a non-string text with a non-retryable EmbedderError', async () => {
    await expect(hashingEmbedder().embed([42 as unknown as string])).rejects.toMatchObject({
      name: 'EmbedderError',
      retryable: false,
    })
  })

  it.each([
    [{ dimensions: 0 }, RangeError],
    [{ dimensions: 100_000 }, RangeError],
    [{ dimensions: 2.5 }, TypeError],
  ] as const)('rejects %o', (opts, type) => {
    expect(() => hashingEmbedder(opts)).toThrow(type)
    expect(() => hashingEmbedder(opts)).toThrow(/dimensions/)
  })
})
