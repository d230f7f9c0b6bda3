import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { queueKeys } from '../../src/keys.js'
import { waitFor } from '../helpers/fixtures.js'
import { useQueueHarness } from '../helpers/queue-harness.js'
import { type FakeOpenAIBatch, POISON, startFakeOpenAIBatch } from '../providers/fake-openai-batch.js'
import { bulkEmbedder, bulkQueue, FAST_BULK, vectorOf } from './helpers.js'

const h = useQueueHarness()
let fake: FakeOpenAIBatch
beforeEach(async () => {
  fake = await startFakeOpenAIBatch()
})
afterEach(async () => {
  await fake.close()
})

const items = (n: number, prefix: string) =>
  Array.from({ length: n }, (_, i) => ({ key: `${prefix}:${i}`, text: `bulk text ${i}` }))

describe('bulk lane: durability and the happy path', () => {
  it('bulk items are in Redis when enqueue resolves, outside the online lane, and one provider job embeds them all', async () => {
    const producer = bulkQueue(h, fake, { worker: false })
    const name = producer.queue.name
    const jobs = await producer.queue.enqueueMany(items(20, 'd'), { lane: 'bulk' })
    const single = await producer.queue.enqueue('d:single', 'one more', { lane: 'bulk' })
    const k = queueKeys('embedq', name)
    expect(await h.redis.zcard(k.bulk)).toBe(21)
    expect(await h.redis.zcard(k.versions)).toBe(21)
    expect(await h.redis.zcard(k.pending)).toBe(0)
    expect(await h.redis.hget(k.jobs, 'd:3')).toBe('bulk text 3')

    const worker = bulkQueue(h, fake, { name })
    await worker.queue.start()
    const vectors = await Promise.all([...jobs, single].map((j) => j.result))
    expect(vectors).toHaveLength(21)
    expect(fake.jobCount()).toBe(1)
    expect(worker.online.calls).toHaveLength(0)
    expect(await vectorOf(h.redis, fake, 'd:3', ['bulk text 3'])).toBe('bulk:bulk text 3')
    expect(await h.redis.zcard(k.versions)).toBe(0)
    expect(await h.redis.hlen(k.bulkJobs)).toBe(0)
    expect(await h.redis.zcard(k.bulkItems)).toBe(0)
    const s = await worker.queue.stats()
    expect(s.bulk?.submittedRequests).toBe(21)
    expect(s.bulk?.tokensSent).toBeGreaterThan(0)
  })
})

describe('bulk lane: latest text wins across lanes', () => {
  it('an online enqueue while the bulk job runs wins; the late bulk result is superseded (no dead letter, no stale vector)', async () => {
    const { queue, online } = bulkQueue(h, fake)
    await queue.start()
    fake.plan(['pending', 'running', 'running', 'running', 'running', 'running', 'succeeded'])
    const old = await queue.enqueue('lw:1', 'old text', { lane: 'bulk' })
    await queue.enqueue('lw:2', 'other text', { lane: 'bulk' })
    await waitFor(() => fake.jobCount() === 1, 5_000, 'the bulk job')
    const k = queueKeys('embedq', queue.name)
    await waitFor(async () => (await h.redis.hlen(k.bulkJobs)) === 1, 5_000, 'the job record')
    const fresh = await queue.enqueue('lw:1', 'new text')
    await queue.flushAndWait({ timeoutMs: 5_000 })
    await fresh.result
    expect(await old.result).toEqual(await fresh.result) // the older waiter takes the newer vector
    expect(online.texts).toEqual(['new text'])
    await waitFor(async () => (await h.redis.hlen(k.bulkJobs)) === 0, 5_000, 'the job to settle')
    expect(await vectorOf(h.redis, fake, 'lw:1', ['old text', 'new text'])).toBe('online:new text')
    expect(await vectorOf(h.redis, fake, 'lw:2', ['other text'])).toBe('bulk:other text')
    expect(await h.redis.hlen(k.failed)).toBe(0)
    expect(await h.redis.zcard(k.versions)).toBe(0)
  })

  it('a bulk enqueue of a key waiting online keeps it online with the new text', async () => {
    const { queue, online } = bulkQueue(h, fake)
    await queue.enqueue('lo:1', 'first')
    const second = await queue.enqueue('lo:1', 'second', { lane: 'bulk' })
    await queue.start()
    await queue.flushAndWait({ timeoutMs: 5_000 })
    await second.result
    expect(online.texts).toEqual(['second'])
    expect(fake.jobCount()).toBe(0)
  })
})

