/**
 * `createQueueMetrics` and `startHealthServer` in-process: a queue driven on a private
 * redis-server feeds a fresh prom-client registry; the health server answers for it.
 */
import type { Redis } from 'ioredis'
import { Registry } from 'prom-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startHealthServer } from '../../src/health.js'
import { EmbedderError, EmbeddingBatchQueue } from '../../src/index.js'
import { createQueueMetrics } from '../../src/metrics.js'
import { fakeEmbedder, uniqueName } from '../helpers/fixtures.js'
import { type RedisServer, startRedisServer } from '../helpers/redis-server.js'
import { getText, parsePrometheus, sampleValue } from './helpers.js'

let server: RedisServer
let redis: Redis

beforeAll(async () => {
  server = await startRedisServer()
  redis = server.client()
})

afterAll(async () => {
  redis?.disconnect()
  await server?.destroy()
})

/** A queue whose embedder refuses texts starting with "bad" (maxAttempts 2: one retry, then a dead letter). */
function queueWithFailures(name: string): EmbeddingBatchQueue {
  return new EmbeddingBatchQueue({
    redis,
    name,
    maxBatchSize: 10,
    flushIntervalMs: 0,
    maxAttempts: 2,
    backoffBaseMs: 0,
    backoffMaxMs: 0,
    embedder: fakeEmbedder({
      maxBatchSize: 5,
      fail: (texts) =>
        texts.length === 1 && texts[0]!.startsWith('bad')
          ? new EmbedderError('400 refused', { retryable: false, status: 400 })
          : undefined,
    }),
  })
}

describe('createQueueMetrics', () => {
  it('counts what the queue did and reads the gauges from stats() at scrape time', async () => {
    const name = uniqueName('metrics')
    const queue = queueWithFailures(name)
    const registry = new Registry()
    const metrics = await createQueueMetrics(queue, { registry, labels: { instance: 'a' } })
    expect(metrics.registry).toBe(registry)
    const labels = { queue: name, instance: 'a' }
    await queue.start()
    const items = Array.from({ length: 20 }, (_, i) => ({ key: `${name}:m:${i}`, text: `text ${i}` }))
    items.push({ key: `${name}:bad`, text: 'bad text' })
    const jobs = await queue.enqueueMany(items)
    await queue.flushAndWait({ timeoutMs: 10_000 })
    await Promise.allSettled(jobs.map((j) => j.result))

    const { samples, types } = parsePrometheus(await metrics.metrics())
    expect(sampleValue(samples, 'embedq_enqueued_total', labels)).toBe(21)
    expect(sampleValue(samples, 'embedq_embedded_total', labels)).toBe(20)
    expect(sampleValue(samples, 'embedq_failed_total', labels)).toBe(1)
    expect(sampleValue(samples, 'embedq_retried_total', labels)).toBe(1)
    const ok = sampleValue(samples, 'embedq_api_calls_total', { ...labels, outcome: 'ok' })!
    const errors = sampleValue(samples, 'embedq_api_calls_total', { ...labels, outcome: 'error' })!
    expect(errors).toBeGreaterThanOrEqual(2) // the bad text, alone, on each of its two attempts
    expect(sampleValue(samples, 'embedq_batch_size_count', labels)).toBe(ok + errors)
    expect(sampleValue(samples, 'embedq_api_latency_seconds_count', labels)).toBe(ok + errors)
    expect(sampleValue(samples, 'embedq_enqueue_to_vector_seconds_count', labels)).toBe(20)
    expect(sampleValue(samples, 'embedq_cache_hits_total', labels)).toBe(0)
    expect(types.get('embedq_enqueue_to_vector_seconds')).toBe('histogram')
    expect(sampleValue(samples, 'embedq_unfinished', labels)).toBe(0)
    expect(sampleValue(samples, 'embedq_dead_letters', labels)).toBe(1)
    expect(sampleValue(samples, 'embedq_inflight', labels)).toBe(0)
    expect(sampleValue(samples, 'embedq_finished_last_minute', labels)).toBe(20)

    // Gauges follow the queue in Redis, whoever changed it.
    const producer = new EmbeddingBatchQueue({ redis, name, embedder: fakeEmbedder(), worker: false })
    await queue.stop()
    await producer.enqueueMany([{ key: `${name}:later`, text: 'later' }])
    await new Promise((r) => setTimeout(r, 300)) // past the stats snapshot
    const later = parsePrometheus(await metrics.metrics()).samples
    expect(sampleValue(later, 'embedq_pending', labels)).toBe(1)
    expect(sampleValue(later, 'embedq_oldest_age_seconds', labels)).toBeGreaterThan(0)
    await producer.stop()

    metrics.close()
    expect(queue.listenerCount('embedded')).toBe(0)
    expect(queue.listenerCount('call')).toBe(0)
    expect(await registry.getMetricsAsJSON()).toEqual([])
  })

  it('several queues share one registry, told apart by the queue label', async () => {
    const registry = new Registry()
    const a = new EmbeddingBatchQueue({
      redis,
      name: uniqueName('a'),
      embedder: fakeEmbedder(),
      flushIntervalMs: 0,
    })
    const b = new EmbeddingBatchQueue({
      redis,
      name: uniqueName('b'),
      embedder: fakeEmbedder(),
      flushIntervalMs: 0,
    })
    const ma = await createQueueMetrics(a, { registry })
    const mb = await createQueueMetrics(b, { registry })
    await a.start()
    await b.start()
    await (await a.enqueue(`${a.name}:1`, 'one')).result
    await Promise.all(
      (await b.enqueueMany([1, 2].map((i) => ({ key: `${b.name}:${i}`, text: `t${i}` })))).map(
        (j) => j.result,
      ),
    )
    const { samples } = parsePrometheus(await registry.metrics())
    expect(sampleValue(samples, 'embedq_embedded_total', { queue: a.name })).toBe(1)
    expect(sampleValue(samples, 'embedq_embedded_total', { queue: b.name })).toBe(2)
    await expect(createQueueMetrics(a, { registry, labels: { extra: 'x' } })).rejects.toThrow(
      /every queue in one registry must use the same labels/,
    )
    ma.close()
    const left = parsePrometheus(await registry.metrics()).samples
    expect(sampleValue(left, 'embedq_embedded_total', { queue: a.name })).toBeUndefined()
    expect(sampleValue(left, 'embedq_embedded_total', { queue: b.name })).toBe(2)
    mb.close()
    await a.stop()
    await b.stop()
  })

  it('refuses reserved labels and a bad prefix with a TypeError naming the option', async () => {
    const q = new EmbeddingBatchQueue({ redis, embedder: fakeEmbedder(), worker: false })
    await expect(createQueueMetrics(q, { labels: { queue: 'x' } })).rejects.toThrow(/reserved label `queue`/)
    await expect(createQueueMetrics(q, { prefix: 'bad-prefix' })).rejects.toThrow(/option `prefix`/)
    await q.stop()
  })
})

