/**
 * `embedq status`: a queue set up by the library (pending items, one backing off, dead
 * letters) is reported by the CLI as text and as JSON, once and with --watch.
 */
import type { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EmbedderError, EmbeddingBatchQueue } from '../../src/index.js'
import { fakeEmbedder, uniqueName, waitFor } from '../helpers/fixtures.js'
import { type RedisServer, startRedisServer } from '../helpers/redis-server.js'
import { json, runCli, show, startCli } from './helpers.js'

let server: RedisServer
let redis: Redis
const name = uniqueName('status')

beforeAll(async () => {
  server = await startRedisServer()
  redis = server.client()
  // Three items embedded: the throughput of the last minute.
  const good = new EmbeddingBatchQueue({ redis, name, embedder: fakeEmbedder() })
  await good.start()
  await good.enqueueMany([1, 2, 3].map((i) => ({ key: `${name}:done:${i}`, text: `done ${i}` })))
  await good.flushAndWait({ timeoutMs: 10_000 })
  await good.stop()
  // Two dead letters: a permanent failure with maxAttempts 1.
  const dead = new EmbeddingBatchQueue({
    redis,
    name,
    embedder: fakeEmbedder({
      fail: () => new EmbedderError('400 bad input', { retryable: false, status: 400 }),
    }),
    maxAttempts: 1,
  })
  await dead.start()
  const jobs = await dead.enqueueMany([
    { key: `${name}:bad:1`, text: 'one' },
    { key: `${name}:bad:2`, text: 'two' },
  ])
  await dead.flushAndWait({ timeoutMs: 10_000 })
  await Promise.allSettled(jobs.map((j) => j.result))
  await dead.stop()
  // One item backing off after its first failed attempt.
  const flaky = new EmbeddingBatchQueue({
    redis,
    name,
    embedder: fakeEmbedder({ fail: () => new Error('503 try later') }),
    maxAttempts: 3,
    backoffBaseMs: 600_000,
    backoffMaxMs: 600_000,
  })
  await flaky.start()
  await flaky.enqueue(`${name}:flaky`, 'flaky text')
  flaky.flushNow()
  await waitFor(async () => (await flaky.stats()).retrying === 1, 10_000, 'a retry')
  await flaky.stop()
  // Five items waiting, flushed (due now) but with no worker to take them.
  const producer = new EmbeddingBatchQueue({ redis, name, embedder: fakeEmbedder(), worker: false })
  await producer.enqueueMany([1, 2, 3, 4, 5].map((i) => ({ key: `${name}:msg:${i}`, text: `text ${i}` })))
  await producer.flushAndWait({ timeoutMs: 0 })
  await producer.stop()
})

afterAll(async () => {
  redis?.disconnect()
  await server?.destroy()
})

describe('embedq status', () => {
  it('--json prints one object with every count, attempt histogram and latest dead letters', async () => {
    const r = await runCli(['status', '--redis', server.url, '--name', name, '--json'])
    expect(r.code, show(r)).toBe(0)
    const s = json<Record<string, unknown>>(r)
    expect(s).toMatchObject({
      queue: name,
      prefix: 'embedq',
      unfinished: 6,
      pending: 5,
      ready: 5,
      inflight: 0,
      retrying: 1,
      attempts: { '1': 1 },
      attemptsSampled: false,
      throughput: { lastMinute: 3 },
    })
    const dead = s.deadLetters as { count: number; latest: Array<Record<string, unknown>> }
    expect(dead.count).toBe(2)
    expect(dead.latest.map((d) => d.key).sort()).toEqual([`${name}:bad:1`, `${name}:bad:2`])
    expect(dead.latest[0]).toMatchObject({ error: '400 bad input', attempts: 1, status: 400 })
    expect(dead.latest[0]).not.toHaveProperty('text')
    expect(s.oldestAgeMs).toBeGreaterThan(0)
  })

  it('prints a readable table with the same numbers', async () => {
    const r = await runCli(['status', '--redis', server.url, '--name', name])
    expect(r.code, show(r)).toBe(0)
    expect(r.stdout).toContain(`queue "${name}"`)
    expect(r.stdout).toMatch(/unfinished\s+6/)
    expect(r.stdout).toMatch(/pending\s+5/)
    expect(r.stdout).toMatch(/retrying\s+1/)
    expect(r.stdout).toContain('1 after 1 failed')
    expect(r.stdout).toMatch(/dead letters\s+2/)
    expect(r.stdout).toContain(`${name}:bad:1  1 attempt`)
    expect(r.stdout).toContain('[400]  400 bad input')
    expect(r.stdout).toMatch(/throughput\s+3 {2}finished in the last minute/)
    expect(r.stderr).toBe('')
  })

  it('--watch --json prints one line per refresh until SIGINT, then exits 0', async () => {
    const p = startCli([
      'status',
      '--redis',
      server.url,
      '--name',
      name,
      '--watch',
      '--json',
      '--interval',
      '150',
    ])
    await p.waitFor(/\n.*\n/, 10_000) // two lines
    p.child.kill('SIGINT')
    const r = await p.done
    expect(r.code, show(r)).toBe(0)
    const lines = r.stdout.trim().split('\n')
    expect(lines.length).toBeGreaterThanOrEqual(2)
    for (const line of lines) expect(JSON.parse(line)).toMatchObject({ queue: name, unfinished: 6 })
  })

  it('an empty queue reports zeros', async () => {
    const r = await runCli(['status', '--redis', server.url, '--name', uniqueName('empty'), '--json'])
    expect(r.code, show(r)).toBe(0)
    expect(json(r)).toMatchObject({ unfinished: 0, pending: 0, oldestAgeMs: null, deadLetters: { count: 0 } })
  })
})
