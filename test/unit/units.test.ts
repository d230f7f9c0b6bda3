import { Redis } from 'ioredis'
import { describe, expect, it } from 'vitest'
import { backoffMs } from '../../src/backoff.js'
import { decodeVector, encodeVector, parseDoneMessage } from '../../src/codec.js'
import { EmbedderError, EmbeddingBatchQueue, EmbeddingFailedError } from '../../src/index.js'
import { fakeEmbedder } from '../helpers/fixtures.js'

describe('codec', () => {
  it('round-trips vectors as little-endian float32', () => {
    const blob = encodeVector([1, -2.5, 0.1])
    expect(blob.length).toBe(12)
    expect(blob.readFloatLE(4)).toBe(-2.5)
    expect(Array.from(decodeVector(blob))).toEqual(Array.from(Float32Array.from([1, -2.5, 0.1])))
  })

  it('parses length-prefixed done messages with any bytes in keys and messages', () => {
    const key = 'weird:{key}:with:colons:ünï'
    const msg = '{"error":"x:y"}'
    const raw = Buffer.concat([
      Buffer.from(`D17:${Buffer.byteLength(key)}:`),
      Buffer.from(key),
      Buffer.from('0:'),
      Buffer.from(`F18:3:abc${Buffer.byteLength(msg)}:${msg}`),
    ])
    expect(parseDoneMessage(raw)).toEqual([
      { status: 'D', version: 17, key, message: '' },
      { status: 'F', version: 18, key: 'abc', message: msg },
    ])
    expect(() => parseDoneMessage(Buffer.from('X1:1:a0:'))).toThrow(/malformed/)
  })
})

describe('backoff', () => {
  it('grows exponentially with jitter, is capped, and honours the provider retry-after', () => {
    expect(backoffMs(1, 1000, 60_000, undefined, () => 0)).toBe(500)
    expect(backoffMs(1, 1000, 60_000, undefined, () => 1)).toBe(1000)
    expect(backoffMs(3, 1000, 60_000, undefined, () => 1)).toBe(4000)
    expect(backoffMs(20, 1000, 60_000, undefined, () => 1)).toBe(60_000)
    expect(backoffMs(1, 1000, 60_000, 7_000, () => 0)).toBe(7_000)
  })
})

describe('options', () => {
  const redis = new Redis({ lazyConnect: true })
  const embedder = fakeEmbedder()
  it.each([
    [{ maxBatchSize: 0 }, /maxBatchSize.*\[1, 1000\].*received 0/],
    [{ maxBatchSize: 'x' }, /maxBatchSize.*a number.*received "x"/],
    [{ name: 'a{b}' }, /`name`.*braces/],
    [{ leaseMs: 10 }, /leaseMs/],
    [{ field: 'embedding', versionField: 'embedding' }, /versionField/],
    [{ embedder: { dimensions: 0, embed: async () => [] } }, /embedder.dimensions/],
    [{ embedder: {} }, /embedder/],
    [{ redis: {} }, /redis/],
    [{ worker: 'yes' }, /worker.*boolean/],
    [{ backoffBaseMs: 5000, backoffMaxMs: 100 }, /backoffMaxMs/],
  ])('rejects %o naming the option, the expected and the received value', (bad, msg) => {
    expect(() => new EmbeddingBatchQueue({ redis, embedder, ...(bad as object) })).toThrow(msg)
  })

  it('creates nothing at construction: no connection, no timer', () => {
    const q = new EmbeddingBatchQueue({ redis, embedder })
    expect(redis.status).toBe('wait')
    expect(q.name).toBe('default')
  })
})

describe('errors', () => {
  it('carry names and the fields the queue relies on', () => {
    const e = new EmbedderError('slow down', { status: 429, retryable: true, retryAfterMs: 7000 })
    expect(e).toMatchObject({
      name: 'EmbedderError',
      status: 429,
      retryable: true,
      retryAfterMs: 7000,
      isAuthError: false,
    })
    expect(new EmbedderError('no', { status: 401, retryable: false }).isAuthError).toBe(true)
    const f = new EmbeddingFailedError('k', 3, 'boom')
    expect(f).toMatchObject({ name: 'EmbeddingFailedError', key: 'k', attempts: 3, lastError: 'boom' })
    const cause = new Error('root')
    expect(new EmbedderError('wrapped', { retryable: true, cause }).cause).toBe(cause)
  })
})
