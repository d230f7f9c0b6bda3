/**
 * `embedq backfill` against real Redis: it enqueues exactly the hashes that need a vector,
 * shows progress, resumes after a stop (--limit) or a crash (SIGKILL), and scans every master
 * of a Redis Cluster.
 */
import type { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { queueKeys } from '../../src/index.js'
import { uniqueName, waitFor } from '../helpers/fixtures.js'
import { type RedisCluster, startRedisCluster } from '../helpers/redis-cluster.js'
import { type RedisServer, startRedisServer } from '../helpers/redis-server.js'
import { json, runCli, show, startCli } from './helpers.js'

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

/**
 * 1,000 hashes `<ns>:msg:<i>` with text, 100 of them (i < 100) with a vector already; plus a
 * hash without text, one with blank text, a string key that matches, and a hash that does not.
 */
async function seed(ns: string): Promise<{ missing: string[] }> {
  const p = redis.pipeline()
  const missing: string[] = []
  for (let i = 0; i < 1000; i++) {
    const key = `${ns}:msg:${i}`
    if (i < 100) p.hset(key, { text: `message ${i}`, embedding: Buffer.alloc(16) })
    else {
      p.hset(key, { text: `message ${i}` })
      missing.push(key)
    }
  }
  p.hset(`${ns}:msg:notext`, { author: 'ana' })
  p.hset(`${ns}:msg:blank`, { text: '   ' })
  p.set(`${ns}:msg:string`, 'not a hash')
  p.hset(`${ns}:other:1`, { text: 'not matched' })
  await p.exec()
  return { missing: missing.sort() }
}

const queuedKeys = async (name: string): Promise<string[]> =>
  (await redis.hkeys(queueKeys('embedq', name).jobs)).sort()

const base = (name: string, ns: string): string[] => [
  'backfill',
  '--redis',
  server.url,
  '--name',
  name,
  '--match',
  `${ns}:msg:*`,
  '--text-field',
  'text',
]

describe('embedq backfill', () => {
  it('--missing-only enqueues exactly the hashes without a vector, with progress on stderr', async () => {
    const ns = uniqueName('bf')
    const name = uniqueName('q')
    const { missing } = await seed(ns)
    const r = await runCli([...base(name, ns), '--missing-only', '--count', '200', '--json'])
    expect(r.code, show(r)).toBe(0)
    expect(json(r)).toMatchObject({
      done: true,
      resumed: false,
      scanned: 1002,
      enqueued: 900,
      skipped: { hasVector: 100, noText: 1, blank: 1, invalid: 0, wrongType: 0 },
      run: { enqueued: 900 },
      nodes: 1,
    })
    expect(await queuedKeys(name)).toEqual(missing)
    expect(r.stderr).toMatch(
      /backfill .*msg:\* \[#+\] 100% · scanned 1,002 · enqueued 900 · skipped 102 · [\d,]+ keys\/s/,
    )
    // Done: no saved progress is left behind.
    expect(await redis.exists(`embedq:{${name}}:backfill`)).toBe(0)
  })

  it('without --missing-only enqueues every hash with text; the text summary says what was skipped', async () => {
    const ns = uniqueName('bf')
    const name = uniqueName('q')
    await seed(ns)
    const r = await runCli([...base(name, ns), '--quiet'])
    expect(r.code, show(r)).toBe(0)
    expect(r.stdout).toContain(
      `backfill done: 1,002 hashes matching "${ns}:msg:*" scanned, 1,000 enqueued (skipped: 0 with a vector, 1 without text, 1 blank, 0 invalid)`,
    )
    expect(r.stderr).toBe('')
    expect(await queuedKeys(name)).toHaveLength(1000)
  })

  it('stops at --limit and the next run continues where it stopped', async () => {
    const ns = uniqueName('bf')
    const name = uniqueName('q')
    const { missing } = await seed(ns)
    const first = await runCli([
      ...base(name, ns),
      '--missing-only',
      '--count',
      '50',
      '--limit',
      '300',
      '--json',
    ])
    expect(first.code, show(first)).toBe(0)
    const a = json<{ done: boolean; stoppedBy: string; enqueued: number }>(first)
    expect(a).toMatchObject({ done: false, stoppedBy: 'limit' })
    expect(a.enqueued).toBeGreaterThanOrEqual(300)
    expect(a.enqueued).toBeLessThan(900)
    expect((await queuedKeys(name)).length).toBe(a.enqueued)

    // `status` shows the resumable backfill.
    const st = await runCli(['status', '--redis', server.url, '--name', name, '--json'])
    expect(json<{ backfills: unknown[] }>(st).backfills).toEqual([
      expect.objectContaining({ match: `${ns}:msg:*`, enqueued: a.enqueued }),
    ])

    const second = await runCli([...base(name, ns), '--missing-only', '--count', '50', '--json'])
    expect(second.code, show(second)).toBe(0)
    const b = json<{ done: boolean; resumed: boolean; enqueued: number; run: { enqueued: number } }>(second)
    expect(b).toMatchObject({ done: true, resumed: true, enqueued: 900 })
    expect(b.run.enqueued).toBe(900 - a.enqueued)
    expect(await queuedKeys(name)).toEqual(missing)
  })

  it('resumes after being killed (SIGKILL) and ends with every missing hash queued', async () => {
    const ns = uniqueName('bf')
    const name = uniqueName('q')
    const { missing } = await seed(ns)
    // --max-unfinished makes it wait for workers (there are none) after a few pages: kill it there.
    const p = startCli([...base(name, ns), '--missing-only', '--count', '50', '--max-unfinished', '200'])
    await p.waitFor(/waiting: the queue holds/, 15_000)
    p.child.kill('SIGKILL')
    await p.done
    const before = (await queuedKeys(name)).length
    expect(before).toBeGreaterThan(200)
    expect(before).toBeLessThan(900)
    const r = await runCli([...base(name, ns), '--missing-only', '--count', '50', '--json'])
    expect(r.code, show(r)).toBe(0)
    expect(json(r)).toMatchObject({ done: true, resumed: true })
    expect(await queuedKeys(name)).toEqual(missing)
  })

  it('SIGINT stops after the current page, saves progress and exits 130', async () => {
    const ns = uniqueName('bf')
    const name = uniqueName('q')
    await seed(ns)
    const p = startCli([...base(name, ns), '--missing-only', '--count', '50', '--max-unfinished', '100'])
    await p.waitFor(/waiting: the queue holds/, 15_000)
    p.child.kill('SIGINT')
    const r = await p.done
    expect(r.code, show(r)).toBe(130)
    expect(r.stdout).toContain('backfill interrupted')
    expect(r.stdout).toContain('run the same command again to continue')
    expect(await redis.hlen(`embedq:{${name}}:backfill`)).toBe(1)
    // --restart ignores the saved progress.
    const again = await runCli([...base(name, ns), '--missing-only', '--restart', '--json'])
    expect(json(again)).toMatchObject({ done: true, resumed: false, scanned: 1002, enqueued: 900 })
  })
})

describe('embedq backfill on a Redis Cluster', () => {
  let cluster: RedisCluster | undefined

  afterAll(async () => {
    await cluster?.destroy()
  })

  it('scans every master (--cluster) and enqueues hashes from all slots', async () => {
    cluster = await startRedisCluster({ masters: 3 })
    const client = cluster.client()
    try {
      const ns = uniqueName('cbf')
      const name = uniqueName('q')
      const keys = Array.from({ length: 300 }, (_, i) => `${ns}:msg:${i}`)
      await Promise.all(keys.map((k, i) => client.hset(k, { text: `clustered ${i}` })))
      await waitFor(async () => (await client.nodes('master')).length === 3, 5_000, 'three masters')
      const url = `redis://127.0.0.1:${cluster.masters[0]}`
      const r = await runCli([
        'backfill',
        '--redis',
        url,
        '--cluster',
        '--name',
        name,
        '--match',
        `${ns}:msg:*`,
        '--count',
        '50',
        '--json',
      ])
      expect(r.code, show(r)).toBe(0)
      expect(json(r)).toMatchObject({ done: true, scanned: 300, enqueued: 300, nodes: 3 })
      expect((await client.hkeys(queueKeys('embedq', name).jobs)).sort()).toEqual([...keys].sort())
      const st = await runCli(['status', '--redis', url, '--cluster', '--name', name, '--json'])
      expect(json(st)).toMatchObject({ unfinished: 300, pending: 300 })
    } finally {
      client.disconnect()
    }
  })
})
