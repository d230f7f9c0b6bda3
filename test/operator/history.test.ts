/**
 * #12 history: per-minute counters in Redis for 24 h with bounded memory.
 */
import { describe, expect, it } from 'vitest'
import { HISTORY_MINUTES, HISTORY_WIDTH, historyPoint } from '../../src/history.js'
import { EmbedderError, QueueAdmin, queueKeys } from '../../src/index.js'
import { QueueScripts } from '../../src/scripts.js'
import { fakeEmbedder, uniqueName } from '../helpers/fixtures.js'
import { useQueueHarness } from '../helpers/queue-harness.js'

const h = useQueueHarness()

const sum = <T>(xs: T[], f: (x: T) => number): number => xs.reduce((a, x) => a + f(x), 0)

describe('#12 history', () => {
  it('counts embedded, failed, retried, provider calls, tokens and latency per minute', async () => {
    const name = uniqueName('hist')
    const q = h.queue({
      name,
      flushIntervalMs: 10,
      maxAttempts: 2,
      backoffBaseMs: 10,
      backoffMaxMs: 20,
      maxBatchSize: 5,
      rateLimit: { requestsPerMinute: 10_000 },
      embedder: fakeEmbedder({
        maxBatchSize: 1,
        fail: (texts) =>
          texts[0]!.startsWith('bad')
            ? new EmbedderError('503 nope', { retryable: true, status: 503 })
            : undefined,
      }),
    })
    await q.start()
    const jobs = await q.enqueueMany([
      ...Array.from({ length: 10 }, (_, i) => ({ key: `h:${name}:${i}`, text: `good text number ${i}` })),
      { key: `h:${name}:bad`, text: 'bad text' },
    ])
    q.flushNow()
    await Promise.allSettled(jobs.map((j) => j.result))
    await q.stop() // writes what the worker counted since its last flush
    const admin = new QueueAdmin({ redis: h.redis, name })
    const points = await admin.history({ minutes: 5 })
    expect(points).toHaveLength(5)
    const nowMinute = Math.floor(Date.now() / 60_000) * 60_000
    expect(points[4]!.minute).toBe(nowMinute)
    expect(points.map((p) => p.minute)).toEqual([4, 3, 2, 1, 0].map((i) => nowMinute - i * 60_000))
    expect(sum(points, (p) => p.embedded)).toBe(10)
    expect(sum(points, (p) => p.failed)).toBe(1)
    expect(sum(points, (p) => p.retried)).toBe(1)
    expect(sum(points, (p) => p.providerCalls)).toBe(12) // 10 good + 2 attempts of the bad one
    expect(sum(points, (p) => p.tokens)).toBeGreaterThan(10 * 4)
    expect(sum(points, (p) => p.rateLimited)).toBe(0)
    const busy = points.filter((p) => p.embedded > 0)
    for (const p of busy) {
      expect(p.p50Ms).not.toBeNull()
      expect(p.p95Ms!).toBeGreaterThanOrEqual(p.p50Ms!)
      expect(p.p95Ms!).toBeLessThanOrEqual(5_000)
    }
    expect(points.filter((p) => p.embedded === 0).every((p) => p.p50Ms === null)).toBe(true)
    // The queue delegates.
    expect(await q.history({ minutes: 5 })).toEqual(points)
  }, 30_000)

  it('memory stays bounded: after 1500 minutes of history the hash keeps at most 1440 minutes', async () => {
    const name = uniqueName('histmem')
    const k = queueKeys('embedq', name)
    const nowMinute = Math.floor(Number((await h.redis.time())[0]) / 60)
    // 1500 minutes of history, as a queue running for 25 hours would have written.
    const fields: Record<string, string> = {}
    const row = Array.from({ length: HISTORY_WIDTH }, (_, i) => (i === 0 ? 7 : 0)).join(',')
    for (let m = nowMinute - 1499; m <= nowMinute; m++) fields[String(m)] = row
    await h.redis.hset(k.history, fields)
    const scripts = new QueueScripts(h.redis, k)
    expect(await scripts.history(HISTORY_MINUTES, HISTORY_WIDTH, [String(nowMinute), row])).toBe(1)
    const len = await h.redis.hlen(k.history)
    expect(len).toBeLessThanOrEqual(HISTORY_MINUTES + 1 + 1) // minutes + the prune mark
    expect(await h.redis.hexists(k.history, String(nowMinute - HISTORY_MINUTES))).toBe(0)
    expect(await h.redis.hexists(k.history, String(nowMinute - HISTORY_MINUTES + 1))).toBe(1)
    // A minute far outside the window (a worker's clock off by a day) is not written.
    expect(await scripts.history(HISTORY_MINUTES, HISTORY_WIDTH, [String(nowMinute - 5_000), row])).toBe(0)
    expect(await scripts.history(HISTORY_MINUTES, HISTORY_WIDTH, [String(nowMinute + 5_000), row])).toBe(0)
    expect(await h.redis.hlen(k.history)).toBe(len)
    const admin = new QueueAdmin({ redis: h.redis, name })
    const day = await admin.history({ minutes: 1440 })
    expect(day).toHaveLength(1440)
    expect(day.at(-1)!.embedded).toBe(14)
    expect(sum(day, (p) => p.embedded)).toBe(1440 * 7 + 7)
    await expect(admin.history({ minutes: 1441 })).rejects.toThrow(RangeError)
  })

  it('p50/p95 come from the latency buckets', () => {
    // 10 items: 9 in the 100 ms bucket, 1 in the 10 s bucket.
    const csv = [10, 0, 0, 1, 0, 0, 9, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0].join(',')
    expect(historyPoint(1, csv)).toMatchObject({ minute: 60_000, embedded: 10, p50Ms: 100, p95Ms: 10_000 })
    expect(historyPoint(2, null)).toMatchObject({ embedded: 0, p50Ms: null, p95Ms: null })
  })
})
