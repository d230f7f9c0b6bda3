/**
 * #13 Retrieval: `queue.vectorIndex()` and `queue.embedQuery()`.
 * The scan engine runs on a private redis-server (no query engine there); the query-engine
 * path is driven end to end against a RESP server that answers FT.* with recorded replies.
 */
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { EmbedOptions } from '../src/embedder.js'
import { InvalidInputError } from '../src/errors.js'
import { DISTANCE_ALIAS } from '../src/ft-commands.js'
import { EmbedderError, VectorIndexMismatchError } from '../src/index.js'
import { fakeEmbedder, fakeVector, readVector, uniqueName } from './helpers/fixtures.js'
import { useQueueHarness } from './helpers/queue-harness.js'
import { type RespServer, startRespServer } from './helpers/resp-server.js'

const DIMS = 8

/** Brute-force cosine distance, the reference the scan must agree with. */
function cosineDistance(a: Float32Array, b: Float32Array): number {
  let dot = 0
  let na = 0
  let nb = 0
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!
    na += a[i]! ** 2
    nb += b[i]! ** 2
  }
  return 1 - dot / Math.sqrt(na * nb)
}

describe('#13 vector search without a query engine (exact scan)', () => {
  const h = useQueueHarness()

  it('detects that plain Redis has no query engine, and ensure() needs no index there', async () => {
    const q = h.queue({ embedder: fakeEmbedder({ dims: DIMS }) })
    const index = q.vectorIndex({ indexName: 'idx:none', prefixes: [`${uniqueName('p')}:`] })
    expect(await index.engine()).toBe('scan')
    expect(await index.ensure()).toEqual({ engine: 'scan', created: false })
  })

  it('returns the k nearest hashes under the prefixes, nearest first, with the asked fields', async () => {
    const embedder = fakeEmbedder({ dims: DIMS })
    const q = h.queue({ embedder })
    await q.start()
    const prefix = `${uniqueName('m')}:`
    const texts = Array.from({ length: 60 }, (_, i) => `message number ${i}`)
    for (const [i, text] of texts.entries())
      await h.redis.hset(`${prefix}${i}`, { text, author: i % 2 ? 'ana' : 'bo' })
    await q.enqueueMany(texts.map((text, i) => ({ key: `${prefix}${i}`, text })))
    // A hash outside the prefixes is never a hit.
    await h.redis.hset(
      `other:${prefix}x`,
      'embedding',
      Buffer.from(fakeVector('message number 7', DIMS).buffer),
    )
    expect((await q.flushAndWait({ timeoutMs: 10_000 })).drained).toBe(true)

    const index = q.vectorIndex({ indexName: 'idx:scan', prefixes: [prefix] })
    const query = fakeVector('query text', DIMS)
    const hits = await index.search(query, { k: 5, returnFields: ['text', 'author'] })
    const expected = texts
      .map((text, i) => ({ key: `${prefix}${i}`, d: cosineDistance(query, fakeVector(text, DIMS)), text }))
      .sort((a, b) => a.d - b.d)
      .slice(0, 5)
    expect(hits.map((x) => x.key)).toEqual(expected.map((e) => e.key))
    hits.forEach((hit, i) => {
      expect(hit.distance).toBeCloseTo(expected[i]!.d, 5)
      expect(hit.fields.text).toBe(expected[i]!.text)
      expect(['ana', 'bo']).toContain(hit.fields.author)
    })
    // A structured filter applies in the scan too.
    const anaOnly = await index.search(query, { k: 50, filter: { author: 'ana' }, returnFields: ['author'] })
    expect(anaOnly).toHaveLength(30)
    expect(anaOnly.every((x) => x.fields.author === 'ana')).toBe(true)
  })

  it('embeds a text query in query mode (purpose "query"), through the vector cache when enabled', async () => {
    const purposes: (string | undefined)[] = []
    const base = fakeEmbedder({ dims: DIMS })
    const embedder = {
      dimensions: DIMS,
      id: 'fake:query-mode',
      embed: (texts: string[], o?: EmbedOptions) => {
        purposes.push(o?.purpose)
        return base.embed(texts, o)
      },
    }
    const q = h.queue({ embedder, cache: true })
    await q.start()
    const prefix = `${uniqueName('c')}:`
    await q.enqueue(`${prefix}1`, 'hello world')
    await q.flushAndWait({ timeoutMs: 5_000 })
    const index = q.vectorIndex({ indexName: 'idx:q', prefixes: [prefix] })
    const first = await index.search('hello', { k: 1 })
    const second = await index.search('hello', { k: 1 })
    expect(first).toEqual(second)
    expect(first[0]!.key).toBe(`${prefix}1`)
    // One document call, then exactly one query call: the second search hit the cache.
    expect(purposes.filter((p) => p === 'query')).toHaveLength(1)
    expect(purposes.filter((p) => p !== 'query')).toHaveLength(1)
    expect(Array.from(await q.embedQuery('hello'))).toEqual(Array.from(fakeVector('hello', DIMS)))
  })

  it('given-up items carry the failed mark, never appear in results, and a later success clears the mark', async () => {
    const bad = new Set(['poison one', 'poison two'])
    let healed = false
    const base = fakeEmbedder({ dims: DIMS })
    const embedder = {
      dimensions: DIMS,
      embed: async (texts: string[], o?: EmbedOptions) => {
        if (!healed && texts.some((t) => bad.has(t)))
          throw new EmbedderError('bad text', { retryable: false, status: 400 })
        return base.embed(texts, o)
      },
    }
    const q = h.queue({ embedder, maxAttempts: 1 })
    await q.start()
    const prefix = `${uniqueName('g')}:`
    const texts = ['poison one', 'alpha beta', 'poison two', 'gamma delta', 'alpha gamma']
    await q.enqueueMany(texts.map((text, i) => ({ key: `${prefix}${i}`, text })))
    expect((await q.flushAndWait({ timeoutMs: 10_000 })).drained).toBe(true)
    // The give-ups hold a zero vector (callers reading the field keep working) and the mark.
    for (const i of [0, 2]) {
      expect(await h.redis.hget(`${prefix}${i}`, 'embedding_failed')).toBe('1')
      expect(Array.from((await readVector(h.redis, `${prefix}${i}`))!)).toEqual(new Array(DIMS).fill(0))
    }
    expect(await h.redis.hexists(`${prefix}1`, 'embedding_failed')).toBe(0)
    const index = q.vectorIndex({ indexName: 'idx:g', prefixes: [prefix], distance: 'L2' })
    // Under L2 a zero vector has a finite distance: only the mark keeps it out.
    const hits = await index.search(new Float32Array(DIMS), { k: 10 })
    expect(hits.map((x) => x.key).sort()).toEqual([`${prefix}1`, `${prefix}3`, `${prefix}4`])
    // Fixed upstream: retrying the dead letters writes real vectors and clears the marks.
    healed = true
    await q.retryFailed()
    expect((await q.flushAndWait({ timeoutMs: 10_000 })).drained).toBe(true)
    expect(await h.redis.hexists(`${prefix}0`, 'embedding_failed')).toBe(0)
    expect(await h.redis.hexists(`${prefix}2`, 'embedding_failed')).toBe(0)
    const after = await index.search(new Float32Array(DIMS), { k: 10 })
    expect(after).toHaveLength(5)
  })

  it('refuses bad queries with typed errors', async () => {
    const q = h.queue({ embedder: fakeEmbedder({ dims: DIMS }) })
    const index = q.vectorIndex({ indexName: 'idx:bad', prefixes: ['x:'] })
    await expect(index.search(new Float32Array(3))).rejects.toBeInstanceOf(InvalidInputError)
    await expect(index.search([1, Number.NaN, 0, 0, 0, 0, 0, 0])).rejects.toBeInstanceOf(InvalidInputError)
    await expect(index.search(new Float32Array(DIMS), { k: 0 })).rejects.toBeInstanceOf(RangeError)
    await expect(index.search(new Float32Array(DIMS), { filter: '@author:{ana}' })).rejects.toThrow(
      /needs the Redis query engine/,
    )
    await expect(q.embedQuery('   ')).rejects.toBeInstanceOf(InvalidInputError)
    expect(() => q.vectorIndex({ indexName: '', prefixes: ['x:'] })).toThrow(TypeError)
    expect(() => q.vectorIndex({ indexName: 'i', prefixes: [] })).toThrow(TypeError)
    expect(() => q.vectorIndex({ indexName: 'i', prefixes: ['x:'], distance: 'DOT' as 'IP' })).toThrow(
      RangeError,
    )
  })

  it('a query embedder that returns garbage or hangs fails the search with EmbedderError', async () => {
    const garbage = h.queue({
      embedder: { dimensions: DIMS, embed: async () => [null] as unknown as number[][] },
    })
    await expect(garbage.embedQuery('x')).rejects.toBeInstanceOf(EmbedderError)
    const short = h.queue({ embedder: { dimensions: DIMS, embed: async () => [[1, 2]] } })
    await expect(short.embedQuery('x')).rejects.toThrow(/2 dimensions/)
  })
})

