/**
 * A bulk-lane worker in its own process, for the crash tests. Env: REDIS_URL, QUEUE_NAME,
 * BATCH_URL (the fake OpenAI Batch API), CRASH=after-submit (SIGKILL itself after the provider
 * accepted the job and before its id is recorded) or none. Prints JSON lines:
 * {"ready":true}, {"submitted":"batch_…"}.
 */
import { Redis } from 'ioredis'
import { EmbeddingBatchQueue } from '../../src/index.js'
import { openAIBatch } from '../../src/providers/openai-batch.js'
import { fakeEmbedder } from '../helpers/fixtures.js'
import { OPENAI_BATCH_KEY } from '../providers/fake-openai-batch.js'

const say = (obj: unknown): void => {
  process.stdout.write(`${JSON.stringify(obj)}\n`)
}
const redis = new Redis(process.env.REDIS_URL ?? '')
const embedder = Object.assign(fakeEmbedder({ dims: 8 }), {
  bulk: openAIBatch({
    apiKey: OPENAI_BATCH_KEY,
    baseUrl: `${process.env.BATCH_URL}/v1`,
    dimensions: 8,
    sendDimensions: true,
    timeoutMs: 5_000,
  }),
})
const crash = process.env.CRASH === 'after-submit'
const queue = new EmbeddingBatchQueue({
  redis,
  embedder,
  name: process.env.QUEUE_NAME ?? 'default',
  pollIntervalMs: 20,
  bulk: {
    minJobSize: 1_000,
    gatherMs: 20,
    pollIntervalMs: 30,
    maxPollIntervalMs: 60,
    leaseMs: 1_000,
    afterSubmit: (id) => {
      say({ submitted: id })
      if (crash) process.kill(process.pid, 'SIGKILL')
    },
  },
})
queue.on('error', (err) => say({ error: err.message }))
await queue.start()
say({ ready: true })
