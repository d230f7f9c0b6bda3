/**
 * One private redis-server per test file, and queues that are stopped after each test.
 * Usage: `const h = useQueueHarness()` at the top of a describe block.
 */
import type { Redis } from 'ioredis'
import { afterAll, afterEach, beforeAll } from 'vitest'
import { EmbeddingBatchQueue } from '../../src/index.js'
import type { QueueOptions } from '../../src/options.js'
import { fakeEmbedder, uniqueName } from './fixtures.js'
import { type RedisServer, startRedisServer } from './redis-server.js'

export interface Harness {
  server: RedisServer
  /** A client of the test file's own (not closed by queues). */
  redis: Redis
  /** Creates a queue on a fresh random name unless one is given; stopped after the test. */
  queue(opts?: Partial<QueueOptions>): EmbeddingBatchQueue
  /** A new client, closed after the test. */
  client(): Redis
}

export function useQueueHarness(serverArgs: string[] = []): Harness {
  const queues: EmbeddingBatchQueue[] = []
  const clients: Redis[] = []
  const h = {} as Harness
  beforeAll(async () => {
    h.server = await startRedisServer({ args: serverArgs })
    h.redis = h.server.client()
    h.redis.on('error', () => {})
  })
  afterEach(async () => {
    await Promise.allSettled(queues.splice(0).map((q) => q.stop()))
    await Promise.allSettled(clients.splice(0).map((c) => c.quit()))
  })
  afterAll(async () => {
    await h.redis?.quit()
    await h.server?.destroy()
  })
  h.client = () => {
    const c = h.server.client()
    c.on('error', () => {}) // outage tests stop the server; reconnect errors are expected
    clients.push(c)
    return c
  }
  h.queue = (opts = {}) => {
    const q = new EmbeddingBatchQueue({
      redis: h.redis,
      embedder: fakeEmbedder(),
      name: uniqueName(),
      flushIntervalMs: 60_000,
      ...opts,
    })
    queues.push(q)
    return q
  }
  return h
}
