/**
 * #12 probes: /livez stays 200 while the process runs; /readyz is 503 during a Redis blip and
 * 200 again after; /healthz unchanged.
 */
import { describe, expect, it } from 'vitest'
import { startHealthServer } from '../../src/index.js'
import { sleep, waitFor } from '../helpers/fixtures.js'
import { useQueueHarness } from '../helpers/queue-harness.js'

const h = useQueueHarness()

const get = async (url: string): Promise<{ status: number; body: Record<string, unknown> }> => {
  const res = await fetch(url, { signal: AbortSignal.timeout(3_000) })
  return { status: res.status, body: (await res.json()) as Record<string, unknown> }
}

describe('#12 probes', () => {
  it('a Redis blip makes /readyz 503 while /livez stays 200; both 200 once Redis is back', async () => {
    const redis = h.client()
    const q = h.queue({ redis, commandTimeoutMs: 500 })
    q.on('error', () => {})
    await q.start()
    const health = await startHealthServer({ queue: q, redis, port: 0, readyTimeoutMs: 500 })
    try {
      expect((await get(`${health.url}/livez`)).status).toBe(200)
      const ready = await get(`${health.url}/readyz`)
      expect(ready).toEqual({
        status: 200,
        body: { status: 'ready', queue: q.name, redis: 'ok', worker: 'draining' },
      })
      expect((await get(`${health.url}/healthz`)).status).toBe(200)

      const blip = h.server.restart({ downMs: 3_000 })
      await waitFor(async () => (await get(`${health.url}/readyz`)).status === 503, 3_000, '/readyz 503')
      const down = await get(`${health.url}/readyz`)
      expect(down.body.status).toBe('not ready')
      expect(down.body.redis).not.toBe('ok')
      const live = await get(`${health.url}/livez`)
      expect(live).toEqual({ status: 200, body: { status: 'alive', queue: q.name } })
      await blip
      await waitFor(
        async () => (await get(`${health.url}/readyz`)).status === 200,
        10_000,
        '/readyz 200 again',
      )
      expect((await get(`${health.url}/livez`)).status).toBe(200)
    } finally {
      await health.close()
    }
  }, 30_000)

  it('/readyz is 503 while the worker is not draining (stopped), unless requireWorker is false', async () => {
    const q = h.queue()
    const health = await startHealthServer({ queue: q, redis: h.redis, port: 0 })
    const producer = await startHealthServer({ queue: q, redis: h.redis, port: 0, requireWorker: false })
    try {
      expect((await get(`${health.url}/readyz`)).status).toBe(503)
      expect((await get(`${producer.url}/readyz`)).status).toBe(200)
      await q.start()
      expect((await get(`${health.url}/readyz`)).status).toBe(200)
      await q.stop()
      await sleep(10)
      expect((await get(`${health.url}/readyz`)).body.worker).toBe('not draining')
      expect((await get(`${health.url}/livez`)).status).toBe(200)
    } finally {
      await health.close()
      await producer.close()
    }
  })
})
