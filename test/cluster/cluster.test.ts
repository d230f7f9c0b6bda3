/**
 * The queue on a real Redis Cluster (3 masters, no replicas, started by the test setup):
 * one slot per queue, targets on any slot, several queues over several masters, results
 * across clients, and nothing lost while a slot moves or a master restarts mid-run.
 */
import { describe, expect, it } from 'vitest'
import { VectorCache } from '../../src/cache.js'
import { type EmbeddingBatchQueue, TargetWriteError } from '../../src/index.js'
import { keySlot, queueKeys } from '../../src/keys.js'
import { type FakeEmbedder, fakeEmbedder, fakeVector, uniqueName, waitFor } from '../helpers/fixtures.js'
import {
  expectResults,
  expectSettled,
  expectVectors,
  items,
  resilient,
  startSlowDrain,
  useClusterHarness,
} from './cluster-harness.js'

const h = useClusterHarness({ masters: 3 })

/** Every queue-owned key name (not the channels). */
function ownedKeys(name: string): string[] {
  const { doneChannel: _done, wakeChannel: _wake, ...keys } = queueKeys('embedq', name)
  return Object.values(keys)
}

/** The master whose connection carries the (one) classic SUBSCRIBE to `channel`. */
async function subscriberNode(channel: string): Promise<number> {
  const ports: number[] = []
  for (const port of h.cluster.masters) {
    const [, n] = (await h.cluster.call(port, 'pubsub', 'numsub', channel)) as [string, number]
    if (Number(n) > 0) ports.push(port)
  }
  expect(ports).toHaveLength(1)
  return ports[0]!
}

/** Records the attempts a queue charges to items ('retrying' and 'failed' events). */
function charges(q: EmbeddingBatchQueue): { retrying: string[]; failed: string[] } {
  const seen = { retrying: [] as string[], failed: [] as string[] }
  q.on('retrying', (i) => seen.retrying.push(`${i.key}: ${i.error.message}`))
  q.on('failed', (i) => seen.failed.push(`${i.key}: ${i.error.message}`))
  return seen
}

const none = (list: string[]): void => {
  expect(list.length, `e.g. ${list.slice(0, 3).join(' | ')}`).toBe(0)
}

