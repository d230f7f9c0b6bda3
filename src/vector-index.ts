/**
 * A vector index over the hashes a queue writes, and nearest-neighbour search over it.
 *
 * Two engines behind one API:
 * - `query-engine`: the Redis query engine (Redis 8, Redis Stack, RediSearch 2.6+), with
 *   FT.CREATE/FT.SEARCH built in ft-commands.ts. Given-up targets are left out by the index's
 *   FILTER, so they never reach results nor the HNSW graph.
 * - `scan`: any Redis without the module (plain Redis, ioredis-mock, a Cluster without it):
 *   an exact scan over the prefixes — SCAN + one pipelined HMGET per key, distances computed
 *   here, the k nearest kept. Cost: O(N) keys read per search (about N × (dimensions × 4 +
 *   60) bytes over the wire); fine for demos, tests and a few ten-thousand vectors.
 *
 * The engine is detected once per index (`FT._LIST`), or chosen with `engine`.
 */
import type { Cluster, Redis } from 'ioredis'
import { decodeVector, encodeVector } from './codec.js'
import { EmbedqError, InvalidInputError } from './errors.js'
import {
  assertFieldName,
  filterToQuery,
  ftCreateArgs,
  ftSearchArgs,
  type IndexDefinition,
  indexMismatches,
  parseInfoReply,
  parseSearchReply,
  type SchemaField,
  type SearchHit,
  type StructuredFilter,
  type VectorAlgorithm,
  type VectorDistance,
} from './ft-commands.js'
import { escapeGlob } from './keys.js'
import type { RedisLike } from './scripts.js'

export type { SchemaField, SearchHit, StructuredFilter, VectorAlgorithm, VectorDistance }

export type SearchEngine = 'query-engine' | 'scan'

/** Options of `queue.vectorIndex(...)`. */
export interface VectorIndexOptions {
  /** The index name (FT.CREATE's first argument). */
  indexName: string
  /** Key prefixes of the target hashes to index, e.g. `['msg:']`. */
  prefixes: readonly string[]
  /** HNSW (approximate, fast at scale) or FLAT (exact, linear). @default 'HNSW' */
  algorithm?: VectorAlgorithm
  /** COSINE (1 − cosine similarity), L2 (squared Euclidean) or IP (1 − dot product). @default 'COSINE' */
  distance?: VectorDistance
  /** Extra fields to index for filters (TAG, TEXT, NUMERIC). @default [] */
  schema?: readonly SchemaField[]
  /** HNSW build parameters. @default the engine's (M 16, EF_CONSTRUCTION 200) */
  hnsw?: { m?: number; efConstruction?: number; efRuntime?: number }
  /** Which engine to use; 'auto' detects the query engine once. @default 'auto' */
  engine?: 'auto' | SearchEngine
}

export interface SearchOptions {
  /** How many hits. @default 10 */
  k?: number
  /**
   * Only documents that match: a structured filter (`{ author: 'ana', year: { min: 2020 } }`:
   * TAG equality, any-of lists, numeric ranges), which both engines apply, or a raw query
   * string in the query engine's syntax (`'@author:{ana}'`), which only the query engine can.
   */
  filter?: StructuredFilter | string
  /** Hash fields to return with each hit. @default [] */
  returnFields?: readonly string[]
}

export interface EnsureResult {
  engine: SearchEngine
  /** The query engine's index was created by this call. */
  created: boolean
}

/** An index exists but does not fit the queue (another dimension, field or metric). */
export class VectorIndexMismatchError extends EmbedqError {
  override name = 'VectorIndexMismatchError'
  constructor(
    readonly indexName: string,
    readonly problems: readonly string[],
  ) {
    super(
      `vector index "${indexName}" exists but does not fit this queue: ${problems.join('; ')} (drop it or use another indexName)`,
    )
  }
}

export interface VectorIndexDeps {
  redis: RedisLike
  field: string
  failedField: string
  dimensions: number
  embedQuery(text: string): Promise<Float32Array>
}

const SCAN_COUNT = 500
const MAX_K = 10_000

function distanceOf(metric: VectorDistance, a: Float32Array, b: Float32Array): number {
  let dot = 0
  let na = 0
  let nb = 0
  let l2 = 0
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!
    const y = b[i]!
    dot += x * y
    na += x * x
    nb += y * y
    const d = x - y
    l2 += d * d
  }
  if (metric === 'L2') return l2
  if (metric === 'IP') return 1 - dot
  if (na === 0 || nb === 0) return Number.NaN
  return 1 - dot / Math.sqrt(na * nb)
}

function isUnknownCommand(err: unknown): boolean {
  const m = err instanceof Error ? err.message : String(err)
  return /unknown command|not supported|unsupported|ERR unknown|is not implemented/i.test(m)
}

export class VectorIndex {
  readonly indexName: string
  private readonly def: IndexDefinition
  private readonly efRuntime: number | undefined
  private detected: Promise<SearchEngine> | undefined

