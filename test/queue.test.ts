import { describe, expect, it } from 'vitest'
import {
  EmbedderError,
  EmbeddingFailedError,
  EmbedTimeoutError,
  InvalidInputError,
  QueueStoppedError,
} from '../src/index.js'
import { queueKeys } from '../src/keys.js'
import { runScript } from '../src/scripts.js'
import {
  commandCalls,
  fakeEmbedder,
  fakeVector,
  readVector,
  sleep,
  uniqueName,
  waitFor,
} from './helpers/fixtures.js'
import { useQueueHarness } from './helpers/queue-harness.js'

const h = useQueueHarness()

describe('writing vectors', () => {
  it('writes each vector into its target hash as little-endian float32, dimensions × 4 bytes', async () => {
    const embedder = fakeEmbedder({ dims: 12 })
    const q = h.queue({ embedder })
    await q.start()
    await h.redis.hset('msg:le-1', 'text', 'hello there')
    const job = await q.enqueue('msg:le-1', 'hello there')
    await q.flushAndWait({ timeoutMs: 5_000 })
    const vec = await job.result
    const blob = await h.redis.hgetBuffer('msg:le-1', 'embedding')
    expect(blob?.length).toBe(12 * 4)
    const expected = fakeVector('hello there', 12)
    for (let i = 0; i < 12; i++) {
      expect(blob!.readFloatLE(i * 4)).toBe(expected[i])
      expect(vec[i]).toBe(expected[i])
    }
    // The producer's own fields are untouched.
    expect(await h.redis.hget('msg:le-1', 'text')).toBe('hello there')
  })

  it('resolves blank or whitespace text to a zero vector without an API call or any Redis write', async () => {
    const embedder = fakeEmbedder({ dims: 4 })
    const q = h.queue({ embedder })
    await q.start()
    const before = await h.redis.dbsize()
    const job = await q.enqueue('msg:blank', '  \n\t ')
    const [many] = await q.enqueueMany([{ key: 'msg:blank2', text: '' }])
    expect(Array.from(await job.result)).toEqual([0, 0, 0, 0])
    expect(Array.from(await many!.result)).toEqual([0, 0, 0, 0])
    expect(job.version).toBe(0)
    expect(embedder.calls).toHaveLength(0)
    expect(await h.redis.dbsize()).toBe(before)
  })
})

describe('dedup and latest text', () => {
  it('re-enqueueing a key before it is embedded keeps one item and every waiter gets the latest vector', async () => {
    const embedder = fakeEmbedder()
    const q = h.queue({ embedder })
    await q.start()
    const a = await q.enqueue('msg:dup', 'first text')
    const b = await q.enqueue('msg:dup', 'second text')
    const [c] = await q.enqueueMany([{ key: 'msg:dup', text: 'third text' }])
    expect(await q.pendingCount()).toBe(1)
    expect(b.version).toBeGreaterThan(a.version)
    await q.flushAndWait({ timeoutMs: 5_000 })
    const want = Array.from(fakeVector('third text', 8))
    expect(Array.from(await a.result)).toEqual(want)
    expect(Array.from(await b.result)).toEqual(want)
    expect(Array.from(await c!.result)).toEqual(want)
    expect(embedder.texts).toEqual(['third text'])
  })

  it('re-enqueueing a key while it is in flight embeds the newer text, and the old result resolves no waiter', async () => {
    let release!: () => void
    const gate = new Promise<void>((r) => {
      release = r
    })
    const embedder = fakeEmbedder()
    const slowFirst = {
      dimensions: 8,
      embed: async (texts: string[]) => {
        if (texts.includes('old text')) await gate
        return embedder.embed(texts)
      },
    }
    const q = h.queue({ embedder: slowFirst, maxBatchSize: 1, pollIntervalMs: 20 })
    await q.start()
    const oldJob = await q.enqueue('msg:flight', 'old text')
    await waitFor(async () => (await q.stats()).inflight === 1, 5_000, 'claim')
    const newJob = await q.enqueue('msg:flight', 'new text')
    release()
    // The old text's vector is written first but is superseded: no waiter takes it.
    const want = Array.from(fakeVector('new text', 8))
    expect(Array.from(await newJob.result)).toEqual(want)
    // Every waiter of the key gets the latest text's vector.
    expect(Array.from(await oldJob.result)).toEqual(want)
    expect(embedder.texts).toEqual(['old text', 'new text'])
    expect(Array.from((await readVector(h.redis, 'msg:flight'))!)).toEqual(want)
    expect(await q.pendingCount()).toBe(0)
  })

  it('a stale worker cannot overwrite the vector of newer text (version fence in the target hash)', async () => {
    const q = h.queue()
    await q.start()
    const job = await q.enqueue('msg:fence', 'newest')
    await q.flushAndWait({ timeoutMs: 5_000 })
    await job.result
    // A late write of an older version (what a worker that lost its lease would do) is refused.
    const res = await runScript(
      h.redis,
      'writeVector',
      ['msg:fence'],
      ['embedding', 'embedding_version', String(job.version - 1), Buffer.alloc(32), '0'],
    )
    expect(res).toBe(0)
    expect(Array.from((await readVector(h.redis, 'msg:fence'))!)).toEqual(Array.from(fakeVector('newest', 8)))
    expect(await h.redis.hget('msg:fence', 'embedding_version')).toBe(String(job.version))
  })
})