describe('on Redis Cluster', () => {
  it('writes 500 vectors into targets on many slots, while every queue key lives in one slot', async () => {
    const { cluster, redis } = h
    const name = uniqueName()
    const q = h.queue({ name, maxBatchSize: 50 })
    await q.start()
    const list = items(name, 500)
    const jobs = await q.enqueueMany(list)
    expect((await q.flushAndWait({ timeoutMs: 15_000 })).drained).toBe(true)
    await expectResults(jobs, list, 10_000)
    await expectVectors(redis, list)

    // The targets really are spread: over many slots and over every master.
    const targetSlots = new Set(list.map((it) => keySlot(it.key)))
    expect(targetSlots.size).toBeGreaterThan(400)
    const owners = new Set(await Promise.all([...targetSlots].slice(0, 60).map((s) => cluster.ownerOf(s))))
    expect(owners.size).toBe(3)

    // The server agrees: one slot for every queue key, the one of the hash tag.
    const slots = await Promise.all(ownedKeys(name).map((key) => redis.cluster('KEYSLOT', key)))
    expect(new Set(slots.map(Number))).toEqual(new Set([keySlot(`{${name}}`)]))
    await expectSettled(redis, name)
  }, 30_000)

  it('twelve queues spread over several masters and drain in parallel', async () => {
    const { cluster, redis } = h
    const names = Array.from({ length: 12 }, () => uniqueName('spread'))
    const owners = await Promise.all(names.map((n) => cluster.ownerOf(keySlot(`{${n}}`))))
    expect(new Set(owners).size).toBeGreaterThan(1)
    // ioredis sends each queue's scripts to the master the cluster says serves its slot.
    names.forEach((n, i) => {
      expect(redis.slots[keySlot(`{${n}}`)]?.[0]).toBe(`127.0.0.1:${owners[i]}`)
    })

    const embedders: FakeEmbedder[] = []
    const qs = names.map((name) => {
      const embedder = fakeEmbedder({ latencyMs: 5 })
      embedders.push(embedder)
      return h.queue({ name, embedder, maxBatchSize: 20 })
    })
    await Promise.all(qs.map((q) => q.start()))
    const lists = names.map((n) => items(n, 60))
    const jobs = await Promise.all(qs.map((q, i) => q.enqueueMany(lists[i]!)))
    const results = await Promise.all(qs.map((q) => q.flushAndWait({ timeoutMs: 15_000 })))
    expect(results.every((r) => r.drained)).toBe(true)
    await Promise.all(jobs.map((j, i) => expectResults(j, lists[i]!, 10_000)))
    await Promise.all(lists.map((l) => expectVectors(redis, l)))
    await Promise.all(names.map((n) => expectSettled(redis, n)))
    // Each queue embedded only its own texts, each once.
    embedders.forEach((e, i) => {
      expect(e.texts.sort()).toEqual(lists[i]!.map((it) => it.text).sort())
    })
  }, 30_000)

  it('a producer-only instance gets the results of a worker on another Cluster client (pub/sub)', async () => {
    const name = uniqueName()
    const embedder = fakeEmbedder({ latencyMs: 10 })
    const worker = h.queue({ name, embedder, redis: h.client(), maxBatchSize: 25 })
    const producer = h.queue({ name, worker: false, redis: h.client() })
    await worker.start()
    await producer.start()
    const list = items(name, 200)
    const jobs = await producer.enqueueMany(list)
    producer.flushNow()
    await expectResults(jobs, list, 15_000)
    expect(embedder.texts).toHaveLength(200)
    // A key enqueued elsewhere: result() subscribes, then looks in Redis.
    expect(Array.from(await producer.result(list[7]!.key, { timeoutMs: 5_000 }))).toEqual(
      Array.from(fakeVector(list[7]!.text, 8)),
    )
    await expectSettled(h.redis, name)
  }, 30_000)

  it("moving the queue's slot and target slots to other masters mid-run loses nothing", async () => {
    const { cluster, redis } = h
    const { name, embedder, producer, list, jobs } = await startSlowDrain(h, {
      n: 400,
      latencyMs: 400, // slow enough that the drain outlasts the seven migrations
      producerOnly: true,
    })

    // The queue's slot moves a few keys at a time, so scripts meet it half-moved (ASK, TRYAGAIN).
    const queueSlot = keySlot(`{${name}}`)
    const from = await cluster.ownerOf(queueSlot)
    await cluster.migrateSlot(queueSlot, await h.otherMaster(from), { batch: 3, pauseMs: 20 })
    // And the slots of targets still waiting to be written, each to another master.
    const waiting = list.slice(-150).map((it) => keySlot(it.key))
    for (const slot of [...new Set(waiting)].slice(0, 6)) {
      await cluster.migrateSlot(slot, await h.otherMaster(await cluster.ownerOf(slot)))
    }
    expect(embedder.texts.length).toBeLessThan(list.length) // it really moved mid-run

    expect((await producer.flushAndWait({ timeoutMs: 20_000 })).drained).toBe(true)
    await expectResults(jobs, list, 10_000)
    await expectVectors(redis, list)
    await expectSettled(redis, name)
    expect(await cluster.ownerOf(queueSlot)).not.toBe(from)
  }, 40_000)

  it('restarting the master that serves the queue mid-run (SIGKILL, AOF fsync always) loses nothing', async () => {
    const { cluster, redis } = h
    const { name, embedder, producer, list, jobs } = await startSlowDrain(h, {
      n: 300,
      latencyMs: 100,
      producerOnly: true,
    })

    const owner = await cluster.ownerOf(keySlot(`{${name}}`))
    await cluster.restartNode(owner, { kill: true })
    expect(await cluster.ownerOf(keySlot(`{${name}}`))).toBe(owner) // no replica: the same node is back
    expect(embedder.texts.length).toBeLessThan(list.length)

    expect((await producer.flushAndWait({ timeoutMs: 20_000 })).drained).toBe(true)
    await expectResults(jobs, list, 10_000)
    await expectVectors(redis, list)
    await expectSettled(redis, name)
  }, 45_000)

  it('the vector cache (keys on any slot) and a shared rate limit (its own slot) work on a Cluster', async () => {
    const { redis } = h
    const shared = {
      cache: { namespace: `fake-${uniqueName()}` },
      rateLimit: { requestsPerMinute: 10_000, scope: uniqueName('rl') },
    }
    const first = fakeEmbedder()
    const a = h.queue({ embedder: first, maxBatchSize: 25, ...shared })
    await a.start()
    const texts = Array.from({ length: 100 }, (_, i) => `cached text ${i}`)
    const listA = texts.map((text, i) => ({ key: `${a.name}:msg:${i}`, text }))
    const jobsA = await a.enqueueMany(listA)
    expect((await a.flushAndWait({ timeoutMs: 15_000 })).drained).toBe(true)
    await expectResults(jobsA, listA, 10_000)
    expect(first.texts).toHaveLength(100)

    // Same texts, other keys, another queue and client: every vector comes from the cache.
    const second = fakeEmbedder()
    const b = h.queue({ embedder: second, redis: h.client(), maxBatchSize: 25, ...shared })
    await b.start()
    const listB = texts.map((text, i) => ({ key: `${b.name}:msg:${i}`, text }))
    const jobsB = await b.enqueueMany(listB)
    expect((await b.flushAndWait({ timeoutMs: 15_000 })).drained).toBe(true)
    await expectResults(jobsB, listB, 10_000)
    await expectVectors(redis, listB)
    expect(second.texts).toHaveLength(0)
    const cache = new VectorCache(redis, 'embedq', shared.cache.namespace, 8, 60)
    const cacheSlots = await Promise.all(
      texts.slice(0, 40).map((t) => redis.cluster('KEYSLOT', cache.key(t))),
    )
    expect(new Set(cacheSlots.map(Number)).size).toBeGreaterThan(20)
  }, 30_000)
})

