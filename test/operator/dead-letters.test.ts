/**
 * #12 dead letters at scale: paged with HSCAN (never one HGETALL), filtered by match, status
 * and error, retried and deleted by the same filters, in the API and the CLI.
 */
import type { Redis } from 'ioredis'
import { describe, expect, it } from 'vitest'
import type { DeadLetter } from '../../src/index.js'
import { QueueAdmin, queueKeys } from '../../src/index.js'
import { runCli } from '../cli/helpers.js'
import { commandCalls, uniqueName } from '../helpers/fixtures.js'
import { useQueueHarness } from '../helpers/queue-harness.js'

const h = useQueueHarness()
const N = 20_000

/** N dead letters: `dl:a:<i>` (400, "bad input") for even i, `dl:b:<i>` (503, "timeout") for odd. */
async function fill(redis: Redis, name: string): Promise<void> {
  const k = queueKeys('embedq', name)
  for (let start = 0; start < N; start += 2_000) {
    const fields: Record<string, string> = {}
    for (let i = start; i < start + 2_000; i++) {
      const a = i % 2 === 0
      const key = `dl:${a ? 'a' : 'b'}:${i}`
      const letter: DeadLetter = {
        key,
        version: i + 1,
        text: `text ${i}`,
        error: a ? '400 bad input' : '503 upstream timeout',
        status: a ? 400 : 503,
        attempts: 3,
        failedAt: 1_700_000_000_000 + i,
      }
      fields[key] = JSON.stringify(letter)
    }
    await redis.hset(k.failed, fields)
  }
}

async function collect(admin: QueueAdmin, filter: Parameters<QueueAdmin['failed']>[0]): Promise<Set<string>> {
  const keys = new Set<string>()
  let cursor = '0'
  let pages = 0
  do {
    const page = await admin.failed({ ...filter, cursor, count: 1_000 })
    for (const l of page.items) keys.add(l.key)
    cursor = page.cursor
    pages++
  } while (cursor !== '0')
  expect(pages).toBeGreaterThan(1)
  return keys
}

describe('#12 dead letters at scale', () => {
  it('20k dead letters: paged, filtered, retried and deleted by filter without HGETALL', async () => {
    const name = uniqueName('dl')
    await fill(h.redis, name)
    const admin = new QueueAdmin({ redis: h.redis, name })
    const k = queueKeys('embedq', name)
    const before = await commandCalls(h.redis)

    expect((await collect(admin, {})).size).toBe(N)
    expect((await collect(admin, { match: 'dl:a:*' })).size).toBe(N / 2)
    const b = await collect(admin, { status: 503 })
    expect(b.size).toBe(N / 2)
    expect([...b].every((key) => key.startsWith('dl:b:'))).toBe(true)
    expect((await collect(admin, { error: 'timeout' })).size).toBe(N / 2)
    const page = await admin.failed({ keys: ['dl:a:0', 'dl:b:1', 'nope'] })
    expect(page.items.map((l) => l.key).sort()).toEqual(['dl:a:0', 'dl:b:1'])
    expect(page.cursor).toBe('0')

    // dl:b:1, dl:b:11…19, dl:b:101…199, dl:b:1001…1999, dl:b:10001…19999 (odd only)
    const expected = [...b].filter((key) => key.startsWith('dl:b:1')).length
    const retried = await admin.retryFailed({ match: 'dl:b:1*' })
    expect(retried).toBe(expected)
    expect(await h.redis.hlen(k.failed)).toBe(N - expected)
    expect(await h.redis.zcard(k.versions)).toBe(expected)
    expect(await h.redis.hget(k.jobs, 'dl:b:1')).toBe('text 1')

    const deleted = await admin.deleteFailed({ status: 400 })
    expect(deleted).toBe(N / 2)
    expect(await h.redis.hlen(k.failed)).toBe(N / 2 - expected)

    const after = await commandCalls(h.redis)
    expect((after.hgetall ?? 0) - (before.hgetall ?? 0), 'HGETALL calls').toBe(0)
    expect((after.hscan ?? 0) - (before.hscan ?? 0)).toBeGreaterThan(20)
  }, 60_000)

  it('the queue keeps its array form without an argument and pages with one', async () => {
    const q = h.queue({ worker: false })
    await fill(h.redis, q.name)
    const all = await q.failed()
    expect(all).toHaveLength(N)
    const page = await q.failed({ count: 10, match: 'dl:a:2*' })
    expect(Array.isArray(page)).toBe(false)
    expect(page.items.every((l) => l.key.startsWith('dl:a:2'))).toBe(true)
    const jobs = await q.retryFailed(['dl:a:0'])
    expect(jobs.map((j) => j.key)).toEqual(['dl:a:0'])
    expect(await q.retryFailed({ keys: ['dl:a:2'] })).toBe(1)
    expect(await q.deleteFailed({ error: 'timeout' })).toBe(N / 2)
  }, 60_000)

  it('embedq failed --cursor/--count/--match/--status, retry-failed --match, delete-failed --yes', async () => {
    const name = uniqueName('dlcli')
    await fill(h.redis, name)
    const args = ['--redis', h.server.url, '--name', name]
    const p = await runCli([
      'failed',
      '--cursor',
      '0',
      '--count',
      '50',
      '--match',
      'dl:b:*',
      '--status',
      '503',
      '--json',
      ...args,
    ])
    expect(p.code).toBe(0)
    const page = JSON.parse(p.stdout) as { items: DeadLetter[]; cursor: string }
    expect(page.cursor).not.toBe('0')
    expect(page.items.every((l) => l.key.startsWith('dl:b:') && l.status === 503)).toBe(true)
    const r = await runCli(['retry-failed', '--match', 'dl:a:1999*', '--json', ...args])
    expect(r.code).toBe(0)
    expect(JSON.parse(r.stdout)).toMatchObject({ retried: 5 }) // dl:a:19990, …92, …94, …96, …98
    const dry = await runCli(['delete-failed', '--match', 'dl:a:*', ...args])
    expect(dry.code).toBe(2)
    expect(dry.stderr).toContain(`would delete ${(N / 2 - 5).toLocaleString('en-US')}`)
    expect(await h.redis.hlen(queueKeys('embedq', name).failed)).toBe(N - 5)
    const del = await runCli(['delete-failed', '--match', 'dl:a:*', '--yes', '--json', ...args])
    expect(del.code).toBe(0)
    expect(JSON.parse(del.stdout)).toEqual({ queue: name, deleted: N / 2 - 5 })
  }, 60_000)
})
