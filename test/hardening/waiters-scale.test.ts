/**
 * Issue #10.10 (waiting must scale) and the waiter side of #10.8 (a waiter never resolves
 * with a blob that is not one of the queue's vectors), on private redis-server processes.
 */
import { spawn } from 'node:child_process'
import { Redis } from 'ioredis'
import RedisMock from 'ioredis-mock'
import { beforeAll, describe, expect, it } from 'vitest'
import type { WaitersFigures } from '../../bench/workloads/waiters.js'
import { readDoneMessage } from '../../src/codec.js'
import { type Deadline, DeadlineHeap } from '../../src/deadline-heap.js'
import type { Embedder } from '../../src/embedder.js'
import {
  EmbeddingBatchQueue,
  EmbeddingFailedError,
  EmbedTimeoutError,
  ForeignVectorError,
  queueKeys,
} from '../../src/index.js'
import { keySlot } from '../../src/keys.js'
import { commandCalls, fakeEmbedder, fakeVector, sleep, uniqueName, waitFor } from '../helpers/fixtures.js'
import { useQueueHarness } from '../helpers/queue-harness.js'

const h = useQueueHarness()

/** Runs bench/workloads/waiters.ts in a child with --expose-gc (its own redis-server). */
function runWaitersBench(args: string[]): Promise<WaitersFigures> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--expose-gc', '--import', 'tsx', 'bench/workloads/waiters.ts', ...args],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
    let out = ''
    let err = ''
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString()
    })
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString()
    })
    child.once('error', reject)
    child.once('exit', (code) => {
      if (code !== 0) reject(new Error(`waiters bench exited with ${code}: ${err.slice(-2000)}`))
      else resolve(JSON.parse(out.trim().split('\n').pop() ?? '') as WaitersFigures)
    })
  })
}

/** An embedder whose calls wait until the test releases them, one by one. */
function gatedEmbedder(maxBatchSize: number, dims = 8): Embedder & { held: (() => void)[] } {
  const held: (() => void)[] = []
  return {
    dimensions: dims,
    maxBatchSize,
    held,
    async embed(texts: string[]) {
      await new Promise<void>((r) => held.push(r))
      return texts.map((t) => fakeVector(t, dims))
    },
  }
}

/**
 * A producer whose subscriber connection, once killed, stays away for `downMs` (its
 * client's retryStrategy, which `duplicate()` copies): messages published meanwhile are lost.
 */
function slowReconnectClient(downMs: number): Redis {
  const c = new Redis({ port: h.server.port, host: '127.0.0.1', retryStrategy: () => downMs })
  c.on('error', () => {})
  return c
}

describe('#10.10 waiting scales: heap, Redis work per tick and stop() do not grow with what waits', () => {
  let figures: WaitersFigures
  beforeAll(async () => {
    // 200k tracked results, nothing draining, one safety-net tick, then stop() with all of them.
    figures = await runWaitersBench(['--n', '200000', '--stop-n', '0', '--ticks', '1'])
  }, 120_000)

  it('a waiting result costs at most 1 KB of heap, its job included, also across a safety-net tick', () => {
    expect(figures.waiting).toBe(200_000)
    expect(figures.heapBytesPerWaiter).toBeGreaterThan(0)
    expect(figures.heapBytesPerWaiter).toBeLessThanOrEqual(1024)
    // The old tick re-read all 200k targets at once: hundreds of MB on top of the waiters.
    expect(figures.peakHeapBytesPerWaiter).toBeLessThanOrEqual(1024)
  })

  it('the safety-net tick sends a constant number of commands with 200k waiters, not one per waiter', () => {
    expect(figures.ticks).toBe(1)
    expect(figures.commandsPerTick).toBeLessThanOrEqual(3)
  })

  it('stop() with 200k waiters rejects them all quickly and allocates next to nothing per waiter', () => {
    const [stop] = figures.stops
    expect(stop!.waiters).toBe(200_000)
    expect(stop!.rejected).toBe(200_000)
    expect(stop!.ms).toBeLessThan(2_000)
    // One shared QueueStoppedError, no copy of the waiter map: well under 100 B per waiter.
    expect(stop!.heapGrowthBytes / stop!.waiters).toBeLessThan(100)
  })
})