describe('flush policy', () => {
  it('a full batch flushes at once while a partial batch waits for flushIntervalMs', async () => {
    const embedder = fakeEmbedder()
    const q = h.queue({ embedder, maxBatchSize: 5, flushIntervalMs: 60_000 })
    await q.start()
    await q.enqueueMany(Array.from({ length: 3 }, (_, i) => ({ key: `fp:a${i}`, text: `t${i}` })))
    await sleep(300)
    expect(embedder.calls).toHaveLength(0)
    const more = await q.enqueueMany(
      Array.from({ length: 2 }, (_, i) => ({ key: `fp:b${i}`, text: `u${i}` })),
    )
    await more[1]!.result
    expect(embedder.calls).toHaveLength(1)
    expect(embedder.calls[0]!.texts).toHaveLength(5)
  })

  it('the oldest ready item flushes after flushIntervalMs without a full batch', async () => {
    const embedder = fakeEmbedder()
    const q = h.queue({ embedder, maxBatchSize: 50, flushIntervalMs: 300, pollIntervalMs: 50 })
    await q.start()
    const t0 = Date.now()
    const job = await q.enqueue('fp:interval', 'lonely text')
    await job.result
    const waited = Date.now() - t0
    expect(waited).toBeGreaterThanOrEqual(250)
    expect(waited).toBeLessThan(5_000)
  })

  it('flushNow starts a partial batch at once and does not wait', async () => {
    const embedder = fakeEmbedder()
    const q = h.queue({ embedder, maxBatchSize: 50, flushIntervalMs: 3_600_000 })
    await q.start()
    const job = await q.enqueue('fp:now', 'please now')
    const r = q.flushNow()
    expect(r).toBeUndefined()
    await job.result
    expect(embedder.calls).toHaveLength(1)
  })

  it('flushAndWait waits for items already in flight, not only for pending ones', async () => {
    const embedder = fakeEmbedder({ latencyMs: 400 })
    const q = h.queue({ embedder, maxBatchSize: 2 })
    await q.start()
    await q.enqueueMany([
      { key: 'fw:1', text: 'a' },
      { key: 'fw:2', text: 'b' },
    ])
    await waitFor(async () => (await q.stats()).inflight === 2, 5_000, 'claim')
    expect((await q.stats()).pending).toBe(0)
    const r = await q.flushAndWait({ timeoutMs: 5_000 })
    expect(r).toMatchObject({ drained: true, timedOut: false, remaining: 0 })
    expect(await readVector(h.redis, 'fw:1')).not.toBeNull()
    expect(await readVector(h.redis, 'fw:2')).not.toBeNull()
  })

  it('flushAndWait reports a timeout instead of throwing, with what remains', async () => {
    const embedder = fakeEmbedder({ latencyMs: 2_000 })
    const q = h.queue({ embedder, stopGraceMs: 0 })
    await q.start()
    await q.enqueueMany([{ key: 'ft:1', text: 'slow' }])
    const r = await q.flushAndWait({ timeoutMs: 200 })
    expect(r.drained).toBe(false)
    expect(r.timedOut).toBe(true)
    expect(r.remaining).toBe(1)
    expect(r.elapsedMs).toBeGreaterThanOrEqual(190)
  })

  it('claims batches in enqueue order (FIFO), not in key order', async () => {
    const embedder = fakeEmbedder()
    const q = h.queue({ embedder, maxBatchSize: 10, worker: true, concurrency: 1 })
    const keys = Array.from({ length: 40 }, (_, i) => `fifo:${String.fromCharCode(122 - (i % 26))}${i}`)
    for (let i = 0; i < keys.length; i += 7) {
      await q.enqueueMany(keys.slice(i, i + 7).map((key) => ({ key, text: key })))
    }
    await q.start()
    await q.flushAndWait({ timeoutMs: 5_000 })
    expect(embedder.texts).toEqual(keys)
  })
})

