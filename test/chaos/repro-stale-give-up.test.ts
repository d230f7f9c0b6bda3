/**
 * Repro (found while building the chaos suite): a worker that lost its lease and then gives an
 * item up overwrites the good vector another worker wrote for the same version with a zero
 * vector, and records no dead letter. The key ends "finished" with zeros: neither the vector of
 * its latest text nor a zero vector plus a dead letter (invariant 2).
 *
 * Why: Worker.fail() writes the zero vector (write-vector-1.lua, fenced only against *newer*
 * versions: `cur > version`) before fail-9.lua checks that the lease and the version are still
 * current. When the lease was lost and the item finished elsewhere, the script skips the item
 * (returns -1), but the zero vector has already replaced the real one.
 */
import { Redis } from 'ioredis'
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { Embedder } from '../../src/embedder.js'
import { EmbedderError } from '../../src/errors.js'
import { EmbeddingBatchQueue } from '../../src/index.js'
import { queueKeys } from '../../src/keys.js'
import { fakeEmbedder, fakeVector, readVector, uniqueName, waitFor } from '../helpers/fixtures.js'
import { type RedisServer, startRedisServer } from '../helpers/redis-server.js'
import { type FreezableProxy, startProxy } from './tcp-proxy.js'

let server: RedisServer
let proxy: FreezableProxy
const clients: Redis[] = []
const queues: EmbeddingBatchQueue[] = []

beforeAll(async () => {
  server = await startRedisServer()
  proxy = await startProxy(server.port)
})

afterAll(async () => {
  proxy.thaw()
  await Promise.allSettled(queues.map((q) => q.stop()))
  for (const c of clients) c.disconnect()
  await proxy.close()
  await server.destroy()
})

it('a worker that lost its lease does not overwrite the vector written by the new lease holder when it gives the item up', async () => {
  const name = uniqueName('repro')
  const direct = server.client()
  const viaProxy = new Redis({ port: proxy.port, host: '127.0.0.1' })
  clients.push(direct, viaProxy)

  // Worker A: its provider call hangs until we let it fail (retryably); its attempt is the last one.
  let callsA = 0
  let failA: (err: Error) => void = () => {}
  const embedderA: Embedder = {
    dimensions: 8,
    embed: () => {
      callsA++
      return new Promise((_, reject) => {
        failA = reject
      })
    },
  }
  const a = new EmbeddingBatchQueue({
    redis: viaProxy,
    embedder: embedderA,
    name,
    leaseMs: 1_000,
    maxAttempts: 1,
    reclaimIntervalMs: 3_600_000,
    flushIntervalMs: 0,
  })
  const producer = new EmbeddingBatchQueue({ redis: direct, embedder: fakeEmbedder(), name, worker: false })
  queues.push(a, producer)

  const job = await producer.enqueue('doc:1', 'hello')
  await a.start()
  await waitFor(() => callsA === 1, 5_000, 'worker A called the provider')

  // A is cut off from Redis for longer than its lease: its heartbeats cannot renew it.
  proxy.freeze()
  const b = new EmbeddingBatchQueue({
    redis: direct,
    embedder: fakeEmbedder(),
    name,
    leaseMs: 1_000,
    reclaimIntervalMs: 100,
    flushIntervalMs: 0,
  })
  queues.push(b)
  await b.start()
  // B reclaims the expired lease, embeds the text and acknowledges it.
  expect(Array.from(await job.result)).toEqual(Array.from(fakeVector('hello', 8)))
  expect(Array.from((await readVector(direct, 'doc:1'))!)).toEqual(Array.from(fakeVector('hello', 8)))

  // The partition heals; A's provider call now fails and A gives the item up (last attempt).
  proxy.thaw()
  failA(new EmbedderError('503 Service Unavailable', { status: 503, retryable: true }))
  await a.stop()

  const k = queueKeys('embedq', name)
  const letters = await direct.hlen(k.failed)
  const stored = await readVector(direct, 'doc:1')
  // Invariant 2: the vector of the latest text, or a zero vector plus a dead letter.
  const outcome =
    stored && Array.from(stored).join() === Array.from(fakeVector('hello', 8)).join()
      ? 'vector of latest text'
      : stored?.every((x) => x === 0) && letters === 1
        ? 'zero vector + dead letter'
        : `zero vector without a dead letter (dead letters: ${letters}, unfinished: ${await direct.zcard(k.versions)})`
  expect(outcome).toBe('vector of latest text')
}, 30_000)
