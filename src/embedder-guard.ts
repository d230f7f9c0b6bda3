/**
 * The boundary between the queue and an embedder, which is foreign code: whatever it returns
 * or throws, and however long it takes, the queue gets back either one checked vector per text
 * or an `EmbedderError`. Nothing an embedder does can escape as an unhandled rejection, crash
 * the process or keep a claim in flight.
 *
 * - `callEmbedder` bounds the call (`embedTimeoutMs`, enforced here, not hoped from the
 *   embedder's signal), turns a sync throw, a non-promise return, a rejection with any value
 *   and an unreadable error into an `EmbedderError`, and redacts the embedder's secrets.
 * - `checkReply` validates the reply: a reply that is not an array of the right length fails
 *   the whole call (`EmbedderReplyError`, not retryable, so the worker bisects it); a bad entry
 *   (null, undefined, not array-like, wrong length, a non-number or non-finite value, a throwing
 *   getter) fails only its own item.
 */
import type { Embedder } from './embedder.js'
import { EmbedderError, EmbedderReplyError, EmbedderTimeoutError, toError } from './errors.js'
import type { Redactor } from './redact.js'

export type Outcome = { vector: Float32Array } | { error: EmbedderError }

/** A short, safe description of a value (never its contents, which could be huge or hostile). */
export function describeValue(v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return `an array of ${v.length}`
  if (ArrayBuffer.isView(v)) return `a ${v.constructor?.name ?? 'typed array'}`
  if (typeof v === 'object') return 'an object'
  if (typeof v === 'number') return `the number ${v}`
  return typeof v
}

/** Normalizes any thrown value into an `EmbedderError` (a plain throw is retryable), never throwing itself. */
export function toEmbedderError(err: unknown): EmbedderError {
  try {
    if (err instanceof EmbedderError) return err
    const e = toError(err)
    // Read the message once: an error with a throwing `message` getter fails here, not later.
    const message = String(e.message)
    return new EmbedderError(message, { retryable: true, cause: e })
  } catch (inner) {
    return new EmbedderError('the embedder threw a value that could not be read', {
      retryable: true,
      cause: inner,
    })
  }
}

/**
 * Calls `embedder.embed(texts)` within `timeoutMs`. Resolves with the raw reply; rejects only
 * with an `EmbedderError` (redacted): the embedder's own, a wrapped throw, `EmbedderTimeoutError`
 * when the call outlives the bound, or an abort error when `signal` fires first. An abandoned call
 * is aborted through the signal it was given; whatever it does later is ignored.
 */
export function callEmbedder(
  embedder: Embedder,
  texts: string[],
  signal: AbortSignal,
  timeoutMs: number,
  redactor: Redactor,
  purpose: 'document' | 'query' = 'document',
): Promise<unknown> {
  const controller = new AbortController()
  return new Promise<unknown>((resolve, reject) => {
    let done = false
    const finish = (fn: () => void): void => {
      if (done) return
      done = true
      clearTimeout(timer)
      signal.removeEventListener('abort', onAbort)
      fn()
    }
    const fail = (err: unknown): void => finish(() => reject(redactor.error(toEmbedderError(err))))
    const onAbort = (): void => {
      controller.abort(signal.reason)
      fail(signal.reason ?? new Error('aborted'))
    }
    const timer = setTimeout(() => {
      const err = new EmbedderTimeoutError(timeoutMs)
      controller.abort(err)
      fail(err)
    }, timeoutMs)
    if (signal.aborted) {
      onAbort()
      return
    }
    signal.addEventListener('abort', onAbort, { once: true })
    try {
      // Promise.resolve adopts thenables (a throwing `then` getter rejects) and wraps plain
      // values; it can throw itself (a promise whose `constructor` getter throws), hence the try.
      Promise.resolve(
        embedder.embed(
          texts,
          purpose === 'query' ? { signal: controller.signal, purpose } : { signal: controller.signal },
        ),
      ).then(
        (value) => finish(() => resolve(value)),
        (err) => fail(err),
      )
    } catch (err) {
      fail(err)
    }
  })
}

/**
 * Checks a reply to `count` texts. Throws `EmbedderReplyError` when the reply as a whole is
 * unusable; otherwise returns one outcome per text, failing only the entries that are bad.
 */
export function checkReply(reply: unknown, count: number, dims: number): Outcome[] {
  let length: unknown
  try {
    length = Array.isArray(reply) ? reply.length : undefined
  } catch (err) {
    throw new EmbedderReplyError('the embedder returned an array whose length cannot be read', { cause: err })
  }
  if (length !== count) {
    const got = length === undefined ? describeValue(reply) : `${String(length)} vectors`
    throw new EmbedderReplyError(`the embedder returned ${got} for ${count} texts`)
  }
  const out: Outcome[] = new Array(count)
  for (let i = 0; i < count; i++) {
    try {
      out[i] = checkVector((reply as unknown[])[i], dims)
    } catch (err) {
      out[i] = { error: new EmbedderReplyError(`vector ${i} of the reply cannot be read`, { cause: err }) }
    }
  }
  return out
}

function checkVector(v: unknown, dims: number): Outcome {
  const bad = (why: string): Outcome => ({ error: new EmbedderReplyError(`the embedder returned ${why}`) })
  if (v === null || v === undefined) return bad(`${v === null ? 'null' : 'undefined'} instead of a vector`)
  if (typeof v !== 'object' || !(Array.isArray(v) || ArrayBuffer.isView(v)) || v instanceof DataView)
    return bad(`${describeValue(v)} instead of a vector`)
  const src = v as ArrayLike<unknown>
  const n = src.length
  if (n !== dims) return bad(`a vector of ${String(n)} dimensions, expected ${dims}`)
  const vec = new Float32Array(dims)
  for (let j = 0; j < dims; j++) {
    const x = src[j]
    if (typeof x !== 'number') return bad(`${typeof x} at dimension ${j}, expected a number`)
    vec[j] = x
  }
  // NaN or ±Infinity (also a finite double too large for float32) makes the sum non-finite.
  let sum = 0
  for (let j = 0; j < dims; j++) sum += vec[j]! * 0
  if (!Number.isFinite(sum)) return bad('a vector with a non-finite value (NaN or Infinity)')
  return { vector: vec }
}
