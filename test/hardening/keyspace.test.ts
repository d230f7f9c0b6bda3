/**
 * #10.1 and #10.2: keys a producer must not be able to use. A target key inside embedq's own
 * key space would turn a queue structure into a target hash; a key with a lone surrogate would
 * share one Redis hash with other keys after UTF-8 encoding. Both are refused where they enter.
 * A queue key that holds the wrong type anyway (another program wrote it) makes the script
 * that meets it fail with an error naming the key.
 */
import { describe, expect, it, onTestFinished } from 'vitest'
import { InvalidInputError, QueueCorruptedError, queueKeys, rateLimitKeys } from '../../src/index.js'
import { QueueScripts } from '../../src/scripts.js'
import { runCli, show } from '../cli/helpers.js'
import { fakeVector, readVector, uniqueName, waitFor } from '../helpers/fixtures.js'
import { useQueueHarness } from '../helpers/queue-harness.js'
import { startRedisServer } from '../helpers/redis-server.js'

const h = useQueueHarness()

/** Every part of a queue's key space the issue names, plus the ones it implies. */
const PARTS = [
  'pending',
  'delayed',
  'flush',
  'pause',
  'failed',
  'throughput',
  'jobs',
  'leases',
  'retries',
  'backfill',
  'inflight',
  'versions',
  'seq',
] as const

