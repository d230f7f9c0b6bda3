/**
 * The caller's ioredis client is the caller's: after queues ran every script on it (enqueue,
 * claim, write-back, ack, fail, dead letters, retry, cache, rate limit, reclaim, flush, stats),
 * the client has no new own property, no new command on itself or its prototype chain, no
 * defined script in `scriptsSet`, no added built-in, no left-over listener, the same options,
 * and it is still connected.
 */
import type { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EmbedderError, EmbeddingBatchQueue } from '../../src/index.js'
import { commandCalls, fakeEmbedder, uniqueName } from '../helpers/fixtures.js'
import { type RedisServer, startRedisServer } from '../helpers/redis-server.js'

interface Snapshot {
  keys: string[]
  ownNames: string[]
  protoNames: string[]
  scripts: string[]
  builtins: string[]
  listeners: Record<string, number>
  options: string
  status: string
}

/** Every property name on the prototype chain below Object.prototype: the client's commands. */
function protoNames(client: object): string[] {
  const names = new Set<string>()
  for (let p = Object.getPrototypeOf(client); p && p !== Object.prototype; p = Object.getPrototypeOf(p)) {
    for (const n of Object.getOwnPropertyNames(p)) names.add(n)
  }
  return [...names].sort()
}

function snapshot(client: Redis): Snapshot {
  const internals = client as unknown as { scriptsSet: Record<string, unknown>; addedBuiltinSet: Set<string> }
  return {
    keys: Object.keys(client).sort(),
    ownNames: Object.getOwnPropertyNames(client).sort(),
    protoNames: protoNames(client),
    scripts: Object.keys(internals.scriptsSet).sort(),
    builtins: [...internals.addedBuiltinSet].sort(),
    listeners: Object.fromEntries(client.eventNames().map((e) => [String(e), client.listenerCount(e)])),
    options: JSON.stringify(client.options),
    status: client.status,
  }
}

let server: RedisServer
let client: Redis

beforeAll(async () => {
  server = await startRedisServer()
  client = server.client()
  await client.ping()
})

afterAll(async () => {
  await client?.quit()
  await server?.destroy()
})

describe('the caller’s client after a queue ran on it', () => {
  it('has the same own properties, commands, scripts, listeners and options, and is still connected', async () => {
    const before = snapshot(client)
    expect(before.scripts).toEqual([])
    await client.config('RESETSTAT')

    const name = uniqueName('untouched')
    const queue = new EmbeddingBatchQueue({
      redis: client,
      name,
      embedder: fakeEmbedder({
        fail: (texts) =>
          texts.some((t) => t.startsWith('bad'))
            ? new EmbedderError('400 bad input', { retryable: false, status: 400 })
            : undefined,
      }),
      maxAttempts: 1,
      maxBatchSize: 4,
      flushIntervalMs: 50,
      cache: { ttlSeconds: 60, namespace: 'fake-8' },
      rateLimit: { requestsPerMinute: 10_000 },
    })
    await queue.start()
    const jobs = await queue.enqueueMany([
      { key: `${name}:a`, text: 'alpha' },
      { key: `${name}:b`, text: 'beta' },
      { key: `${name}:c`, text: 'bad text' },
    ])
    const single = await queue.enqueue(`${name}:d`, 'alpha') // a cache hit
    queue.flushNow()
    const flushed = await queue.flushAndWait({ timeoutMs: 10_000 })
    expect(flushed.drained).toBe(true)
    await expect(single.result).resolves.toHaveLength(8)
    await Promise.allSettled(jobs.map((j) => j.result))
    expect((await queue.failed()).map((d) => d.key)).toEqual([`${name}:c`])
    await queue.stats()
    await queue.pendingCount()
    await queue.retryFailed()
    await queue.flushAndWait({ timeoutMs: 10_000 })
    await queue.result(`${name}:a`, { timeoutMs: 5_000 })
    await queue.stop()

    // A producer-only instance on the same client, started and stopped.
    const producer = new EmbeddingBatchQueue({ redis: client, name, worker: false, embedder: fakeEmbedder() })
    await producer.start()
    await producer.enqueue(`${name}:e`, 'epsilon')
    await producer.stop()

    // The scripts did run on this client, and through EVALSHA.
    const calls = await commandCalls(client)
    expect(calls.evalsha ?? 0).toBeGreaterThan(5)

    expect(snapshot(client)).toEqual(before)
    expect(client.status).toBe('ready')
    expect(await client.ping()).toBe('PONG')
  })
})
