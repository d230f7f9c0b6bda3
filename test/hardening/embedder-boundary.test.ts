/**
 * #10.3 and #10.4: the embedder is foreign code. Whatever it returns or throws, and however long
 * it takes, only the affected items fail, with a typed error; nothing escapes as an unhandled
 * rejection, the process survives, and no claim stays in flight.
 */
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { Embedder, EmbedOptions } from '../../src/embedder.js'
import {
  EmbedderError,
  EmbedderReplyError,
  EmbedderTimeoutError,
  EmbeddingBatchQueue,
  EmbeddingFailedError,
  queueKeys,
} from '../../src/index.js'
import { fakeVector, sleep, uniqueName, waitFor } from '../helpers/fixtures.js'
import { useQueueHarness } from '../helpers/queue-harness.js'

const DIMS = 8
const BAD = 'BAD'

/** Garbage an embedder may put in place of one vector. */
const ENTRY_GARBAGE: Record<string, () => unknown> = {
  null: () => null,
  undefined: () => undefined,
  'a string': () => 'not a vector',
  'a number': () => 42,
  'a plain object': () => ({ length: DIMS }),
  'too few dimensions': () => [1, 2, 3],
  'too many dimensions': () => Array.from({ length: DIMS + 1 }, () => 0.5),
  'a Float32Array of the wrong size': () => new Float32Array(DIMS - 1),
  'a Float64Array of the wrong size': () => new Float64Array(DIMS * 2),
  'a NaN value': () => Array.from({ length: DIMS }, (_, i) => (i === 3 ? Number.NaN : 0.1)),
  'an Infinity value': () => Float32Array.from({ length: DIMS }, (_, i) => (i === 0 ? Infinity : 0.1)),
  'a value too large for float32': () => Array.from({ length: DIMS }, () => 1e300),
  'numeric strings': () => Array.from({ length: DIMS }, () => '0.5'),
  'a BigInt64Array': () => new BigInt64Array(DIMS),
  'a sparse array': () => new Array(DIMS),
  'a getter that throws': () => {
    const v = Array.from({ length: DIMS }, () => 0.1)
    Object.defineProperty(v, 2, {
      get() {
        throw new Error('getter exploded')
      },
    })
    return v
  },
  'a DataView': () => new DataView(new ArrayBuffer(DIMS * 4)),
}

/** Garbage instead of the whole reply (for a call containing a bad text). */
const REPLY_GARBAGE: Record<string, (texts: string[]) => unknown> = {
  null: () => null,
  undefined: () => undefined,
  'an object': () => ({ vectors: [] }),
  'a number': () => 7,
  'one vector too few': (texts) => texts.slice(1).map((t) => Array.from(fakeVector(t, DIMS))),
  'one vector too many': (texts) => [...texts, 'x'].map((t) => Array.from(fakeVector(t, DIMS))),
  'an array whose length getter throws': () =>
    new Proxy([], {
      get(target, prop) {
        if (prop === 'length') throw new Error('length exploded')
        return Reflect.get(target, prop)
      },
    }),
}

/** Ways an embedder can fail a call (retryable: the items are retried, then succeed). */
const THROWS: Record<string, () => unknown> = {
  'a rejected promise with a string': () => Promise.reject('plain string'),
  'a rejected promise with null': () => Promise.reject(null),
  'a rejected promise with undefined': () => Promise.reject(undefined),
  'a rejected promise with an object': () => Promise.reject({ code: 'E_WEIRD' }),
  'a sync throw': () => {
    throw new Error('sync throw')
  },
  'a sync throw of a number': () => {
    throw 13
  },
  'an error whose message getter throws': () =>
    Promise.reject(
      Object.defineProperty(new Error('x'), 'message', {
        get() {
          throw new Error('message exploded')
        },
      }),
    ),
  'a thenable whose then getter throws': () =>
    Object.defineProperty({}, 'then', {
      get() {
        throw new Error('then exploded')
      },
    }),
}

