import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { EmbedderError } from '../../src/errors.js'
import { openAIEmbedder } from '../../src/providers/openai.js'
import { describeConformance } from './conformance.js'
import {
  type FakeOpenAI,
  OPENAI_FAKE_MAX_CHARS,
  OPENAI_FAKE_MAX_INPUTS,
  OPENAI_KEY,
  openAIVector,
  startFakeOpenAI,
} from './fake-openai.js'

const norm = (v: ArrayLike<number>): number => Math.sqrt(Array.from(v).reduce((s, x) => s + x * x, 0))

describeConformance('openai', { remote: true }, async () => {
  const fake = await startFakeOpenAI()
  return {
    fake,
    maxChars: OPENAI_FAKE_MAX_CHARS,
    make: ({ origin, ...rest } = {}) =>
      openAIEmbedder({ apiKey: OPENAI_KEY, baseUrl: `${origin ?? fake.url}/v1`, ...rest }),
    close: () => fake.close(),
  }
})

describe('openAIEmbedder against the fake OpenAI API', () => {
  let fake: FakeOpenAI
  beforeAll(async () => {
    fake = await startFakeOpenAI()
  })
  afterAll(async () => {
    await fake.close()
  })
  beforeEach(() => fake.reset())
  const make = (opts: Parameters<typeof openAIEmbedder>[0] = {}) =>
    openAIEmbedder({ apiKey: OPENAI_KEY, baseUrl: `${fake.url}/v1`, ...opts })

  it('sends the documented request: URL, bearer key, model, input, encoding_format', async () => {
    await make().embed(['hello', 'world'])
    expect(fake.requests).toHaveLength(1)
    const req = fake.requests[0]!
    expect(req.method).toBe('POST')
    expect(req.url).toBe('/v1/embeddings')
    expect(req.headers.authorization).toBe(`Bearer ${OPENAI_KEY}`)
    expect(req.headers['content-type']).toBe('application/json')
    expect(req.body).toEqual({
      model: 'text-embedding-3-small',
      input: ['hello', 'world'],
      encoding_format: 'float',
    })
  })

  it("orders vectors by each item's index, not by array position", async () => {
    const texts = ['zero', 'one', 'two', 'three']
    const vectors = await make({ normalize: false }).embed(texts)
    for (const [i, text] of texts.entries()) {
      expect(Array.from(vectors[i]!)).toEqual(Array.from(Float32Array.from(openAIVector(text, 1536))))
    }
  })

  it('sends dimensions only when configured, and checks every vector against it', async () => {
    const embedder = make({ model: 'text-embedding-3-large', dimensions: 256 })
    expect(embedder.id).toBe('openai:text-embedding-3-large:256')
    const [v] = await embedder.embed(['a'])
    expect(v).toHaveLength(256)
    expect(fake.requests[0]!.body).toMatchObject({ model: 'text-embedding-3-large', dimensions: 256 })

    fake.reset()
    await make({ model: 'text-embedding-ada-002' }).embed(['a'])
    expect(fake.requests[0]!.body).not.toHaveProperty('dimensions')

    // text-embedding-3-large without `dimensions` returns 3072 values: the default 1536 catches it.
    fake.reset()
    await expect(make({ model: 'text-embedding-3-large' }).embed(['a'])).rejects.toThrow(
      /3072 values, expected 1536/,
    )
  })

  it('the default batch limit is 2048 inputs; 4100 texts take three calls', async () => {
    const embedder = make({ dimensions: 4 })
    expect(embedder.maxBatchSize).toBe(OPENAI_FAKE_MAX_INPUTS)
    const texts = Array.from({ length: 4100 }, (_, i) => `t${i}`)
    const vectors = await embedder.embed(texts)
    expect(vectors).toHaveLength(4100)
    expect(fake.batches().map((b) => b.length)).toEqual([2048, 2048, 4])
  })

  it('splits long texts further so no request passes maxRequestChars (OpenAI caps tokens per request)', async () => {
    const texts = Array.from({ length: 60 }, (_, i) => `${i} ${'word '.repeat(6000)}`)
    const vectors = await make({ dimensions: 4 }).embed(texts)
    expect(vectors).toHaveLength(60)
    const sizes = fake.batches().map((b) => b.reduce((n, t) => n + t.length, 0))
    expect(sizes.length).toBeGreaterThan(1)
    expect(Math.max(...sizes)).toBeLessThanOrEqual(600_000)
    expect(fake.batches().flat()).toEqual(texts)

    fake.reset()
    await expect(make({ dimensions: 4, maxRequestChars: 2_000_000 }).embed(texts)).rejects.toMatchObject({
      status: 400,
      retryable: false,
      message: expect.stringMatching(/max 300000 tokens per request/),
    })
  })

  it('normalizes by default, or returns the raw vectors with normalize: false', async () => {
    const [unit] = await make().embed(['scale'])
    expect(norm(unit!)).toBeCloseTo(1, 6)
    const [raw] = await make({ normalize: false }).embed(['scale'])
    expect(norm(raw!)).toBeCloseTo(norm(openAIVector('scale', 1536)), 3)
  })

  it('cuts inputs to maxInputChars', async () => {
    await make({ maxInputChars: 5 }).embed(['abcdefgh'])
    expect(fake.batches()).toEqual([['abcde']])
  })

  it('sends extra headers (OpenRouter) and no Authorization without a key (local servers)', async () => {
    const local = await startFakeOpenAI({ requireKey: false })
    try {
      const saved = process.env.OPENAI_API_KEY
      delete process.env.OPENAI_API_KEY
      try {
        const embedder = openAIEmbedder({
          baseUrl: `${local.url}/v1`,
          headers: { 'X-Title': 'embedq tests' },
        })
        await embedder.embed(['a'])
      } finally {
        if (saved !== undefined) process.env.OPENAI_API_KEY = saved
      }
      expect(local.requests[0]!.headers.authorization).toBeUndefined()
      expect(local.requests[0]!.headers['x-title']).toBe('embedq tests')
    } finally {
      await local.close()
    }
  })

  it('accepts items without index from compatible servers, in array order', async () => {
    const bare = await startFakeOpenAI({ shuffle: false, omitIndex: true })
    try {
      const embedder = openAIEmbedder({ apiKey: OPENAI_KEY, baseUrl: `${bare.url}/v1`, normalize: false })
      const [a, b] = await embedder.embed(['a', 'b'])
      expect(Array.from(a!)).toEqual(Array.from(Float32Array.from(openAIVector('a', 1536))))
      expect(Array.from(b!)).toEqual(Array.from(Float32Array.from(openAIVector('b', 1536))))
    } finally {
      await bare.close()
    }
  })

  it('429: prefers retry-after-ms, and reads "try again in" from the message when no header says', async () => {
    fake.fail({ kind: 'rate-limit', retryAfterMs: 1234 })
    await expect(make().embed(['a'])).rejects.toMatchObject({ status: 429, retryAfterMs: 1234 })
    fake.fail({ kind: 'rate-limit', retryAfterMs: 20, via: 'body' })
    await expect(make().embed(['a'])).rejects.toMatchObject({
      status: 429,
      retryable: true,
      retryAfterMs: 20,
    })
  })

  it('a wrong key is an auth error whose message does not echo the key', async () => {
    const err = (await make({ apiKey: 'sk-wrong-secret' })
      .embed(['a'])
      .catch((e: unknown) => e)) as EmbedderError
    expect(err).toBeInstanceOf(EmbedderError)
    expect(err).toMatchObject({ status: 401, retryable: false, isAuthError: true })
    expect(err.message).toMatch(/invalid_api_key/)
    expect(err.message).not.toContain('sk-wrong-secret')
  })

  it('an unknown model (404) is not retryable', async () => {
    await expect(make({ model: 'nope' }).embed(['a'])).rejects.toMatchObject({
      status: 404,
      retryable: false,
    })
  })
})