describe('bulk lane: failures', () => {
  it('a per-item error is charged each job and dead-lettered after maxAttempts (zero vector, result rejects)', async () => {
    const { queue } = bulkQueue(h, fake, { maxAttempts: 2 })
    await queue.start()
    const bad = await queue.enqueue('pe:bad', `a ${POISON} text`, { lane: 'bulk' })
    const good = await queue.enqueue('pe:good', 'fine text', { lane: 'bulk' })
    await expect(bad.result).rejects.toThrow(/invalid/)
    await good.result
    expect(fake.jobCount()).toBe(2)
    const letters = await queue.failed()
    expect(letters).toHaveLength(1)
    expect(letters[0]).toMatchObject({ key: 'pe:bad', attempts: 2, text: `a ${POISON} text` })
    expect(await vectorOf(h.redis, fake, 'pe:bad', [])).toBe('zero')
  })

  it('an expired job requeues its unprocessed items uncharged (maxAttempts 1 and still embedded)', async () => {
    const { queue } = bulkQueue(h, fake, { maxAttempts: 1 })
    await queue.start()
    fake.plan(['pending', 'expired'])
    const jobs = await queue.enqueueMany(items(6, 'ex'), { lane: 'bulk' })
    await Promise.all(jobs.map((j) => j.result))
    expect(fake.jobCount()).toBe(2)
    expect(await queue.failed()).toHaveLength(0)
    const k = queueKeys('embedq', queue.name)
    expect(await h.redis.hlen(k.retries)).toBe(0)
  })

  it('a failed job charges its items one attempt (maxAttempts 2: embedded by the second job; maxAttempts 1: dead letters)', async () => {
    const a = bulkQueue(h, fake, { maxAttempts: 2 })
    await a.queue.start()
    fake.plan(['pending', 'failed'])
    const ok = await a.queue.enqueueMany(items(3, 'fa'), { lane: 'bulk' })
    await Promise.all(ok.map((j) => j.result))
    expect(fake.jobCount()).toBe(2)
    await a.queue.stop()

    const b = bulkQueue(h, fake, { maxAttempts: 1 })
    await b.queue.start()
    fake.plan(['pending', 'failed'])
    const dead = await b.queue.enqueueMany(items(3, 'fb'), { lane: 'bulk' })
    for (const j of dead) await expect(j.result).rejects.toThrow(/bulk job failed/)
    expect(await b.queue.failed()).toHaveLength(3)
  })

  it('a cancelled job keeps its finished half and charges the rest (maxAttempts 1: the rest are dead letters)', async () => {
    const { queue } = bulkQueue(h, fake, { maxAttempts: 1 })
    await queue.start()
    fake.plan(['pending', 'cancelled'])
    const jobs = await queue.enqueueMany(items(4, 'ca'), { lane: 'bulk' })
    const settled = await Promise.allSettled(jobs.map((j) => j.result))
    expect(settled.filter((s) => s.status === 'fulfilled')).toHaveLength(2)
    expect(settled.filter((s) => s.status === 'rejected')).toHaveLength(2)
    expect(await queue.failed()).toHaveLength(2)
  })

  it('a 429 on submit is retried later without charging an attempt, after the provider wait', async () => {
    const { queue } = bulkQueue(h, fake, { maxAttempts: 1 })
    fake.fail({ kind: 'rate-limit', retryAfterMs: 300 })
    const errors: Error[] = []
    queue.on('error', (e) => errors.push(e))
    await queue.start()
    const started = Date.now()
    const jobs = await queue.enqueueMany(items(3, 'rl'), { lane: 'bulk' })
    await waitFor(async () => (await queue.stats()).bulk?.pausedUntil != null, 3_000, 'the pause')
    await Promise.all(jobs.map((j) => j.result))
    expect(Date.now() - started).toBeGreaterThanOrEqual(300)
    expect(errors.some((e) => /429|rate limit/i.test(e.message))).toBe(true)
    expect(fake.jobCount()).toBe(1)
    expect(await queue.failed()).toHaveLength(0)
  })
})

