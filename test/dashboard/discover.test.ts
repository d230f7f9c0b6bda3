/**
 * Queue discovery from the keys alone, on a private redis-server: every queue under the prefix,
 * nothing from another prefix, target hashes or look-alike keys.
 */
import type { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { discoverQueues, escapeGlob, queueNameOf } from '../../src/dashboard/discover.js'
import { queueKeys } from '../../src/keys.js'
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

describe('dashboard queue discovery', () => {
  it('finds every queue under the prefix from its keys, sorted, and nothing else', async () => {
    const p = 'disc'
    await redis.set(queueKeys(p, 'chat').seq, '5')
    await redis.zadd(queueKeys(p, 'docs').pending, 1, 'doc:1')
    await redis.hset(queueKeys(p, 'only-dead').failed, 'k', '{}')
    await redis.zadd(queueKeys(p, 'a:b/c').versions, 1, 'x')
    // Not queues of this prefix: another prefix, a prefix that extends this one, targets, a rate limiter only.
    await redis.set(queueKeys('other', 'elsewhere').seq, '1')
    await redis.set(queueKeys('disc2', 'near').seq, '1')
    await redis.hset('msg:1', 'text', 'hello')
    await redis.set(`${p}:{limiter-only}:ratelimit:tokens`, '3')
    for (let i = 0; i < 3000; i++) await redis.set(`noise:${i}`, '1')
    expect(await discoverQueues(redis, p, { scanCount: 100 })).toEqual(['a:b/c', 'chat', 'docs', 'only-dead'])
  })

  it('treats glob characters in the prefix literally', async () => {
    await redis.set(queueKeys('we*rd', 'q1').seq, '1')
    await redis.set(queueKeys('weXrd', 'q2').seq, '1')
    expect(await discoverQueues(redis, 'we*rd')).toEqual(['q1'])
    expect(escapeGlob('a*b?[c]\\')).toBe('a\\*b\\?\\[c\\]\\\\')
  })

  it('stops at maxQueues', async () => {
    for (let i = 0; i < 20; i++) await redis.set(queueKeys('many', `q${String(i).padStart(2, '0')}`).seq, '1')
    const names = await discoverQueues(redis, 'many', { maxQueues: 5 })
    expect(names).toHaveLength(5)
  })

  it('parses only queue-owned key names', () => {
    expect(queueNameOf('embedq:{default}:seq', 'embedq')).toBe('default')
    expect(queueNameOf('embedq:{default}:ratelimit:log', 'embedq')).toBeNull()
    expect(queueNameOf('embedq:{}:seq', 'embedq')).toBeNull()
    expect(queueNameOf('embedqx:{a}:seq', 'embedq')).toBeNull()
  })
})
