/**
 * Value checks shared by the providers: L2 normalization, the checks that turn a malformed
 * provider response into an `EmbedderError` instead of a silently misaligned result, and the
 * option validators every factory uses (they throw `TypeError`/`RangeError` naming the option,
 * what was expected and what was received).
 */
import { EmbedderError } from '../errors.js'
import { redactUrl } from '../redact.js'

/**
 * Returns `vector` scaled to unit length as a new `Float32Array`. A zero vector stays zero
 * (there is no direction to keep), so blank texts keep their zero vector.
 */
export function l2Normalize(vector: ArrayLike<number>): Float32Array {
  const out = Float32Array.from(vector)
  let sum = 0
  for (let i = 0; i < out.length; i++) sum += out[i]! * out[i]!
  if (sum === 0) return out
  const scale = 1 / Math.sqrt(sum)
  for (let i = 0; i < out.length; i++) out[i] = out[i]! * scale
  return out
}

/** Euclidean length of a vector. */
export function l2Norm(vector: ArrayLike<number>): number {
  let sum = 0
  for (let i = 0; i < vector.length; i++) sum += vector[i]! * vector[i]!
  return Math.sqrt(sum)
}

/**
 * Checks one provider call's vectors and converts them to `Float32Array`s: exactly `expected`
 * vectors, each an array of `dimensions` finite numbers. Any violation throws a non-retryable
 * `EmbedderError` naming the first offending vector; the queue then isolates the input that
 * causes it rather than writing a vector under the wrong key.
 */
export function checkVectors(
  provider: string,
  vectors: readonly unknown[],
  expected: number,
  dimensions: number,
  normalize: boolean,
): Float32Array[] {
  if (vectors.length !== expected) {
    throw new EmbedderError(
      `${provider}: the response holds ${vectors.length} vector(s) for ${expected} input(s); refusing to guess which belongs to which`,
      { retryable: false },
    )
  }
  const out: Float32Array[] = []
  for (let i = 0; i < vectors.length; i++) {
    const vector = vectors[i]
    if (!Array.isArray(vector)) {
      throw new EmbedderError(
        `${provider}: vector ${i} of the response is not an array (${describe(vector)})`,
        {
          retryable: false,
        },
      )
    }
    if (vector.length !== dimensions) {
      throw new EmbedderError(
        `${provider}: vector ${i} has ${vector.length} values, expected ${dimensions}; ` +
          'check that the configured dimensions match what the model returns',
        { retryable: false },
      )
    }
    for (let j = 0; j < vector.length; j++) {
      const value: unknown = vector[j]
      // Math.fround: a finite double such as 1e40 still overflows the float32 we store.
      if (typeof value !== 'number' || !Number.isFinite(Math.fround(value))) {
        throw new EmbedderError(
          `${provider}: vector ${i} holds a non-finite value at ${j} (${describe(value)})`,
          {
            retryable: false,
          },
        )
      }
    }
    out.push(normalize ? l2Normalize(vector as number[]) : Float32Array.from(vector as number[]))
  }
  return out
}

/** A short description of an unexpected value for error messages. */
export function describe(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return `array(${value.length})`
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)
  if (typeof value === 'object') return 'object'
  return `${typeof value} ${String(value)}`
}

/** Throws unless `value` is an integer in `[min, max]`. */
export function checkInteger(
  factory: string,
  option: string,
  value: unknown,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw new TypeError(`${factory}: option \`${option}\` must be an integer, received ${describe(value)}`)
  }
  if (value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `between ${min} and ${max}`
    throw new RangeError(`${factory}: option \`${option}\` must be ${range}, received ${value}`)
  }
  return value
}

/** Throws unless `value` is a non-empty string. */
export function checkString(factory: string, option: string, value: unknown): string {
  if (typeof value !== 'string' || value.trim() === '') {
    throw new TypeError(
      `${factory}: option \`${option}\` must be a non-empty string, received ${describe(value)}`,
    )
  }
  return value
}

/** Throws unless `value` is a boolean. */
export function checkBoolean(factory: string, option: string, value: unknown): boolean {
  if (typeof value !== 'boolean') {
    throw new TypeError(`${factory}: option \`${option}\` must be a boolean, received ${describe(value)}`)
  }
  return value
}

/** Throws unless `value` is an absolute http(s) URL; returns it without trailing slashes. */
export function checkBaseUrl(factory: string, option: string, value: unknown): string {
  const text = checkString(factory, option, value)
  let url: URL
  try {
    url = new URL(text)
  } catch {
    throw new TypeError(
      `${factory}: option \`${option}\` must be an absolute URL, received ${describe(redactUrl(text))}`,
    )
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new TypeError(
      `${factory}: option \`${option}\` must be an http(s) URL, received ${describe(redactUrl(text))}`,
    )
  }
  return text.replace(/\/+$/, '')
}

/** Throws unless `value` is a plain object of string header values. */
export function checkHeaders(factory: string, option: string, value: unknown): Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new TypeError(
      `${factory}: option \`${option}\` must be an object of strings, received ${describe(value)}`,
    )
  }
  for (const [name, v] of Object.entries(value)) {
    if (typeof v !== 'string') {
      throw new TypeError(
        `${factory}: option \`${option}\` header ${JSON.stringify(name)} must be a string, received ${describe(v)}`,
      )
    }
  }
  return { ...(value as Record<string, string>) }
}

/** Throws unless `value` is an `AbortSignal` or undefined (the per-call `signal` option). */
export function checkSignal(provider: string, value: unknown): AbortSignal | undefined {
  if (value === undefined || value instanceof AbortSignal) return value
  throw new TypeError(
    `${provider}: embed option \`signal\` must be an AbortSignal, received ${describe(value)}`,
  )
}
