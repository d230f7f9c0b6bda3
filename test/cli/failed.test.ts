/**
 * `embedq failed`, `embedq retry-failed [KEY…]` and `embedq purge --yes` on dead letters made
 * by a queue whose embedder refuses some texts.
 */
import type { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EmbedderError, EmbeddingBatchQueue, queueKeys } from '../../src/index.js'
import { fakeEmbedder, uniqueName } from '../helpers/fixtures.js'
import { type RedisServer, startRedisServer } from '../helpers/redis-server.js'
import { json, runCli, show } from './helpers.js'

let server: RedisServer
let redis: Redis

beforeAll(async () => {
  server = await startRedisServer()
  redis = server.client()
})

afterAll(async () => {
  redis?.disconnect()
  await server?.destroy()
})

/** Three dead letters (`<name>:bad:<i>`) and one embedded item, on a fresh queue. */
async function deadLetters(name: string): Promise<string[]> {
  const queue = new EmbeddingBatchQueue({
    redis,
    name,
    maxAttempts: 1,
    embedder: fakeEmbedder({
      fail: (texts) =>
        texts.some((t) => t.startsWith('bad'))
          ? new EmbedderError(`400 cannot embed "${texts.join()}"`, { retryable: false, status: 400 })
          : undefined,
    }),
  })
  await queue.start()
  const bad = [1, 2, 3].map((i) => `${name}:bad:${i}`)
  const items = [
    ...bad.map((key, i) => ({ key, text: `bad text ${i + 1}` })),
    { key: `${name}:good`, text: 'good text' },
  ]
  for (const { key, text } of items) await redis.hset(key, 'text', text)
  const jobs = await queue.enqueueMany(items)
  await queue.flushAndWait({ timeoutMs: 10_000 })
  await Promise.allSettled(jobs.map((j) => j.result))
  await queue.stop()
  expect(await redis.hlen(queueKeys('embedq', name).failed)).toBe(3)
  return bad
}

const cli = (name: string, ...args: string[]) => runCli([...args, '--redis', server.url, '--name', name])

describe('embedq failed / retry-failed / purge', () => {
  it('failed lists dead letters with their errors, newest first, as JSON and text', async () => {
    const name = uniqueName('dl')
    const bad = await deadLetters(name)
    const r = await cli(name, 'failed', '--json')
    expect(r.code, show(r)).toBe(0)
    const out = json<{ queue: string; total: number; deadLetters: Array<Record<string, unknown>> }>(r)
    expect(out.queue).toBe(name)
    expect(out.total).toBe(3)
    expect(out.deadLetters.map((d) => d.key).sort()).toEqual(bad)
    const times = out.deadLetters.map((d) => d.failedAt as number)
    expect([...times].sort((a, b) => b - a)).toEqual(times)
    for (const d of out.deadLetters) {
      expect(d).toMatchObject({ attempts: 1, status: 400, error: `400 cannot embed "${d.text}"` })
    }
    const limited = await cli(name, 'failed', '--json', '--limit', '2')
    expect(json<{ total: number; deadLetters: unknown[] }>(limited)).toMatchObject({ total: 3 })
    expect(json<{ deadLetters: unknown[] }>(limited).deadLetters).toHaveLength(2)

    const text = await cli(name, 'failed')
    expect(text.code, show(text)).toBe(0)
    expect(text.stdout).toContain(`queue "${name}": 3 dead letters`)
    expect(text.stdout).toContain(`${name}:bad:2  1 attempt`)
    expect(text.stdout).toContain('[400]  400 cannot embed "bad text 2"')
  })

  it('retry-failed KEY puts one back with its text; unknown keys fail the command; no KEY retries all', async () => {
    const name = uniqueName('dl')
    const bad = await deadLetters(name)
    const k = queueKeys('embedq', name)
    const one = await cli(name, 'retry-failed', bad[0]!, '--json')
    expect(one.code, show(one)).toBe(0)
    expect(json(one)).toEqual({ queue: name, retried: 1, keys: [bad[0]], missing: [], refused: [] })
    expect(await redis.hget(k.jobs, bad[0]!)).toBe('bad text 1')
    expect(await redis.hexists(k.failed, bad[0]!)).toBe(0)
    expect(await redis.hlen(k.failed)).toBe(2)

    const unknown = await cli(name, 'retry-failed', `${name}:nope`)
    expect(unknown.code, show(unknown)).toBe(1)
    expect(unknown.stderr).toContain(`embedq: not dead letters: ${name}:nope`)

    const all = await cli(name, 'retry-failed')
    expect(all.code, show(all)).toBe(0)
    expect(all.stdout).toContain(`retried 2 dead letters of queue "${name}"`)
    expect(await redis.hlen(k.failed)).toBe(0)
    expect((await redis.hkeys(k.jobs)).sort()).toEqual(bad)
  })

  it('purge refuses without --yes, and with --yes deletes every queue key but not the target hashes', async () => {
    const name = uniqueName('dl')
    await deadLetters(name)
    const k = queueKeys('embedq', name)
    await cli(name, 'retry-failed', `${name}:bad:1`) // something pending too
    const bf = await runCli([
      'backfill',
      '--redis',
      server.url,
      '--name',
      name,
      '--match',
      `${name}:good`,
      '--quiet',
    ])
    expect(bf.stdout, show(bf)).toContain('1 hash matching')

    const refused = await cli(name, 'purge')
    expect(refused.code, show(refused)).toBe(2)
    expect(refused.stderr).toContain(
      `embedq: refusing to purge queue "${name}" (2 unfinished items, 2 dead letters) without --yes`,
    )
    expect(await redis.hlen(k.failed)).toBe(2)

    const r = await cli(name, 'purge', '--yes', '--json')
    expect(r.code, show(r)).toBe(0)
    expect(json(r)).toMatchObject({ queue: name, purged: true, unfinished: 2, deadLetters: 2 })
    const { doneChannel: _d, wakeChannel: _w, ...keys } = k
    for (const key of Object.values(keys)) expect(await redis.exists(key), key).toBe(0)
    expect(await redis.keys(`embedq:{${name}}:*`)).toEqual([])
    // The target hashes and the vector already written stay.
    expect(await redis.hexists(`${name}:good`, 'embedding')).toBe(1)
    expect(await redis.hget(`${name}:bad:2`, 'embedding')).not.toBeNull() // the zero vector

    const after = await runCli(['status', '--redis', server.url, '--name', name, '--json'])
    expect(json(after)).toMatchObject({ unfinished: 0, deadLetters: { count: 0 } })
  })
})