describe('batching and concurrency', () => {
  it('splits claims to the provider batch limit and bounds concurrent calls', async () => {
    const embedder = fakeEmbedder({ maxBatchSize: 7, latencyMs: 20 })
    const q = h.queue({ embedder, maxBatchSize: 30, concurrency: 3 })
    await q.start()
    const jobs = await q.enqueueMany(
      Array.from({ length: 200 }, (_, i) => ({ key: `bc:${i}`, text: `text ${i}` })),
    )
    await q.flushAndWait({ timeoutMs: 10_000 })
    await Promise.all(jobs.map((j) => j.result))
    expect(Math.max(...embedder.calls.map((c) => c.texts.length))).toBeLessThanOrEqual(7)
    expect(embedder.maxConcurrent).toBeLessThanOrEqual(3)
    expect(embedder.maxConcurrent).toBeGreaterThanOrEqual(2)
    expect(embedder.texts.sort()).toEqual(jobs.map((j) => `text ${j.key.slice(3)}`).sort())
  })

  it('keeps claiming while provider calls are in flight, so a slow provider is not the pace', async () => {
    const embedder = fakeEmbedder({ maxBatchSize: 100, latencyMs: 50 })
    const q = h.queue({ embedder, maxBatchSize: 100, concurrency: 8 })
    const n = 4_000
    await q.enqueueMany(Array.from({ length: n }, (_, i) => ({ key: `slow:${i}`, text: `t${i}` })))
    await q.start()
    const r = await q.flushAndWait({ timeoutMs: 20_000 })
    expect(r.drained).toBe(true)
    // 40 calls of 50 ms one after another would take 2 s; 8 at a time overlap.
    expect(embedder.maxConcurrent).toBe(8)
    expect(embedder.calls).toHaveLength(40)
  })

  it('uses one Lua call per enqueue chunk, one claim per batch and one acknowledgement per chunk', async () => {
    const embedder = fakeEmbedder({ maxBatchSize: 25 })
    const q = h.queue({ embedder, maxBatchSize: 50, enqueueChunkSize: 100, concurrency: 2 })
    await q.start()
    await h.redis.config('RESETSTAT')
    const jobs = await q.enqueueMany(
      Array.from({ length: 300 }, (_, i) => ({ key: `rt:${i}`, text: `t${i}` })),
    )
    await q.flushAndWait({ timeoutMs: 10_000 })
    await Promise.all(jobs.map((j) => j.result))
    const stats = await commandCalls(h.redis)
    // evalsha counts top-level script calls: 1 enqueue per chunk (3), 1 claim per batch (6, plus
    // empty polls), 1 write and 1 acknowledgement per provider chunk (12 + 12), 1 flush.
    // Nothing is sent per item: the vectors go out in one write script per chunk.
    // (A script's first run on this server goes out as EVAL after a NOSCRIPT reply.)
    const calls = (stats.evalsha ?? 0) + (stats.eval ?? 0)
    expect(calls).toBeGreaterThanOrEqual(3 + 6 + 24 + 1)
    expect(calls).toBeLessThan(3 + 6 + 24 + 1 + 10)
    expect(calls / 300).toBeLessThan(0.2)
    expect(stats.hset).toBeGreaterThanOrEqual(300) // the writes, made inside the script
    expect(embedder.calls).toHaveLength(12)
  })

  it('coalesces single enqueue calls made in the same tick into one script call', async () => {
    const q = h.queue({ worker: false })
    await q.enqueue('warm', 'up')
    await h.redis.config('RESETSTAT')
    const jobs = await Promise.all(Array.from({ length: 100 }, (_, i) => q.enqueue(`co:${i}`, `t${i}`)))
    expect(new Set(jobs.map((j) => j.version)).size).toBe(100)
    const stats = await commandCalls(h.redis)
    expect(stats.evalsha).toBe(1)
  })
})