describe('bulk lane: promote and flush', () => {
  it('promote() moves waiting bulk items online now', async () => {
    const { queue, online } = bulkQueue(h, fake, { bulk: { gatherMs: 600_000 } })
    await queue.start()
    const jobs = await queue.enqueueMany(items(3, 'pr'), { lane: 'bulk' })
    expect(await queue.promote(['pr:0'])).toBe(1)
    await jobs[0]!.result
    expect(online.texts).toEqual(['bulk text 0'])
    expect(await queue.promote()).toBe(2)
    await Promise.all(jobs.map((j) => j.result))
    expect(fake.jobCount()).toBe(0)
  })

  it('promote() of a key inside a running job enqueues it online: the online vector wins, the late bulk result is superseded', async () => {
    const { queue, online } = bulkQueue(h, fake)
    await queue.start()
    fake.plan(['pending', 'running', 'running', 'running', 'running', 'running', 'succeeded'])
    const jobs = await queue.enqueueMany(items(2, 'pj'), { lane: 'bulk' })
    const k = queueKeys('embedq', queue.name)
    await waitFor(async () => (await h.redis.zcard(k.bulkItems)) === 2, 5_000, 'the job')
    expect(await queue.promote(['pj:1'])).toBe(1)
    await jobs[1]!.result
    expect(online.texts).toEqual(['bulk text 1'])
    await jobs[0]!.result
    await waitFor(async () => (await h.redis.hlen(k.bulkJobs)) === 0, 5_000, 'the job to settle')
    expect(await vectorOf(h.redis, fake, 'pj:1', ['bulk text 1'])).toBe('online:bulk text 1')
    expect(await vectorOf(h.redis, fake, 'pj:0', ['bulk text 0'])).toBe('bulk:bulk text 0')
    expect(await h.redis.hlen(k.failed)).toBe(0)
  })

  it('plain flushAndWait() does not wait for bulk items (they are not counted); online items are', async () => {
    const { queue } = bulkQueue(h, fake, { bulk: { gatherMs: 600_000 } })
    await queue.start()
    await queue.enqueueMany(items(3, 'fw'), { lane: 'bulk' })
    const online = await queue.enqueue('fw:online', 'now please')
    const r = await queue.flushAndWait({ timeoutMs: 3_000 })
    expect(r).toMatchObject({ drained: true, remaining: 0 })
    await online.result
    expect((await queue.stats()).bulk?.waiting).toBe(3)
    expect(fake.jobCount()).toBe(0)
  })

  it("flushAndWait({ bulk: 'wait' }) submits a job now and waits for it; { bulk: 'promote' } embeds online", async () => {
    const { queue, online } = bulkQueue(h, fake, { bulk: { gatherMs: 600_000 } })
    await queue.start()
    const a = await queue.enqueueMany(items(3, 'fx'), { lane: 'bulk' })
    const r = await queue.flushAndWait({ timeoutMs: 8_000, bulk: 'wait' })
    expect(r).toMatchObject({ drained: true, remaining: 0 })
    expect(fake.jobCount()).toBe(1)
    await Promise.all(a.map((j) => j.result))
    const b = await queue.enqueueMany(items(2, 'fy'), { lane: 'bulk' })
    const r2 = await queue.flushAndWait({ timeoutMs: 5_000, bulk: 'promote' })
    expect(r2).toMatchObject({ drained: true, remaining: 0 })
    await Promise.all(b.map((j) => j.result))
    expect(online.texts.sort()).toEqual(['bulk text 0', 'bulk text 1'])
    expect(fake.jobCount()).toBe(1)
  })

  it("flushNow({ bulk: 'promote' }) starts bulk items online without waiting", async () => {
    const { queue, online } = bulkQueue(h, fake, { bulk: { gatherMs: 600_000 } })
    await queue.start()
    const jobs = await queue.enqueueMany(items(2, 'fn'), { lane: 'bulk' })
    queue.flushNow({ bulk: 'promote' })
    await Promise.all(jobs.map((j) => j.result))
    expect(online.texts).toHaveLength(2)
  })
})

