/**
 * The contract every `BulkEmbedder` keeps (src/bulk.ts), as one suite each provider's bulk test
 * runs against its fake batch server: submit → poll → results at three sizes, per-request errors,
 * failed / expired / cancelled jobs, 429 on submit, finding a job by label after a crash, and the
 * API key never showing in an error message or a URL.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import {
  type BulkEmbedder,
  type BulkItemResult,
  type BulkJob,
  type BulkJobState,
  isTerminalBulkState,
} from '../../src/bulk.js'
import { EmbedderError } from '../../src/errors.js'
import { l2Normalize } from '../../src/providers/normalize.js'
import type { FakeServer } from './fake-http.js'

export interface BulkFake extends FakeServer {
  plan(states: BulkJobState[]): void
  jobCount(): number
  fileUploads(): number
  vector(text: string, dimensions: number): number[]
}

export interface BulkMakeOptions {
  apiKey?: string
  /** Gemini only: force the Files API path. */
  maxInlineBytes?: number
}

export interface BulkTarget {
  fake: BulkFake
  key: string
  dimensions: number
  make(opts?: BulkMakeOptions): BulkEmbedder
  /** Texts containing this fail on their own, for good. */
  poison: string
  /** Texts containing this fail on their own, transiently. */
  flaky: string
  /** Whether an expired or cancelled job keeps the results of the requests it ran (OpenAI). */
  partialResults: boolean
  close(): Promise<void>
}

const texts = (n: number, tag: string): { id: string; text: string }[] =>
  Array.from({ length: n }, (_, i) => ({ id: `${tag}-${i}`, text: `${tag} message number ${i} — ünïcødé ✓` }))

/** Polls `get` until the job is terminal (the fakes advance one state per GET), collecting states. */
export async function pollToEnd(
  bulk: BulkEmbedder,
  id: string,
): Promise<{ job: BulkJob; seen: BulkJobState[] }> {
  const seen: BulkJobState[] = []
  for (let i = 0; i < 20; i++) {
    const job = await bulk.get(id)
    seen.push(job.state)
    if (isTerminalBulkState(job.state)) return { job, seen }
  }
  throw new Error(`job ${id} did not finish within 20 polls (${seen.join(' → ')})`)
}

async function rejection(promise: Promise<unknown>): Promise<EmbedderError> {
  try {
    await promise
  } catch (err) {
    expect(err).toBeInstanceOf(EmbedderError)
    return err as EmbedderError
  }
  throw new Error('expected a rejection')
}

function byId(results: BulkItemResult[]): Map<string, BulkItemResult> {
  return new Map(results.map((r) => [r.id, r]))
}

export interface BulkConformanceOptions {
  /** The provider sends small jobs inline and switches to a file beyond a size (Gemini). */
  inlineLimit: boolean
}

