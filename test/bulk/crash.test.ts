/**
 * A bulk worker SIGKILLed between submit and recording the provider's job id, and while its
 * job runs: another worker resumes the job (found by its label, or polled from its record),
 * and every item ends embedded exactly once in its hash, by one provider job, with 0 lost.
 */
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { queueKeys } from '../../src/keys.js'
import { uniqueName, waitFor } from '../helpers/fixtures.js'
import { useQueueHarness } from '../helpers/queue-harness.js'
import { type FakeOpenAIBatch, startFakeOpenAIBatch } from '../providers/fake-openai-batch.js'
import { bulkQueue, vectorOf } from './helpers.js'

const h = useQueueHarness()
let fake: FakeOpenAIBatch
beforeEach(async () => {
  fake = await startFakeOpenAIBatch()
})
afterEach(async () => {
  await fake.close()
})

function child(name: string, crash: boolean) {
  const proc = spawn(process.execPath, ['--import', 'tsx', 'test/bulk/bulk-process.ts'], {
    env: {
      ...process.env,
      REDIS_URL: h.server.url,
      QUEUE_NAME: name,
      BATCH_URL: fake.url,
      CRASH: crash ? 'after-submit' : 'none',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const lines: Record<string, unknown>[] = []
  createInterface({ input: proc.stdout! }).on('line', (l) => {
    try {
      lines.push(JSON.parse(l) as Record<string, unknown>)
    } catch {
      lines.push({ raw: l })
    }
  })
  const exited = new Promise<string | null>((r) => proc.once('exit', (_code, signal) => r(signal)))
  return { proc, lines, exited }
}

const N = 30
const texts = Array.from({ length: N }, (_, i) => ({ key: `cr:${i}`, text: `crash text ${i}` }))

async function checkAllEmbeddedOnce(name: string): Promise<void> {
  const k = queueKeys('embedq', name)
  for (const { key, text } of texts) expect(await vectorOf(h.redis, fake, key, [text])).toBe(`bulk:${text}`)
  expect(fake.jobCount()).toBe(1) // one provider job: no item was submitted twice
  expect(await h.redis.zcard(k.versions)).toBe(0) // 0 lost, 0 left over
  expect(await h.redis.hlen(k.failed)).toBe(0)
  expect(await h.redis.hlen(k.bulkJobs)).toBe(0)
}

describe('bulk lane: crash windows', () => {
  it('a worker SIGKILLed after submit and before recording the job id: the job is found by its label and adopted, not submitted again', async () => {
    const name = uniqueName('bulkcrash')
    const producer = bulkQueue(h, fake, { name, worker: false })
    const jobs = await producer.queue.enqueueMany(texts, { lane: 'bulk' })
    const a = child(name, true)
    expect(await a.exited).toBe('SIGKILL')
    expect(a.lines.some((l) => 'submitted' in l)).toBe(true)
    expect(fake.jobCount()).toBe(1)
    const k = queueKeys('embedq', name)
    const [record] = Object.values(await h.redis.hgetall(k.bulkJobs))
    expect(JSON.parse(record!)).toMatchObject({ state: 'submitting', count: N })

    const b = child(name, false)
    try {
      await Promise.all(jobs.map((j) => j.result))
      await waitFor(async () => (await h.redis.hlen(k.bulkJobs)) === 0, 10_000, 'the job to settle')
    } finally {
      b.proc.kill('SIGKILL')
      await b.exited
    }
    expect(b.lines.some((l) => 'submitted' in l)).toBe(false)
    await checkAllEmbeddedOnce(name)
    expect((await producer.queue.stats()).bulk?.submittedRequests).toBe(N)
  }, 30_000)

  it('a worker SIGKILLed while its job runs: another worker resumes polling and settles it', async () => {
    const name = uniqueName('bulkcrash')
    const producer = bulkQueue(h, fake, { name, worker: false })
    const jobs = await producer.queue.enqueueMany(texts, { lane: 'bulk' })
    fake.plan(['pending', ...Array(40).fill('running'), 'succeeded'])
    const a = child(name, false)
    const k = queueKeys('embedq', name)
    await waitFor(
      async () => {
        const [r] = Object.values(await h.redis.hgetall(k.bulkJobs))
        return !!r && JSON.parse(r).state === 'running'
      },
      10_000,
      'the job to run',
    )
    a.proc.kill('SIGKILL')
    await a.exited
    const b = child(name, false)
    try {
      await Promise.all(jobs.map((j) => j.result))
      await waitFor(async () => (await h.redis.hlen(k.bulkJobs)) === 0, 10_000, 'the job to settle')
    } finally {
      b.proc.kill('SIGKILL')
      await b.exited
    }
    await checkAllEmbeddedOnce(name)
  }, 30_000)
})