describe('bulk lane: visibility', () => {
  it('stats().bulk shows waiting items, each job with state, requests and age, and the totals', async () => {
    const { queue } = bulkQueue(h, fake, { bulk: { pollIntervalMs: 200, maxPollIntervalMs: 200 } })
    await queue.enqueueMany(items(4, 'st'), { lane: 'bulk' })
    expect((await queue.stats()).bulk).toMatchObject({ waiting: 4, inJobs: 0, jobs: [] })
    fake.plan(['pending', 'running', 'running', 'running', 'succeeded'])
    await queue.start()
    await waitFor(async () => (await queue.stats()).bulk?.jobs[0]?.providerJobId != null, 5_000, 'the job')
    const s = (await queue.stats()).bulk!
    expect(s.waiting).toBe(0)
    expect(s.inJobs).toBe(4)
    expect(s.jobs).toHaveLength(1)
    expect(s.jobs[0]).toMatchObject({ requests: 4 })
    expect(['pending', 'running']).toContain(s.jobs[0]!.state)
    expect(s.jobs[0]!.ageMs).toBeGreaterThanOrEqual(0)
    expect(s.submittedRequests).toBe(4)
  })
})

describe('bulk lane: items missing from a succeeded job', () => {
  it('are requeued uncharged at most maxMisses times, then go to the online lane', async () => {
    const online = bulkEmbedder(fake)
    const inner = online.bulk!
    // A provider that never returns this item's result (e.g. it drops our ids).
    const dropping = {
      ...inner,
      maxRequestsPerJob: inner.maxRequestsPerJob,
      maxBytesPerJob: inner.maxBytesPerJob,
      submit: inner.submit.bind(inner),
      get: inner.get.bind(inner),
      findByLabel: inner.findByLabel?.bind(inner),
      results: async (id: string, o?: { signal?: AbortSignal }) =>
        (await inner.results(id, o)).filter((r) => r.id !== 'ms:drop'),
    }
    const embedder = Object.assign(online, { bulk: dropping })
    const queue = h.queue({
      embedder,
      pollIntervalMs: 20,
      maxAttempts: 1,
      bulk: { ...FAST_BULK, maxMisses: 2 },
    })
    await queue.start()
    const drop = await queue.enqueue('ms:drop', 'never answered', { lane: 'bulk' })
    const keep = await queue.enqueue('ms:keep', 'answered', { lane: 'bulk' })
    await keep.result
    await drop.result
    expect(fake.jobCount()).toBe(3) // the first job and two uncharged requeues
    expect(online.texts).toEqual(['never answered'])
    const k = queueKeys('embedq', queue.name)
    expect(await h.redis.hlen(k.bulkMisses)).toBe(0)
    expect(await queue.failed()).toHaveLength(0)
  })
})

describe('bulk lane: job size', () => {
  it('splits a 12,000-item backfill by maxJobSize into two jobs of 6,000, each gathered in one script call (more values than Lua unpack takes)', async () => {
    const { queue } = bulkQueue(h, fake, { trackResults: false, bulk: { maxJobSize: 6_000, gatherMs: 0 } })
    await queue.enqueueMany(items(12_000, 'big'), { lane: 'bulk' })
    await queue.start()
    const r = await queue.flushAndWait({ timeoutMs: 40_000, bulk: 'wait' })
    expect(r).toMatchObject({ drained: true, remaining: 0 })
    expect(fake.jobCount()).toBe(2)
    expect(await vectorOf(h.redis, fake, 'big:11999', ['bulk text 11999'])).toBe('bulk:bulk text 11999')
  }, 60_000)
})

describe('bulk lane: graceful hand-over', () => {
  it('a worker stopped while its job runs hands the job over at once (not after bulk.leaseMs)', async () => {
    const a = bulkQueue(h, fake, { bulk: { leaseMs: 60_000 } })
    fake.plan(['pending', ...Array(10).fill('running'), 'succeeded'])
    const jobs = await a.queue.enqueueMany(items(3, 'ho'), { lane: 'bulk' })
    await a.queue.start()
    await waitFor(
      async () => (await a.queue.stats()).bulk?.jobs[0]?.state === 'running',
      5_000,
      'a running job',
    )
    await a.queue.stop()
    const b = bulkQueue(h, fake, { name: a.queue.name, bulk: { leaseMs: 60_000 } })
    await b.queue.start()
    const started = Date.now()
    await Promise.all(jobs.map((j) => b.queue.result(j.key, { version: j.version, timeoutMs: 10_000 })))
    expect(Date.now() - started).toBeLessThan(10_000)
    expect(fake.jobCount()).toBe(1)
  })
})