describe('startHealthServer', () => {
  it('serves /healthz (200 while draining, 503 after stop) and /metrics; 404 and 405 otherwise', async () => {
    const queue = new EmbeddingBatchQueue({ redis, name: uniqueName('health'), embedder: fakeEmbedder() })
    const metrics = await createQueueMetrics(queue)
    const health = await startHealthServer({ queue, redis, port: 0, metrics })
    try {
      expect(health.url).toBe(`http://127.0.0.1:${health.port}`)
      expect((await getText(`${health.url}/healthz`)).status).toBe(503) // not started yet
      await queue.start()
      const ok = await getText(`${health.url}/healthz`)
      expect(ok.status).toBe(200)
      expect(JSON.parse(ok.body)).toEqual({
        status: 'ok',
        queue: queue.name,
        redis: 'ready',
        worker: 'draining',
      })
      const m = await getText(`${health.url}/metrics`)
      expect(m.status).toBe(200)
      expect(m.type).toBe(metrics.contentType)
      expect(sampleValue(parsePrometheus(m.body).samples, 'embedq_unfinished', { queue: queue.name })).toBe(0)
      expect((await getText(`${health.url}/other`)).status).toBe(404)
      expect((await fetch(`${health.url}/healthz`, { method: 'POST' })).status).toBe(405)
      await queue.stop()
      const down = await getText(`${health.url}/healthz`)
      expect(down.status).toBe(503)
      expect(JSON.parse(down.body)).toMatchObject({ status: 'unavailable', worker: 'not draining' })
    } finally {
      metrics.close()
      await health.close()
    }
  })

  it('a producer-only instance is healthy with requireWorker: false; a taken port is a clear error', async () => {
    const queue = new EmbeddingBatchQueue({ redis, embedder: fakeEmbedder(), worker: false })
    const health = await startHealthServer({ queue, redis, port: 0, requireWorker: false })
    try {
      expect((await getText(`${health.url}/healthz`)).status).toBe(200)
      expect((await getText(`${health.url}/metrics`)).status).toBe(404)
      await expect(startHealthServer({ queue, redis, port: health.port })).rejects.toThrow(
        `embedq: health server cannot listen on 127.0.0.1:${health.port}: EADDRINUSE`,
      )
    } finally {
      await health.close()
      await queue.stop()
    }
  })
})
