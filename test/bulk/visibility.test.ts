/** The bulk lane seen from outside: `embedq status` (text and --json), metrics, backfill --bulk. */
import { Registry } from 'prom-client'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { queueKeys } from '../../src/keys.js'
import { createQueueMetrics } from '../../src/metrics.js'
import { json, parsePrometheus, runCli, sampleValue, show } from '../cli/helpers.js'
import { uniqueName, waitFor } from '../helpers/fixtures.js'
import { useQueueHarness } from '../helpers/queue-harness.js'
import { type FakeOpenAIBatch, startFakeOpenAIBatch } from '../providers/fake-openai-batch.js'
import { bulkQueue } from './helpers.js'

const h = useQueueHarness()
let fake: FakeOpenAIBatch
beforeEach(async () => {
  fake = await startFakeOpenAIBatch()
})
afterEach(async () => {
  await fake.close()
})

interface StatusJson {
  bulk: {
    waiting: number
    inJobs: number
    jobs: { state: string; requests: number; ageMs: number; providerJobId: string | null }[]
    submittedRequests: number
    tokensSent: number
  }
}

describe('bulk lane: status and metrics', () => {
  it('embedq status shows a bulk section (text and --json) and the metrics report bulk gauges while a job runs', async () => {
    const { queue } = bulkQueue(h, fake, { bulk: { pollIntervalMs: 100, maxPollIntervalMs: 100 } })
    fake.plan(['pending', ...Array(100).fill('running'), 'succeeded'])
    await queue.enqueueMany(
      Array.from({ length: 5 }, (_, i) => ({ key: `vs:${i}`, text: `visible ${i}` })),
      { lane: 'bulk' },
    )
    await queue.enqueue('vs:waiting', 'waits', { lane: 'bulk' })
    await queue.start()
    await waitFor(
      async () => (await queue.stats()).bulk?.jobs[0]?.state === 'running',
      5_000,
      'a running job',
    )
    // Held back: this one waits (gatherMs is long for it) while the job runs.
    await queue.stop()
    const producer = bulkQueue(h, fake, { name: queue.name, worker: false })
    await producer.queue.enqueue('vs:later', 'later', { lane: 'bulk' })

    const args = ['status', '--redis', h.server.url, '--name', queue.name]
    const text = await runCli(args)
    expect(text.code, show(text)).toBe(0)
    expect(text.stdout).toMatch(/bulk lane: 1 waiting, 6 in 1 job; 6 requests in 1 job so far/)
    expect(text.stdout).toMatch(/running\s+6 requests/)
    const j = json<StatusJson>(await runCli([...args, '--json']))
    expect(j.bulk).toMatchObject({ waiting: 1, inJobs: 6, submittedRequests: 6 })
    expect(j.bulk.jobs).toHaveLength(1)
    expect(j.bulk.jobs[0]).toMatchObject({ state: 'running', requests: 6 })
    expect(j.bulk.jobs[0]!.providerJobId).toMatch(/^batch_/)
    expect(j.bulk.tokensSent).toBeGreaterThan(0)

    const registry = new Registry()
    await createQueueMetrics(producer.queue, { registry })
    const { samples } = parsePrometheus(await registry.metrics())
    const labels = { queue: queue.name }
    expect(sampleValue(samples, 'embedq_bulk_waiting', labels)).toBe(1)
    expect(sampleValue(samples, 'embedq_bulk_in_jobs', labels)).toBe(6)
    expect(sampleValue(samples, 'embedq_bulk_jobs', { ...labels, state: 'running' })).toBe(1)
    expect(sampleValue(samples, 'embedq_bulk_jobs', { ...labels, state: 'pending' })).toBe(0)
    expect(sampleValue(samples, 'embedq_bulk_tokens_total', labels)).toBeGreaterThan(0)
    // OpenAI text-embedding-3-small is the batch client's default model: its price is known.
    expect(sampleValue(samples, 'embedq_bulk_saving_usd_total', labels)).toBeGreaterThan(0)
  })

  it('embedq backfill --bulk queues the hashes into the bulk lane, not the online one', async () => {
    const name = uniqueName('bfbulk')
    for (let i = 0; i < 5; i++) await h.redis.hset(`bf-${name}:${i}`, 'text', `backfill ${i}`)
    const r = await runCli([
      'backfill',
      '--redis',
      h.server.url,
      '--name',
      name,
      '--match',
      `bf-${name}:*`,
      '--bulk',
      '--quiet',
    ])
    expect(r.code, show(r)).toBe(0)
    const k = queueKeys('embedq', name)
    expect(await h.redis.zcard(k.bulk)).toBe(5)
    expect(await h.redis.zcard(k.pending)).toBe(0)
  })
})
