import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { EmbedderError } from '../../src/errors.js'
import { geminiEmbedder } from '../../src/providers/gemini.js'
import { describeConformance } from './conformance.js'
import {
  type FakeGemini,
  GEMINI_FAKE_MAX_CHARS,
  GEMINI_KEY,
  geminiVector,
  startFakeGemini,
} from './fake-gemini.js'

const norm = (v: ArrayLike<number>): number => Math.sqrt(Array.from(v).reduce((s, x) => s + x * x, 0))

describeConformance('gemini', { remote: true }, async () => {
  const fake = await startFakeGemini()
  return {
    fake,
    maxChars: GEMINI_FAKE_MAX_CHARS,
    make: ({ origin, ...rest } = {}) =>
      geminiEmbedder({ apiKey: GEMINI_KEY, baseUrl: origin ?? fake.url, ...rest }),
    close: () => fake.close(),
  }
})

describe('geminiEmbedder against the fake Gemini API', () => {
  let fake: FakeGemini
  beforeAll(async () => {
    fake = await startFakeGemini()
  })
  afterAll(async () => {
    await fake.close()
  })
  beforeEach(() => fake.reset())

  it('sends the documented batchEmbedContents request: URL, model path, key header, body fields', async () => {
    const embedder = geminiEmbedder({ apiKey: GEMINI_KEY, baseUrl: fake.url })
    await embedder.embed(['hello', 'world'])
    expect(fake.requests).toHaveLength(1)
    const req = fake.requests[0]!
    expect(req.method).toBe('POST')
    expect(req.url).toMatch(/^\/v1(beta)?\/models\/gemini-embedding-001:batchEmbedContents$/)
    expect(req.headers['x-goog-api-key']).toBe(GEMINI_KEY)
    expect(req.headers['content-type']).toMatch(/application\/json/)
    expect(req.body).toEqual({
      requests: ['hello', 'world'].map((text) => ({
        model: 'models/gemini-embedding-001',
        content: { parts: [{ text }] },
        taskType: 'RETRIEVAL_DOCUMENT',
        outputDimensionality: 768,
      })),
    })
  })

  it('passes model, outputDimensionality and taskType through; id names them', async () => {
    const embedder = geminiEmbedder({
      apiKey: GEMINI_KEY,
      baseUrl: fake.url,
      model: 'models/text-embedding-004',
      outputDimensionality: 256,
      taskType: 'RETRIEVAL_QUERY',
    })
    expect(embedder.id).toBe('gemini:text-embedding-004:256:RETRIEVAL_QUERY')
    expect(embedder.dimensions).toBe(256)
    const [v] = await embedder.embed(['q'])
    expect(v).toHaveLength(256)
    const req = fake.requests[0]!
    expect(req.url).toMatch(/^\/v1(beta)?\/models\/text-embedding-004:batchEmbedContents$/)
    expect(req.body).toMatchObject({
      requests: [
        { model: 'models/text-embedding-004', taskType: 'RETRIEVAL_QUERY', outputDimensionality: 256 },
      ],
    })
  })

  it('sends one request per text for gemini-embedding-2 models too (the SDK merges bare strings)', async () => {
    const embedder = geminiEmbedder({
      apiKey: GEMINI_KEY,
      baseUrl: fake.url,
      model: 'gemini-embedding-2-preview',
    })
    const vectors = await embedder.embed(['one', 'two', 'three'])
    expect(vectors).toHaveLength(3)
    expect(fake.batches()).toEqual([['one', 'two', 'three']])
  })

  it('defaults: 768 dimensions, batches of 100, the documented id', () => {
    const embedder = geminiEmbedder({ apiKey: GEMINI_KEY })
    expect(embedder.dimensions).toBe(768)
    expect(embedder.maxBatchSize).toBe(100)
    expect(embedder.id).toBe('gemini:gemini-embedding-001:768:RETRIEVAL_DOCUMENT')
  })

  it('splits 250 texts into calls of 100, 100 and 50 (the API rejects more than 100)', async () => {
    const embedder = geminiEmbedder({ apiKey: GEMINI_KEY, baseUrl: fake.url })
    const texts = Array.from({ length: 250 }, (_, i) => `text ${i}`)
    const vectors = await embedder.embed(texts)
    expect(fake.batches().map((b) => b.length)).toEqual([100, 100, 50])
    expect(vectors).toHaveLength(250)
    for (const [i, v] of vectors.entries()) {
      const expected = geminiVector(texts[i]!, 768)
      const n = norm(expected)
      expect(v[0]).toBeCloseTo(expected[0]! / n, 5)
    }
  })

  it('the fake really rejects more than 100 requests, as the API does', async () => {
    const res = await fetch(`${fake.url}/v1beta/models/gemini-embedding-001:batchEmbedContents`, {
      method: 'POST',
      headers: { 'x-goog-api-key': GEMINI_KEY, 'content-type': 'application/json' },
      body: JSON.stringify({
        requests: Array.from({ length: 101 }, () => ({
          model: 'models/gemini-embedding-001',
          content: { parts: [{ text: 'x' }] },
        })),
      }),
    })
    expect(res.status).toBe(400)
    expect(await res.json()).toMatchObject({ error: { code: 400, status: 'INVALID_ARGUMENT' } })
  })

  it('refuses maxBatchSize above 100', () => {
    expect(() => geminiEmbedder({ apiKey: GEMINI_KEY, maxBatchSize: 101 })).toThrow(RangeError)
    expect(() => geminiEmbedder({ apiKey: GEMINI_KEY, maxBatchSize: 101 })).toThrow(/maxBatchSize.*101/)
  })

  it('L2-normalizes truncated sizes, and returns 3072-dim output as the API sends it', async () => {
    const texts = ['normalize this']
    const [v768] = await geminiEmbedder({ apiKey: GEMINI_KEY, baseUrl: fake.url }).embed(texts)
    expect(norm(v768!)).toBeCloseTo(1, 6)
    const raw = geminiVector(texts[0]!, 768)
    expect(norm(raw)).toBeLessThan(0.9) // the API's truncated vector is not unit length

    const [raw768] = await geminiEmbedder({ apiKey: GEMINI_KEY, baseUrl: fake.url, normalize: false }).embed(
      texts,
    )
    expect(norm(raw768!)).toBeCloseTo(norm(raw), 5)

    const full = geminiEmbedder({ apiKey: GEMINI_KEY, baseUrl: fake.url, outputDimensionality: 3072 })
    const [v3072] = await full.embed(texts)
    expect(Array.from(v3072!)).toEqual(Array.from(Float32Array.from(geminiVector(texts[0]!, 3072))))
  })

  it('cuts inputs to maxInputChars before sending, without splitting a surrogate pair', async () => {
    const embedder = geminiEmbedder({ apiKey: GEMINI_KEY, baseUrl: fake.url, maxInputChars: 11 })
    await embedder.embed(['0123456789🚀tail', 'short'])
    expect(fake.batches()[0]).toEqual(['0123456789', 'short'])
    fake.reset()
    await geminiEmbedder({ apiKey: GEMINI_KEY, baseUrl: fake.url }).embed(['x'.repeat(20_000)])
    expect(fake.batches()[0]![0]).toHaveLength(8000)
  })

  it('429: retryAfterMs from google.rpc.RetryInfo, fractional seconds included', async () => {
    const embedder = geminiEmbedder({ apiKey: GEMINI_KEY, baseUrl: fake.url })
    fake.fail({ kind: 'rate-limit', retryAfterMs: 1500 })
    const err = await embedder.embed(['a']).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(EmbedderError)
    expect(err).toMatchObject({ status: 429, retryable: true, retryAfterMs: 1500 })
    expect((err as Error).message).toMatch(/RESOURCE_EXHAUSTED/)
  })

  it('429: falls back to the Retry-After header when the body has no RetryInfo', async () => {
    const embedder = geminiEmbedder({ apiKey: GEMINI_KEY, baseUrl: fake.url })
    fake.fail({ kind: 'rate-limit', retryAfterMs: 3000, via: 'header' })
    await expect(embedder.embed(['a'])).rejects.toMatchObject({
      status: 429,
      retryable: true,
      retryAfterMs: 3000,
    })
  })

  it('an invalid key (HTTP 400 API_KEY_INVALID) is reported as an auth error, not a bad input', async () => {
    const embedder = geminiEmbedder({ apiKey: 'wrong-key', baseUrl: fake.url })
    const err = (await embedder.embed(['a']).catch((e: unknown) => e)) as EmbedderError
    expect(err).toBeInstanceOf(EmbedderError)
    expect(err.isAuthError).toBe(true)
    expect(err.retryable).toBe(false)
    expect(err.status).toBe(401)
    expect(err.message).toMatch(/API_KEY_INVALID/)
    expect(err.message).not.toContain('wrong-key')
  })

  it('the SDK does not retry 429 or 503 on its own: one request per failed call', async () => {
    const embedder = geminiEmbedder({ apiKey: GEMINI_KEY, baseUrl: fake.url })
    fake.fail({ kind: 'rate-limit' })
    await expect(embedder.embed(['a'])).rejects.toBeInstanceOf(EmbedderError)
    fake.fail({ kind: 'server-error', status: 503 })
    await expect(embedder.embed(['a'])).rejects.toBeInstanceOf(EmbedderError)
    expect(fake.requests).toHaveLength(2)
  })

  it('a baseUrl with a path prefix (a proxy) is kept', async () => {
    const embedder = geminiEmbedder({ apiKey: GEMINI_KEY, baseUrl: `${fake.url}/proxy/` })
    await expect(embedder.embed(['a'])).rejects.toMatchObject({ status: 404, retryable: false })
    expect(fake.requests[0]!.url).toMatch(
      /^\/proxy\/v1(beta)?\/models\/gemini-embedding-001:batchEmbedContents$/,
    )
  })

  it('ignores GOOGLE_GENAI_USE_VERTEXAI in the environment', async () => {
    process.env.GOOGLE_GENAI_USE_VERTEXAI = 'true'
    try {
      await geminiEmbedder({ apiKey: GEMINI_KEY, baseUrl: fake.url }).embed(['a'])
      expect(fake.requests[0]!.url).toMatch(/^\/v1(beta)?\/models\/gemini-embedding-001:batchEmbedContents$/)
    } finally {
      delete process.env.GOOGLE_GENAI_USE_VERTEXAI
    }
  })
})