  constructor(
    private readonly deps: VectorIndexDeps,
    private readonly opts: VectorIndexOptions,
  ) {
    if (typeof opts?.indexName !== 'string' || opts.indexName.length === 0 || /\s/.test(opts.indexName))
      throw new TypeError(`embedq: vectorIndex indexName must be a non-empty string without spaces`)
    if (!Array.isArray(opts.prefixes) || opts.prefixes.length === 0)
      throw new TypeError('embedq: vectorIndex prefixes must be a non-empty array of key prefixes')
    for (const p of opts.prefixes)
      if (typeof p !== 'string' || p.length === 0)
        throw new TypeError(
          `embedq: vectorIndex prefixes must be non-empty strings, received ${JSON.stringify(p)}`,
        )
    const algorithm = opts.algorithm ?? 'HNSW'
    const distance = opts.distance ?? 'COSINE'
    if (algorithm !== 'HNSW' && algorithm !== 'FLAT')
      throw new RangeError(
        `embedq: vectorIndex algorithm must be 'HNSW' or 'FLAT', received ${String(algorithm)}`,
      )
    if (distance !== 'COSINE' && distance !== 'L2' && distance !== 'IP')
      throw new RangeError(
        `embedq: vectorIndex distance must be 'COSINE', 'L2' or 'IP', received ${String(distance)}`,
      )
    this.indexName = opts.indexName
    this.efRuntime = opts.hnsw?.efRuntime
    this.def = {
      indexName: opts.indexName,
      prefixes: [...opts.prefixes],
      field: deps.field,
      dimensions: deps.dimensions,
      algorithm,
      distance,
      failedField: deps.failedField,
      schema: opts.schema ?? [],
      ...(opts.hnsw ? { hnsw: opts.hnsw } : {}),
    }
    // Validates the field names now rather than at the first search.
    ftCreateArgs(this.def)
  }

  private get redis(): Redis {
    return this.deps.redis as Redis
  }

  /** The engine this index uses (detected once: `FT._LIST` answers where the module is loaded). */
  engine(): Promise<SearchEngine> {
    if (this.opts.engine && this.opts.engine !== 'auto') return Promise.resolve(this.opts.engine)
    if (!this.detected) {
      this.detected = (async (): Promise<SearchEngine> => {
        try {
          await this.redis.call('FT._LIST')
          return 'query-engine'
        } catch (err) {
          if (isUnknownCommand(err) || err instanceof TypeError) return 'scan'
          throw err
        }
      })()
      this.detected.catch(() => {
        this.detected = undefined
      })
    }
    return this.detected
  }

  /**
   * Creates the index if it is missing (query engine), or checks that the existing one fits
   * this queue's field, dimensions and metric (`VectorIndexMismatchError` if not). The scan
   * engine needs no index: it returns `{ engine: 'scan', created: false }`.
   */
  async ensure(): Promise<EnsureResult> {
    const engine = await this.engine()
    if (engine === 'scan') return { engine, created: false }
    let info: unknown
    try {
      info = await this.redis.call('FT.INFO', this.indexName)
    } catch (err) {
      if (!/unknown index|no such index|not found/i.test(String((err as Error)?.message ?? err))) throw err
      try {
        await this.redis.call('FT.CREATE', ...ftCreateArgs(this.def))
        return { engine, created: true }
      } catch (createErr) {
        // Another process created it in between: fall through to the check.
        if (!/already exists/i.test(String((createErr as Error)?.message))) throw createErr
        info = await this.redis.call('FT.INFO', this.indexName)
      }
    }
    const problems = indexMismatches(parseInfoReply(info, this.def.field), this.def)
    if (problems.length) throw new VectorIndexMismatchError(this.indexName, problems)
    return { engine, created: false }
  }

  /** Drops the query engine's index (never the documents). A no-op on the scan engine. */
  async drop(): Promise<void> {
    if ((await this.engine()) === 'scan') return
    try {
      await this.redis.call('FT.DROPINDEX', this.indexName)
    } catch (err) {
      if (!/unknown index|no such index|not found/i.test(String((err as Error)?.message))) throw err
    }
  }

  /**
   * The `k` nearest documents to a text (embedded as a query through the queue's embedder,
   * with the vector cache when enabled) or to a vector, nearest first. Given-up targets
   * (zero vectors) never appear.
   */
  async search(
    query: string | Float32Array | readonly number[],
    opts: SearchOptions = {},
  ): Promise<SearchHit[]> {
    const k = opts.k ?? 10
    if (!Number.isInteger(k) || k < 1 || k > MAX_K)
      throw new RangeError(`embedq: search k must be an integer from 1 to ${MAX_K}, received ${String(k)}`)
    const returnFields = opts.returnFields ?? []
    for (const f of returnFields) assertFieldName(f, 'returned field')
    const vector = await this.queryVector(query)
    const engine = await this.engine()
    if (engine === 'query-engine') {
      const prefilter =
        opts.filter === undefined
          ? '*'
          : typeof opts.filter === 'string'
            ? `(${opts.filter})`
            : filterToQuery(opts.filter)
      const reply = await this.redis.call(
        'FT.SEARCH',
        ...ftSearchArgs({
          indexName: this.indexName,
          field: this.def.field,
          blob: encodeVector(vector),
          k,
          prefilter,
          returnFields,
          ...(this.def.algorithm === 'HNSW' && this.efRuntime !== undefined
            ? { efRuntime: this.efRuntime }
            : {}),
        }),
      )
      return parseSearchReply(reply).hits.slice(0, k)
    }
    if (typeof opts.filter === 'string') {
      throw new InvalidInputError(
        'a raw query-string filter needs the Redis query engine; this Redis has none (use a structured filter such as { author: "ana" })',
        'text',
      )
    }
    return this.scanSearch(vector, k, returnFields, opts.filter)
  }

