/**
 * #10.8: a target hash that already holds a newer version (restored or foreign data). The write
 * fence refuses the vector; the queue must report exactly that: no `embedded`, no waiter resolved
 * with the foreign blob, a `refused` event, a dead letter, and waiters (here and in other
 * instances) rejected with `TargetVersionConflictError`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Embedder, EmbedOptions } from '../../src/embedder.js'
import {
  EmbeddingBatchQueue,
  EmbeddingFailedError,
  encodeVector,
  queueKeys,
  TargetVersionConflictError,
} from '../../src/index.js'
import { fakeVector, readVector, uniqueName, waitFor } from '../helpers/fixtures.js'
import { useQueueHarness } from '../helpers/queue-harness.js'
import { type RedisCluster, startRedisCluster } from '../helpers/redis-cluster.js'

const DIMS = 16
/** A version far above any the queue hands out (µs timestamps). */
const FOREIGN_VERSION = '9000000000000000'

describe('#10.8 a target hash holding a newer version refuses the write, and the queue says so', () => {
  const h = useQueueHarness()

  const embedder = (): Embedder => ({
    dimensions: DIMS,
    embed: async (texts: string[]) => texts.map((t) => fakeVector(t, DIMS)),
  })

  it('emits refused (not embedded), dead-letters the item and rejects its waiter with TargetVersionConflictError', async () => {
    const name = uniqueName()
    const foreign = encodeVector([1, 2])
    const target = `${name}:restored`
    const normal = `${name}:normal`
    await h.redis.hset(target, 'embedding', foreign, 'embedding_version', FOREIGN_VERSION)
    const q = h.queue({ embedder: embedder(), name, resultTimeoutMs: 10_000 })
    const embedded: string[] = []
    const refused: { key: string; version: number; error: Error }[] = []
    const failed: { key: string; error: Error }[] = []
    q.on('embedded', (i) => embedded.push(i.key))
    q.on('refused', (i) => refused.push(i))
    q.on('failed', (i) => failed.push(i))
    await q.start()
    const [job, ok] = await q.enqueueMany([
      { key: target, text: 'hello' },
      { key: normal, text: 'world' },
    ])
    q.flushNow()
    const err = await job!.result.catch((e: unknown) => e)
    expect(err).toBeInstanceOf(TargetVersionConflictError)
    expect(err).toBeInstanceOf(EmbeddingFailedError)
    expect((err as TargetVersionConflictError).key).toBe(target)
    expect((err as TargetVersionConflictError).version).toBe(job!.version)
    expect(Array.from(await ok!.result)).toEqual(Array.from(fakeVector('world', DIMS)))
    // The done/failed message can reach this process's subscriber before the worker's script
    // reply does: a result may settle a moment before its event is emitted.
    await waitFor(() => refused.length > 0 && failed.length > 0 && embedded.length > 0, 5_000, 'the events')

    expect(embedded).toEqual([normal])
    expect(refused.map((r) => r.key)).toEqual([target])
    expect(refused[0]!.error).toBeInstanceOf(TargetVersionConflictError)
    expect(failed.map((f) => f.key)).toEqual([target])
    // The target keeps what it held: no zero vector, no overwrite.
    expect(await h.redis.hgetBuffer(target, 'embedding')).toEqual(foreign)
    expect(await h.redis.hget(target, 'embedding_version')).toBe(FOREIGN_VERSION)
    const letters = await q.failed()
    expect(letters).toHaveLength(1)
    expect(letters[0]).toMatchObject({
      key: target,
      version: job!.version,
      reason: 'target-version-conflict',
    })
    const k = queueKeys('embedq', name)
    expect(await h.redis.zcard(k.inflight)).toBe(0)
    expect(await h.redis.zcard(k.versions)).toBe(0)
    const flushed = await q.flushAndWait({ timeoutMs: 2_000 })
    expect(flushed.drained).toBe(true)
  })

  it('a waiter in another instance rejects with TargetVersionConflictError instead of resolving with the foreign blob', async () => {
    const name = uniqueName()
    const target = `${name}:restored`
    await h.redis.hset(target, 'embedding', encodeVector([1, 2]), 'embedding_version', FOREIGN_VERSION)
    const producer = h.queue({
      embedder: embedder(),
      name,
      worker: false,
      redis: h.client(),
      resultTimeoutMs: 10_000,
    })
    const watcher = h.queue({
      embedder: embedder(),
      name,
      worker: false,
      redis: h.client(),
      resultTimeoutMs: 10_000,
    })
    const worker = h.queue({ embedder: embedder(), name, redis: h.client() })
    await producer.start()
    await watcher.start()
    const job = await producer.enqueue(target, 'hello')
    await worker.start()
    worker.flushNow()
    const err = await job.result.catch((e: unknown) => e)
    expect(err).toBeInstanceOf(TargetVersionConflictError)
    // A late reader finds the dead letter, not the foreign blob.
    const late = await watcher
      .result(target, { version: job.version, timeoutMs: 5_000 })
      .catch((e: unknown) => e)
    expect(late).toBeInstanceOf(TargetVersionConflictError)
  })

  it('a refusal because newer text of the same key was written meanwhile is not a conflict: the newer text wins', async () => {
    const name = uniqueName()
    const key = `${name}:k`
    let release!: () => void
    const gate = new Promise<void>((r) => {
      release = r
    })
    let calls = 0
    const slow: Embedder = {
      dimensions: DIMS,
      async embed(texts: string[], _o?: EmbedOptions) {
        if (calls++ === 0) await gate
        return texts.map((t) => fakeVector(t, DIMS))
      },
    }
    const q = h.queue({ embedder: slow, name, resultTimeoutMs: 10_000 })
    const refused: string[] = []
    q.on('refused', (i) => refused.push(i.key))
    await q.start()
    const v1 = await q.enqueue(key, 'old text')
    q.flushNow()
    await waitFor(() => calls === 1, 5_000, 'the first call')
    const v2 = await q.enqueue(key, 'new text')
    // As if another worker had already written v2's vector (a lease that expired, say).
    await h.redis.hset(
      key,
      'embedding',
      encodeVector(fakeVector('new text', DIMS)),
      'embedding_version',
      v2.version,
    )
    release()
    q.flushNow()
    const [r1, r2] = await Promise.all([v1.result, v2.result])
    expect(Array.from(r1)).toEqual(Array.from(fakeVector('new text', DIMS)))
    expect(Array.from(r2)).toEqual(Array.from(fakeVector('new text', DIMS)))
    expect(refused).toEqual([])
    expect(await q.failed()).toEqual([])
    expect(Array.from((await readVector(h.redis, key))!)).toEqual(Array.from(fakeVector('new text', DIMS)))
  })
})

