/**
 * #12 pause and resume: persisted in Redis, distinct from the rate-limit pause; every worker
 * of the queue, on any client, stops claiming within about a second; producers keep
 * enqueueing; calls in flight finish; resume drains.
 */
import { describe, expect, it } from 'vitest'
import { QueueAdmin, queueKeys } from '../../src/index.js'
import { runCli } from '../cli/helpers.js'
import { fakeEmbedder, sleep, uniqueName, waitFor } from '../helpers/fixtures.js'
import { useQueueHarness } from '../helpers/queue-harness.js'

const h = useQueueHarness()

describe('#12 pause and resume', () => {
  it('a pause through a third client stops two workers within a second; enqueues go on; resume drains', async () => {
    const name = uniqueName('pause')
    const embedders = [fakeEmbedder({ latencyMs: 150 }), fakeEmbedder({ latencyMs: 150 })]
    const workers = embedders.map((embedder) =>
      h.queue({
        name,
        redis: h.client(),
        embedder,
        maxBatchSize: 4,
        concurrency: 1,
        flushIntervalMs: 20,
        leaseMs: 1_500,
        pollIntervalMs: 200,
      }),
    )
    await Promise.all(workers.map((w) => w.start()))
    const producer = h.queue({ name, redis: h.client(), worker: false })
    const admin = new QueueAdmin({ redis: h.client(), name })
    await producer.enqueueMany(
      Array.from({ length: 200 }, (_, i) => ({ key: `p:${name}:${i}`, text: `doc ${i}` })),
    )
    producer.flushNow()
    await waitFor(() => embedders.every((e) => e.calls.length > 0), 5_000, 'both workers calling')

    await admin.pause({ by: 'on-call' })
    const pausedAt = Date.now()
    expect(await admin.isPaused()).toBe(true)
    expect(await workers[0]!.isPaused()).toBe(true)
    const state = await admin.pauseState()
    expect(state.operator).toMatchObject({ paused: true, by: 'on-call' })
    expect(state.rateLimit.paused).toBe(false)

    // Producers keep enqueueing while paused.
    const more = await producer.enqueueMany(
      Array.from({ length: 20 }, (_, i) => ({ key: `p:${name}:more:${i}`, text: `more ${i}` })),
    )
    expect(more.every((j) => j.version > 0 && !j.error)).toBe(true)
    producer.flushNow()
    await sleep(2_000)
    const all = embedders.flatMap((e) => e.calls)
    const late = all.filter((c) => c.startedAt > pausedAt + 1_000)
    expect(late, 'provider calls started more than 1 s after the pause').toEqual([])
    // Calls in flight at the pause finished.
    expect(all.every((c) => c.endedAt !== undefined)).toBe(true)
    const paused = await admin.stats()
    expect(paused.paused.paused).toBe(true)
    expect(paused.inflight).toBe(0)
    expect(paused.unfinished).toBeGreaterThan(20)
    const unfinishedBefore = paused.unfinished
    await sleep(500)
    expect((await admin.stats()).unfinished).toBe(unfinishedBefore)
    // Workers report what they see.
    await waitFor(async () => (await admin.workers()).every((w) => w.paused), 3_000, 'workers report paused')
    expect(await admin.workers()).toHaveLength(2)

    await admin.resume()
    expect(await admin.isPaused()).toBe(false)
    const r = await producer.flushAndWait({ timeoutMs: 20_000 })
    expect(r.drained).toBe(true)
    expect((await admin.stats()).unfinished).toBe(0)
    await waitFor(
      async () => (await admin.workers()).every((w) => !w.paused),
      3_000,
      'workers report running',
    )
  }, 40_000)

  it('the operator pause and the rate-limit pause are separate keys and both show in pauseState and stats', async () => {
    const q = h.queue({ worker: false })
    const k = queueKeys('embedq', q.name)
    await q.pause()
    expect(await h.redis.type(k.paused)).toBe('string')
    expect(await h.redis.exists(k.pause)).toBe(0)
    const s = await q.stats()
    expect(s.paused.paused).toBe(true)
    expect(s.rateLimit.reason).toBeNull()
    // Pausing again keeps the first `since`.
    const since = s.paused.since
    await sleep(20)
    await q.pause({ by: 'someone else' })
    expect((await q.pauseState()).operator.since).toBe(since)
    await q.resume()
    expect((await q.stats()).paused).toEqual({ paused: false, since: null, by: null })
  })

  it('embedq pause and embedq resume change the state every process reads', async () => {
    const q = h.queue({ worker: false })
    const args = ['--redis', h.server.url, '--name', q.name]
    const p = await runCli(['pause', '--by', 'cli-test', '--json', ...args])
    expect(p.code).toBe(0)
    expect(JSON.parse(p.stdout)).toMatchObject({ operator: { paused: true, by: 'cli-test' } })
    expect(await q.isPaused()).toBe(true)
    const st = await runCli(['status', ...args])
    expect(st.stdout).toMatch(/paused \(op\)\s+yes\s+by cli-test/)
    const r = await runCli(['resume', ...args])
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('resumed')
    expect(await q.isPaused()).toBe(false)
  }, 20_000)
})
