/**
 * The query engine's command shapes and reply parsers, against replies recorded in the
 * RESP2 shape the Redis documentation gives (no query engine runs on this machine).
 */
import { describe, expect, it } from 'vitest'
import {
  DISTANCE_ALIAS,
  escapeTag,
  failedFilterExpression,
  filterToQuery,
  ftCreateArgs,
  ftSearchArgs,
  type IndexDefinition,
  indexMismatches,
  parseInfoReply,
  parseSearchReply,
} from '../../src/ft-commands.js'

const def: IndexDefinition = {
  indexName: 'idx:msgs',
  prefixes: ['msg:', 'note:'],
  field: 'embedding',
  dimensions: 16,
  algorithm: 'HNSW',
  distance: 'COSINE',
  failedField: 'embedding_failed',
  schema: [
    { name: 'author', type: 'TAG' },
    { name: 'ts', type: 'NUMERIC', sortable: true },
  ],
}

describe('FT.CREATE', () => {
  it('indexes hashes under the prefixes, leaves given-up targets out with a FILTER, declares the vector field', () => {
    expect(ftCreateArgs(def)).toEqual([
      'idx:msgs',
      'ON',
      'HASH',
      'PREFIX',
      2,
      'msg:',
      'note:',
      'FILTER',
      '!exists(@embedding_failed)',
      'SCHEMA',
      'embedding',
      'VECTOR',
      'HNSW',
      6,
      'TYPE',
      'FLOAT32',
      'DIM',
      16,
      'DISTANCE_METRIC',
      'COSINE',
      'author',
      'TAG',
      'ts',
      'NUMERIC',
      'SORTABLE',
    ])
  })

  it('counts HNSW build parameters in the attribute count, and FLAT takes none', () => {
    const hnsw = ftCreateArgs({ ...def, schema: [], hnsw: { m: 32, efConstruction: 400 } })
    const at = hnsw.indexOf('VECTOR')
    expect(hnsw.slice(at, at + 3)).toEqual(['VECTOR', 'HNSW', 10])
    expect(hnsw.slice(-4)).toEqual(['M', 32, 'EF_CONSTRUCTION', 400])
    const flat = ftCreateArgs({ ...def, schema: [], algorithm: 'FLAT', distance: 'L2', hnsw: { m: 32 } })
    expect(flat.slice(flat.indexOf('VECTOR'))).toEqual([
      'VECTOR',
      'FLAT',
      6,
      'TYPE',
      'FLOAT32',
      'DIM',
      16,
      'DISTANCE_METRIC',
      'L2',
    ])
  })

  it('refuses field names that would need escaping in a query', () => {
    expect(() => ftCreateArgs({ ...def, field: 'emb edding' })).toThrow(/vector field/)
    expect(() => ftCreateArgs({ ...def, schema: [{ name: 'a-b', type: 'TAG' }] })).toThrow(/schema field/)
    expect(failedFilterExpression('x_failed')).toBe('!exists(@x_failed)')
  })
})

