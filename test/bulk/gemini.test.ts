/** The bulk lane over the fake Gemini Batch Mode server: inline requests, and the Files API with a responses file. */
import { afterEach, describe, expect, it } from 'vitest'
import { queueKeys } from '../../src/keys.js'
import { geminiBatch } from '../../src/providers/gemini-batch.js'
import { fakeEmbedder } from '../helpers/fixtures.js'
import { useQueueHarness } from '../helpers/queue-harness.js'
import {
  type FakeGeminiBatch,
  GEMINI_BATCH_KEY,
  POISON,
  startFakeGeminiBatch,
} from '../providers/fake-gemini-batch.js'
import { DIMS, FAST_BULK } from './helpers.js'

const h = useQueueHarness()
let fake: FakeGeminiBatch | undefined
afterEach(async () => {
  await fake?.close()
  fake = undefined
})

function geminiQueue(f: FakeGeminiBatch, opts: { maxAttempts?: number; maxInlineBytes?: number } = {}) {
  const online = Object.assign(fakeEmbedder({ dims: DIMS }), {
    bulk: geminiBatch({
      apiKey: GEMINI_BATCH_KEY,
      baseUrl: f.url,
      dimensions: DIMS,
      timeoutMs: 5_000,
      ...(opts.maxInlineBytes === undefined ? {} : { maxInlineBytes: opts.maxInlineBytes }),
    }),
  })
  const queue = h.queue({
    embedder: online,
    pollIntervalMs: 20,
    maxAttempts: opts.maxAttempts ?? 3,
    bulk: FAST_BULK,
  })
  return { queue, online }
}

describe('bulk lane on Gemini Batch Mode', () => {
  it('embeds through an inline job, dead-letters a poisoned item after maxAttempts, and reports the saving at Gemini prices', async () => {
    fake = await startFakeGeminiBatch()
    const { queue, online } = geminiQueue(fake, { maxAttempts: 1 })
    await queue.start()
    const jobs = await queue.enqueueMany(
      [
        { key: 'g:1', text: 'first' },
        { key: 'g:2', text: `a ${POISON} one` },
        { key: 'g:3', text: 'third' },
      ],
      { lane: 'bulk' },
    )
    await jobs[0]!.result
    await jobs[2]!.result
    await expect(jobs[1]!.result).rejects.toThrow()
    expect(online.calls).toHaveLength(0)
    expect(fake.jobCount()).toBe(1)
    const s = (await queue.stats()).bulk!
    expect(s.submittedRequests).toBe(3)
    expect(s.estimatedSavingUsd).toBeGreaterThan(0)
    expect(await queue.failed()).toHaveLength(1)
    expect(await h.redis.zcard(queueKeys('embedq', queue.name).versions)).toBe(0)
  })

  it('embeds through a job uploaded with the Files API (over maxInlineBytes) whose results come back in a file', async () => {
    fake = await startFakeGeminiBatch({ fileResponses: true })
    const { queue } = geminiQueue(fake, { maxInlineBytes: 10 })
    await queue.start()
    const jobs = await queue.enqueueMany(
      Array.from({ length: 5 }, (_, i) => ({ key: `gf:${i}`, text: `file text ${i}` })),
      { lane: 'bulk' },
    )
    await Promise.all(jobs.map((j) => j.result))
    expect(fake.fileUploads()).toBe(1)
    expect(fake.jobCount()).toBe(1)
  })
})
