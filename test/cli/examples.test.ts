/**
 * examples/worker-service.ts and examples/backfill.ts run as child processes, the way a user
 * runs them: with nothing configured (in-process Redis, hashing embedder), and with REDIS_URL
 * pointing at a private redis-server.
 */
import type { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EmbeddingBatchQueue, hashingEmbedder } from '../../src/index.js'
import { waitFor } from '../helpers/fixtures.js'
import { type RedisServer, startRedisServer } from '../helpers/redis-server.js'
import { getText, parsePrometheus, runCli, sampleValue, show, startCli } from './helpers.js'

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

const example = (file: string, env: Record<string, string> = {}) =>
  startCli([], { script: `examples/${file}`, env, timeoutMs: 45_000 })

async function embeddedTotal(base: string): Promise<number | undefined> {
  const { samples } = parsePrometheus((await getText(`${base}/metrics`)).body)
  return sampleValue(samples, 'embedq_embedded_total', { queue: 'chat' })
}

describe('examples/worker-service.ts', () => {
  it('with nothing configured: drains its sample, serves /healthz and /metrics, exits 0 on SIGTERM', async () => {
    const p = example('worker-service.ts', { PORT: '0' })
    const base = (await p.waitFor(/health: +(http:\/\/127\.0\.0\.1:\d+)\/healthz/))[1]!
    await p.waitFor(/sample: 59 embedded/)
    const health = await getText(`${base}/healthz`)
    expect(health.status).toBe(200)
    expect(JSON.parse(health.body)).toMatchObject({ status: 'ok', queue: 'chat', worker: 'draining' })
    expect(await embeddedTotal(base)).toBe(59)
    p.child.kill('SIGTERM')
    const r = await p.done
    expect(r.code, show(r)).toBe(0)
    expect(r.stdout).toContain('stopped: 59 embedded, 0 given up')
    expect(r.stderr).toBe('')
  })

  it('with REDIS_URL: embeds what another process enqueues, and /metrics counts it', async () => {
    const p = example('worker-service.ts', { PORT: '0', REDIS_URL: server.url })
    const base = (await p.waitFor(/health: +(http:\/\/127\.0\.0\.1:\d+)\/healthz/))[1]!
    const producer = new EmbeddingBatchQueue({
      redis,
      name: 'chat',
      embedder: hashingEmbedder(),
      worker: false,
    })
    const jobs = await producer.enqueueMany(
      Array.from({ length: 25 }, (_, i) => ({ key: `svc:msg:${i}`, text: `hello ${i}` })),
    )
    await Promise.all(jobs.map((j) => j.result))
    await producer.stop()
    await waitFor(async () => (await embeddedTotal(base)) === 25, 5_000, 'embedded_total 25')
    p.child.kill('SIGTERM')
    const r = await p.done
    expect(r.code, show(r)).toBe(0)
    expect(r.stdout).toContain('stopped: 25 embedded')
  })
})

describe('examples/backfill.ts', () => {
  for (const withRedis of [false, true]) {
    const label = withRedis ? 'with REDIS_URL' : 'with nothing configured'
    it(`${label}: enqueues the hashes without a vector, drains them, and a second pass finds nothing`, async () => {
      const r = await example('backfill.ts', withRedis ? { REDIS_URL: server.url } : {}).done
      expect(r.code, show(r)).toBe(0)
      expect(r.stdout).toContain('stored 300 message hashes, 100 of them with a vector already')
      expect(r.stdout).toContain(
        'first pass: scanned 300 hashes, enqueued 198 (skipped 100 with a vector, 2 without text)',
      )
      expect(r.stdout).toContain('indexing 198/198 done')
      expect(r.stdout).toContain('second pass: enqueued 0; 298 hashes have a vector, 2 have no text to embed')
      expect(r.stderr).toBe('')
    })
  }

  it('the CLI backfill agrees with the example on the same data', async () => {
    // The example left 300 hashes `backfill:msg:*` on the server, 298 with a vector.
    const r = await runCli([
      'backfill',
      '--redis',
      server.url,
      '--name',
      'cli-check',
      '--match',
      'backfill:msg:*',
      '--missing-only',
      '--json',
    ])
    expect(r.code, show(r)).toBe(0)
    expect(JSON.parse(r.stdout)).toMatchObject({
      scanned: 300,
      enqueued: 0,
      skipped: { hasVector: 298, blank: 2 },
    })
  })
})