describe('geminiEmbedder options', () => {
  it('takes the key from GEMINI_API_KEY and requires one', () => {
    const saved = { gemini: process.env.GEMINI_API_KEY, google: process.env.GOOGLE_API_KEY }
    try {
      delete process.env.GEMINI_API_KEY
      delete process.env.GOOGLE_API_KEY
      expect(() => geminiEmbedder()).toThrow(/apiKey.*GEMINI_API_KEY/)
      process.env.GEMINI_API_KEY = 'from-env'
      expect(() => geminiEmbedder()).not.toThrow()
    } finally {
      for (const [name, value] of [
        ['GEMINI_API_KEY', saved.gemini],
        ['GOOGLE_API_KEY', saved.google],
      ] as const) {
        if (value === undefined) delete process.env[name]
        else process.env[name] = value
      }
    }
  })

  it.each([
    [{ outputDimensionality: 0 }, RangeError, /outputDimensionality.*received 0/],
    [{ outputDimensionality: 1.5 }, TypeError, /outputDimensionality.*integer/],
    [{ taskType: '' }, TypeError, /taskType/],
    [{ model: 'a?b' }, TypeError, /model/],
    [{ baseUrl: 'not a url' }, TypeError, /baseUrl.*absolute URL/],
    [{ normalize: 'yes' }, TypeError, /normalize.*boolean/],
    [{ maxInputChars: -1 }, RangeError, /maxInputChars/],
    [{ timeoutMs: 0 }, RangeError, /timeoutMs/],
  ] as const)('rejects %o', (opts, type, message) => {
    const make = () => geminiEmbedder({ apiKey: GEMINI_KEY, ...(opts as object) })
    expect(make).toThrow(type)
    expect(make).toThrow(message)
  })

  it('imports @google/genai only lazily (users of other providers do not need it)', () => {
    const source = readFileSync(new URL('../../src/providers/gemini.ts', import.meta.url), 'utf8')
    const staticImports = source.match(/^import .*from '@google\/genai'/gm) ?? []
    expect(staticImports.every((line) => line.startsWith('import type '))).toBe(true)
    expect(source).toContain("import('@google/genai')")
  })
})