describe('retries and giving up', () => {
  it('a failed chunk returns to pending and succeeds on a later attempt', async () => {
    const embedder = fakeEmbedder({ fail: (_t, i) => (i === 0 ? new Error('flaky network') : undefined) })
    const q = h.queue({ embedder, backoffBaseMs: 50, backoffMaxMs: 100, pollIntervalMs: 20 })
    const retrying: unknown[] = []
    q.on('retrying', (info) => retrying.push(info))
    await q.start()
    const job = await q.enqueue('rt:flaky', 'try again')
    q.flushNow()
    expect(Array.from(await job.result)).toEqual(Array.from(fakeVector('try again', 8)))
    expect(embedder.calls).toHaveLength(2)
    expect(retrying).toHaveLength(1)
    expect(await h.redis.hget(queueKeys('embedq', q.name).retries, 'rt:flaky')).toBeNull()
  })

  it('after maxAttempts an item gets a zero vector, a dead letter, and its waiters reject with EmbeddingFailedError', async () => {
    const embedder = fakeEmbedder({
      dims: 4,
      fail: () => new EmbedderError('503 unavailable', { status: 503, retryable: true }),
    })
    const q = h.queue({ embedder, maxAttempts: 3, backoffBaseMs: 10, backoffMaxMs: 20, pollIntervalMs: 20 })
    await q.start()
    await h.redis.hset('dl:1', 'text', 'doomed')
    const job = await q.enqueue('dl:1', 'doomed')
    q.flushNow()
    const err = await job.result.then(
      () => null,
      (e: unknown) => e,
    )
    expect(err).toBeInstanceOf(EmbeddingFailedError)
    expect(err).toMatchObject({ key: 'dl:1', attempts: 3, name: 'EmbeddingFailedError' })
    expect((err as Error).message).toContain('503 unavailable')
    expect(embedder.calls).toHaveLength(3)
    expect(Array.from((await readVector(h.redis, 'dl:1'))!)).toEqual([0, 0, 0, 0])
    const letters = await q.failed()
    expect(letters).toHaveLength(1)
    expect(letters[0]).toMatchObject({
      key: 'dl:1',
      attempts: 3,
      text: 'doomed',
      error: '503 unavailable',
      status: 503,
    })
    expect((await q.stats()).failed).toBe(1)
    expect(await q.pendingCount()).toBe(0)
  })

  it('a permanent failure is bisected so only the bad text is charged and the others succeed in the same drain', async () => {
    const embedder = fakeEmbedder({
      fail: (texts) =>
        texts.includes('POISON')
          ? new EmbedderError('400 bad input', { status: 400, retryable: false })
          : undefined,
    })
    const q = h.queue({ embedder, maxBatchSize: 16, maxAttempts: 1 })
    await q.start()
    const items = Array.from({ length: 16 }, (_, i) => ({
      key: `bis:${i}`,
      text: i === 11 ? 'POISON' : `fine ${i}`,
    }))
    const jobs = await q.enqueueMany(items)
    const outcomes = await Promise.allSettled(jobs.map((j) => j.result))
    expect(outcomes.filter((o) => o.status === 'rejected')).toHaveLength(1)
    expect(outcomes[11]!.status).toBe('rejected')
    expect((await q.failed()).map((l) => l.key)).toEqual(['bis:11'])
    // 1 full call + bisection down to the single bad text: far fewer than 16 single calls.
    expect(embedder.calls.length).toBeLessThanOrEqual(1 + 2 * Math.ceil(Math.log2(16)))
  })

  it('retryFailed puts dead letters back with their text', async () => {
    let broken = true
    const embedder = fakeEmbedder({
      fail: () => (broken ? new EmbedderError('nope', { retryable: false }) : undefined),
    })
    const q = h.queue({ embedder, maxAttempts: 1 })
    await q.start()
    const job = await q.enqueue('rf:1', 'second chance')
    q.flushNow()
    await expect(job.result).rejects.toBeInstanceOf(EmbeddingFailedError)
    broken = false
    const [again] = await q.retryFailed()
    q.flushNow()
    expect(Array.from(await again!.result)).toEqual(Array.from(fakeVector('second chance', 8)))
    expect(await q.failed()).toEqual([])
  })
})