/**
 * Failures this suite found on Cluster, now fixed: a subscriber moved to another node without
 * a 'ready' event, pipelined reads/writes that got MOVED per entry, transient Redis errors
 * charged to items as attempts, and pipelines grouped by a slot table ioredis no longer used.
 */

describe('on Redis Cluster, through node restarts and slot moves', () => {
  it("a producer's results resolve when the master holding its subscriber connection is restarted mid-run", async () => {
    const { cluster, redis } = h
    const name = uniqueName()
    const producer = h.queue({ name, worker: false, redis: h.client(), ...resilient })
    await producer.start()
    const victim = await subscriberNode(queueKeys('embedq', name).doneChannel)
    // The queue and its targets live elsewhere: only the producer's subscriber is disturbed.
    const queueSlot = keySlot(`{${name}}`)
    if ((await cluster.ownerOf(queueSlot)) === victim)
      await cluster.migrateSlot(queueSlot, await h.otherMaster(victim))
    const list = items(name, 3_000).filter(
      (it) => redis.slots[keySlot(it.key)]?.[0] !== `127.0.0.1:${victim}`,
    )
    const embedder = fakeEmbedder({ latencyMs: 60 })
    const worker = h.queue({
      name,
      embedder,
      redis: h.client(),
      maxBatchSize: 10,
      concurrency: 4,
      ...resilient,
    })
    await worker.start()
    const jobs = await producer.enqueueMany(list)
    producer.flushNow()
    await waitFor(() => embedder.texts.length >= 50, 10_000, 'the drain to be under way')
    const restarted = cluster.restartNode(victim, { kill: true })
    expect(embedder.texts.length).toBeLessThan(list.length)
    await restarted
    expect((await producer.flushAndWait({ timeoutMs: 20_000 })).drained).toBe(true)
    // Every item is finished in Redis; the producer must learn it even of a done message it missed.
    await expectResults(jobs, list, 10_000)
  }, 45_000)

  it('restarting a master that serves only target hashes charges no attempts and dead-letters nothing', async () => {
    const name = uniqueName()
    const victim = await h.otherMaster(await h.cluster.ownerOf(keySlot(`{${name}}`)))
    const embedder = fakeEmbedder({ latencyMs: 60 })
    const worker = h.queue({
      name,
      embedder,
      maxBatchSize: 10,
      concurrency: 4,
      ...resilient,
      maxAttempts: 3,
    })
    const seen = charges(worker)
    await worker.start()
    const list = items(name, 2_000)
    const jobs = await worker.enqueueMany(list)
    worker.flushNow()
    await waitFor(() => embedder.texts.length >= 50, 10_000, 'the drain to be under way')
    await h.cluster.restartNode(victim, { kill: true })
    expect((await worker.flushAndWait({ timeoutMs: 20_000 })).drained).toBe(true)
    none(seen.failed)
    none(seen.retrying)
    await expectResults(jobs, list, 10_000)
    await expectVectors(h.redis, list)
  }, 45_000)

  it('moving target slots mid-run charges no attempts (writes follow MOVED instead of failing the item)', async () => {
    const name = uniqueName()
    const embedder = fakeEmbedder({ latencyMs: 300 })
    const worker = h.queue({
      name,
      embedder,
      maxBatchSize: 20,
      concurrency: 2,
      ...resilient,
      maxAttempts: 3,
    })
    const seen = charges(worker)
    const errors: string[] = []
    worker.on('error', (e) => errors.push(e.message))
    await worker.start()
    const list = items(name, 400)
    const jobs = await worker.enqueueMany(list)
    worker.flushNow()
    await waitFor(() => embedder.texts.length >= 40, 10_000, 'the drain to be under way')
    for (const slot of [...new Set(list.slice(-200).map((it) => keySlot(it.key)))].slice(0, 10))
      await h.cluster.migrateSlot(slot, await h.otherMaster(await h.cluster.ownerOf(slot)))
    expect(embedder.texts.length).toBeLessThan(list.length) // it really moved mid-run
    expect((await worker.flushAndWait({ timeoutMs: 20_000 })).drained).toBe(true)
    none(seen.failed)
    none(seen.retrying)
    none(errors)
    await expectResults(jobs, list, 10_000)
  }, 45_000)

  it('a target slot no node serves: TargetWriteError is reported, nothing is charged, and the vectors land once it is served again', async () => {
    const name = uniqueName()
    const list = items(name, 60)
    const queueSlot = keySlot(`{${name}}`)
    // Orphan a slot the way a botched reshard does: its owner hands it to another master,
    // which hands it back; neither claims it, so every write to it ping-pongs on MOVED.
    let slot = -1
    let owner = 0
    for (const it of list) {
      const s = keySlot(it.key)
      if (s === queueSlot) continue
      owner = await h.cluster.ownerOf(s)
      if (Number(await h.cluster.call(owner, 'cluster', 'countkeysinslot', s)) === 0) {
        slot = s
        break
      }
    }
    expect(slot).toBeGreaterThanOrEqual(0)
    const other = await h.otherMaster(owner)
    const ids = new Map((await h.cluster.topology()).map((n) => [n.port, n.id]))
    await h.cluster.call(owner, 'cluster', 'setslot', slot, 'node', ids.get(other)!)
    await h.cluster.call(other, 'cluster', 'setslot', slot, 'node', ids.get(owner)!)
    const orphaned = list.filter((it) => keySlot(it.key) === slot).map((it) => it.key)

    const worker = h.queue({ name, maxBatchSize: 20, ...resilient, maxAttempts: 2, writeRetryMs: 300 })
    const seen = charges(worker)
    const reported: TargetWriteError[] = []
    worker.on('error', (e) => {
      if (e instanceof TargetWriteError) reported.push(e)
    })
    await worker.start()
    const jobs = await worker.enqueueMany(list)
    worker.flushNow()
    try {
      await waitFor(
        () => reported.length >= 2,
        15_000,
        'write errors to be reported (twice: the item cycles)',
      )
      expect(reported[0]!.message).toMatch(/could not write .* uncharged/)
      for (const e of reported) for (const key of e.keys) expect(orphaned).toContain(key)
      // Everything else was written meanwhile; the orphaned items wait, uncharged.
      const blobs = await Promise.all(
        list.filter((it) => !orphaned.includes(it.key)).map((it) => h.redis.hgetBuffer(it.key, 'embedding')),
      )
      expect(blobs.every(Boolean)).toBe(true)
    } finally {
      // Repair: the old owner takes the slot back with a fresh epoch.
      await h.cluster.call(owner, 'cluster', 'setslot', slot, 'node', ids.get(owner)!)
      await h.cluster.call(owner, 'cluster', 'bumpepoch')
      await h.cluster.call(other, 'cluster', 'setslot', slot, 'node', ids.get(owner)!)
      await h.cluster.waitHealthy()
    }
    expect((await worker.flushAndWait({ timeoutMs: 15_000 })).drained).toBe(true)
    none(seen.failed)
    none(seen.retrying)
    await expectResults(jobs, list, 10_000)
    await expectVectors(h.redis, list)
  }, 45_000)
})