describe('FT.SEARCH', () => {
  it('asks for the k nearest with PARAMS, sorted by distance, LIMIT 0 k and DIALECT 2', () => {
    const blob = Buffer.alloc(64, 1)
    const args = ftSearchArgs({
      indexName: 'idx:msgs',
      field: 'embedding',
      blob,
      k: 5,
      prefilter: '*',
      returnFields: ['author', 'text'],
    })
    expect(args).toEqual([
      'idx:msgs',
      `*=>[KNN $K @embedding $BLOB AS ${DISTANCE_ALIAS}]`,
      'PARAMS',
      4,
      'K',
      5,
      'BLOB',
      blob,
      'SORTBY',
      DISTANCE_ALIAS,
      'ASC',
      'RETURN',
      3,
      DISTANCE_ALIAS,
      'author',
      'text',
      'LIMIT',
      0,
      5,
      'DIALECT',
      2,
    ])
  })

  it('puts a prefilter before the KNN clause and EF_RUNTIME inside it', () => {
    const args = ftSearchArgs({
      indexName: 'i',
      field: 'embedding',
      blob: Buffer.alloc(4),
      k: 3,
      prefilter: filterToQuery({ author: ['ana', 'bo b'], ts: { min: 10 } }),
      returnFields: [],
      efRuntime: 50,
    })
    expect(args[1]).toBe(
      `(@author:{ana | bo\\ b} @ts:[10 +inf])=>[KNN $K @embedding $BLOB EF_RUNTIME 50 AS ${DISTANCE_ALIAS}]`,
    )
  })

  it('escapes TAG punctuation and builds numeric equality and ranges', () => {
    expect(escapeTag('a.b-c@d e')).toBe('a\\.b\\-c\\@d\\ e')
    expect(filterToQuery({ n: 3 })).toBe('(@n:[3 3])')
    expect(filterToQuery({ n: { max: 7 } })).toBe('(@n:[-inf 7])')
    expect(filterToQuery({})).toBe('*')
  })

  it('parses a RESP2 reply: total, then key and field list pairs; scores are strings', () => {
    const reply = [
      3,
      'msg:2',
      [DISTANCE_ALIAS, '0.25', 'author', 'bo'],
      'msg:1',
      [DISTANCE_ALIAS, '0.0714', 'author', 'ana'],
      'msg:zero',
      [DISTANCE_ALIAS, '-nan', 'author', 'x'],
    ]
    const parsed = parseSearchReply(reply)
    expect(parsed.total).toBe(3)
    // A document the engine could not score (-nan: a zero vector under COSINE) is dropped.
    expect(parsed.hits).toEqual([
      { key: 'msg:1', distance: 0.0714, fields: { author: 'ana' } },
      { key: 'msg:2', distance: 0.25, fields: { author: 'bo' } },
    ])
    expect(parseSearchReply([0]).hits).toEqual([])
    expect(() => parseSearchReply('OK')).toThrow(/unexpected reply/)
  })
})

describe('FT.INFO', () => {
  // Shape of a Redis Stack 7.2 / RediSearch 2.8 reply (RESP2), trimmed to what we read.
  const info = (dim: number, metric: string, type = 'VECTOR') => [
    'index_name',
    'idx:msgs',
    'index_options',
    [],
    'index_definition',
    [
      'key_type',
      'HASH',
      'prefixes',
      ['msg:', 'note:'],
      'filter',
      '!exists(@embedding_failed)',
      'default_score',
      '1',
    ],
    'attributes',
    [
      ['identifier', 'author', 'attribute', 'author', 'type', 'TAG', 'SEPARATOR', ','],
      [
        'identifier',
        'embedding',
        'attribute',
        'embedding',
        'type',
        type,
        'algorithm',
        'HNSW',
        'data_type',
        'FLOAT32',
        'dim',
        dim,
        'distance_metric',
        metric,
        'M',
        16,
        'ef_construction',
        200,
      ],
    ],
    'num_docs',
    '2000',
  ]

  it('reads prefixes, the filter and the vector field', () => {
    expect(parseInfoReply(info(16, 'COSINE'), 'embedding')).toEqual({
      prefixes: ['msg:', 'note:'],
      filter: '!exists(@embedding_failed)',
      vector: { field: 'embedding', type: 'VECTOR', dimensions: 16, distance: 'COSINE', algorithm: 'HNSW' },
    })
  })

  it('reads vector parameters nested in a list of their own (older engines)', () => {
    const nested = [
      'attributes',
      [
        [
          'identifier',
          'embedding',
          'attribute',
          'embedding',
          'type',
          'VECTOR',
          'params',
          ['dim', '8', 'distance_metric', 'L2'],
        ],
      ],
    ]
    expect(parseInfoReply(nested, 'embedding').vector).toEqual({
      field: 'embedding',
      type: 'VECTOR',
      dimensions: 8,
      distance: 'L2',
    })
  })

  it('names every mismatch: dimensions, metric, a field that is not a vector, a missing field', () => {
    expect(indexMismatches(parseInfoReply(info(16, 'COSINE'), 'embedding'), def)).toEqual([])
    expect(indexMismatches(parseInfoReply(info(768, 'L2'), 'embedding'), def)).toEqual([
      'its field "embedding" has 768 dimensions, the queue writes 16',
      'its distance metric is L2, asked for COSINE',
    ])
    expect(indexMismatches(parseInfoReply(info(16, 'COSINE', 'TEXT'), 'embedding'), def)).toEqual([
      'its field "embedding" is a TEXT field, not a VECTOR field',
    ])
    expect(indexMismatches(parseInfoReply(info(16, 'COSINE'), 'vec'), { ...def, field: 'vec' })).toEqual([
      'it has no field "vec"',
    ])
  })
})