export function describeBulkConformance(
  name: string,
  options: BulkConformanceOptions,
  setup: () => Promise<BulkTarget>,
): void {
  describe(`BulkEmbedder conformance: ${name}`, () => {
    let t: BulkTarget
    beforeAll(async () => {
      t = await setup()
    })
    afterAll(async () => {
      await t?.close()
    })
    beforeEach(() => {
      t.fake.reset()
    })

    const expectVectors = (results: BulkItemResult[], requests: { id: string; text: string }[]): void => {
      expect(results).toHaveLength(requests.length)
      const found = byId(results)
      for (const r of requests) {
        const result = found.get(r.id)
        expect(result, r.id).toBeDefined()
        if (!result || !('vector' in result)) throw new Error(`no vector for ${r.id}`)
        expect(result.vector).toBeInstanceOf(Float32Array)
        const expected = l2Normalize(t.fake.vector(r.text, t.dimensions))
        expect(Array.from(result.vector)).toEqual(Array.from(expected))
      }
    }

    for (const size of [1, 250, 5000]) {
      it(`submits ${size} request(s), polls pending → running → succeeded and returns every vector under its id`, async () => {
        const bulk = t.make()
        const requests = texts(size, `s${size}`)
        const submitted = await bulk.submit(requests, { label: `conf-${size}` })
        expect(submitted.state).toBe('pending')
        const { job, seen } = await pollToEnd(bulk, submitted.id)
        expect(seen).toContain('running')
        expect(job.state).toBe('succeeded')
        expect(job.id).toBe(submitted.id)
        expect(job.requestCounts?.total).toBe(size)
        expectVectors(await bulk.results(job.id), requests)
      }, 30_000)
    }

    it('reports a request the provider could not embed as that request’s error, and the others as vectors', async () => {
      const bulk = t.make()
      const requests = texts(6, 'mix')
      requests[2]!.text = `bad ${t.poison} text`
      requests[4]!.text = `also ${t.poison}`
      const submitted = await bulk.submit(requests, { label: 'conf-mixed' })
      const { job } = await pollToEnd(bulk, submitted.id)
      expect(job.state).toBe('succeeded')
      const results = byId(await bulk.results(job.id))
      expect(results.size).toBe(6)
      for (const i of [2, 4]) {
        const r = results.get(`mix-${i}`)!
        expect('error' in r && r.error).toBeInstanceOf(EmbedderError)
        if ('error' in r) {
          expect(r.error.retryable).toBe(false)
          expect(r.error.status).toBe(400)
        }
      }
      for (const i of [0, 1, 3, 5]) expect('vector' in results.get(`mix-${i}`)!).toBe(true)
    })

    it('a transient per-request failure is a retryable error of that request alone', async () => {
      const bulk = t.make()
      const requests = texts(3, 'flaky')
      requests[1]!.text = `sometimes ${t.flaky}`
      const submitted = await bulk.submit(requests, { label: 'conf-flaky' })
      const { job } = await pollToEnd(bulk, submitted.id)
      const results = byId(await bulk.results(job.id))
      const flaky = results.get('flaky-1')!
      expect('error' in flaky).toBe(true)
      if ('error' in flaky) {
        expect(flaky.error.retryable).toBe(true)
        expect(flaky.error.status).toBeGreaterThanOrEqual(500)
      }
      expect('vector' in results.get('flaky-0')! && 'vector' in results.get('flaky-2')!).toBe(true)
    })

    it('refuses to read results while the job is still live, with a retryable error', async () => {
      const bulk = t.make()
      t.fake.plan(['pending', 'running', 'running', 'succeeded'])
      const job = await bulk.submit(texts(3, 'live'), { label: 'conf-live' })
      const err = await rejection(bulk.results(job.id))
      expect(err.retryable).toBe(true)
      expect(err.message).toMatch(/not ready/)
    })

    it('a failed job is terminal, says why, and returns no results (every request is requeued uncharged)', async () => {
      const bulk = t.make()
      t.fake.plan(['pending', 'failed'])
      const submitted = await bulk.submit(texts(4, 'fail'), { label: 'conf-failed' })
      const { job } = await pollToEnd(bulk, submitted.id)
      expect(job.state).toBe('failed')
      expect(job.error).toMatch(/\S/)
      expect(await bulk.results(job.id)).toEqual([])
    })

    it('an expired job is terminal; requests it never ran are absent from the results', async () => {
      const bulk = t.make()
      t.fake.plan(['pending', 'running', 'expired'])
      const requests = texts(10, 'exp')
      const submitted = await bulk.submit(requests, { label: 'conf-expired' })
      const { job } = await pollToEnd(bulk, submitted.id)
      expect(job.state).toBe('expired')
      const results = await bulk.results(job.id)
      if (t.partialResults) {
        expect(results.length).toBeGreaterThan(0)
        expect(results.length).toBeLessThan(10)
        expectVectors(
          results,
          requests.filter((r) => results.some((x) => x.id === r.id)),
        )
      } else {
        expect(results).toEqual([])
      }
      // Never an error entry for a request that did not run: those are requeued, not charged.
      expect(results.every((r) => 'vector' in r)).toBe(true)
    })

    it('cancel() stops a live job: it ends cancelled and unrun requests are absent from the results', async () => {
      const bulk = t.make()
      t.fake.plan(['pending', 'running', 'running', 'running', 'succeeded'])
      const submitted = await bulk.submit(texts(8, 'can'), { label: 'conf-cancel' })
      await bulk.get(submitted.id)
      await bulk.cancel!(submitted.id)
      const { job } = await pollToEnd(bulk, submitted.id)
      expect(job.state).toBe('cancelled')
      const results = await bulk.results(job.id)
      expect(results.length).toBeLessThan(8)
      expect(results.every((r) => 'vector' in r)).toBe(true)
    })

    it('a 429 on submit is a retryable error with the provider’s wait, and creates no job', async () => {
      const bulk = t.make()
      t.fake.fail({ kind: 'rate-limit', retryAfterMs: 3000 })
      const before = t.fake.jobCount()
      const err = await rejection(bulk.submit(texts(5, 'rl'), { label: 'conf-429' }))
      expect(err.status).toBe(429)
      expect(err.retryable).toBe(true)
      expect(err.retryAfterMs).toBe(3000)
      expect(t.fake.jobCount()).toBe(before)
    })

    it('findByLabel finds a job whose id was lost in a crash, newest first, and nothing for other labels', async () => {
      const crashed = t.make()
      const first = await crashed.submit(texts(2, 'lost-a'), { label: 'conf-crash' })
      await crashed.submit(texts(2, 'other'), { label: 'conf-someone-else' })
      const second = await crashed.submit(texts(2, 'lost-b'), { label: 'conf-crash' })
      // A new process: only the label survived (it was recorded before submit).
      const restarted = t.make()
      const found = await restarted.findByLabel!('conf-crash')
      expect(found.map((j) => j.id)).toEqual([second.id, first.id])
      expect(found[0]!.label).toBe('conf-crash')
      expect(await restarted.findByLabel!('conf-never-submitted')).toEqual([])
      const { job } = await pollToEnd(restarted, found[0]!.id)
      expect(job.state).toBe('succeeded')
      expect((await restarted.results(job.id)).map((r) => r.id).sort()).toEqual(['lost-b-0', 'lost-b-1'])
    })

    it('rejects invalid submissions without calling the provider', async () => {
      const bulk = t.make()
      const cases: [unknown, unknown][] = [
        [[], 'ok'],
        [
          [
            { id: 'a', text: 'x' },
            { id: 'a', text: 'y' },
          ],
          'ok',
        ],
        [[{ id: '', text: 'x' }], 'ok'],
        [[{ id: 'a', text: '   ' }], 'ok'],
        [[{ id: 'a', text: 42 }], 'ok'],
        [[{ id: 'a', text: 'x' }], ''],
        [[{ id: 'a', text: 'x' }], 'line\nbreak'],
        [Array.from({ length: bulk.maxRequestsPerJob + 1 }, (_, i) => ({ id: `i${i}`, text: 't' })), 'ok'],
      ]
      for (const [requests, label] of cases) {
        const err = await rejection(bulk.submit(requests as never, { label: label as string }))
        expect(err.retryable).toBe(false)
      }
      expect(t.fake.requests).toHaveLength(0)
    })

    it('rejects a job id that is not one the provider hands out, without a request', async () => {
      const bulk = t.make()
      for (const id of ['../files', 'batches/x/../../y', '', 'a b']) {
        const err = await rejection(bulk.get(id))
        expect(err.retryable).toBe(false)
      }
      expect(t.fake.requests).toHaveLength(0)
    })

    it('an aborted signal stops the call with a retryable error', async () => {
      const bulk = t.make()
      const controller = new AbortController()
      t.fake.fail({ kind: 'hang' })
      const pending = bulk.submit(texts(2, 'abort'), { label: 'conf-abort', signal: controller.signal })
      setTimeout(() => controller.abort(new Error('stopping')), 50)
      const err = await rejection(pending)
      expect(err.retryable).toBe(true)
    })

    it('never puts the API key in a URL, nor in an error message even when the server echoes it', async () => {
      const good = t.make()
      const job = await good.submit(texts(3, 'key'), { label: 'conf-key' })
      await pollToEnd(good, job.id)
      await good.results(job.id)
      await good.findByLabel!('conf-key')
      for (const r of t.fake.requests) expect(r.url).not.toContain(t.key)

      const wrongKey = 'sk-or-AIza-wrong-key-SECRET-987654'
      const bad = t.make({ apiKey: wrongKey })
      const errors = [
        await rejection(bad.submit(texts(1, 'k'), { label: 'conf-bad-key' })),
        await rejection(bad.get(job.id)),
        await rejection(bad.results(job.id)),
        await rejection(bad.findByLabel!('conf-key')),
      ]
      expect(t.fake.requests.some((r) => JSON.stringify(r.headers).includes(wrongKey))).toBe(true)
      for (const err of errors) {
        expect(err.status).toBe(401)
        expect(err.isAuthError).toBe(true)
        expect(err.message).not.toContain(wrongKey)
        expect(String(err.stack)).not.toContain(wrongKey)
        expect(String((err.cause as Error | undefined)?.message ?? '')).not.toContain(wrongKey)
      }
      for (const r of t.fake.requests) expect(r.url).not.toContain(wrongKey)
    })

    it('states its limits and, for known models, the online and bulk price', () => {
      const bulk = t.make()
      expect(bulk.maxRequestsPerJob).toBeGreaterThan(0)
      expect(bulk.maxBytesPerJob).toBeGreaterThan(1_000_000)
      expect(bulk.pricing?.bulkPerMTokens).toBeCloseTo((bulk.pricing?.onlinePerMTokens ?? 0) / 2, 10)
    })

    if (options.inlineLimit) {
      it('beyond the inline limit, uploads a JSONL file and reads the results from a responses file', async () => {
        const bulk = t.make({ maxInlineBytes: 2_000 })
        const requests = texts(300, 'file')
        const uploads = t.fake.fileUploads()
        const submitted = await bulk.submit(requests, { label: 'conf-file' })
        expect(t.fake.fileUploads()).toBe(uploads + 1)
        const { job } = await pollToEnd(bulk, submitted.id)
        expectVectors(await bulk.results(job.id), requests)
      })
    }
  })
}
