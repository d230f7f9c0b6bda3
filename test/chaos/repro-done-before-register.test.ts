/**
 * Repro (found by the chaos suite: 21 producer promises never settled in one run, all of one
 * acknowledged chunk enqueued right after the redis-server restart): a done message that the
 * producer's subscriber receives before the producer has processed the enqueue script's reply
 * is dropped, because `writeChunks` registers the waiters only after that reply (the versions
 * come from it). Nothing looks again later: the waiter waits forever (`resultTimeoutMs: 0`),
 * although the vector and its version are in the target hash (invariant 5).
 *
 * The two replies travel on two connections (the client and its subscriber duplicate), so
 * nothing orders them. In the chaos run the producer's event loop stalled (two cores, five
 * busy processes, a burst of reconnect work) while a worker claimed, embedded and acknowledged
 * the chunk, and on waking it read the subscriber's socket first. Here the proxy holds the
 * enqueue reply back instead, which gives the same order every time.
 */
import { Redis } from 'ioredis'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { EmbeddingBatchQueue } from '../../src/index.js'
import { fakeEmbedder, fakeVector, readVector, sleep, uniqueName, waitFor } from '../helpers/fixtures.js'
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
  await Promise.allSettled(queues.map((q) => q.stop()))
  for (const c of clients) c.disconnect()
  await proxy.close()
  await server.destroy()
})

it("a producer's promise settles even when the done message arrives before the enqueue reply", async () => {
  const name = uniqueName('repro')
  const direct = server.client()
  const viaProxy = new Redis({ port: proxy.port, host: '127.0.0.1' }) // proxy connection #0
  clients.push(direct, viaProxy)

  const worker = new EmbeddingBatchQueue({
    redis: direct,
    embedder: fakeEmbedder(),
    name,
    flushIntervalMs: 0,
  })
  const producer = new EmbeddingBatchQueue({ redis: viaProxy, embedder: fakeEmbedder(), name, worker: false })
  queues.push(worker, producer)
  await worker.start()
  await producer.start() // its subscriber is proxy connection #1
  expect(proxy.connections).toBe(2)

  // Warm-up: the enqueue script is now in Redis's script cache (EVALSHA succeeds at once).
  const warm = await producer.enqueue('doc:warm', 'warm up')
  await warm.result

  // The reply of the next enqueue is late on the producer's command connection.
  proxy.holdReplies(0)
  const pending = producer.enqueue('doc:1', 'hello')
  // Meanwhile the script runs, the worker embeds and acknowledges the item, and the done
  // message reaches the producer's subscriber (connection #1, not held).
  await waitFor(
    async () => (await direct.hget('doc:1', 'embedding_version')) !== null,
    5_000,
    'vector written',
  )
  await sleep(100)
  proxy.releaseReplies(0)
  const job = await pending

  expect(Number(await direct.hget('doc:1', 'embedding_version'))).toBe(job.version)
  expect(Array.from((await readVector(direct, 'doc:1'))!)).toEqual(Array.from(fakeVector('hello', 8)))
  const outcome = await Promise.race([
    job.result.then(
      (v) =>
        Array.from(v).join() === Array.from(fakeVector('hello', 8)).join() ? 'resolved' : 'wrong vector',
      (err: Error) => `rejected: ${err.message}`,
    ),
    sleep(3_000).then(() => 'still waiting after 3 s (vector and version are in the target hash)'),
  ])
  expect(outcome).toBe('resolved')
}, 30_000)
