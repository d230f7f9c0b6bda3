import { afterEach, describe, expect, it } from 'vitest'
import { EmbedderError } from '../../src/errors.js'
import { openAIEmbedder } from '../../src/providers/openai.js'
import { openAIBatch } from '../../src/providers/openai-batch.js'
import { describeBulkConformance, pollToEnd } from './bulk-conformance.js'
import { startFakeServer } from './fake-http.js'
import {
  type FakeOpenAIBatch,
  FLAKY,
  OPENAI_BATCH_KEY,
  POISON,
  startFakeOpenAIBatch,
} from './fake-openai-batch.js'

const DIMS = 8

describeBulkConformance('openai', { inlineLimit: false }, async () => {
  const fake = await startFakeOpenAIBatch()
  return {
    fake,
    key: OPENAI_BATCH_KEY,
    dimensions: DIMS,
    poison: POISON,
    flaky: FLAKY,
    partialResults: true,
    make: (opts = {}) =>
      openAIBatch({
        apiKey: opts.apiKey ?? OPENAI_BATCH_KEY,
        baseUrl: `${fake.url}/v1`,
        dimensions: DIMS,
        sendDimensions: true,
        timeoutMs: 5000,
      }),
    close: () => fake.close(),
  }
})

describe('openai batch wire format', () => {
  let fake: FakeOpenAIBatch | undefined
  afterEach(async () => {
    await fake?.close()
    fake = undefined
  })
  const make = (f: FakeOpenAIBatch, extra: Parameters<typeof openAIBatch>[0] = {}) =>
    openAIBatch({
      apiKey: OPENAI_BATCH_KEY,
      baseUrl: `${f.url}/v1`,
      dimensions: DIMS,
      sendDimensions: true,
      ...extra,
    })

  it('uploads one /v1/embeddings request per line (purpose batch), then creates a 24h batch labelled in metadata', async () => {
    fake = await startFakeOpenAIBatch()
    const job = await make(fake).submit(
      [
        { id: 'm:1', text: 'hello' },
        { id: 'm:2', text: 'wörld' },
      ],
      { label: 'wire-label' },
    )
    expect(job).toMatchObject({
      state: 'pending',
      label: 'wire-label',
      createdAt: (1_767_225_600 + 2) * 1000,
    })
    const [upload, create] = fake.requests
    expect(upload!.url).toBe('/v1/files')
    expect(upload!.headers.authorization).toBe(`Bearer ${OPENAI_BATCH_KEY}`)
    expect(upload!.headers['content-type']).toMatch(/^multipart\/form-data; boundary=/)
    expect(upload!.rawBody).toMatch(/name="purpose"\r\n\r\nbatch\r\n/)
    const jsonl =
      /filename="wire-label\.jsonl"\r\nContent-Type: application\/jsonl\r\n\r\n([\s\S]*?)\r\n--/.exec(
        upload!.rawBody,
      )![1]!
    expect(
      jsonl
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l)),
    ).toEqual(
      ['hello', 'wörld'].map((input, i) => ({
        custom_id: `m:${i + 1}`,
        method: 'POST',
        url: '/v1/embeddings',
        body: { model: 'text-embedding-3-small', input, encoding_format: 'float', dimensions: DIMS },
      })),
    )
    expect(create!.url).toBe('/v1/batches')
    expect(create!.body).toEqual({
      input_file_id: 'file-in1',
      endpoint: '/v1/embeddings',
      completion_window: '24h',
      metadata: { embedq_label: 'wire-label' },
    })
  })

  it('leaves `dimensions` out of each line unless asked to send it', async () => {
    fake = await startFakeOpenAIBatch()
    await openAIBatch({ apiKey: OPENAI_BATCH_KEY, baseUrl: `${fake.url}/v1`, dimensions: 1536 }).submit(
      [{ id: 'a', text: 'plain' }],
      { label: 'no-dims' },
    )
    expect(fake.requests[0]!.rawBody).not.toContain('"dimensions"')
  })

  it('maps validating → pending, in_progress / finalizing / cancelling → running, completed → succeeded', async () => {
    fake = await startFakeOpenAIBatch()
    fake.plan(['validating', 'in_progress', 'finalizing', 'completed'])
    const bulk = make(fake)
    const job = await bulk.submit([{ id: 'a', text: 'x' }], { label: 'states' })
    const { seen } = await pollToEnd(bulk, job.id)
    expect([job.state, ...seen]).toEqual(['pending', 'running', 'running', 'succeeded'])

    fake.plan(['validating', 'in_progress', 'in_progress'])
    const live = await bulk.submit([{ id: 'a', text: 'x' }], { label: 'states-cancel' })
    await bulk.cancel!(live.id)
    expect(fake.requests.at(-1)!.url).toBe(`/v1/batches/${live.id}/cancel`)
    expect((await bulk.get(live.id)).state).toBe('cancelled')
  })

  it('a batch that failed validation reports the API’s errors (e.g. the enqueued token limit)', async () => {
    fake = await startFakeOpenAIBatch()
    fake.plan(['validating', 'failed'])
    const bulk = make(fake)
    const job = await bulk.submit([{ id: 'a', text: 'x' }], { label: 'tokens' })
    const { job: done } = await pollToEnd(bulk, job.id)
    expect(done.state).toBe('failed')
    expect(done.error).toMatch(/^token_limit_exceeded: Enqueued token limit reached/)
  })

  it('reads both the output and the error file, matching lines by custom_id whatever their order', async () => {
    fake = await startFakeOpenAIBatch()
    const bulk = make(fake)
    const requests = Array.from({ length: 20 }, (_, i) => ({
      id: `id-${i}`,
      text: i % 7 === 3 ? `${POISON} ${i}` : `text ${i}`,
    }))
    const job = await bulk.submit(requests, { label: 'files' })
    await pollToEnd(bulk, job.id)
    const results = await bulk.results(job.id)
    const downloads = fake.requests.filter((r) => /^\/v1\/files\/file-(out|err)\d+\/content$/.test(r.url))
    expect(downloads).toHaveLength(2)
    expect(results.map((r) => r.id).sort()).toEqual(requests.map((r) => r.id).sort())
    for (const r of results) {
      const poisoned = requests.find((q) => q.id === r.id)!.text.includes(POISON)
      expect('error' in r).toBe(poisoned)
      if ('error' in r) expect(r.error.message).toMatch(/HTTP 400 \(invalid_request_error\)/)
    }
  })

  it('a server without the Batch API (404 on /files) is a configuration error, not a bad text', async () => {
    const plain = await startFakeServer(() => ({ status: 404, json: { detail: 'Not Found' } }))
    try {
      const err = await openAIBatch({ baseUrl: `${plain.url}/v1`, dimensions: DIMS })
        .submit([{ id: 'a', text: 'x' }], { label: 'nobatch' })
        .catch((e: unknown) => e)
      expect(err).toBeInstanceOf(EmbedderError)
      expect(err).toMatchObject({ status: 404, retryable: false, configuration: true, stopsDrain: true })
      expect((err as Error).message).toMatch(/does not seem to offer the Batch API/)
    } finally {
      await plain.close()
    }
  })

  it('openAIEmbedder() offers its batch client as `bulk`, with the embedder’s model, size and headers', async () => {
    fake = await startFakeOpenAIBatch()
    const embedder = openAIEmbedder({
      apiKey: OPENAI_BATCH_KEY,
      baseUrl: `${fake.url}/v1`,
      model: 'text-embedding-3-large',
      dimensions: DIMS,
      headers: { 'x-team': 'search' },
    })
    const bulk = embedder.bulk!
    expect(bulk.pricing).toEqual({ onlinePerMTokens: 0.13, bulkPerMTokens: 0.065 })
    expect(bulk.maxRequestsPerJob).toBe(50_000)
    const job = await bulk.submit([{ id: 'w', text: 'wired' }], { label: 'wired' })
    expect(fake.requests[0]!.headers['x-team']).toBe('search')
    expect(fake.requests[0]!.rawBody).toContain('"model":"text-embedding-3-large"')
    expect(fake.requests[0]!.rawBody).toContain(`"dimensions":${DIMS}`)
    await pollToEnd(bulk, job.id)
    const [result] = await bulk.results(job.id)
    expect('vector' in result! && result.vector.length).toBe(embedder.dimensions)
  })
})
