/**
 * examples/dashboard-{http,express,fastify,hono}.ts run as a user runs them: each mounts the
 * dashboard under /admin/embedq; the page, the API and a mutation with a JSON body work through
 * the framework, the app's own routes still answer, and SIGTERM stops the process. The examples
 * use the default source (QueueAdmin on every queue under the prefix) on a private redis-server.
 */
import type { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { queueKeys } from '../../src/index.js'
import { startCli } from '../cli/helpers.js'
import { type RedisServer, startRedisServer } from '../helpers/redis-server.js'

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

/** Queues 'chat' (one dead letter, msg:chat:1002) and 'docs' (one pending item), fresh per run. */
async function seed(): Promise<void> {
  await redis.flushdb() // the server is this file's own
  const letter = {
    key: 'msg:chat:1002',
    version: 1,
    text: 'hello',
    error: '400 bad',
    attempts: 3,
    failedAt: Date.now(),
  }
  await redis.hset(queueKeys('embedq', 'chat').failed, 'msg:chat:1002', JSON.stringify(letter))
  await redis.zadd(queueKeys('embedq', 'docs').versions, 5, 'doc:1')
  await redis.hset(queueKeys('embedq', 'docs').jobs, 'doc:1', 'text')
}

const TOKEN = 'example-token-123'
const MUTATE = { 'Content-Type': 'application/json', 'X-Embedq-Csrf': '1', Authorization: `Bearer ${TOKEN}` }

describe.each(['http', 'express', 'fastify', 'hono'])('examples/dashboard-%s.ts', (kind) => {
  it('serves the page and the API under /admin/embedq, takes a JSON mutation, leaves other routes to the app', async () => {
    await seed()
    const ex = startCli([], {
      script: `examples/dashboard-${kind}.ts`,
      env: { PORT: '0', EMBEDQ_DASHBOARD_TOKEN: TOKEN, REDIS_URL: server.url },
      timeoutMs: 40_000,
    })
    try {
      const m = await ex.waitFor(/dashboard: (http:\/\/127\.0\.0\.1:\d+)\/admin\/embedq\//, 30_000)
      const origin = m[1]!
      const base = `${origin}/admin/embedq`
      const page = await fetch(`${base}/`)
      expect(page.status).toBe(200)
      expect(page.headers.get('content-security-policy')).toContain("script-src 'self'")
      const html = await page.text()
      const src = /<script defer src="([^"]+)"/.exec(html)?.[1]
      expect((await fetch(`${base}/${src}`)).status).toBe(200)
      const bare = await fetch(base, { redirect: 'manual' })
      expect(bare.status).toBe(308)
      expect(bare.headers.get('location')).toBe('embedq/')
      const list = (await (await fetch(`${base}/api/queues`)).json()) as { queues: Array<{ name: string }> }
      expect(list.queues.map((q) => q.name)).toEqual(['chat', 'docs'])
      const retried = await fetch(`${base}/api/queues/chat/failed/retry`, {
        method: 'POST',
        headers: MUTATE,
        body: JSON.stringify({ keys: ['msg:chat:1002'] }),
      })
      expect(await retried.json()).toEqual({ retried: 1 })
      expect(await redis.hlen(queueKeys('embedq', 'chat').failed)).toBe(0)
      expect(await redis.hget(queueKeys('embedq', 'chat').jobs, 'msg:chat:1002')).toBe('hello')
      const refused = await fetch(`${base}/api/queues/chat/pause`, {
        method: 'POST',
        headers: { ...MUTATE, Authorization: 'Bearer wrong-token' },
        body: '{}',
      })
      expect(refused.status).toBe(403)
      expect(await (await fetch(`${origin}/`)).text()).toContain('your app')
    } finally {
      ex.child.kill('SIGTERM')
    }
    const run = await ex.done
    expect(run.signal === null ? run.code : run.signal).toBe(0)
  })
})
