/**
 * One private Redis Cluster per test file, queues and clients that are closed after each
 * test, and the checks the cluster suites share. Usage: `const h = useClusterHarness()`.
 */
import type { Cluster } from 'ioredis'
import { afterAll, afterEach, beforeAll, expect } from 'vitest'
import { EmbeddingBatchQueue, type EmbedJob } from '../../src/index.js'
import { queueKeys } from '../../src/keys.js'
import type { QueueOptions } from '../../src/options.js'
import { type FakeEmbedder, fakeEmbedder, fakeVector, uniqueName, waitFor } from '../helpers/fixtures.js'
import { type RedisCluster, type RedisClusterOptions, startRedisCluster } from '../helpers/redis-cluster.js'

export interface ClusterHarness {
  cluster: RedisCluster
  /** The file's own Cluster client (queues use it unless given another). */
  redis: Cluster
  /** A new Cluster client — another "process" as far as Redis is concerned. Closed after the test. */
  client(): Cluster
  /** A queue on a fresh random name unless one is given; stopped after the test. */
  queue(opts?: Partial<QueueOptions>): EmbeddingBatchQueue
  /** Port of a master (serving slots) other than `port`. */
  otherMaster(port: number): Promise<number>
}

export function useClusterHarness(opts: RedisClusterOptions = {}): ClusterHarness {
  const queues: EmbeddingBatchQueue[] = []
  const clients: Cluster[] = []
  const h = {} as ClusterHarness
  beforeAll(async () => {
    h.cluster = await startRedisCluster(opts)
    h.redis = h.cluster.client()
  })
  afterEach(async () => {
    await Promise.allSettled(queues.splice(0).map((q) => q.stop()))
    await Promise.allSettled(clients.splice(0).map((c) => c.quit()))
  })
  afterAll(async () => {
    await h.redis?.quit().catch(() => {})
    await h.cluster?.destroy()
  })
  h.client = () => {
    const c = h.cluster.client()
    clients.push(c)
    return c
  }
  h.queue = (o = {}) => {
    const q = new EmbeddingBatchQueue({
      redis: h.redis,
      embedder: fakeEmbedder(),
      name: uniqueName(),
      flushIntervalMs: 60_000,
      ...o,
    })
    queues.push(q)
    return q
  }
  h.otherMaster = async (port) => {
    const masters = (await h.cluster.topology()).filter((n) => n.role === 'master' && n.slots.length > 0)
    return masters.find((n) => n.port !== port)!.port
  }
  return h
}

/**
 * Options that let a worker recover quickly from a Redis outage: short leases and frequent
 * sweeps (a chunk whose ack failed stays in flight until its lease ends), short backoffs.
 * Today a failed target write is charged to the item as an attempt (see the known-issue
 * tests in cluster.test.ts), so these allow more attempts than the default: the tests that
 * use them check that nothing is lost, not how many attempts it took.
 */
export const resilient: Partial<QueueOptions> = {
  leaseMs: 2_000,
  reclaimIntervalMs: 250,
  pollIntervalMs: 200,
  backoffBaseMs: 100,
  backoffMaxMs: 500,
  maxAttempts: 10,
  enqueueTimeoutMs: 10_000,
}

/** `n` items whose target keys (no hash tag) spread over the whole keyspace. */
export const items = (prefix: string, n: number): { key: string; text: string }[] =>
  Array.from({ length: n }, (_, i) => ({ key: `${prefix}:msg:${i}`, text: `${prefix} text ${i}` }))

/** Every target holds the vector of its text (read through the cluster, whatever slot it is on). */
export async function expectVectors(
  c: Cluster,
  list: readonly { key: string; text: string }[],
): Promise<void> {
  const blobs = await Promise.all(list.map((it) => c.hgetBuffer(it.key, 'embedding')))
  list.forEach((it, i) => {
    const blob = blobs[i]
    expect(blob, it.key).toBeTruthy()
    const v = new Float32Array(blob!.buffer.slice(blob!.byteOffset, blob!.byteOffset + blob!.length))
    expect(Array.from(v), it.key).toEqual(Array.from(fakeVector(it.text, 8)))
  })
}

/** Every result resolves to the vector of its text. Bounded: a hung result fails the test. */
export async function expectResults(
  jobs: readonly EmbedJob[],
  list: readonly { text: string }[],
  timeoutMs: number,
): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new Error(`results did not all resolve within ${timeoutMs} ms`))
    }, timeoutMs)
  })
  try {
    const vectors = await Promise.race([Promise.all(jobs.map((j) => j.result)), timeout])
    vectors.forEach((v, i) => {
      expect(Array.from(v)).toEqual(Array.from(fakeVector(list[i]!.text, 8)))
    })
  } finally {
    clearTimeout(timer)
  }
}

/** Nothing of the queue is left waiting, in flight, leased, backing off or dead. */
export async function expectSettled(c: Cluster, name: string): Promise<void> {
  const k = queueKeys('embedq', name)
  const [versions, pending, inflight, leases, delayed, failed, jobs] = await Promise.all([
    c.zcard(k.versions),
    c.zcard(k.pending),
    c.zcard(k.inflight),
    c.hlen(k.leases),
    c.zcard(k.delayed),
    c.hlen(k.failed),
    c.hlen(k.jobs),
  ])
  expect({ versions, pending, inflight, leases, delayed, failed, jobs }).toEqual({
    versions: 0,
    pending: 0,
    inflight: 0,
    leases: 0,
    delayed: 0,
    failed: 0,
    jobs: 0,
  })
}

export interface SlowDrain {
  name: string
  embedder: FakeEmbedder
  worker: EmbeddingBatchQueue
  /** A producer-only instance on its own client, or the worker itself. */
  producer: EmbeddingBatchQueue
  list: { key: string; text: string }[]
  jobs: EmbedJob[]
}

/**
 * A worker on its own client draining `n` items slowly (batches of 20, 2 calls in flight),
 * started and under way, so a test can disrupt the cluster mid-run.
 */
export async function startSlowDrain(
  h: ClusterHarness,
  opts: { n: number; latencyMs: number; producerOnly: boolean },
): Promise<SlowDrain> {
  const name = uniqueName()
  const embedder = fakeEmbedder({ latencyMs: opts.latencyMs })
  const worker = h.queue({
    name,
    embedder,
    redis: h.client(),
    maxBatchSize: 20,
    concurrency: 2,
    ...resilient,
  })
  const producer = opts.producerOnly
    ? h.queue({ name, worker: false, redis: h.client(), ...resilient })
    : worker
  await worker.start()
  const list = items(name, opts.n)
  const jobs = await producer.enqueueMany(list)
  producer.flushNow()
  await waitFor(() => embedder.texts.length >= 40, 10_000, 'the drain to be under way')
  return { name, embedder, worker, producer, list, jobs }
}
