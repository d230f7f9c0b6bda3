/**
 * Every value that reaches the dashboard's API from a request is checked here, once, and
 * turned into a typed value or an `ApiError` (400) that names the parameter.
 */
import type { FailedFilter } from '../admin-types.js'
import { isValidKeyPart } from '../keys.js'

/** An error the API answers with `{ error: { code, message } }` and the HTTP status. */
export class ApiError extends Error {
  override name = 'ApiError'
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** For 405: the methods the route takes. */
    readonly allow?: string,
  ) {
    super(message)
  }
}

const bad = (message: string): ApiError => new ApiError(400, 'bad_request', message)

export const LIMITS = {
  /** Longest target key accepted (inspect, keys of a filter). */
  keyLength: 1024,
  /** Longest MATCH pattern or error text of a filter. */
  filterLength: 512,
  /** Most keys in one `keys` filter. */
  keys: 1000,
  /** Largest JSON body of a mutation, bytes. */
  bodyBytes: 64 * 1024,
  /** Dead letters per page. */
  pageCount: 500,
  /** Minutes of history (24 h are kept). */
  minutes: 1440,
} as const

/** No control characters (they have no business in a key or a filter typed by a person). */
// biome-ignore lint/suspicious/noControlCharactersInRegex: that is the point
const CONTROL = /[\u0000-\u001f\u007f]/

export function queueName(raw: string): string {
  let name: string
  try {
    name = decodeURIComponent(raw)
  } catch {
    throw bad('queue name: invalid percent-encoding')
  }
  if (!isValidKeyPart(name) || CONTROL.test(name))
    throw bad('queue name: expected 1–200 characters without braces, spaces or control characters')
  return name
}

function text(what: string, value: unknown, max: number): string {
  if (typeof value !== 'string') throw bad(`${what}: expected a string, received ${typeof value}`)
  if (value.length === 0 || value.length > max) throw bad(`${what}: expected 1–${max} characters`)
  if (CONTROL.test(value)) throw bad(`${what}: control characters are not allowed`)
  return value
}

export const targetKey = (value: unknown, what = 'key'): string => text(what, value, LIMITS.keyLength)

/** An optional integer query parameter in [min, max]. */
export function intParam(
  what: string,
  raw: string | null,
  min: number,
  max: number,
  fallback: number,
): number {
  if (raw === null || raw === '') return fallback
  if (!/^\d{1,9}$/.test(raw)) throw bad(`${what}: expected an integer in [${min}, ${max}]`)
  const n = Number(raw)
  if (n < min || n > max) throw bad(`${what}: expected an integer in [${min}, ${max}], received ${n}`)
  return n
}

export function cursorParam(raw: string | null): string {
  if (raw === null || raw === '') return '0'
  if (!/^\d{1,20}$/.test(raw)) throw bad('cursor: expected the cursor a previous page returned')
  return raw
}

/** The filter of a dead-letter listing, from query parameters. */
export function filterFromQuery(params: URLSearchParams): FailedFilter {
  const filter: FailedFilter = {}
  const match = params.get('match')
  if (match) filter.match = text('match', match, LIMITS.filterLength)
  const error = params.get('error')
  if (error) filter.error = text('error', error, LIMITS.filterLength)
  const status = params.get('status')
  if (status) filter.status = intParam('status', status, 100, 599, 0)
  return filter
}

/**
 * The filter of a retry or delete, from a JSON body. An empty filter would touch every dead
 * letter: it must say so with `"all": true`.
 */
export function filterFromBody(body: unknown): FailedFilter {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw bad('body: expected a JSON object (a FailedFilter)')
  const allowed = new Set(['match', 'status', 'error', 'keys', 'all'])
  for (const k of Object.keys(body)) {
    if (!allowed.has(k)) throw bad(`body: unknown field ${JSON.stringify(k.slice(0, 50))}`)
  }
  const b = body as Record<string, unknown>
  const filter: FailedFilter = {}
  if (b.match !== undefined) filter.match = text('match', b.match, LIMITS.filterLength)
  if (b.error !== undefined) filter.error = text('error', b.error, LIMITS.filterLength)
  if (b.status !== undefined) {
    if (typeof b.status !== 'number' || !Number.isInteger(b.status) || b.status < 100 || b.status > 599)
      throw bad('status: expected an integer in [100, 599]')
    filter.status = b.status
  }
  if (b.keys !== undefined) {
    if (!Array.isArray(b.keys) || b.keys.length === 0 || b.keys.length > LIMITS.keys)
      throw bad(`keys: expected an array of 1–${LIMITS.keys} keys`)
    filter.keys = b.keys.map((k, i) => targetKey(k, `keys[${i}]`))
  }
  if (b.all !== undefined && b.all !== true) throw bad('all: expected true or nothing')
  if (Object.keys(filter).length === 0 && b.all !== true)
    throw bad('an empty filter matches every dead letter: send {"all": true} to mean that')
  if (Object.keys(filter).length > 0 && b.all === true)
    throw bad('all: true cannot be combined with a filter')
  return filter
}