describe('#10.1 a target key inside the queue key space', () => {
  it('enqueue refuses every queue key, rate-limit and cache key with InvalidInputError and writes nothing', async () => {
    const q = h.queue()
    const own = queueKeys('embedq', q.name)
    const base = `embedq:{${q.name}}`
    const refused = [
      ...PARTS.map((p) => `${base}:${p}`),
      `embedq:{default}:pending`,
      rateLimitKeys('embedq', q.name).log,
      rateLimitKeys('embedq', 'shared').total,
      'embedq:cache:0123abcd',
      'embedq:anything',
    ]
    for (const key of refused) {
      const err = await q.enqueue(key, 'hello').catch((e: unknown) => e)
      expect(err, key).toBeInstanceOf(InvalidInputError)
      expect((err as InvalidInputError).field).toBe('key')
      expect((err as Error).message).toContain("embedq's own key space")
    }
    expect(await h.redis.exists(...refused)).toBe(0)
    // The queue still works: a legitimate key is embedded.
    await q.start()
    const job = await q.enqueue('doc:ok', 'fine text')
    q.flushNow()
    expect(Array.from(await job.result)).toEqual(Array.from(fakeVector('fine text', 8)))
    expect(await h.redis.type(own.pending)).not.toBe('hash')
    // A prefix that only looks alike is not ours.
    await expect(q.enqueue('embedqx:1', 't')).resolves.toMatchObject({ key: 'embedqx:1' })
    await expect(q.enqueue('embedq', 't')).resolves.toMatchObject({ key: 'embedq' })
  })

  it('a queue with its own prefix guards that prefix', async () => {
    const q = h.queue({ prefix: 'myq' })
    await expect(q.enqueue(`myq:{${q.name}}:pending`, 't')).rejects.toBeInstanceOf(InvalidInputError)
    await expect(q.enqueue('embedq:{x}:pending', 't')).resolves.toMatchObject({ version: expect.any(Number) })
  })

  it('enqueueMany refuses only the queue keys; the rest of the batch is written and embedded', async () => {
    const q = h.queue()
    await q.start()
    const bad = `embedq:{${q.name}}:pending`
    const jobs = await q.enqueueMany([
      { key: 'many:1', text: 'one' },
      { key: bad, text: 'two' },
      { key: 'many:3', text: 'three' },
    ])
    expect(jobs[1]!.error).toBeInstanceOf(InvalidInputError)
    await expect(jobs[1]!.result).rejects.toBeInstanceOf(InvalidInputError)
    expect(jobs[0]!.error).toBeUndefined()
    expect(jobs[2]!.error).toBeUndefined()
    const r = await q.flushAndWait({ timeoutMs: 5_000 })
    expect(r.drained).toBe(true)
    expect(Array.from((await readVector(h.redis, 'many:3'))!)).toEqual(Array.from(fakeVector('three', 8)))
    expect(await h.redis.type(bad)).toBe('none')
  })

  it('the CLI backfill skips queue keys a broad --match finds, and says so', async () => {
    // A server of its own: `--match *` must see exactly these keys (the CLI names at most five
    // skipped keys, and other tests' queues would crowd this one's out of the list).
    const server = await startRedisServer()
    const redis = server.client()
    onTestFinished(async () => {
      await redis.quit()
      await server.destroy()
    })
    const name = uniqueName('bfq')
    const ns = uniqueName('ks')
    await redis.hset(`${ns}:msg:1`, { text: 'a real message' })
    // Hashes inside the key space that carry a text field.
    await redis.hset(`embedq:{${name}}:jobs`, { text: 'a queued text' })
    await redis.hset('embedq:cache:feed', { text: 'x' })
    const r = await runCli([
      'backfill',
      '--redis',
      server.url,
      '--name',
      name,
      '--match',
      '*',
      '--text-field',
      'text',
    ])
    expect(r.code, show(r)).toBe(0)
    expect(r.stderr).toMatch(/inside embedq's own key space \(embedq:\), never enqueued/)
    expect(r.stderr).toContain(`"embedq:{${name}}:jobs"`)
    const jobs = queueKeys('embedq', name).jobs
    // Only the real message was queued; the jobs hash holds queue data, not a target's vector.
    expect((await redis.hkeys(jobs)).sort()).toEqual(['text', `${ns}:msg:1`].sort())
    expect(await redis.hexists(jobs, 'embedding')).toBe(0)
    expect(await redis.hexists('embedq:cache:feed', 'embedding')).toBe(0)
  })
})

describe('#10.1 a wrong-typed queue key fails loudly, naming the key', () => {
  /** Which script meets each key first, and the wrong value to plant there. */
  const cases: Array<{ part: (typeof PARTS)[number]; call: 'enqueue' | 'claim' | 'ack' }> = [
    { part: 'pending', call: 'enqueue' },
    { part: 'jobs', call: 'enqueue' },
    { part: 'versions', call: 'enqueue' },
    { part: 'seq', call: 'enqueue' },
    { part: 'retries', call: 'enqueue' },
    { part: 'failed', call: 'enqueue' },
    { part: 'delayed', call: 'enqueue' },
    { part: 'pause', call: 'claim' },
    { part: 'flush', call: 'claim' },
    { part: 'inflight', call: 'claim' },
    { part: 'leases', call: 'claim' },
    { part: 'throughput', call: 'ack' },
  ]

  for (const { part, call } of cases) {
    it(`${part}: the ${call} script rejects with QueueCorruptedError naming it`, async () => {
      const name = uniqueName()
      const k = queueKeys('embedq', name)
      const scripts = new QueueScripts(h.redis, k)
      const key = k[part as keyof typeof k]
      const plant = async (): Promise<void> => {
        await h.redis.del(key)
        // A string where a zset/hash lives; a hash where a string lives.
        if (['seq', 'flush', 'pause'].includes(part)) await h.redis.hset(key, 'embedding', 'x')
        else await h.redis.set(key, 'foreign')
      }
      let attempt: () => Promise<unknown>
      if (call === 'enqueue') {
        await plant()
        attempt = () => scripts.enqueue([{ key: 'doc:1', text: 't' }], 10, 0)
      } else if (call === 'claim') {
        await scripts.enqueue([{ key: 'doc:1', text: 't' }], 10, 0)
        await plant()
        attempt = () => scripts.claim(10, 0, 30_000, 'tok')
      } else {
        await scripts.enqueue([{ key: 'doc:1', text: 't' }], 10, 0)
        const claimed = await scripts.claim(10, 0, 30_000, 'tok')
        expect(claimed.items).toHaveLength(1)
        await plant()
        attempt = () => scripts.ack('tok', [{ key: 'doc:1', version: claimed.items[0]!.version }])
      }
      const err = await attempt().catch((e: unknown) => e)
      expect(err).toBeInstanceOf(QueueCorruptedError)
      const c = err as QueueCorruptedError
      expect(c.key).toBe(key)
      expect(c.expectedType).toBe(
        ['seq', 'flush', 'pause'].includes(part)
          ? 'string'
          : /pending|versions|delayed|inflight/.test(part)
            ? 'zset'
            : 'hash',
      )
      expect(c.message).toContain(key)
    })
  }

  it('a worker meeting a corrupted throughput key reports it on every ack through the error event', async () => {
    const q = h.queue({ pollIntervalMs: 20 })
    const k = queueKeys('embedq', q.name)
    await h.redis.set(k.throughput, 'foreign')
    const errors: Error[] = []
    q.on('error', (e) => errors.push(e))
    await q.start()
    await q.enqueue('doc:t', 'text')
    q.flushNow()
    await waitFor(() => errors.some((e) => e instanceof QueueCorruptedError), 5_000, 'QueueCorruptedError')
    const e = errors.find((x) => x instanceof QueueCorruptedError) as QueueCorruptedError
    expect(e.key).toBe(k.throughput)
    expect(e.expectedType).toBe('hash')
  })

  it('failed() skips and reports foreign fields in the dead-letter hash instead of throwing', async () => {
    const q = h.queue({ worker: false })
    const k = queueKeys('embedq', q.name)
    const letter = { key: 'doc:dead', version: 1, text: 't', error: 'boom', attempts: 3, failedAt: 1 }
    await h.redis.hset(k.failed, {
      'doc:dead': JSON.stringify(letter),
      embedding: Buffer.from([1, 2, 3, 4]),
      embedding_version: '17',
    })
    const errors: Error[] = []
    q.on('error', (e) => errors.push(e))
    await expect(q.failed()).resolves.toEqual([letter])
    expect(errors).toHaveLength(1)
    expect(errors[0]).toBeInstanceOf(QueueCorruptedError)
    expect((errors[0] as QueueCorruptedError).key).toBe(k.failed)
    expect(errors[0]!.message).toContain('"embedding"')
  })
})

describe('#10.2 keys and texts that are not well-formed UTF-16', () => {
  it('enqueue refuses keys with lone surrogates (they would alias one Redis hash)', async () => {
    const q = h.queue()
    for (const key of ['a\uD800', 'a\uDBFF', '\uDC00b', 'x\uDFFFy']) {
      const err = await q.enqueue(key, 'text').catch((e: unknown) => e)
      expect(err, JSON.stringify(key)).toBeInstanceOf(InvalidInputError)
      expect((err as InvalidInputError).field).toBe('key')
    }
    // 'a\uD800' and 'a\uDBFF' both encode to 'a\uFFFD': nothing of theirs may reach Redis.
    expect(await h.redis.exists('a\uFFFD')).toBe(0)
    expect(await h.redis.zcard(queueKeys('embedq', q.name).versions)).toBe(0)
    // A well-formed pair is one character, not two halves.
    await expect(q.enqueue('emoji:\u{1F600}', 'ok')).resolves.toMatchObject({ key: 'emoji:\u{1F600}' })
  })

  it('enqueue refuses texts with lone surrogates instead of embedding U+FFFD', async () => {
    const q = h.queue()
    const err = await q.enqueue('doc:s', 'half \uD83D of a pair').catch((e: unknown) => e)
    expect(err).toBeInstanceOf(InvalidInputError)
    expect((err as InvalidInputError).field).toBe('text')
    await expect(q.enqueue('doc:s2', 'whole \u{1F600} pair')).resolves.toMatchObject({ key: 'doc:s2' })
  })

  it('enqueueMany refuses only the ill-formed items', async () => {
    const q = h.queue()
    await q.start()
    const jobs = await q.enqueueMany([
      { key: 'a\uD800', text: 'one' },
      { key: 'a\uDBFF', text: 'two' },
      { key: 'wf:3', text: 'three' },
    ])
    expect(jobs[0]!.error).toBeInstanceOf(InvalidInputError)
    expect(jobs[1]!.error).toBeInstanceOf(InvalidInputError)
    expect(jobs[2]!.error).toBeUndefined()
    q.flushNow()
    expect(Array.from(await jobs[2]!.result)).toEqual(Array.from(fakeVector('three', 8)))
  })
})