describe('bad input', () => {
  it('rejects bad input at enqueue with a typed error naming the problem', async () => {
    const q = h.queue({ maxKeyBytes: 16, maxTextBytes: 10 })
    const cases: [unknown, unknown, 'key' | 'text', RegExp][] = [
      ['', 'x', 'key', /empty/],
      [42, 'x', 'key', /string/],
      ['k'.repeat(17), 'x', 'key', /maxKeyBytes/],
      ['ok', 17, 'text', /string/],
      ['ok', 'é'.repeat(6), 'text', /maxTextBytes/],
    ]
    for (const [key, text, field, msg] of cases) {
      const err = await q.enqueue(key as string, text as string).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(InvalidInputError)
      expect(err).toMatchObject({ field, name: 'InvalidInputError' })
      expect((err as Error).message).toMatch(msg)
    }
  })

  it('bad items in enqueueMany get their own error and the rest of the batch is queued and embedded', async () => {
    const q = h.queue({ maxTextBytes: 100 })
    await q.start()
    const jobs = await q.enqueueMany([
      { key: 'bi:1', text: 'good one' },
      { key: '', text: 'no key' },
      { key: 'bi:3', text: 'x'.repeat(101) },
      { key: 'bi:4', text: null as unknown as string },
      { key: 'bi:5', text: 'good two' },
    ])
    expect(jobs.map((j) => (j.error as InvalidInputError | undefined)?.field)).toEqual([
      undefined,
      'key',
      'text',
      'text',
      undefined,
    ])
    await expect(jobs[2]!.result).rejects.toBeInstanceOf(InvalidInputError)
    expect(await q.pendingCount()).toBe(2)
    await q.flushAndWait({ timeoutMs: 5_000 })
    expect(Array.from(await jobs[0]!.result)).toEqual(Array.from(fakeVector('good one', 8)))
    expect(Array.from(await jobs[4]!.result)).toEqual(Array.from(fakeVector('good two', 8)))
  })

  it('a target key of the wrong type fails alone; the rest of its chunk is written', async () => {
    await h.redis.set('wt:2', 'not a hash')
    const q = h.queue({ maxAttempts: 1 })
    await q.start()
    const jobs = await q.enqueueMany([
      { key: 'wt:1', text: 'one' },
      { key: 'wt:2', text: 'two' },
      { key: 'wt:3', text: 'three' },
    ])
    q.flushNow()
    const [a, b, c] = await Promise.allSettled(jobs.map((j) => j.result))
    expect(a!.status).toBe('fulfilled')
    expect(c!.status).toBe('fulfilled')
    expect(b?.status === 'rejected' && (b.reason as Error).message).toMatch(/WRONGTYPE/)
    expect(Array.from((await readVector(h.redis, 'wt:3'))!)).toEqual(Array.from(fakeVector('three', 8)))
    expect(await h.redis.get('wt:2')).toBe('not a hash')
    expect((await q.failed()).map((l) => l.key)).toEqual(['wt:2'])
  })

  it('an embedder vector of the wrong size fails only that item', async () => {
    const inner = fakeEmbedder({ dims: 4 })
    const embedder = {
      dimensions: 4,
      async embed(texts: string[]) {
        const out = await inner.embed(texts)
        return out.map((v, i) => (texts[i] === 'short' ? Array.from(v).slice(0, 3) : v))
      },
    }
    const q = h.queue({ embedder, maxAttempts: 1 })
    await q.start()
    const jobs = await q.enqueueMany([
      { key: 'ws:1', text: 'fine' },
      { key: 'ws:2', text: 'short' },
    ])
    q.flushNow()
    expect(Array.from(await jobs[0]!.result)).toEqual(Array.from(fakeVector('fine', 4)))
    await expect(jobs[1]!.result).rejects.toThrow(/3 dimensions, expected 4/)
  })
})