describe('#10.10 lost pub/sub messages are recovered from the done log, in O(missed)', () => {
  it('results finished while the subscriber was disconnected resolve from the log, reading only their targets', async () => {
    const name = uniqueName()
    const client = slowReconnectClient(700)
    try {
      const producer = h.queue({ name, worker: false, redis: client })
      await producer.start()
      // 2,000 waiters for keys nobody enqueues: a full recheck would read all of them.
      const idle = Array.from({ length: 2_000 }, (_, i) => producer.result(`idle:${name}:${i}`))
      for (const p of idle) p.catch(() => {})
      const jobs = await producer.enqueueMany(
        Array.from({ length: 200 }, (_, i) => ({ key: `lost:${name}:${i}`, text: `text ${i}` })),
      )
      let resolved = 0
      for (const j of jobs) void j.result.then(() => resolved++)
      await waitFor(
        async () => (await producer.stats()).local.waiting === 2_200,
        5_000,
        'all waiters registered',
      )

      const embedder = gatedEmbedder(200)
      const worker = h.queue({ name, embedder, maxBatchSize: 200 })
      await worker.start()
      worker.flushNow()
      await waitFor(() => embedder.held.length === 1, 5_000, 'the chunk to reach the embedder')

      const before = await commandCalls(h.redis)
      await h.redis.client('KILL', 'TYPE', 'pubsub')
      embedder.held.shift()!()
      await waitFor(async () => (await worker.pendingCount()) === 0, 5_000, 'the worker to finish')
      // The done message went out while the producer's subscriber was away.
      expect(resolved).toBe(0)

      const results = await Promise.all(jobs.map((j) => j.result))
      expect(Array.from(results[42]!)).toEqual(Array.from(fakeVector('text 42', 8)))
      const after = await commandCalls(h.redis)
      expect((after.xrange ?? 0) - (before.xrange ?? 0)).toBeGreaterThanOrEqual(1)
      // The 200 missed targets were read, not the 2,200 waited for.
      const reads = (after.hmget ?? 0) - (before.hmget ?? 0)
      expect(reads).toBeGreaterThanOrEqual(200)
      expect(reads).toBeLessThan(1_000)
      expect((await producer.stats()).local.waiting).toBe(2_000)
    } finally {
      await client.quit().catch(() => client.disconnect())
    }
  }, 30_000)

  it('a log trimmed past the last seen ID falls back to paged rechecks of every waiter', async () => {
    const name = uniqueName()
    const client = slowReconnectClient(700)
    try {
      const producer = h.queue({ name, worker: false, redis: client })
      await producer.start()
      const idle = Array.from({ length: 2_000 }, (_, i) => producer.result(`idle:${name}:${i}`))
      for (const p of idle) p.catch(() => {})
      const jobs = await producer.enqueueMany(
        Array.from({ length: 200 }, (_, i) => ({ key: `trim:${name}:${i}`, text: `text ${i}` })),
      )
      let resolved = 0
      for (const j of jobs) void j.result.then(() => resolved++)
      await waitFor(
        async () => (await producer.stats()).local.waiting === 2_200,
        5_000,
        'all waiters registered',
      )

      // Two chunks of 100, acknowledged one after the other.
      const embedder = gatedEmbedder(100)
      const worker = h.queue({ name, embedder, maxBatchSize: 200, concurrency: 2 })
      await worker.start()
      worker.flushNow()
      await waitFor(() => embedder.held.length === 2, 5_000, 'both chunks to reach the embedder')

      const before = await commandCalls(h.redis)
      await h.redis.client('KILL', 'TYPE', 'pubsub')
      embedder.held.shift()!()
      await waitFor(async () => (await worker.pendingCount()) === 100, 5_000, 'the first chunk')
      // The first chunk's log entry is trimmed away before anyone read it.
      await h.redis.xtrim(queueKeys('embedq', name).doneStream, 'MAXLEN', 0)
      embedder.held.shift()!()
      await waitFor(async () => (await worker.pendingCount()) === 0, 5_000, 'the second chunk')
      expect(resolved).toBe(0)

      const results = await Promise.all(jobs.map((j) => j.result))
      expect(Array.from(results[7]!)).toEqual(Array.from(fakeVector('text 7', 8)))
      expect(Array.from(results[170]!)).toEqual(Array.from(fakeVector('text 170', 8)))
      // The log could not tell what the trimmed entry held: every waiter was rechecked.
      const after = await commandCalls(h.redis)
      expect((after.hmget ?? 0) - (before.hmget ?? 0)).toBeGreaterThanOrEqual(2_200)
      expect((await producer.stats()).local.waiting).toBe(2_000)
    } finally {
      await client.quit().catch(() => client.disconnect())
    }
  }, 30_000)

  it('a message lost without any disconnect is found by the next safety-net tick (done and given up)', async () => {
    const name = uniqueName()
    const k = queueKeys('embedq', name)
    const producer = h.queue({ name, worker: false })
    await producer.start()
    const [done, failed] = await producer.enqueueMany([
      { key: `silent:${name}:d`, text: 'd' },
      { key: `silent:${name}:f`, text: 'f' },
    ])
    // What an ack and a give-up leave behind, with their PUBLISH lost on the way.
    const vector = fakeVector('d', 8)
    await h.redis.hset(
      done!.key,
      'embedding',
      Buffer.from(vector.buffer),
      'embedding_version',
      String(done!.version),
    )
    const letter = JSON.stringify({
      key: failed!.key,
      version: failed!.version,
      text: 'f',
      error: 'boom',
      attempts: 3,
      failedAt: Date.now(),
    })
    await h.redis.hset(k.failed, failed!.key, letter)
    const body = `D${done!.version}:${Buffer.byteLength(done!.key)}:${done!.key}0:F${failed!.version}:${Buffer.byteLength(failed!.key)}:${failed!.key}0:`
    await h.redis.xadd(k.doneStream, '*', 'p', '0-0', 'm', body)
    const started = Date.now()
    expect(Array.from(await done!.result)).toEqual(Array.from(vector))
    await expect(failed!.result).rejects.toBeInstanceOf(EmbeddingFailedError)
    // Found by the tick (every 5 s), not by a timeout.
    expect(Date.now() - started).toBeLessThan(7_000)
  }, 15_000)

  it('every done message carries its log position, chained to the one before', async () => {
    const name = uniqueName()
    const spy = h.client()
    const seen: Buffer[] = []
    await spy.subscribe(queueKeys('embedq', name).doneChannel)
    spy.on('messageBuffer', (_c: Buffer, m: Buffer) => seen.push(m))
    const q = h.queue({ name, embedder: fakeEmbedder({ maxBatchSize: 10 }), maxBatchSize: 10 })
    await q.start()
    const jobs = await q.enqueueMany(
      Array.from({ length: 30 }, (_, i) => ({ key: `c:${name}:${i}`, text: `t${i}` })),
    )
    q.flushNow()
    await Promise.all(jobs.map((j) => j.result))
    await waitFor(() => seen.length === 3, 2_000, 'three done messages')
    const positions = seen.map((m) => readDoneMessage(m).log!)
    expect(positions[0]!.prev).toBe('0-0')
    expect(positions[1]!.prev).toBe(positions[0]!.id)
    expect(positions[2]!.prev).toBe(positions[1]!.id)
    const log = await h.redis.xrange(queueKeys('embedq', name).doneStream, '-', '+')
    expect(log.map(([id]) => id)).toEqual(positions.map((p) => p.id))
  })
})

