/**
 * The contract every provider keeps, as one suite each provider's test file runs:
 * `describeConformance('openai', { remote: true }, setup)`. Remote providers run it against
 * their fake vendor server and also go through every error class the queue relies on.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import type { Embedder } from '../../src/embedder.js'
import { EmbedderError } from '../../src/errors.js'
import { type FakeServer, type Fault, refusedUrl } from './fake-http.js'

export interface MakeOptions {
  /** Point the embedder at another origin (e.g. one where nothing listens). */
  origin?: string
  maxBatchSize?: number
  timeoutMs?: number
}

export interface ConformanceTarget {
  /** Builds the embedder under test, pointed at the fake server for remote providers. */
  make(opts?: MakeOptions): Embedder
  /** For remote providers: the fake vendor server and the texts of each call it received. */
  fake?: FakeServer & { batches(): string[][] }
  /** Longest text the vendor accepts (remote providers): over-long input must be cut to it. */
  maxChars?: number
  close(): Promise<void>
}

export interface ConformanceOptions {
  /** Whether the provider calls a server (runs the request and error-class tests). */
  remote: boolean
}

const UNICODE_TEXTS = [
  'Hello, world',
  'Grüße aus Köln — ÄÖÜ ß',
  'こんにちは世界、カタカナ',
  '你好，世界。今天天气很好',
  'مرحبا بالعالم',
  'שלום עולם',
  'हिन्दी में संदेश',
  'family 👩‍👩‍👧‍👦 rocket 🚀',
  'cafe\u0301 combining accent',
  '𝔘𝔫𝔦𝔠𝔬𝔡𝔢 mathematical letters',
  'line\nbreaks\tand "quotes" \\ backslash',
]

const norm = (v: ArrayLike<number>): number => Math.sqrt(Array.from(v).reduce((s, x) => s + x * x, 0))

function expectVectors(vectors: ArrayLike<number>[], count: number, dimensions: number): void {
  expect(vectors).toHaveLength(count)
  for (const v of vectors) {
    expect(v.length).toBe(dimensions)
    for (let i = 0; i < v.length; i++) expect(Number.isFinite(v[i])).toBe(true)
  }
}

/** Runs `promise`, expecting an `EmbedderError`, and returns it with the time it took. */
async function failure(promise: Promise<unknown>): Promise<{ err: EmbedderError; ms: number }> {
  const started = Date.now()
  try {
    await promise
  } catch (err) {
    expect(err).toBeInstanceOf(EmbedderError)
    return { err: err as EmbedderError, ms: Date.now() - started }
  }
  throw new Error('expected the call to fail')
}