describe('waiting for results', () => {
  it('twenty thousand waiting promises use a constant number of Redis connections', async () => {
    const q = h.queue({ worker: false })
    const clientsBefore = String(await h.redis.client('LIST'))
      .trim()
      .split('\n').length
    const jobs = await q.enqueueMany(
      Array.from({ length: 20_000 }, (_, i) => ({ key: `many:${i}`, text: `t${i}` })),
    )
    expect(jobs).toHaveLength(20_000)
    expect((await q.stats()).local.waiting).toBe(20_000)
    const clientsAfter = String(await h.redis.client('LIST'))
      .trim()
      .split('\n').length
    expect(clientsAfter - clientsBefore).toBe(1) // the one subscriber
    const worker = h.queue({ name: q.name, maxBatchSize: 500, concurrency: 4 })
    await worker.start()
    const r = await worker.flushAndWait({ timeoutMs: 30_000 })
    expect(r.drained).toBe(true)
    await Promise.all(jobs.map((j) => j.result))
    expect((await q.stats()).local.waiting).toBe(0)
  }, 60_000)

  it('result() finds a vector finished before it was asked for (subscribe, then check)', async () => {
    const q = h.queue()
    await q.start()
    const job = await q.enqueue('late:1', 'already done')
    await q.flushAndWait({ timeoutMs: 5_000 })
    await job.result
    const other = h.queue({ name: q.name, worker: false })
    const v = await other.result('late:1', { version: job.version, timeoutMs: 2_000 })
    expect(Array.from(v)).toEqual(Array.from(fakeVector('already done', 8)))
  })

  it('a result wait with a timeout rejects with EmbedTimeoutError and the item stays queued', async () => {
    const q = h.queue({ worker: false, resultTimeoutMs: 100 })
    const job = await q.enqueue('to:1', 'nobody drains me')
    await expect(job.result).rejects.toBeInstanceOf(EmbedTimeoutError)
    expect(await q.pendingCount()).toBe(1)
  })

  it('stop() rejects the waiters of this instance with QueueStoppedError, and the items stay queued', async () => {
    const q = h.queue({ worker: false })
    const job = await q.enqueue('st:1', 'wait')
    await q.stop()
    await expect(job.result).rejects.toBeInstanceOf(QueueStoppedError)
    await expect(q.enqueue('st:2', 'late')).rejects.toBeInstanceOf(QueueStoppedError)
    const k = queueKeys('embedq', q.name)
    expect(await h.redis.hget(k.jobs, 'st:1')).toBe('wait')
  })

  it('resolves a waiter in a producer-only instance when a worker instance on the same queue finishes it', async () => {
    const name = uniqueName()
    const producer = h.queue({ name, worker: false })
    const worker = h.queue({ name, redis: h.client() })
    await worker.start()
    const job = await producer.enqueue('xp:1', 'from the producer')
    producer.flushNow()
    expect(Array.from(await job.result)).toEqual(Array.from(fakeVector('from the producer', 8)))
  })
})

describe('connections and lifecycle', () => {
  it('never quits the client it was given and closes the subscriber it created', async () => {
    const redis = h.client()
    await redis.client('SETNAME', 'owner')
    const q = h.queue({ redis })
    await q.start()
    const job = await q.enqueue('own:1', 'x')
    q.flushNow()
    await job.result
    const listed = async () =>
      String(await h.redis.client('LIST'))
        .trim()
        .split('\n').length
    const during = await listed()
    await q.stop()
    await waitFor(async () => (await listed()) === during - 1, 5_000, 'subscriber closed')
    expect(redis.status).toBe('ready')
    expect(await redis.ping()).toBe('PONG')
  })

  it('refuses a client configured with keyPrefix, naming the option', () => {
    const redis = h.server.client()
    const prefixed = redis.duplicate({ keyPrefix: 'app:' })
    try {
      expect(() => h.queue({ redis: prefixed })).toThrow(/keyPrefix/)
    } finally {
      redis.disconnect()
      prefixed.disconnect()
    }
  })

  it('stop() leaves nothing in flight: unfinished chunks go back to pending', async () => {
    const embedder = fakeEmbedder({ latencyMs: 5_000 })
    const q = h.queue({ embedder, stopGraceMs: 100 })
    await q.start()
    await q.enqueueMany([{ key: 'gs:1', text: 'slow' }])
    q.flushNow()
    await waitFor(async () => (await q.stats()).inflight === 1, 5_000, 'claim')
    await q.stop()
    const k = queueKeys('embedq', q.name)
    expect(await h.redis.zcard(k.inflight)).toBe(0)
    expect(await h.redis.zcard(k.pending)).toBe(1)
    expect(await h.redis.hget(k.retries, 'gs:1')).toBeNull() // not charged
  })
})

