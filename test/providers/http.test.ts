import { describe, expect, it } from 'vitest'
import { EmbedderError } from '../../src/errors.js'
import {
  errorFromHttp,
  errorFromThrown,
  googleRetryDelay,
  isRetryableStatus,
  parseDuration,
  parseRetryAfter,
  retryAfterFrom,
  truncateText,
  withDeadline,
} from '../../src/providers/http.js'
import { checkVectors, l2Normalize } from '../../src/providers/normalize.js'

describe('retry hints', () => {
  it('parses Retry-After as seconds or an HTTP date', () => {
    const now = Date.parse('2025-01-01T00:00:00Z')
    expect(parseRetryAfter('7', now)).toBe(7000)
    expect(parseRetryAfter(' 1.5 ', now)).toBe(1500)
    expect(parseRetryAfter('Wed, 01 Jan 2025 00:00:30 GMT', now)).toBe(30_000)
    expect(parseRetryAfter('Tue, 31 Dec 2024 00:00:00 GMT', now)).toBe(0)
    expect(parseRetryAfter('soon', now)).toBeUndefined()
    expect(parseRetryAfter('-5', now)).toBeUndefined()
    expect(parseRetryAfter(null, now)).toBeUndefined()
  })

  it('parses protobuf durations', () => {
    expect(parseDuration('7s')).toBe(7000)
    expect(parseDuration('0.250s')).toBe(250)
    expect(parseDuration('41.123456s')).toBe(41_123)
    expect(parseDuration({ seconds: '2', nanos: 500_000_000 })).toBe(2500)
    expect(parseDuration('7')).toBeUndefined()
    expect(parseDuration({})).toBeUndefined()
  })

  it('reads google.rpc.RetryInfo among other details', () => {
    const body = {
      error: {
        code: 429,
        status: 'RESOURCE_EXHAUSTED',
        details: [
          { '@type': 'type.googleapis.com/google.rpc.QuotaFailure', violations: [] },
          { '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: '12s' },
        ],
      },
    }
    expect(googleRetryDelay(body)).toBe(12_000)
    expect(googleRetryDelay({ error: { details: 'nope' } })).toBeUndefined()
    expect(googleRetryDelay('not an object')).toBeUndefined()
  })

  it('prefers the body hint, then retry-after-ms, then Retry-After', () => {
    const body = {
      error: { details: [{ '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: '3s' }] },
    }
    const headers = new Headers({ 'retry-after-ms': '250', 'retry-after': '9' })
    expect(retryAfterFrom(body, headers)).toBe(3000)
    expect(retryAfterFrom({}, headers)).toBe(250)
    expect(retryAfterFrom({}, new Headers({ 'retry-after': '9' }))).toBe(9000)
    expect(retryAfterFrom({}, new Headers())).toBeUndefined()
  })
})

describe('error mapping', () => {
  it('classifies statuses', () => {
    for (const s of [408, 429, 500, 502, 503, 504, 520, 529]) expect(isRetryableStatus(s)).toBe(true)
    for (const s of [400, 401, 403, 404, 409, 413, 422, 501, 505]) expect(isRetryableStatus(s)).toBe(false)
  })

  it('keeps a retry hint only on retryable errors', () => {
    const headers = new Headers({ 'retry-after': '5' })
    expect(errorFromHttp({ provider: 'p', status: 503, headers }).retryAfterMs).toBe(5000)
    expect(errorFromHttp({ provider: 'p', status: 400, headers }).retryAfterMs).toBeUndefined()
  })

  it('speaks every vendor dialect in the message', () => {
    const m = (body: unknown, text?: string) =>
      errorFromHttp({ provider: 'p', status: 400, body, text }).message
    expect(m({ error: { message: 'google says', status: 'INVALID_ARGUMENT' } })).toBe(
      'p: HTTP 400 (INVALID_ARGUMENT): google says',
    )
    expect(m({ error: { message: 'openai says', type: 'invalid_request_error', code: null } })).toBe(
      'p: HTTP 400 (invalid_request_error): openai says',
    )
    expect(m({ error: 'ollama says' })).toBe('p: HTTP 400: ollama says')
    expect(m({ object: 'error', message: 'vllm says' })).toBe('p: HTTP 400: vllm says')
    expect(m({ detail: 'fastapi says' })).toBe('p: HTTP 400: fastapi says')
    expect(m(undefined, '<html>bad gateway</html>')).toBe('p: HTTP 400: <html>bad gateway</html>')
  })

  it('maps network failures along the cause chain to retryable errors without status', () => {
    const refused = new TypeError('fetch failed', {
      cause: Object.assign(new Error('connect'), { code: 'ECONNREFUSED' }),
    })
    const err = errorFromThrown('p', refused)
    expect(err).toMatchObject({
      retryable: true,
      status: undefined,
      message: 'p: network error (ECONNREFUSED)',
    })
    expect(err.cause).toBe(refused)
    expect(
      errorFromThrown('p', new TypeError('Headers.append: "\\n" is an invalid header value.')).retryable,
    ).toBe(false)
  })
})

describe('withDeadline', () => {
  it('rejects at the timeout even if the work ignores its signal', async () => {
    const started = Date.now()
    const err = await withDeadline({ provider: 'p', timeoutMs: 50 }, () => new Promise(() => {})).catch(
      (e) => e,
    )
    expect(err).toBeInstanceOf(EmbedderError)
    expect(err).toMatchObject({ retryable: true, status: undefined })
    expect(Date.now() - started).toBeLessThan(1000)
  })

  it('aborts the work signal with the caller reason', async () => {
    const ac = new AbortController()
    let seen: AbortSignal | undefined
    const p = withDeadline({ provider: 'p', timeoutMs: 10_000, signal: ac.signal }, (signal) => {
      seen = signal
      return new Promise(() => {})
    })
    const reason = new Error('stop')
    ac.abort(reason)
    await expect(p).rejects.toMatchObject({ retryable: true, cause: reason })
    expect(seen?.aborted).toBe(true)
  })

  it('passes results and EmbedderErrors through', async () => {
    await expect(withDeadline({ provider: 'p', timeoutMs: 1000 }, async () => 42)).resolves.toBe(42)
    const own = new EmbedderError('x', { retryable: false, status: 418 })
    await expect(
      withDeadline({ provider: 'p', timeoutMs: 1000 }, async () => Promise.reject(own)),
    ).rejects.toBe(own)
  })
})

describe('vectors', () => {
  it('l2Normalize keeps zero vectors zero', () => {
    expect(Array.from(l2Normalize([3, 4]))).toEqual([Math.fround(0.6), Math.fround(0.8)])
    expect(Array.from(l2Normalize([0, 0]))).toEqual([0, 0])
  })

  it('checkVectors refuses wrong counts, lengths, types and non-finite values', () => {
    expect(() => checkVectors('p', [[1, 2]], 2, 2, false)).toThrow(/1 vector\(s\) for 2 input\(s\)/)
    expect(() => checkVectors('p', [[1]], 1, 2, false)).toThrow(/1 values, expected 2/)
    expect(() => checkVectors('p', ['12'], 1, 2, false)).toThrow(/not an array/)
    expect(() => checkVectors('p', [[1, null]], 1, 2, false)).toThrow(/non-finite value at 1/)
    expect(() => checkVectors('p', [[1, 1e40]], 1, 2, false)).toThrow(/non-finite/)
    expect(checkVectors('p', [[3, 4]], 1, 2, true)[0]).toBeInstanceOf(Float32Array)
  })

  it('truncateText never splits a surrogate pair', () => {
    expect(truncateText('abc', 5)).toBe('abc')
    expect(truncateText('ab🚀cd', 3)).toBe('ab')
    expect(truncateText('ab🚀cd', 4)).toBe('ab🚀')
  })
})
