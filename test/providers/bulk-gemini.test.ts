import { afterEach, describe, expect, it } from 'vitest'
import { geminiEmbedder } from '../../src/providers/gemini.js'
import { geminiBatch } from '../../src/providers/gemini-batch.js'
import { ollamaEmbedder } from '../../src/providers/ollama.js'
import { describeBulkConformance, pollToEnd } from './bulk-conformance.js'
import {
  type FakeGeminiBatch,
  FLAKY,
  GEMINI_BATCH_KEY,
  POISON,
  startFakeGeminiBatch,
} from './fake-gemini-batch.js'
import { startFakeServer } from './fake-http.js'

const DIMS = 8

describeBulkConformance('gemini', { inlineLimit: true }, async () => {
  const fake = await startFakeGeminiBatch()
  return {
    fake,
    key: GEMINI_BATCH_KEY,
    dimensions: DIMS,
    poison: POISON,
    flaky: FLAKY,
    partialResults: false,
    make: (opts = {}) =>
      geminiBatch({
        apiKey: opts.apiKey ?? GEMINI_BATCH_KEY,
        baseUrl: fake.url,
        dimensions: DIMS,
        timeoutMs: 5000,
        ...(opts.maxInlineBytes === undefined ? {} : { maxInlineBytes: opts.maxInlineBytes }),
      }),
    close: () => fake.close(),
  }
})