describe('stats and progress', () => {
  it('reports pending, in flight, finished in the last minute and this instance’s counts', async () => {
    const q = h.queue({ maxBatchSize: 10 })
    const seen: number[] = []
    q.on('enqueued', ({ count }) => seen.push(count))
    const jobs = await q.enqueueMany(
      Array.from({ length: 25 }, (_, i) => ({ key: `st:${i}`, text: `s${i}` })),
    )
    const before = await q.stats()
    expect(before).toMatchObject({ unfinished: 25, pending: 25, inflight: 0, retrying: 0, failed: 0 })
    expect(before.oldestAgeMs).toBeGreaterThanOrEqual(0)
    await q.start()
    await q.flushAndWait({ timeoutMs: 5_000 })
    await Promise.all(jobs.map((j) => j.result))
    const after = await q.stats()
    expect(after).toMatchObject({
      unfinished: 0,
      pending: 0,
      inflight: 0,
      oldestAgeMs: null,
      finishedLastMinute: 25,
    })
    expect(after.local).toMatchObject({ enqueued: 25, embedded: 25, apiCalls: 3, apiErrors: 0, waiting: 0 })
    expect(seen).toEqual([25])
  })
})

describe('trackResults: false', () => {
  it('keeps nothing per job and still resolves a result that is read later', async () => {
    const producer = h.queue({ worker: false, trackResults: false })
    const jobs = await producer.enqueueMany(
      Array.from({ length: 1_000 }, (_, i) => ({ key: `tr:${i}`, text: `x${i}` })),
    )
    expect((await producer.stats()).local.waiting).toBe(0)
    const worker = h.queue({ name: producer.name, redis: h.client(), maxBatchSize: 200 })
    await worker.start()
    await worker.flushAndWait({ timeoutMs: 10_000 })
    // Read after it finished: subscribe, then find it in Redis.
    expect(Array.from(await jobs[7]!.result)).toEqual(Array.from(fakeVector('x7', 8)))
    expect(jobs[7]!.result).toBe(jobs[7]!.result)
  })
})

describe('done messages that overtake the enqueue reply', () => {
  it('a done entry published before the waiter registers is kept and replayed (no lost result)', async () => {
    const { Waiters } = await import('../src/waiters.js')
    const { TargetStore } = await import('../src/target-store.js')
    const { silentLogger } = await import('../src/logger.js')
    const name = uniqueName()
    const keys = queueKeys('embedq', name)
    const waiters = new Waiters({
      redis: h.redis,
      keys,
      targets: new TargetStore(h.redis, 'embedding', 'embedding_version'),
      dimensions: 8,
      logger: silentLogger,
      onWake: () => {},
      onActivity: () => {},
    })
    try {
      await waiters.ensureSubscribed()
      waiters.expect(['race:1', 'race:2'])
      // A worker elsewhere finishes both before our enqueue reply is handled.
      const vec = fakeVector('raced', 8)
      await h.redis.hset('race:1', 'embedding', Buffer.from(vec.buffer), 'embedding_version', '100')
      const dl = JSON.stringify({
        key: 'race:2',
        version: 101,
        text: 'x',
        error: 'boom',
        attempts: 3,
        failedAt: 1,
      })
      await h.redis.publish(keys.doneChannel, `D100:6:race:10:F101:6:race:2${Buffer.byteLength(dl)}:${dl}`)
      await sleep(100)
      const [ok, failed] = waiters.registerExpected(
        [
          { key: 'race:1', version: 100 },
          { key: 'race:2', version: 101 },
        ],
        2_000,
      )
      const [okResult, failedResult] = await Promise.allSettled([ok!, failed!])
      expect(okResult.status === 'fulfilled' && Array.from(okResult.value)).toEqual(Array.from(vec))
      expect(failedResult.status === 'rejected' && failedResult.reason).toBeInstanceOf(EmbeddingFailedError)
    } finally {
      await waiters.close()
    }
  })
})
