/**
 * The Redis query engine's commands (Redis 8, Redis Stack, RediSearch 2.6+) as argument
 * lists, and parsers of their RESP2 replies. Pure functions: no connection here, so the
 * shapes are unit-tested against recorded replies (no query engine runs on our CI).
 *
 * References: FT.CREATE (`ON HASH PREFIX n … FILTER … SCHEMA f VECTOR HNSW|FLAT n TYPE FLOAT32
 * DIM d DISTANCE_METRIC m`), FT.SEARCH (`… =>[KNN $K @f $BLOB AS d]`, `PARAMS`, `SORTBY`,
 * `LIMIT 0 k`, `DIALECT 2`), FT.INFO (a flat list of name/value pairs), all with RESP2 replies
 * where numbers, scores included, come back as strings.
 */
import { InvalidInputError } from './errors.js'

export type VectorAlgorithm = 'HNSW' | 'FLAT'
export type VectorDistance = 'COSINE' | 'L2' | 'IP'

/** A non-vector field to index beside the vector (for filters and returned fields). */
export interface SchemaField {
  /** The hash field. */
  name: string
  type: 'TAG' | 'TEXT' | 'NUMERIC'
  /** TAG separator. @default ',' */
  separator?: string
  sortable?: boolean
}

export interface IndexDefinition {
  indexName: string
  prefixes: readonly string[]
  /** The hash field that holds the float32 blob. */
  field: string
  dimensions: number
  algorithm: VectorAlgorithm
  distance: VectorDistance
  /** Hash field set on targets whose item was given up: such documents are left out. */
  failedField: string
  schema: readonly SchemaField[]
  /** HNSW build parameters (defaults of the engine when absent). */
  hnsw?: { m?: number; efConstruction?: number }
}

/** A filter that works with the query engine and with the scan fallback alike. */
export type StructuredFilter = Record<
  string,
  string | number | readonly string[] | { min?: number; max?: number }
>

const FIELD_RE = /^[A-Za-z_][A-Za-z0-9_]*$/

/** Field names go into query strings unquoted: keep them to what needs no escaping. */
export function assertFieldName(name: string, what: string): void {
  if (!FIELD_RE.test(name)) {
    throw new InvalidInputError(
      `${what} ${JSON.stringify(name)} must match ${FIELD_RE} to be used in a query`,
      'key',
    )
  }
}

/**
 * The FILTER expression that keeps given-up targets out of the index: a document is indexed
 * only while its hash has no `failedField` (the worker sets it with the zero vector and
 * clears it when a later vector is written).
 */
export function failedFilterExpression(failedField: string): string {
  return `!exists(@${failedField})`
}

export function ftCreateArgs(def: IndexDefinition): (string | number)[] {
  assertFieldName(def.field, 'vector field')
  assertFieldName(def.failedField, 'failed-mark field')
  const args: (string | number)[] = [
    def.indexName,
    'ON',
    'HASH',
    'PREFIX',
    def.prefixes.length,
    ...def.prefixes,
  ]
  args.push('FILTER', failedFilterExpression(def.failedField))
  const vec: (string | number)[] = ['TYPE', 'FLOAT32', 'DIM', def.dimensions, 'DISTANCE_METRIC', def.distance]
  if (def.algorithm === 'HNSW') {
    if (def.hnsw?.m !== undefined) vec.push('M', def.hnsw.m)
    if (def.hnsw?.efConstruction !== undefined) vec.push('EF_CONSTRUCTION', def.hnsw.efConstruction)
  }
  args.push('SCHEMA', def.field, 'VECTOR', def.algorithm, vec.length, ...vec)
  for (const f of def.schema) {
    assertFieldName(f.name, 'schema field')
    args.push(f.name, f.type)
    if (f.type === 'TAG' && f.separator !== undefined) args.push('SEPARATOR', f.separator)
    if (f.sortable) args.push('SORTABLE')
  }
  return args
}