describe('#10.10 result timeouts share one timer', () => {
  it('5,000 results with a timeout add no timer per waiter and each rejects with EmbedTimeoutError', async () => {
    const q = h.queue({ worker: false, resultTimeoutMs: 400 })
    await q.start()
    const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
    const base = timers()
    const jobs = await q.enqueueMany(
      Array.from({ length: 5_000 }, (_, i) => ({ key: `to:${i}`, text: `t${i}` })),
    )
    expect(timers() - base).toBeLessThanOrEqual(2)
    const started = Date.now()
    const outcomes = await Promise.allSettled(jobs.map((j) => j.result))
    expect(Date.now() - started).toBeLessThan(3_000)
    expect(outcomes.every((o) => o.status === 'rejected' && o.reason instanceof EmbedTimeoutError)).toBe(true)
    expect((await q.stats()).local.waiting).toBe(0)
  })

  it('the deadline heap expires entries in deadline order and never those removed in time', async () => {
    const expired: (Deadline & { n: number })[] = []
    const heap = new DeadlineHeap<Deadline & { n: number }>((e) => expired.push(e))
    const now = Date.now()
    const entries = Array.from({ length: 300 }, (_, n) => ({
      n,
      deadline: now + 5 + ((n * 7919) % 120),
      slot: -1,
    }))
    for (const e of entries) heap.add(e)
    const removed = new Set(entries.filter((e) => e.n % 3 === 0))
    for (const e of removed) heap.remove(e)
    await waitFor(() => expired.length === 200, 2_000, 'the rest to expire')
    await sleep(50)
    expect(expired).toHaveLength(200)
    expect(expired.some((e) => removed.has(e))).toBe(false)
    for (let i = 1; i < expired.length; i++)
      expect(expired[i]!.deadline).toBeGreaterThanOrEqual(expired[i - 1]!.deadline)
    expect(heap.size).toBe(0)
  })
})