/** A good vector per text, except `garbage(texts)` for calls that contain a bad text. */
function embedderWith(
  entry: (() => unknown) | undefined,
  reply: ((texts: string[]) => unknown) | undefined,
): Embedder & { calls: number } {
  const e = {
    dimensions: DIMS,
    calls: 0,
    embed(texts: string[]): Promise<ArrayLike<number>[]> {
      e.calls++
      if (reply && texts.some((t) => t.startsWith(BAD))) return Promise.resolve(reply(texts) as number[][])
      return Promise.resolve(
        texts.map((t) => (entry && t.startsWith(BAD) ? entry() : fakeVector(t, DIMS))) as number[][],
      )
    },
  }
  return e
}

const unhandled: unknown[] = []
const onUnhandled = (reason: unknown): void => {
  unhandled.push(reason)
}
beforeAll(() => {
  process.on('unhandledRejection', onUnhandled)
})
afterAll(() => {
  process.off('unhandledRejection', onUnhandled)
})

describe('#10.3 garbage from an embedder fails only the affected items, typed, with nothing left in flight', () => {
  const h = useQueueHarness()
  afterEach(() => {
    expect(unhandled).toEqual([])
  })

  /** Five items in one claim, the bad one at `position`; waits for all five outcomes. */
  async function runChunk(embedder: Embedder, position: number, opts: { maxAttempts?: number } = {}) {
    const name = uniqueName()
    const q = h.queue({
      embedder,
      name,
      maxBatchSize: 5,
      maxAttempts: opts.maxAttempts ?? 1,
      backoffBaseMs: 0,
      backoffMaxMs: 0,
      resultTimeoutMs: 10_000,
    })
    const errors: Error[] = []
    let failedEvents = 0
    q.on('failed', (info) => {
      failedEvents++
      errors.push(info.error)
    })
    q.on('retrying', (info) => errors.push(info.error))
    await q.start()
    const items = Array.from({ length: 5 }, (_, i) => ({
      key: `${name}:k${i}`,
      text: i === position ? `${BAD} ${i}` : `good ${i}`,
    }))
    const jobs = await q.enqueueMany(items)
    const outcomes = await Promise.allSettled(jobs.map((j) => j.result))
    // A failure message can reach the subscriber before the worker's script reply: wait for the events.
    const rejected = outcomes.filter((o) => o.status === 'rejected').length
    await waitFor(() => failedEvents >= rejected, 5_000, 'the failed events')
    const k = queueKeys('embedq', name)
    await waitFor(async () => (await h.redis.zcard(k.inflight)) === 0, 5_000, 'inflight to empty')
    expect(await h.redis.hlen(k.leases)).toBe(0)
    return { q, items, outcomes, errors, keys: k }
  }

  for (const [form, make] of Object.entries(ENTRY_GARBAGE)) {
    for (const [where, position] of [
      ['first', 0],
      ['middle', 2],
      ['last', 4],
    ] as const) {
      it(`an entry that is ${form}, ${where} in the chunk, dead-letters only that item (EmbedderReplyError)`, async () => {
        const { outcomes, errors, items, keys } = await runChunk(embedderWith(make, undefined), position)
        outcomes.forEach((o, i) => {
          if (i === position) {
            expect(o.status).toBe('rejected')
            expect((o as PromiseRejectedResult).reason).toBeInstanceOf(EmbeddingFailedError)
          } else {
            expect(o.status).toBe('fulfilled')
            expect(Array.from((o as PromiseFulfilledResult<Float32Array>).value)).toEqual(
              Array.from(fakeVector(items[i]!.text, DIMS)),
            )
          }
        })
        expect(errors).toHaveLength(1)
        expect(errors[0]).toBeInstanceOf(EmbedderReplyError)
        expect(await h.redis.hkeys(keys.failed)).toEqual([items[position]!.key])
      })
    }
  }

  for (const [form, make] of Object.entries(REPLY_GARBAGE)) {
    for (const [where, position] of [
      ['first', 0],
      ['middle', 2],
      ['last', 4],
    ] as const) {
      it(`a reply that is ${form} (bad text ${where}) is bisected: only the bad item is dead-lettered`, async () => {
        const { outcomes, errors, items, keys } = await runChunk(embedderWith(undefined, make), position)
        for (const [i, o] of outcomes.entries())
          expect(o.status).toBe(i === position ? 'rejected' : 'fulfilled')
        expect(errors).toHaveLength(1)
        expect(errors[0]).toBeInstanceOf(EmbedderReplyError)
        expect(await h.redis.hkeys(keys.failed)).toEqual([items[position]!.key])
      })
    }
  }

  for (const [form, thrower] of Object.entries(THROWS)) {
    it(`${form} fails the call's items with an EmbedderError and they are retried to success`, async () => {
      let thrown = 0
      const embedder: Embedder = {
        dimensions: DIMS,
        embed(texts: string[]) {
          if (thrown++ === 0) return thrower() as Promise<number[][]>
          return Promise.resolve(texts.map((t) => Array.from(fakeVector(t, DIMS))))
        },
      }
      const { outcomes, errors, keys } = await runChunk(embedder, 2, { maxAttempts: 2 })
      for (const o of outcomes) expect(o.status).toBe('fulfilled')
      expect(errors.length).toBeGreaterThan(0)
      for (const e of errors) {
        expect(e).toBeInstanceOf(EmbedderError)
        expect(typeof e.message).toBe('string')
      }
      expect(await h.redis.hlen(keys.failed)).toBe(0)
    })
  }

  it('a non-promise return (a plain array) is accepted as the reply', async () => {
    const embedder = {
      dimensions: DIMS,
      embed: (texts: string[]) => texts.map((t) => fakeVector(t, DIMS)),
    } as unknown as Embedder
    const { outcomes } = await runChunk(embedder, 0)
    for (const o of outcomes) expect(o.status).toBe('fulfilled')
  })

  it('an embedder whose embed getter throws fails the items typed, without crashing', async () => {
    const embedder = Object.defineProperty({ dimensions: DIMS }, 'embed', {
      get() {
        throw new Error('embed getter exploded')
      },
      enumerable: true,
    }) as unknown as Embedder
    // The options check reads `embed` too; a getter that throws only later is what matters.
    let reads = 0
    const lazy = Object.defineProperty({ dimensions: DIMS }, 'embed', {
      get() {
        if (reads++ > 0) throw new Error('embed getter exploded')
        return () => Promise.resolve([])
      },
    }) as unknown as Embedder
    expect(() => new EmbeddingBatchQueue({ redis: h.redis, embedder })).toThrow()
    const { outcomes, errors } = await runChunk(lazy, 0)
    for (const o of outcomes) expect(o.status).toBe('rejected')
    for (const e of errors) expect(e).toBeInstanceOf(EmbedderError)
  })
})