  private async queryVector(query: string | Float32Array | readonly number[]): Promise<Float32Array> {
    if (typeof query === 'string') return this.deps.embedQuery(query)
    if (!(query instanceof Float32Array) && !Array.isArray(query))
      throw new InvalidInputError('search expects a text or a vector (Float32Array or number[])', 'text')
    const v = query instanceof Float32Array ? query : Float32Array.from(query as number[])
    if (v.length !== this.deps.dimensions)
      throw new InvalidInputError(
        `query vector has ${v.length} dimensions, the queue's embedder has ${this.deps.dimensions}`,
        'text',
      )
    for (let i = 0; i < v.length; i++)
      if (!Number.isFinite(v[i]!))
        throw new InvalidInputError('query vector holds a non-finite value', 'text')
    return v
  }

  /** Nodes to scan: every master of a Cluster, else the one server. */
  private scanNodes(): Redis[] {
    const redis = this.deps.redis
    if ((redis as { isCluster?: boolean }).isCluster === true) return (redis as Cluster).nodes('master')
    return [redis as Redis]
  }

  private async scanSearch(
    vector: Float32Array,
    k: number,
    returnFields: readonly string[],
    filter: StructuredFilter | undefined,
  ): Promise<SearchHit[]> {
    const metric = this.def.distance
    const dims = this.deps.dimensions
    const filterFields = filter ? Object.keys(filter) : []
    for (const f of filterFields) assertFieldName(f, 'filter field')
    const extra = [...new Set([...returnFields, ...filterFields])]
    const wanted = [this.def.field, this.def.failedField, ...extra]
    const best: SearchHit[] = [] // sorted, nearest first, at most k
    const seen = new Set<string>()
    for (const node of this.scanNodes()) {
      for (const prefix of this.def.prefixes) {
        let cursor = '0'
        do {
          const [next, keys] = await node.scan(cursor, 'MATCH', `${escapeGlob(prefix)}*`, 'COUNT', SCAN_COUNT)
          cursor = next
          const fresh = keys.filter((key) => !seen.has(key))
          for (const key of fresh) seen.add(key)
          if (fresh.length === 0) continue
          const pipeline = node.pipeline()
          for (const key of fresh) pipeline.hmgetBuffer(key, ...wanted)
          const replies = (await pipeline.exec()) ?? []
          fresh.forEach((key, i) => {
            const [err, values] = replies[i] ?? [null, null]
            if (err || !Array.isArray(values)) return // not a hash (WRONGTYPE) or gone
            const [blob, failedMark, ...rest] = values as (Buffer | null)[]
            if (!blob || blob.length !== dims * 4 || failedMark) return
            const fields: Record<string, string> = {}
            extra.forEach((f, j) => {
              const v = rest[j]
              if (v) fields[f] = v.toString()
            })
            if (filter && !this.matches(filter, fields)) return
            const distance = distanceOf(metric, vector, decodeVector(blob))
            if (!Number.isFinite(distance)) return // a zero vector under COSINE has no direction
            if (best.length === k && distance >= best[k - 1]!.distance) return
            const hit: SearchHit = { key, distance, fields: {} }
            for (const f of returnFields) if (fields[f] !== undefined) hit.fields[f] = fields[f]!
            let at = best.length
            while (at > 0 && best[at - 1]!.distance > distance) at--
            best.splice(at, 0, hit)
            if (best.length > k) best.pop()
          })
        } while (cursor !== '0')
      }
    }
    return best
  }

  /** The scan engine's reading of a structured filter (TAG: case-insensitive, separator-split). */
  private matches(filter: StructuredFilter, fields: Record<string, string>): boolean {
    for (const [name, cond] of Object.entries(filter)) {
      const raw = fields[name]
      if (raw === undefined) return false
      if (typeof cond === 'number' || (typeof cond === 'object' && !Array.isArray(cond))) {
        const n = Number(raw)
        if (!Number.isFinite(n)) return false
        if (typeof cond === 'number') {
          if (n !== cond) return false
        } else {
          const r = cond as { min?: number; max?: number }
          if ((r.min !== undefined && n < r.min) || (r.max !== undefined && n > r.max)) return false
        }
        continue
      }
      const sep = this.def.schema.find((s) => s.name === name)?.separator ?? ','
      const tags = new Set(raw.split(sep).map((t) => t.trim().toLowerCase()))
      const wantAny = (typeof cond === 'string' ? [cond] : (cond as readonly string[])).map((t) =>
        t.toLowerCase(),
      )
      if (!wantAny.some((t) => tags.has(t))) return false
    }
    return true
  }
}