describe('#10.10 the done log on Redis Cluster and on the in-process mock', () => {
  it("the done log carries the queue's hash tag (one slot with every other queue key)", () => {
    const k = queueKeys('embedq', 'orders')
    expect(keySlot(k.doneStream)).toBe(keySlot(k.pending))
  })

  it('on ioredis-mock no done log is kept, and results resolve as before', async () => {
    const redis = new RedisMock() as unknown as Redis
    const name = uniqueName()
    const q = new EmbeddingBatchQueue({ redis, embedder: fakeEmbedder(), name, maxBatchSize: 10 })
    try {
      await q.start()
      const jobs = await q.enqueueMany(
        Array.from({ length: 25 }, (_, i) => ({ key: `m:${i}`, text: `m ${i}` })),
      )
      expect((await q.flushAndWait({ timeoutMs: 5_000 })).drained).toBe(true)
      const vectors = await Promise.all(jobs.map((j) => j.result))
      expect(Array.from(vectors[3]!)).toEqual(Array.from(fakeVector('m 3', 8)))
      expect(await redis.exists(queueKeys('embedq', name).doneStream)).toBe(0)
    } finally {
      await q.stop()
    }
  })
})

describe('#10.8 a waiter never resolves with a blob that is not dimensions × 4 bytes', () => {
  it('a done result whose target holds a 2-dim blob at a newer version rejects with ForeignVectorError', async () => {
    const name = uniqueName()
    const q = h.queue({ name, worker: false, embedder: fakeEmbedder({ dims: 16 }) })
    await q.start()
    const key = `fx:${name}`
    const job = await q.enqueue(key, 'hello')
    // Restored or foreign data: a newer version holding a 2-dim vector, announced as done.
    const foreign = Buffer.from(new Float32Array([1, 2]).buffer)
    const version = job.version + 1_000
    await h.redis.hset(key, 'embedding', foreign, 'embedding_version', String(version))
    await h.redis.publish(
      queueKeys('embedq', name).doneChannel,
      `D${version}:${Buffer.byteLength(key)}:${key}0:`,
    )
    const err = await job.result.then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(err).toBeInstanceOf(ForeignVectorError)
    expect(err).toMatchObject({ key, version, bytes: 8, expectedBytes: 64 })
  })

  it('result() for a key whose target already holds a foreign blob rejects instead of resolving with it', async () => {
    const q = h.queue({ worker: false, embedder: fakeEmbedder({ dims: 16 }) })
    await q.start()
    const key = `fx2:${uniqueName()}`
    await h.redis.hset(key, 'embedding', Buffer.alloc(8), 'embedding_version', '5')
    await expect(q.result(key, { timeoutMs: 2_000 })).rejects.toBeInstanceOf(ForeignVectorError)
    // A blob of the right size still resolves.
    const good = fakeVector('good', 16)
    await h.redis.hset(key, 'embedding', Buffer.from(good.buffer), 'embedding_version', '6')
    expect(Array.from(await q.result(key, { timeoutMs: 2_000 }))).toEqual(Array.from(good))
  })
})
