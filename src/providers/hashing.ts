/**
 * A local, offline, deterministic embedder: signed feature hashing ("the hashing trick") of
 * word unigrams and bigrams, L2-normalized.
 *
 * **Lexical similarity only — this is not a semantic model.** Two texts are close when they share
 * words and word pairs; synonyms, paraphrases and translations are not. It exists so the demo and
 * the tests run without a network, an API key or a model download, and as a cheap baseline.
 */
import type { Embedder, EmbedOptions } from '../embedder.js'
import { EmbedderError } from '../errors.js'
import { abortedError } from './http.js'
import { checkInteger, checkSignal, describe } from './normalize.js'

export interface HashingEmbedderOptions {
  /**
   * Vector length. More dimensions mean fewer collisions between unrelated words.
   * @default 256
   */
  dimensions?: number
}

/** Scripts written without spaces between words: each character is a token, so bigrams are character pairs. */
const NO_SPACE_SCRIPTS = '\\p{Script=Han}\\p{Script=Hiragana}\\p{Script=Katakana}'
/**
 * A token is one character of a script above, or a run of letters, digits and combining marks
 * of any other script (marks keep words such as Hindi "हिन्दी" whole).
 */
const TOKEN = new RegExp(`[${NO_SPACE_SCRIPTS}]|(?:(?![${NO_SPACE_SCRIPTS}])[\\p{L}\\p{N}\\p{M}])+`, 'gu')

/** Splits text into lowercase tokens (NFKC first, so full-width and compatibility forms match). */
export function tokenize(text: string): string[] {
  return text.normalize('NFKC').toLowerCase().match(TOKEN) ?? []
}

/**
 * 32-bit FNV-1a over UTF-16 code units, finished with murmur3's avalanche step so the low bits
 * used for the bucket are well mixed. `seed` gives independent hashes for bucket and sign.
 */
export function hash32(text: string, seed = 0): number {
  let h = (0x811c9dc5 ^ seed) >>> 0
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

const SIGN_SEED = 0x9e3779b9

/** The normalized hashing vector of one text; all zeros when it has no letters or digits. */
export function hashingVector(text: string, dimensions: number): Float32Array {
  const acc = new Float64Array(dimensions)
  const add = (feature: string): void => {
    const bucket = hash32(feature) % dimensions
    acc[bucket] = acc[bucket]! + ((hash32(feature, SIGN_SEED) & 1) === 0 ? 1 : -1)
  }
  const tokens = tokenize(text)
  for (let i = 0; i < tokens.length; i++) {
    add(tokens[i]!)
    // \u0001 cannot occur inside a token, so a bigram never collides with a unigram's spelling.
    if (i + 1 < tokens.length) add(`${tokens[i]}\u0001${tokens[i + 1]}`)
  }
  let sum = 0
  for (let i = 0; i < dimensions; i++) sum += acc[i]! * acc[i]!
  const out = new Float32Array(dimensions)
  if (sum === 0) return out
  const scale = 1 / Math.sqrt(sum)
  for (let i = 0; i < dimensions; i++) out[i] = acc[i]! * scale
  return out
}

/**
 * A deterministic, offline `Embedder` based on feature hashing of word unigrams and bigrams.
 *
 * **Lexical similarity only, not a semantic model**: use it for demos, tests and as a baseline,
 * and a real model (`geminiEmbedder`, `openAIEmbedder`, `ollamaEmbedder`) for retrieval by meaning.
 * The same text always gets the same vector, on every machine and in every version that keeps
 * the `id` `hashing:<dimensions>`.
 *
 * @example
 * const embedder = hashingEmbedder({ dimensions: 256 })
 */
export function hashingEmbedder(opts: HashingEmbedderOptions = {}): Embedder {
  const factory = 'hashingEmbedder'
  if (typeof opts !== 'object' || opts === null) {
    throw new TypeError(`${factory}: options must be an object, received ${String(opts)}`)
  }
  const dimensions = checkInteger(factory, 'dimensions', opts.dimensions ?? 256, 1, 65_536)
  return {
    dimensions,
    id: `hashing:${dimensions}`,
    async embed(texts: string[], embedOpts?: EmbedOptions): Promise<Float32Array[]> {
      const signal = checkSignal('hashing', embedOpts?.signal)
      if (signal?.aborted) throw abortedError('hashing', signal.reason)
      if (!Array.isArray(texts)) {
        throw new EmbedderError(`hashing: embed() expects an array of strings, received ${describe(texts)}`, {
          retryable: false,
        })
      }
      return texts.map((text: unknown, i) => {
        if (typeof text !== 'string') {
          throw new EmbedderError(`hashing: text ${i} is not a string (${describe(text)})`, {
            retryable: false,
          })
        }
        return hashingVector(text, dimensions)
      })
    },
  }
}