describe('openAIEmbedder options', () => {
  it('requires a key for api.openai.com, from apiKey or OPENAI_API_KEY', () => {
    const saved = process.env.OPENAI_API_KEY
    try {
      delete process.env.OPENAI_API_KEY
      expect(() => openAIEmbedder()).toThrow(/apiKey.*OPENAI_API_KEY/)
      expect(() => openAIEmbedder({ baseUrl: 'http://127.0.0.1:8000/v1' })).not.toThrow()
      process.env.OPENAI_API_KEY = 'sk-env'
      expect(() => openAIEmbedder()).not.toThrow()
    } finally {
      if (saved === undefined) delete process.env.OPENAI_API_KEY
      else process.env.OPENAI_API_KEY = saved
    }
  })

  it('defaults: text-embedding-3-small, 1536 dimensions, batches of 2048', () => {
    const embedder = openAIEmbedder({ apiKey: 'sk-x' })
    expect(embedder).toMatchObject({
      dimensions: 1536,
      maxBatchSize: 2048,
      id: 'openai:text-embedding-3-small:1536',
    })
  })

  it.each([
    [{ dimensions: -3 }, RangeError, /dimensions.*received -3/],
    [{ dimensions: '512' }, TypeError, /dimensions.*integer.*"512"/],
    [{ maxBatchSize: 0 }, RangeError, /maxBatchSize/],
    [{ baseUrl: 'ftp://x' }, TypeError, /baseUrl.*http/],
    [{ headers: { a: 1 } }, TypeError, /headers.*"a"/],
    [{ model: '' }, TypeError, /model.*non-empty/],
    [{ timeoutMs: 3_000_000_000 }, RangeError, /timeoutMs/],
  ] as const)('rejects %o', (opts, type, message) => {
    const make = () => openAIEmbedder({ apiKey: 'sk-x', ...(opts as object) })
    expect(make).toThrow(type)
    expect(make).toThrow(message)
  })
})