describe('#13 vector search on the Redis query engine (recorded replies)', () => {
  let server: RespServer
  let client: Redis
  const indexes = new Map<string, unknown[]>()

  beforeAll(async () => {
    server = await startRespServer((cmd, args) => {
      const a = args.map((b) => b.toString())
      if (cmd === 'FT._LIST') return [...indexes.keys()]
      if (cmd === 'FT.INFO') {
        const info = indexes.get(a[0]!)
        return info ? (info as never) : { error: 'Unknown index name' }
      }
      if (cmd === 'FT.CREATE') {
        if (indexes.has(a[0]!)) return { error: 'Index already exists' }
        const dimAt = a.indexOf('DIM')
        const metricAt = a.indexOf('DISTANCE_METRIC')
        indexes.set(a[0]!, [
          'index_name',
          a[0]!,
          'index_definition',
          ['key_type', 'HASH', 'prefixes', [a[4]!]],
          'attributes',
          [
            [
              'identifier',
              a[a.indexOf('SCHEMA') + 1]!,
              'attribute',
              a[a.indexOf('SCHEMA') + 1]!,
              'type',
              'VECTOR',
              'algorithm',
              a[a.indexOf('VECTOR') + 1]!,
              'dim',
              a[dimAt + 1]!,
              'distance_metric',
              a[metricAt + 1]!,
            ],
          ],
        ])
        return 'OK'
      }
      if (cmd === 'FT.SEARCH')
        return [
          3,
          'msg:b',
          [DISTANCE_ALIAS, '0.5', 'text', 'second'],
          'msg:a',
          [DISTANCE_ALIAS, '0.125', 'text', 'first'],
          'msg:zero',
          [DISTANCE_ALIAS, '-nan', 'text', 'given up'],
        ]
      return { error: `ERR unknown command '${cmd}'` }
    })
    client = new Redis({ port: server.port, host: '127.0.0.1', lazyConnect: true, enableReadyCheck: false })
    await client.connect()
  })
  afterAll(async () => {
    client?.disconnect()
    await server?.close()
  })

  const queueOn = async (dims = DIMS) => {
    const { EmbeddingBatchQueue } = await import('../src/index.js')
    return new EmbeddingBatchQueue({ redis: client, embedder: fakeEmbedder({ dims }), worker: false })
  }

  it('detects the engine, creates the index once with FT.CREATE, and parses FT.SEARCH hits', async () => {
    const q = await queueOn()
    const index = q.vectorIndex({ indexName: 'idx:msgs', prefixes: ['msg:'], algorithm: 'FLAT' })
    expect(await index.engine()).toBe('query-engine')
    expect(await index.ensure()).toEqual({ engine: 'query-engine', created: true })
    expect(await index.ensure()).toEqual({ engine: 'query-engine', created: false })
    const create = server.commands.find((c) => c[0]!.toString().toUpperCase() === 'FT.CREATE')!
    expect(create.map(String)).toEqual([
      'FT.CREATE',
      'idx:msgs',
      'ON',
      'HASH',
      'PREFIX',
      '1',
      'msg:',
      'FILTER',
      '!exists(@embedding_failed)',
      'SCHEMA',
      'embedding',
      'VECTOR',
      'FLAT',
      '6',
      'TYPE',
      'FLOAT32',
      'DIM',
      String(DIMS),
      'DISTANCE_METRIC',
      'COSINE',
    ])
    const query = fakeVector('q', DIMS)
    const hits = await index.search(query, { k: 3, returnFields: ['text'] })
    expect(hits).toEqual([
      { key: 'msg:a', distance: 0.125, fields: { text: 'first' } },
      { key: 'msg:b', distance: 0.5, fields: { text: 'second' } },
    ])
    const search = server.commands.filter((c) => c[0]!.toString().toUpperCase() === 'FT.SEARCH').at(-1)!
    // The vector goes over the wire as the little-endian float32 blob, as a PARAMS value.
    expect(search[8]!.equals(Buffer.from(query.buffer, query.byteOffset, query.byteLength))).toBe(true)
    expect(search.slice(1, 3).map(String)).toEqual([
      'idx:msgs',
      `*=>[KNN $K @embedding $BLOB AS ${DISTANCE_ALIAS}]`,
    ])
    await q.stop()
  })

  it('an existing index with other dimensions or another metric is a clear error', async () => {
    const other = await queueOn(32)
    await expect(other.vectorIndex({ indexName: 'idx:msgs', prefixes: ['msg:'] }).ensure()).rejects.toThrow(
      VectorIndexMismatchError,
    )
    await expect(other.vectorIndex({ indexName: 'idx:msgs', prefixes: ['msg:'] }).ensure()).rejects.toThrow(
      /32/,
    )
    const q = await queueOn()
    await expect(
      q.vectorIndex({ indexName: 'idx:msgs', prefixes: ['msg:'], distance: 'L2' }).ensure(),
    ).rejects.toThrow(/distance metric is COSINE, asked for L2/)
    await Promise.all([other.stop(), q.stop()])
  })
})
