/**
 * Workload 6 — a backfill of N texts, online versus the bulk lane: provider HTTP calls, tokens
 * and the price at the provider's list prices (OpenAI text-embedding-3-small: $0.02 online,
 * $0.01 in batch, per 1M input tokens). Both run against local fakes speaking the real wire
 * formats (loopback only): the online lane against the fake OpenAI `/v1/embeddings`, the bulk
 * lane against the fake OpenAI Batch API (files, batches, output files). Tokens are what the
 * providers report back (`usage.prompt_tokens` online; the batch fake bills ⌈characters/4⌉ per
 * line, the same estimate the lane uses for its saving report).
 */
import { EmbeddingBatchQueue } from '../../src/index.js'
import { openAIEmbedder } from '../../src/providers/openai.js'
import { openAIBatch } from '../../src/providers/openai-batch.js'
import { OPENAI_KEY, startFakeOpenAI } from '../../test/providers/fake-openai.js'
import { OPENAI_BATCH_KEY, startFakeOpenAIBatch } from '../../test/providers/fake-openai-batch.js'
import type { BenchContext } from '../lib/context.js'
import { now } from '../lib/stats.js'
import { items } from '../lib/texts.js'

/** Small vectors: the comparison is about calls, tokens and price, not vector bytes. */
const DIMS = 64
const PRICE = { onlinePerMTokens: 0.02, bulkPerMTokens: 0.01 }

export interface LaneRun {
  lane: 'online' | 'bulk'
  items: number
  /** HTTP requests to the provider (embedding calls; for bulk: uploads, creates, polls, downloads). */
  providerCalls: number
  /** Of those, the calls that carry texts (online: /embeddings; bulk: file uploads). */
  textCalls: number
  /** Jobs submitted (bulk only). */
  jobs: number
  tokens: number
  priceUsd: number
  wallMs: number
}

export interface BulkResult {
  online: LaneRun
  bulk: LaneRun
}

export async function bulkWorkload(ctx: BenchContext): Promise<BulkResult> {
  const list = items('bulk', ctx.n)
  const tokensOf = (text: string): number => Math.ceil(text.length / 4)
  const tokens = list.reduce((n, it) => n + tokensOf(it.text), 0)

  // Online: the normal lane, 100 texts per call.
  await ctx.stats.flushdb()
  const onlineFake = await startFakeOpenAI()
  let online: LaneRun
  try {
    const redis = ctx.client()
    const queue = new EmbeddingBatchQueue({
      redis,
      name: 'bench-online',
      embedder: openAIEmbedder({
        apiKey: OPENAI_KEY,
        baseUrl: `${onlineFake.url}/v1`,
        dimensions: DIMS,
        maxBatchSize: 100,
      }),
      maxBatchSize: 100,
      concurrency: 8,
      trackResults: false,
    })
    await queue.start()
    const t0 = now()
    await queue.enqueueMany(list)
    const r = await queue.flushAndWait({ timeoutMs: 300_000 })
    const wallMs = now() - t0
    await queue.stop()
    if (!r.drained) throw new Error(`online lane did not drain: ${r.remaining} left`)
    const calls = onlineFake.requests.length
    online = {
      lane: 'online',
      items: list.length,
      providerCalls: calls,
      textCalls: calls,
      jobs: 0,
      tokens,
      priceUsd: (tokens / 1e6) * PRICE.onlinePerMTokens,
      wallMs,
    }
  } finally {
    await onlineFake.close()
  }

  // Bulk: the same texts through the bulk lane (jobs of up to 10,000 requests).
  await ctx.stats.flushdb()
  const batchFake = await startFakeOpenAIBatch()
  let bulk: LaneRun
  try {
    const redis = ctx.client()
    const onlineFake2 = { dimensions: DIMS, embed: async () => [] as number[][] }
    const queue = new EmbeddingBatchQueue({
      redis,
      name: 'bench-bulk',
      embedder: Object.assign(onlineFake2, {
        bulk: openAIBatch({
          apiKey: OPENAI_BATCH_KEY,
          baseUrl: `${batchFake.url}/v1`,
          dimensions: DIMS,
          sendDimensions: true,
          timeoutMs: 120_000,
          pricing: PRICE,
        }),
      }),
      trackResults: false,
      bulk: {
        maxJobSize: 10_000,
        minJobSize: 10_000,
        gatherMs: 200,
        pollIntervalMs: 50,
        maxPollIntervalMs: 200,
      },
    })
    queue.on('error', (err) => ctx.log(`bulk lane error: ${err.message}`))
    const t0 = now()
    await queue.enqueueMany(list, { lane: 'bulk' })
    await queue.start()
    const r = await queue.flushAndWait({ timeoutMs: 120_000, bulk: 'wait' })
    const wallMs = now() - t0
    const stats = await queue.stats()
    await queue.stop()
    if (!r.drained) throw new Error(`bulk lane did not drain: ${r.remaining} left`)
    const uploads = batchFake.requests.filter(
      (q) => q.method === 'POST' && q.url.startsWith('/v1/files'),
    ).length
    bulk = {
      lane: 'bulk',
      items: list.length,
      providerCalls: batchFake.requests.length,
      textCalls: uploads,
      jobs: batchFake.jobCount(),
      tokens: stats.bulk?.tokensSent ?? 0,
      priceUsd: ((stats.bulk?.tokensSent ?? 0) / 1e6) * PRICE.bulkPerMTokens,
      wallMs,
    }
  } finally {
    await batchFake.close()
  }
  ctx.log(
    `bulk: online ${online.providerCalls} calls $${online.priceUsd.toFixed(4)}; bulk ${bulk.providerCalls} calls in ${bulk.jobs} jobs $${bulk.priceUsd.toFixed(4)}`,
  )
  return { online, bulk }
}
