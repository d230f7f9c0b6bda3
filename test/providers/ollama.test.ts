import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { ollamaEmbedder } from '../../src/providers/ollama.js'
import { describeConformance } from './conformance.js'
import { type FakeOllama, OLLAMA_FAKE_CONTEXT_CHARS, ollamaVector, startFakeOllama } from './fake-ollama.js'

describeConformance('ollama', { remote: true }, async () => {
  const fake = await startFakeOllama()
  return {
    fake,
    // Ollama cuts over-long input itself (truncate: true), so the whole text may be sent.
    maxChars: Number.POSITIVE_INFINITY,
    make: ({ origin, ...rest } = {}) => ollamaEmbedder({ baseUrl: origin ?? fake.url, ...rest }),
    close: () => fake.close(),
  }
})

describe('ollamaEmbedder against the fake Ollama', () => {
  let fake: FakeOllama
  beforeAll(async () => {
    fake = await startFakeOllama()
  })
  afterAll(async () => {
    await fake.close()
  })
  beforeEach(() => fake.reset())

  it('sends the documented /api/embed request with batch input and truncate', async () => {
    const vectors = await ollamaEmbedder({ baseUrl: fake.url }).embed(['hello', 'world'])
    const req = fake.requests[0]!
    expect(req.method).toBe('POST')
    expect(req.url).toBe('/api/embed')
    expect(req.headers['content-type']).toBe('application/json')
    expect(req.body).toEqual({ model: 'nomic-embed-text', input: ['hello', 'world'], truncate: true })
    expect(Array.from(vectors[1]!)).toEqual(Array.from(Float32Array.from(ollamaVector('world', 768))))
  })

  it('sends dimensions and keep_alive when configured', async () => {
    const embedder = ollamaEmbedder({
      baseUrl: fake.url,
      model: 'all-minilm',
      dimensions: 128,
      keepAlive: '10m',
    })
    expect(embedder.id).toBe('ollama:all-minilm:128')
    const [v] = await embedder.embed(['a'])
    expect(v).toHaveLength(128)
    expect(fake.requests[0]!.body).toEqual({
      model: 'all-minilm',
      input: ['a'],
      truncate: true,
      dimensions: 128,
      keep_alive: '10m',
    })
  })

  it('a model of another size fails loudly instead of being cut silently', async () => {
    await expect(ollamaEmbedder({ baseUrl: fake.url, model: 'all-minilm' }).embed(['a'])).rejects.toThrow(
      /384 values, expected 768/,
    )
  })

  it('with truncate: false an over-long input is a non-retryable 400', async () => {
    const embedder = ollamaEmbedder({ baseUrl: fake.url, truncate: false })
    await expect(embedder.embed(['x'.repeat(OLLAMA_FAKE_CONTEXT_CHARS + 1)])).rejects.toMatchObject({
      status: 400,
      retryable: false,
      message: expect.stringMatching(/exceeds the context length/),
    })
  })

  it('a model that is not pulled (404) is not retryable and says so', async () => {
    await expect(ollamaEmbedder({ baseUrl: fake.url, model: 'missing' }).embed(['a'])).rejects.toMatchObject({
      status: 404,
      retryable: false,
      message: expect.stringMatching(/model "missing" not found, try pulling it first/),
    })
  })

  it('503 "server busy" is retryable and keeps Ollama\'s message', async () => {
    fake.fail({ kind: 'server-error', status: 503 })
    await expect(ollamaEmbedder({ baseUrl: fake.url }).embed(['a'])).rejects.toMatchObject({
      status: 503,
      retryable: true,
      message: expect.stringMatching(/server busy/),
    })
  })

  it('429 from a proxy: retryAfterMs from Retry-After', async () => {
    fake.fail({ kind: 'rate-limit', retryAfterMs: 2000 })
    await expect(ollamaEmbedder({ baseUrl: fake.url }).embed(['a'])).rejects.toMatchObject({
      status: 429,
      retryAfterMs: 2000,
    })
  })

  it('defaults', () => {
    expect(ollamaEmbedder()).toMatchObject({
      dimensions: 768,
      maxBatchSize: 128,
      id: 'ollama:nomic-embed-text:768',
    })
  })

  it.each([
    [{ dimensions: 0 }, RangeError, /dimensions/],
    [{ truncate: 1 }, TypeError, /truncate.*boolean/],
    [{ keepAlive: {} }, TypeError, /keepAlive/],
    [{ baseUrl: '127.0.0.1:11434' }, TypeError, /baseUrl/],
  ] as const)('rejects %o', (opts, type, message) => {
    const make = () => ollamaEmbedder(opts as object)
    expect(make).toThrow(type)
    expect(make).toThrow(message)
  })
})