describe('#10.4 an embedder that ignores its AbortSignal is bounded by embedTimeoutMs', () => {
  const h = useQueueHarness()

  it('a call that never settles is abandoned after embedTimeoutMs, its items retried as a timeout', async () => {
    let calls = 0
    const signals: AbortSignal[] = []
    const embedder: Embedder = {
      dimensions: DIMS,
      embed(texts: string[], o?: EmbedOptions) {
        calls++
        if (o?.signal) signals.push(o.signal)
        // The first call hangs forever and ignores its signal.
        if (calls === 1) return new Promise(() => {})
        return Promise.resolve(texts.map((t) => fakeVector(t, DIMS)))
      },
    }
    const name = uniqueName()
    const q = h.queue({
      embedder,
      name,
      maxBatchSize: 3,
      embedTimeoutMs: 300,
      backoffBaseMs: 0,
      backoffMaxMs: 0,
      maxAttempts: 3,
      resultTimeoutMs: 10_000,
    })
    const retried: { attempts: number; error: Error }[] = []
    q.on('retrying', (info) => retried.push(info))
    await q.start()
    const started = Date.now()
    const jobs = await q.enqueueMany([1, 2, 3].map((i) => ({ key: `${name}:t${i}`, text: `text ${i}` })))
    const vectors = await Promise.all(jobs.map((j) => j.result))
    expect(vectors).toHaveLength(3)
    expect(Date.now() - started).toBeGreaterThanOrEqual(280)
    expect(retried).toHaveLength(3)
    for (const r of retried) {
      expect(r.error).toBeInstanceOf(EmbedderTimeoutError)
      expect(r.attempts).toBe(1)
    }
    expect(signals[0]!.aborted).toBe(true)
    expect(await h.redis.zcard(queueKeys('embedq', name).inflight)).toBe(0)
  })

  it('with maxAttempts reached, a hanging embedder dead-letters its items instead of holding them', async () => {
    const embedder: Embedder = { dimensions: DIMS, embed: () => new Promise(() => {}) }
    const name = uniqueName()
    const q = h.queue({ embedder, name, embedTimeoutMs: 200, maxAttempts: 1, resultTimeoutMs: 10_000 })
    await q.start()
    const job = await q.enqueue(`${name}:k`, 'text')
    q.flushNow()
    const err = await job.result.catch((e: unknown) => e)
    expect(err).toBeInstanceOf(EmbeddingFailedError)
    expect((err as EmbeddingFailedError).lastError).toMatch(/embedTimeoutMs/)
  })

  it('stop() does not wait for a call that ignores its signal', async () => {
    const embedder: Embedder = { dimensions: DIMS, embed: () => new Promise(() => {}) }
    const name = uniqueName()
    const q = h.queue({ embedder, name, embedTimeoutMs: 3_600_000, stopGraceMs: 100 })
    await q.start()
    await q.enqueue(`${name}:k`, 'text')
    q.flushNow()
    await waitFor(async () => (await h.redis.zcard(queueKeys('embedq', name).inflight)) === 1, 5_000)
    const t0 = Date.now()
    await q.stop()
    expect(Date.now() - t0).toBeLessThan(1_500)
    const k = queueKeys('embedq', name)
    // Released uncharged: back in pending, nothing in flight, no attempt counted.
    expect(await h.redis.zcard(k.inflight)).toBe(0)
    expect(await h.redis.zscore(k.pending, `${name}:k`)).not.toBeNull()
    expect(await h.redis.hget(k.retries, `${name}:k`)).toBeNull()
  })

  it('rejects an invalid embedTimeoutMs naming the option', () => {
    expect(() => h.queue({ embedTimeoutMs: 0 })).toThrow(/embedTimeoutMs/)
    expect(() => h.queue({ embedTimeoutMs: 'soon' as unknown as number })).toThrow(TypeError)
  })
})