/** Escapes a TAG value for the query syntax (every punctuation and space gets a backslash). */
export function escapeTag(value: string): string {
  return value.replace(/[,.<>{}[\]"':;!@#$%^&*()\-+=~|/\\\s]/g, (c) => `\\${c}`)
}

/** Turns a structured filter into query syntax (`@f:{a|b} @n:[1 5]`). */
export function filterToQuery(filter: StructuredFilter): string {
  const parts: string[] = []
  for (const [name, cond] of Object.entries(filter)) {
    assertFieldName(name, 'filter field')
    if (typeof cond === 'string') parts.push(`@${name}:{${escapeTag(cond)}}`)
    else if (typeof cond === 'number') parts.push(`@${name}:[${cond} ${cond}]`)
    else if (Array.isArray(cond)) parts.push(`@${name}:{${(cond as string[]).map(escapeTag).join(' | ')}}`)
    else {
      const r = cond as { min?: number; max?: number }
      parts.push(`@${name}:[${r.min ?? '-inf'} ${r.max ?? '+inf'}]`)
    }
  }
  return parts.length ? `(${parts.join(' ')})` : '*'
}

/** The distance alias in FT.SEARCH replies; the double underscore keeps it off real fields. */
export const DISTANCE_ALIAS = '__embedq_distance'

export interface SearchRequest {
  indexName: string
  field: string
  blob: Buffer
  k: number
  /** Query-syntax prefilter (raw), or '*' for none. */
  prefilter: string
  returnFields: readonly string[]
  /** HNSW only: candidates examined per query. */
  efRuntime?: number
}

export function ftSearchArgs(req: SearchRequest): (string | number | Buffer)[] {
  assertFieldName(req.field, 'vector field')
  const ef = req.efRuntime !== undefined ? ` EF_RUNTIME ${Math.floor(req.efRuntime)}` : ''
  const query = `${req.prefilter}=>[KNN $K @${req.field} $BLOB${ef} AS ${DISTANCE_ALIAS}]`
  const fields = [DISTANCE_ALIAS, ...req.returnFields.filter((f) => f !== DISTANCE_ALIAS)]
  return [
    req.indexName,
    query,
    'PARAMS',
    4,
    'K',
    req.k,
    'BLOB',
    req.blob,
    'SORTBY',
    DISTANCE_ALIAS,
    'ASC',
    'RETURN',
    fields.length,
    ...fields,
    'LIMIT',
    0,
    req.k,
    'DIALECT',
    2,
  ]
}

export interface SearchHit {
  /** The target hash key. */
  key: string
  /** Distance to the query under the index metric: smaller is nearer. */
  distance: number
  /** The requested fields (strings, as Redis stores them). */
  fields: Record<string, string>
}

const str = (v: unknown): string => (Buffer.isBuffer(v) ? v.toString() : String(v))

/**
 * Parses an FT.SEARCH RESP2 reply: `[total, key1, [f1, v1, …], key2, […], …]`. Hits without
 * a numeric distance (a document whose vector the engine could not score) are dropped.
 */
export function parseSearchReply(reply: unknown): { total: number; hits: SearchHit[] } {
  if (!Array.isArray(reply) || reply.length === 0) {
    throw new TypeError(`FT.SEARCH: unexpected reply ${JSON.stringify(reply)?.slice(0, 200)}`)
  }
  const total = Number(reply[0])
  const hits: SearchHit[] = []
  for (let i = 1; i < reply.length; i += 2) {
    const key = str(reply[i])
    const raw = reply[i + 1]
    const fields: Record<string, string> = {}
    if (Array.isArray(raw)) for (let j = 0; j + 1 < raw.length; j += 2) fields[str(raw[j])] = str(raw[j + 1])
    const distance = Number(fields[DISTANCE_ALIAS])
    delete fields[DISTANCE_ALIAS]
    if (!Number.isFinite(distance)) continue
    hits.push({ key, distance, fields })
  }
  hits.sort((a, b) => a.distance - b.distance)
  return { total, hits }
}

/** What FT.INFO says about the vector field, as far as this engine version reports it. */
export interface IndexInfo {
  prefixes: string[]
  filter: string | undefined
  /** The attribute named like the queue's field (undefined: the index has none). */
  vector:
    | { field: string; type: string; dimensions?: number; distance?: string; algorithm?: string }
    | undefined
}

/** Turns a flat RESP2 `[name, value, name, value…]` list into a map (lower-case names). */
function pairs(list: unknown): Map<string, unknown> {
  const m = new Map<string, unknown>()
  if (!Array.isArray(list)) return m
  for (let i = 0; i + 1 < list.length; i += 2) m.set(str(list[i]).toLowerCase(), list[i + 1])
  return m
}

/**
 * Parses an FT.INFO RESP2 reply. Attributes are lists of pairs (`identifier`, `attribute`,
 * `type`, then for vectors `algorithm`, `data_type`, `dim`, `distance_metric` on engines
 * that report them; some nest them in a list of their own, older ones leave them out).
 */
export function parseInfoReply(reply: unknown, field: string): IndexInfo {
  const top = pairs(reply)
  const def = pairs(top.get('index_definition'))
  const prefixes = Array.isArray(def.get('prefixes')) ? (def.get('prefixes') as unknown[]).map(str) : []
  const filterRaw = def.get('filter')
  let vector: IndexInfo['vector']
  const attrs = top.get('attributes')
  if (Array.isArray(attrs)) {
    for (const a of attrs) {
      const p = pairs(a)
      if (str(p.get('identifier') ?? '') !== field && str(p.get('attribute') ?? '') !== field) continue
      const nested = [...p.values()].find((v) => Array.isArray(v) && pairs(v).has('dim'))
      const q = nested ? new Map([...p, ...pairs(nested)]) : p
      const dim = q.get('dim')
      vector = {
        field,
        type: str(p.get('type') ?? '').toUpperCase(),
        ...(dim !== undefined ? { dimensions: Number(str(dim)) } : {}),
        ...(q.get('distance_metric') !== undefined
          ? { distance: str(q.get('distance_metric')).toUpperCase() }
          : {}),
        ...(q.get('algorithm') !== undefined ? { algorithm: str(q.get('algorithm')).toUpperCase() } : {}),
      }
      break
    }
  }
  return { prefixes, filter: filterRaw === undefined ? undefined : str(filterRaw), vector }
}

/**
 * Checks an existing index against what this queue writes. Returns the problems found
 * (empty when the index fits). What the engine does not report cannot be checked.
 */
export function indexMismatches(info: IndexInfo, def: IndexDefinition): string[] {
  const out: string[] = []
  const v = info.vector
  if (!v) return [`it has no field "${def.field}"`]
  if (v.type !== 'VECTOR')
    out.push(`its field "${def.field}" is a ${v.type || 'non-VECTOR'} field, not a VECTOR field`)
  if (v.dimensions !== undefined && v.dimensions !== def.dimensions)
    out.push(`its field "${def.field}" has ${v.dimensions} dimensions, the queue writes ${def.dimensions}`)
  if (v.distance !== undefined && v.distance !== def.distance)
    out.push(`its distance metric is ${v.distance}, asked for ${def.distance}`)
  return out
}
