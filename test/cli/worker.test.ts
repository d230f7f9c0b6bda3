/**
 * `embedq worker` as a child process against a private redis-server: it drains what the test
 * enqueues, serves /healthz and /metrics (scraped and parsed here), and on SIGTERM in the
 * middle of a batch exits 0 without losing or charging anything.
 */
import type { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EmbeddingBatchQueue, hashingEmbedder, queueKeys } from '../../src/index.js'
import { readVector, uniqueName, waitFor } from '../helpers/fixtures.js'
import { type RedisServer, startRedisServer } from '../helpers/redis-server.js'
import { type CliProcess, getText, parsePrometheus, sampleValue, show, startCli } from './helpers.js'

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

const producer = (name: string): EmbeddingBatchQueue =>
  new EmbeddingBatchQueue({ redis, name, embedder: hashingEmbedder(), worker: false })

function startWorker(name: string, extra: string[] = []): CliProcess {
  return startCli(['worker', '--redis', server.url, '--name', name, '--provider', 'hashing', ...extra], {
    timeoutMs: 40_000,
  })
}

async function healthUrl(worker: CliProcess): Promise<string> {
  const m = await worker.waitFor(/health server listening on (http:\/\/127\.0\.0\.1:\d+)/)
  return m[1]!
}

describe('embedq worker', () => {
  it('drains the queue, answers /healthz, and /metrics counts what it did', async () => {
    const name = uniqueName('worker')
    const worker = startWorker(name, ['--port', '0', '--batch-size', '20', '--flush-interval', '50'])
    const base = await healthUrl(worker)
    await waitFor(async () => (await getText(`${base}/healthz`)).status === 200, 10_000, '/healthz 200')
    const health = await getText(`${base}/healthz`)
    expect(JSON.parse(health.body)).toEqual({ status: 'ok', queue: name, redis: 'ready', worker: 'draining' })

    const q = producer(name)
    const jobs = await q.enqueueMany(
      Array.from({ length: 100 }, (_, i) => ({ key: `${name}:msg:${i}`, text: `message ${i}` })),
    )
    const vectors = await Promise.all(jobs.map((j) => j.result))
    expect(vectors.every((v) => v.length === 256)).toBe(true)
    await q.stop()
    expect(await readVector(redis, `${name}:msg:7`)).toEqual(vectors[7])

    const metrics = await getText(`${base}/metrics`)
    expect(metrics.status).toBe(200)
    expect(metrics.type).toContain('text/plain')
    const { samples, types } = parsePrometheus(metrics.body)
    const labels = { queue: name }
    expect(sampleValue(samples, 'embedq_embedded_total', labels)).toBe(100)
    expect(sampleValue(samples, 'embedq_failed_total', labels)).toBe(0)
    expect(sampleValue(samples, 'embedq_api_calls_total', { ...labels, outcome: 'error' })).toBe(0)
    const calls = sampleValue(samples, 'embedq_api_calls_total', { ...labels, outcome: 'ok' })!
    expect(calls).toBeGreaterThanOrEqual(5) // batches of at most 20
    for (const h of ['embedq_batch_size', 'embedq_api_latency_seconds', 'embedq_enqueue_to_vector_seconds']) {
      expect(types.get(h)).toBe('histogram')
      const buckets = samples.filter((s) => s.name === `${h}_bucket` && s.labels.queue === name)
      expect(buckets.length).toBeGreaterThan(3)
      expect(buckets.find((b) => b.labels.le === '+Inf')?.value).toBe(
        sampleValue(samples, `${h}_count`, labels),
      )
    }
    expect(sampleValue(samples, 'embedq_batch_size_count', labels)).toBe(calls)
    expect(sampleValue(samples, 'embedq_batch_size_sum', labels)).toBe(100)
    expect(sampleValue(samples, 'embedq_enqueue_to_vector_seconds_count', labels)).toBe(100)
    expect(types.get('embedq_pending')).toBe('gauge')
    expect(sampleValue(samples, 'embedq_unfinished', labels)).toBe(0)
    expect(sampleValue(samples, 'embedq_dead_letters', labels)).toBe(0)
    expect(sampleValue(samples, 'process_cpu_user_seconds_total')).toBeGreaterThan(0)
    expect((await getText(`${base}/nope`)).status).toBe(404)

    worker.child.kill('SIGTERM')
    const r = await worker.done
    expect(r.code, show(r)).toBe(0)
    const logs = r.stderr
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>)
    expect(logs.map((l) => l.msg)).toEqual(
      expect.arrayContaining(['worker started', 'worker stopped', expect.stringMatching(/^stopping/)]),
    )
    expect(logs.find((l) => l.msg === 'worker stopped')).toMatchObject({ embedded: 100, failed: 0 })
  })

  it('SIGTERM mid-batch: the running batch finishes, the rest stays queued, exit 0, nothing lost', async () => {
    const name = uniqueName('sigterm')
    const k = queueKeys('embedq', name)
    const q = producer(name)
    const jobs = await q.enqueueMany(
      Array.from({ length: 30 }, (_, i) => ({ key: `${name}:msg:${i}`, text: `text number ${i}` })),
    )
    const results = Promise.all(jobs.map((j) => j.result))
    const slow = startWorker(name, [
      '--batch-size',
      '10',
      '--concurrency',
      '1',
      '--flush-interval',
      '0',
      '--provider-latency-ms',
      '1500',
    ])
    await waitFor(async () => (await redis.zcard(k.inflight)) >= 10, 15_000, 'a batch in flight')
    slow.child.kill('SIGTERM')
    const r = await slow.done
    expect(r.code, show(r)).toBe(0)
    expect(r.ms).toBeLessThan(15_000)
    // The batch in flight was finished, not abandoned; nothing is claimed or charged.
    expect(await redis.zcard(k.inflight)).toBe(0)
    expect(await redis.hlen(k.leases)).toBe(0)
    expect(await redis.hlen(k.retries)).toBe(0)
    expect(await redis.hlen(k.failed)).toBe(0)
    expect(await redis.zcard(k.versions)).toBe(20)
    const done = (await Promise.all(jobs.map((j) => redis.hexists(j.key, 'embedding')))).filter(Boolean)
    expect(done.length).toBe(10)

    // A second worker finishes the rest; every producer promise resolves.
    const fast = startWorker(name, ['--batch-size', '10', '--flush-interval', '0'])
    const vectors = await results
    expect(vectors).toHaveLength(30)
    expect(await redis.zcard(k.versions)).toBe(0)
    fast.child.kill('SIGTERM')
    expect((await fast.done).code).toBe(0)
    await q.stop()
  })

  it('SIGTERM past --stop-grace: the call is aborted and its items go back uncharged', async () => {
    const name = uniqueName('grace')
    const k = queueKeys('embedq', name)
    const q = producer(name)
    const jobs = await q.enqueueMany(
      Array.from({ length: 10 }, (_, i) => ({ key: `${name}:msg:${i}`, text: `slow text ${i}` })),
    )
    const results = Promise.all(jobs.map((j) => j.result))
    const stuck = startWorker(name, [
      '--batch-size',
      '10',
      '--flush-interval',
      '0',
      '--provider-latency-ms',
      '20000',
      '--stop-grace',
      '100',
      '--port',
      '0',
    ])
    const base = await healthUrl(stuck)
    await waitFor(async () => (await redis.zcard(k.inflight)) >= 10, 15_000, 'a batch in flight')
    stuck.child.kill('SIGTERM')
    const r = await stuck.done
    expect(r.code, show(r)).toBe(0)
    expect(r.ms).toBeLessThan(15_000)
    await expect(fetch(`${base}/healthz`)).rejects.toThrow() // the server is closed
    expect(await redis.zcard(k.inflight)).toBe(0)
    expect(await redis.hlen(k.retries)).toBe(0)
    expect(await redis.zcard(k.pending)).toBe(10)

    const fast = startWorker(name, ['--flush-interval', '0'])
    expect(await results).toHaveLength(10)
    fast.child.kill('SIGTERM')
    expect((await fast.done).code).toBe(0)
    await q.stop()
  })

  it('/healthz answers 503 while Redis is not connected', async () => {
    const name = uniqueName('down')
    const other = await startRedisServer()
    try {
      const worker = startCli(['worker', '--redis', other.url, '--name', name, '--port', '0'], {
        timeoutMs: 40_000,
      })
      const m = await worker.waitFor(/"port":(\d+)/)
      const base = `http://127.0.0.1:${m[1]}`
      await waitFor(async () => (await getText(`${base}/healthz`)).status === 200, 10_000, '/healthz 200')
      await other.stop()
      await waitFor(async () => (await getText(`${base}/healthz`)).status === 503, 10_000, '/healthz 503')
      expect(JSON.parse((await getText(`${base}/healthz`)).body)).toMatchObject({ status: 'unavailable' })
      await other.restart()
      await waitFor(
        async () => (await getText(`${base}/healthz`)).status === 200,
        15_000,
        '/healthz 200 again',
      )
      worker.child.kill('SIGTERM')
      const r = await worker.done
      expect(r.code, show(r)).toBe(0)
    } finally {
      await other.destroy()
    }
  })
})