describe('#10.8 on a Redis Cluster (per-target fenced writes, pipelined per node)', () => {
  let cluster: RedisCluster
  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3 })
  }, 60_000)
  afterAll(async () => {
    await cluster?.destroy()
  })

  it('a refused write on a cluster node is reported like on a single Redis', async () => {
    const client = cluster.client()
    const name = uniqueName()
    const q = new EmbeddingBatchQueue({
      redis: client,
      name,
      embedder: { dimensions: DIMS, embed: async (texts: string[]) => texts.map((t) => fakeVector(t, DIMS)) },
      flushIntervalMs: 60_000,
      resultTimeoutMs: 10_000,
    })
    try {
      // Targets on different slots (so on different nodes), one of them restored with a newer version.
      const keys = ['{a}restored', '{b}fine', '{c}fine'].map((k) => `${name}:${k}`)
      await client.hset(keys[0]!, 'embedding', encodeVector([1, 2]), 'embedding_version', FOREIGN_VERSION)
      const refused: string[] = []
      q.on('refused', (i) => refused.push(i.key))
      await q.start()
      const jobs = await q.enqueueMany(keys.map((key) => ({ key, text: `text of ${key}` })))
      q.flushNow()
      const outcomes = await Promise.allSettled(jobs.map((j) => j.result))
      await waitFor(() => refused.length > 0, 5_000, 'the refused event')
      expect(outcomes[0]!.status).toBe('rejected')
      expect((outcomes[0] as PromiseRejectedResult).reason).toBeInstanceOf(TargetVersionConflictError)
      expect(outcomes.slice(1).map((o) => o.status)).toEqual(['fulfilled', 'fulfilled'])
      expect(refused).toEqual([keys[0]])
      expect(await client.hget(keys[0]!, 'embedding_version')).toBe(FOREIGN_VERSION)
    } finally {
      await q.stop()
      client.disconnect()
    }
  })
})