describe('#10.3 a worker process survives garbage replies', () => {
  const h = useQueueHarness()

  it('a null entry does not crash the worker process; the item is dead-lettered and the rest embedded', async () => {
    const name = uniqueName()
    const proc = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/garbage-worker.ts'], {
      env: { ...process.env, REDIS_URL: h.server.url, QUEUE_NAME: name },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stderr = ''
    proc.stderr.on('data', (d: Buffer) => {
      stderr += d.toString()
    })
    const lines: Record<string, unknown>[] = []
    createInterface({ input: proc.stdout }).on('line', (l) =>
      lines.push(JSON.parse(l) as Record<string, unknown>),
    )
    let exitCode: number | null | undefined
    proc.once('exit', (code) => {
      exitCode = code
    })
    try {
      await waitFor(() => lines.some((l) => l.ready), 20_000, 'worker ready')
      const producer = h.queue({ name, worker: false, resultTimeoutMs: 15_000 })
      const items = Array.from({ length: 9 }, (_, i) => ({
        key: `${name}:k${i}`,
        text: i % 4 === 0 ? `${BAD} ${i}` : `good ${i}`,
      }))
      const jobs = await producer.enqueueMany(items)
      await producer.flushNow()
      const outcomes = await Promise.allSettled(jobs.map((j) => j.result))
      for (const [i, o] of outcomes.entries()) expect(o.status).toBe(i % 4 === 0 ? 'rejected' : 'fulfilled')
      await sleep(200)
      expect(exitCode, stderr).toBeUndefined()
      expect(proc.exitCode).toBeNull()
      expect(lines.filter((l) => 'unhandled' in l)).toEqual([])
      const k = queueKeys('embedq', name)
      expect((await h.redis.hkeys(k.failed)).sort()).toEqual([`${name}:k0`, `${name}:k4`, `${name}:k8`])
      expect(await h.redis.zcard(k.inflight)).toBe(0)
    } finally {
      proc.kill('SIGTERM')
      await Promise.race([new Promise((r) => proc.once('exit', r)), sleep(5_000)])
      if (proc.exitCode === null) proc.kill('SIGKILL')
    }
  })
})
