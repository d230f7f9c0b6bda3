/** Shared set-up of the bulk lane tests: a fake online embedder plus the fake OpenAI Batch API. */
import type { Redis } from 'ioredis'
import type { EmbeddingBatchQueue } from '../../src/index.js'
import type { QueueOptions } from '../../src/options.js'
import { openAIBatch } from '../../src/providers/openai-batch.js'
import { type FakeEmbedder, fakeEmbedder, fakeVector, readVector } from '../helpers/fixtures.js'
import type { Harness } from '../helpers/queue-harness.js'
import { type FakeOpenAIBatch, OPENAI_BATCH_KEY } from '../providers/fake-openai-batch.js'

export const DIMS = 8

/** Fast bulk settings for tests: a job per gathered item set, polls every 30 ms. */
export const FAST_BULK = {
  minJobSize: 1_000,
  gatherMs: 40,
  pollIntervalMs: 30,
  maxPollIntervalMs: 60,
  leaseMs: 1_500,
}

export function bulkEmbedder(fake: FakeOpenAIBatch): FakeEmbedder {
  const online = fakeEmbedder({ dims: DIMS })
  return Object.assign(online, {
    bulk: openAIBatch({
      apiKey: OPENAI_BATCH_KEY,
      baseUrl: `${fake.url}/v1`,
      dimensions: DIMS,
      sendDimensions: true,
      timeoutMs: 5_000,
    }),
  })
}

export function bulkQueue(
  h: Harness,
  fake: FakeOpenAIBatch,
  opts: Partial<QueueOptions> = {},
): { queue: EmbeddingBatchQueue; online: FakeEmbedder } {
  const online = bulkEmbedder(fake)
  const queue = h.queue({
    embedder: online,
    pollIntervalMs: 20,
    ...opts,
    bulk: { ...FAST_BULK, ...opts.bulk },
  })
  return { queue, online }
}

const cos = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let ab = 0
  let aa = 0
  let bb = 0
  for (let i = 0; i < a.length; i++) {
    ab += a[i]! * b[i]!
    aa += a[i]! * a[i]!
    bb += b[i]! * b[i]!
  }
  return ab / Math.sqrt(aa * bb)
}

/** Which lane's vector of which text the hash holds: 'bulk:<text>', 'online:<text>', 'zero' or null. */
export async function vectorOf(
  redis: Redis,
  fake: FakeOpenAIBatch,
  key: string,
  candidates: string[],
): Promise<string | null> {
  const v = await readVector(redis, key)
  if (!v) return null
  if (v.every((x) => x === 0)) return 'zero'
  for (const text of candidates) {
    if (cos(v, fake.vector(text, DIMS)) > 0.99999) return `bulk:${text}`
    if (cos(v, fakeVector(text, DIMS)) > 0.99999) return `online:${text}`
  }
  return 'other'
}