export function describeConformance(
  name: string,
  options: ConformanceOptions,
  setup: () => Promise<ConformanceTarget>,
): void {
  describe(`${name} provider conformance`, () => {
    let target: ConformanceTarget
    let embedder: Embedder
    beforeAll(async () => {
      target = await setup()
      embedder = target.make()
    })
    afterAll(async () => {
      await target?.close()
    })
    beforeEach(() => {
      target.fake?.reset()
    })
    const fake = (): NonNullable<ConformanceTarget['fake']> => {
      if (!target.fake) throw new Error('remote target without a fake server')
      return target.fake
    }

    it('describes itself: positive integer dimensions, an id, a positive batch limit if any', () => {
      expect(Number.isInteger(embedder.dimensions) && embedder.dimensions > 0).toBe(true)
      expect(typeof embedder.id).toBe('string')
      expect(embedder.id).toContain(String(embedder.dimensions))
      if (embedder.maxBatchSize !== undefined) expect(embedder.maxBatchSize).toBeGreaterThan(0)
    })

    it('an empty list resolves to an empty list without calling the API', async () => {
      await expect(embedder.embed([])).resolves.toEqual([])
      if (options.remote) expect(fake().requests).toHaveLength(0)
    })

    it('returns one vector of `dimensions` finite values per text', async () => {
      const vectors = await embedder.embed(['alpha', 'beta gamma', 'delta'])
      expectVectors(vectors, 3, embedder.dimensions)
    })

    it('preserves input order: each vector is the one the text gets on its own', async () => {
      const texts = ['first message', 'second message', 'a third, unrelated one', 'fourth']
      const together = await embedder.embed(texts)
      for (const [i, text] of texts.entries()) {
        const [alone] = await embedder.embed([text])
        expect(Array.from(together[i]!)).toEqual(Array.from(alone!))
      }
      expect(Array.from(together[0]!)).not.toEqual(Array.from(together[1]!))
    })

    it('returns unit-length (L2-normalized) vectors', async () => {
      const vectors = await embedder.embed(['normalize me', 'and me too, with more words in it'])
      for (const v of vectors) expect(norm(v)).toBeCloseTo(1, 5)
    })

    it('is deterministic for the same text', async () => {
      const [a, b] = await embedder.embed(['same text', 'same text'])
      expect(Array.from(a!)).toEqual(Array.from(b!))
    })

    it('gives blank texts a zero vector without sending them', async () => {
      const vectors = await embedder.embed(['', 'real text', '   \n\t'])
      expectVectors(vectors, 3, embedder.dimensions)
      expect(norm(vectors[0]!)).toBe(0)
      expect(norm(vectors[2]!)).toBe(0)
      expect(norm(vectors[1]!)).toBeCloseTo(1, 5)
      if (options.remote) expect(fake().batches()).toEqual([['real text']])
    })

    it('splits more texts than the batch limit into calls of at most that size, keeping order', async () => {
      const limit = options.remote ? 7 : 100
      const small = target.make({ maxBatchSize: limit })
      const texts = Array.from({ length: Math.floor(limit * 2.5) }, (_, i) => `message number ${i}`)
      const vectors = await small.embed(texts)
      expectVectors(vectors, texts.length, small.dimensions)
      if (options.remote) {
        expect(
          fake()
            .batches()
            .map((b) => b.length),
        ).toEqual([limit, limit, texts.length - 2 * limit])
        expect(fake().batches().flat()).toEqual(texts)
      }
      // Same vectors when the texts come in another arrangement.
      const reversed = await small.embed([...texts].reverse())
      expect(reversed.reverse().map((v) => Array.from(v))).toEqual(vectors.map((v) => Array.from(v)))
    })

    it('handles unicode: every script, emoji, combining marks, astral characters', async () => {
      const vectors = await embedder.embed(UNICODE_TEXTS)
      expectVectors(vectors, UNICODE_TEXTS.length, embedder.dimensions)
      for (const v of vectors) expect(norm(v)).toBeCloseTo(1, 5)
      if (options.remote) expect(fake().batches()).toEqual([UNICODE_TEXTS])
    })

    it('embeds a very long input (cut to what the vendor accepts)', async () => {
      const long = `${'lorem ipsum dolor sit amet '.repeat(8000)}🚀 end`
      const [v] = await embedder.embed([long])
      expectVectors([v!], 1, embedder.dimensions)
      expect(norm(v!)).toBeCloseTo(1, 5)
      if (options.remote) {
        const sent = fake().batches()[0]![0]!
        expect(sent.length).toBeLessThanOrEqual(target.maxChars ?? Number.POSITIVE_INFINITY)
        expect(long.startsWith(sent)).toBe(true)
      }
    })

    it('rejects at once, retryable, when the signal is already aborted', async () => {
      const ac = new AbortController()
      const reason = new Error('shutting down')
      ac.abort(reason)
      const { err } = await failure(embedder.embed(['x'], { signal: ac.signal }))
      expect(err.retryable).toBe(true)
      expect(err.cause).toBe(reason)
      if (options.remote) expect(fake().requests).toHaveLength(0)
    })

    if (!options.remote) return

    it('rejects promptly, retryable, with the reason as cause, when aborted mid-call', async () => {
      fake().fail({ kind: 'hang' })
      const ac = new AbortController()
      const reason = new Error('lease lost')
      setTimeout(() => ac.abort(reason), 50)
      const { err, ms } = await failure(embedder.embed(['hangs'], { signal: ac.signal }))
      expect(err.retryable).toBe(true)
      expect(err.status).toBeUndefined()
      expect(err.cause).toBe(reason)
      expect(ms).toBeLessThan(2000)
    })

    describe('error classes', () => {
      const cases: { title: string; fault: Fault; status: number; retryable: boolean; auth?: boolean }[] = [
        {
          title: '429 is retryable with the retry hint',
          fault: { kind: 'rate-limit', retryAfterMs: 7000 },
          status: 429,
          retryable: true,
        },
        {
          title: '500 is retryable',
          fault: { kind: 'server-error', status: 500 },
          status: 500,
          retryable: true,
        },
        {
          title: '502 is retryable',
          fault: { kind: 'server-error', status: 502 },
          status: 502,
          retryable: true,
        },
        {
          title: '503 is retryable',
          fault: { kind: 'server-error', status: 503 },
          status: 503,
          retryable: true,
        },
        {
          title: '504 is retryable',
          fault: { kind: 'server-error', status: 504 },
          status: 504,
          retryable: true,
        },
        { title: '400 is not retryable', fault: { kind: 'bad-request' }, status: 400, retryable: false },
        {
          title: '401 is not retryable and an auth error',
          fault: { kind: 'unauthenticated' },
          status: 401,
          retryable: false,
          auth: true,
        },
        {
          title: '403 is not retryable and an auth error',
          fault: { kind: 'forbidden' },
          status: 403,
          retryable: false,
          auth: true,
        },
      ]
      for (const c of cases) {
        it(`${c.title} (one request, no hidden retry)`, async () => {
          fake().fail(c.fault)
          const { err } = await failure(embedder.embed(['some text', 'more text']))
          expect(err.status).toBe(c.status)
          expect(err.retryable).toBe(c.retryable)
          expect(err.isAuthError).toBe(c.auth ?? false)
          expect(err.message).toContain(String(c.status))
          if (c.auth) expect(err.message).toMatch(/authentication failed/)
          if (c.fault.kind === 'rate-limit') expect(err.retryAfterMs).toBe(c.fault.retryAfterMs)
          expect(fake().requests).toHaveLength(1)
        })
      }

      it('a call that outlives timeoutMs fails retryable, without a status', async () => {
        const quick = target.make({ timeoutMs: 200 })
        fake().fail({ kind: 'hang' })
        const { err, ms } = await failure(quick.embed(['slow']))
        expect(err.retryable).toBe(true)
        expect(err.status).toBeUndefined()
        expect(err.message).toMatch(/200 ms/)
        expect(ms).toBeGreaterThanOrEqual(150)
        expect(ms).toBeLessThan(2000)
      })

      it('a connection reset is retryable, without a status', async () => {
        fake().fail({ kind: 'reset' })
        const { err } = await failure(embedder.embed(['reset me']))
        expect(err.retryable).toBe(true)
        expect(err.status).toBeUndefined()
      })

      it('a refused connection is retryable, without a status', async () => {
        const nowhere = target.make({ origin: await refusedUrl(), timeoutMs: 5000 })
        const { err } = await failure(nowhere.embed(['anyone there?']))
        expect(err.retryable).toBe(true)
        expect(err.status).toBeUndefined()
        expect(err.message).toMatch(/network error/)
      })

      it('fewer vectors than texts is an error, never a misalignment', async () => {
        fake().fail({ kind: 'short-response' })
        const { err } = await failure(embedder.embed(['one', 'two', 'three']))
        expect(err.retryable).toBe(false)
        expect(err.message).toMatch(/2 vector\(s\) for 3 input\(s\)/)
      })

      it('vectors of the wrong length are an error', async () => {
        fake().fail({ kind: 'wrong-dimensions' })
        const { err } = await failure(embedder.embed(['one', 'two']))
        expect(err.retryable).toBe(false)
        expect(err.message).toMatch(
          new RegExp(`${embedder.dimensions + 1} values, expected ${embedder.dimensions}`),
        )
      })

      it('a 200 that is not JSON is a retryable error', async () => {
        fake().fail({ kind: 'not-json' })
        const { err } = await failure(embedder.embed(['one']))
        expect(err.retryable).toBe(true)
      })
    })
  })
}