describe('gemini batch wire format', () => {
  let fake: FakeGeminiBatch | undefined
  afterEach(async () => {
    await fake?.close()
    fake = undefined
  })

  it('sends inline requests to models/{model}:asyncBatchEmbedContent with metadata keys, the task and the size, key in the header', async () => {
    fake = await startFakeGeminiBatch()
    const bulk = geminiBatch({
      apiKey: GEMINI_BATCH_KEY,
      baseUrl: fake.url,
      dimensions: DIMS,
      taskType: 'CLUSTERING',
    })
    const job = await bulk.submit(
      [
        { id: 'k1', text: 'first' },
        { id: 'k2', text: 'second' },
      ],
      { label: 'wire-inline' },
    )
    expect(job).toMatchObject({ state: 'pending', label: 'wire-inline' })
    expect(job.id).toMatch(/^batches\//)
    expect(job.createdAt).toBe(Date.parse('2026-01-01T00:00:01.000Z'))
    const [create] = fake.requests
    expect(create!.method).toBe('POST')
    expect(create!.url).toBe('/v1beta/models/gemini-embedding-001:asyncBatchEmbedContent')
    expect(create!.headers['x-goog-api-key']).toBe(GEMINI_BATCH_KEY)
    expect(create!.body).toEqual({
      batch: {
        displayName: 'wire-inline',
        model: 'models/gemini-embedding-001',
        inputConfig: {
          requests: {
            requests: ['first', 'second'].map((text, i) => ({
              request: {
                model: 'models/gemini-embedding-001',
                content: { parts: [{ text }] },
                taskType: 'CLUSTERING',
                outputDimensionality: DIMS,
              },
              metadata: { key: `k${i + 1}` },
            })),
          },
        },
      },
    })
    expect(fake.fileUploads()).toBe(0)
  })

  it('beyond maxInlineBytes, uploads a JSONL of { key, request } lines with the resumable protocol and passes inputConfig.fileName', async () => {
    fake = await startFakeGeminiBatch()
    const bulk = geminiBatch({
      apiKey: GEMINI_BATCH_KEY,
      baseUrl: fake.url,
      dimensions: DIMS,
      maxInlineBytes: 100,
    })
    await bulk.submit(
      [
        { id: 'a', text: 'alpha ✓' },
        { id: 'b', text: 'beta' },
      ],
      { label: 'wire-file' },
    )
    const [start, finalize, create] = fake.requests
    expect(start!.url).toBe('/upload/v1beta/files')
    expect(start!.headers).toMatchObject({
      'x-goog-api-key': GEMINI_BATCH_KEY,
      'x-goog-upload-protocol': 'resumable',
      'x-goog-upload-command': 'start',
      'x-goog-upload-header-content-type': 'application/jsonl',
    })
    // The upload URL came back on Google's host; the client moved it onto its base URL.
    expect(finalize!.url).toMatch(/^\/upload\/v1beta\/files\?upload_id=/)
    expect(finalize!.headers).toMatchObject({
      'x-goog-upload-command': 'upload, finalize',
      'x-goog-upload-offset': '0',
    })
    expect(Number(start!.headers['x-goog-upload-header-content-length'])).toBe(
      Buffer.byteLength(finalize!.rawBody),
    )
    const lines = finalize!.rawBody.split('\n').map((l) => JSON.parse(l))
    expect(lines).toEqual([
      {
        key: 'a',
        request: {
          content: { parts: [{ text: 'alpha ✓' }] },
          taskType: 'RETRIEVAL_DOCUMENT',
          outputDimensionality: DIMS,
        },
      },
      {
        key: 'b',
        request: {
          content: { parts: [{ text: 'beta' }] },
          taskType: 'RETRIEVAL_DOCUMENT',
          outputDimensionality: DIMS,
        },
      },
    ])
    expect(create!.body).toEqual({
      batch: {
        displayName: 'wire-file',
        model: 'models/gemini-embedding-001',
        inputConfig: { fileName: 'files/in2' },
      },
    })
  })

  it('reads the output from the operation’s response.output as well as from metadata.output', async () => {
    fake = await startFakeGeminiBatch({ outputIn: 'response' })
    const bulk = geminiBatch({ apiKey: GEMINI_BATCH_KEY, baseUrl: fake.url, dimensions: DIMS })
    const job = await bulk.submit([{ id: 'r', text: 'in the response' }], { label: 'wire-response' })
    await pollToEnd(bulk, job.id)
    const [result] = await bulk.results(job.id)
    expect(result).toMatchObject({ id: 'r' })
    expect('vector' in result! && result.vector.length).toBe(DIMS)
  })

  it('downloads a responses file from /download/v1beta/files/…:download?alt=media even for an inline job', async () => {
    fake = await startFakeGeminiBatch({ fileResponses: true })
    const bulk = geminiBatch({ apiKey: GEMINI_BATCH_KEY, baseUrl: fake.url, dimensions: DIMS })
    const job = await bulk.submit(
      [
        { id: 'x', text: 'one' },
        { id: 'y', text: `two ${POISON}` },
      ],
      { label: 'wire-download' },
    )
    await pollToEnd(bulk, job.id)
    const results = await bulk.results(job.id)
    const download = fake.requests.at(-1)!
    expect(download.url).toMatch(/^\/download\/v1beta\/files\/batch-fake\d+-responses:download\?alt=media$/)
    expect(download.headers['x-goog-api-key']).toBe(GEMINI_BATCH_KEY)
    expect(results.map((r) => [r.id, 'vector' in r]).sort()).toEqual([
      ['x', true],
      ['y', false],
    ])
  })

  it('looks through every page of batches for a label and sorts by creation time', async () => {
    fake = await startFakeGeminiBatch({ pageSize: 2 })
    const bulk = geminiBatch({ apiKey: GEMINI_BATCH_KEY, baseUrl: fake.url, dimensions: DIMS })
    const ids: string[] = []
    for (let i = 0; i < 5; i++)
      ids.push((await bulk.submit([{ id: 'a', text: `t${i}` }], { label: 'paged' })).id)
    const found = await bulk.findByLabel!('paged')
    expect(found.map((j) => j.id)).toEqual([...ids].reverse())
    expect(fake.requests.filter((r) => r.url.startsWith('/v1beta/batches?'))).toHaveLength(3)
  })

  it('cuts a text longer than maxInputChars before sending it', async () => {
    fake = await startFakeGeminiBatch()
    const bulk = geminiBatch({
      apiKey: GEMINI_BATCH_KEY,
      baseUrl: fake.url,
      dimensions: DIMS,
      maxInputChars: 10,
    })
    await bulk.submit([{ id: 'long', text: 'x'.repeat(50) }], { label: 'wire-truncate' })
    const body = fake.requests[0]!.body as {
      batch: {
        inputConfig: { requests: { requests: { request: { content: { parts: { text: string }[] } } }[] } }
      }
    }
    expect(body.batch.inputConfig.requests.requests[0]!.request.content.parts[0]!.text).toBe('x'.repeat(10))
  })

  it('geminiEmbedder() offers its batch client as `bulk`, with the embedder’s model, size and task', async () => {
    fake = await startFakeGeminiBatch()
    const embedder = geminiEmbedder({
      apiKey: GEMINI_BATCH_KEY,
      baseUrl: fake.url,
      outputDimensionality: DIMS,
      taskType: 'CLASSIFICATION',
    })
    const bulk = embedder.bulk!
    expect(bulk.pricing).toEqual({ onlinePerMTokens: 0.15, bulkPerMTokens: 0.075 })
    const job = await bulk.submit([{ id: 'w', text: 'wired' }], { label: 'wired' })
    const request = (
      fake.requests[0]!.body as { batch: { inputConfig: { requests: { requests: { request: unknown }[] } } } }
    ).batch.inputConfig.requests.requests[0]!.request
    expect(request).toMatchObject({ taskType: 'CLASSIFICATION', outputDimensionality: DIMS })
    await pollToEnd(bulk, job.id)
    const [result] = await bulk.results(job.id)
    expect('vector' in result! && result.vector.length).toBe(embedder.dimensions)
  })

  it('ollamaEmbedder() has no batch API and offers no `bulk`', () => {
    expect(ollamaEmbedder({ model: 'nomic-embed-text', dimensions: 768 }).bulk).toBeUndefined()
  })
})

describe('gemini batch options', () => {
  it('accepts every model name geminiEmbedder accepts and URL-encodes it, so attaching `bulk` never breaks the online embedder', async () => {
    const server = await startFakeServer(() => ({
      status: 404,
      json: { error: { code: 404, message: 'no', status: 'NOT_FOUND' } },
    }))
    try {
      for (const [model, path] of [
        ['tunedModels/my-model', '/v1beta/tunedModels/my-model:asyncBatchEmbedContent'],
        ['models/odd#name', '/v1beta/models/odd%23name:asyncBatchEmbedContent'],
      ] as const) {
        const bulk = geminiEmbedder({ apiKey: GEMINI_BATCH_KEY, baseUrl: server.url, model }).bulk!
        const err = await bulk.submit([{ id: 'a', text: 'x' }], { label: 'names' }).catch((e: unknown) => e)
        expect(err).toMatchObject({ status: 404, retryable: false })
        expect(server.requests.at(-1)!.url).toBe(path)
      }
    } finally {
      await server.close()
    }
  })

  it('validates its options with errors that name them', () => {
    expect(() => geminiBatch({ apiKey: '' })).toThrow(/`apiKey`/)
    expect(() => geminiBatch({ apiKey: 'k', model: '../files' })).toThrow(/`model`/)
    expect(() => geminiBatch({ apiKey: 'k', maxRequestsPerJob: 50_001 })).toThrow(RangeError)
    expect(() => geminiBatch({ apiKey: 'k', pricing: { onlinePerMTokens: -1, bulkPerMTokens: 0 } })).toThrow(
      /`pricing`/,
    )
    expect(geminiBatch({ apiKey: 'k', model: 'other-model' }).pricing).toBeUndefined()
    expect(
      geminiBatch({ apiKey: 'k', model: 'other', pricing: { onlinePerMTokens: 1, bulkPerMTokens: 0.5 } })
        .pricing,
    ).toEqual({
      onlinePerMTokens: 1,
      bulkPerMTokens: 0.5,
    })
  })
})
