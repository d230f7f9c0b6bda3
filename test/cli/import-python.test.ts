/**
 * `embedq import-python`: the keys of the original Python `EmbeddingBatchQueue`, filled the way
 * the Python code fills them (`json.dumps({"redis_key": …, "text": …})` members scored by
 * `time.time()`, claimed members moved to `inflight`, keys in `dedup`, attempts in `retries`),
 * are imported into an embedq queue on a private redis-server without losing an item.
 */
import type { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EmbeddingBatchQueue } from '../../src/index.js'
import { queueKeys } from '../../src/keys.js'
import { fakeEmbedder, fakeVector, readVector, uniqueName } from '../helpers/fixtures.js'
import { type RedisServer, startRedisServer } from '../helpers/redis-server.js'
import { json, runCli, show } from './helpers.js'

/** Python's `json.dumps` with its defaults: `", "` and `": "` separators, non-ASCII escaped. */
function pyDumps(obj: Record<string, string>): string {
  const body = Object.entries(obj)
    .map(([k, v]) => `${JSON.stringify(k)}: ${JSON.stringify(v)}`)
    .join(', ')
  return `{${body}}`.replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
}

interface PyItem {
  key: string
  text: string
  /** `time.time()` at enqueue. */
  at: number
}

/** What the Python producer and a Python worker that died mid-batch leave behind. */
async function fillPython(
  redis: Redis,
  prefix: string,
  pending: PyItem[],
  inflight: PyItem[] = [],
): Promise<void> {
  for (const item of [...pending, ...inflight]) {
    await redis.zadd(`${prefix}:pending`, item.at, pyDumps({ redis_key: item.key, text: item.text }))
    await redis.sadd(`${prefix}:dedup`, item.key)
  }
  for (const item of inflight) {
    // The worker's claim: ZREM from pending, ZADD to inflight, one retry recorded.
    const member = pyDumps({ redis_key: item.key, text: item.text })
    await redis.zrem(`${prefix}:pending`, member)
    await redis.zadd(`${prefix}:inflight`, item.at, member)
    await redis.hincrby(`${prefix}:retries`, item.key, 1)
  }
}

interface Summary {
  read: { pending: number; inflight: number }
  imported: number
  alreadyImported: number
  superseded: number
  blank: number
  rejected: number
  rejectedSample: Array<{ from: string; member: string; reason: string }>
  deleted: number
  dryRun: boolean
}

let server: RedisServer
let redis: Redis
const T0 = 1_764_750_000.25

beforeAll(async () => {
  server = await startRedisServer()
  redis = server.client()
})

afterAll(async () => {
  await redis?.quit()
  await server?.destroy()
})

const importPython = (name: string, ...args: string[]) =>
  runCli(['import-python', '--redis', server.url, '--name', name, '--json', ...args], { timeoutMs: 30_000 })

/** The embedq queue's pending items in claim (FIFO) order, with their text. */
async function embedqItems(name: string): Promise<Array<{ key: string; text: string | null }>> {
  const k = queueKeys('embedq', name)
  const keys = await redis.zrange(k.pending, 0, -1)
  const texts = keys.length ? await redis.hmget(k.jobs, ...keys) : []
  return keys.map((key, i) => ({ key, text: texts[i] ?? null }))
}

describe('embedq import-python', () => {
  it('imports pending and in-flight items oldest first, and the newest text of a key wins', async () => {
    const name = uniqueName('py')
    const from = uniqueName('embed_queue')
    await fillPython(
      redis,
      from,
      [
        { key: `${name}:2`, text: 'second', at: T0 + 2 },
        { key: `${name}:3`, text: 'café ☕ third', at: T0 + 3 },
        { key: `${name}:1`, text: 'old text of one', at: T0 + 0.5 },
        { key: `${name}:1`, text: 'new text of one', at: T0 + 4 },
      ],
      [{ key: `${name}:0`, text: 'claimed by a dead worker', at: T0 + 1 }],
    )
    const r = await importPython(name, '--from-prefix', from)
    expect(r.code, show(r)).toBe(0)
    const s = json<Summary>(r)
    expect(s).toMatchObject({
      read: { pending: 4, inflight: 1 },
      imported: 5,
      alreadyImported: 0,
      rejected: 0,
    })

    // FIFO by the Python enqueue time; key 1 keeps its first place but holds its newest text.
    expect(await embedqItems(name)).toEqual([
      { key: `${name}:1`, text: 'new text of one' },
      { key: `${name}:0`, text: 'claimed by a dead worker' },
      { key: `${name}:2`, text: 'second' },
      { key: `${name}:3`, text: 'café ☕ third' },
    ])
    // Without --delete the Python keys are left as they were.
    expect(await redis.zcard(`${from}:pending`)).toBe(4)
    expect(await redis.zcard(`${from}:inflight`)).toBe(1)

    // A worker embeds them into the target hashes, as float32 blobs under `embedding`.
    const queue = new EmbeddingBatchQueue({ redis, name, embedder: fakeEmbedder(), flushIntervalMs: 50 })
    try {
      await queue.start()
      expect((await queue.flushAndWait({ timeoutMs: 10_000 })).drained).toBe(true)
    } finally {
      await queue.stop()
    }
    expect(await readVector(redis, `${name}:1`)).toEqual(fakeVector('new text of one', 8))
    expect(await readVector(redis, `${name}:0`)).toEqual(fakeVector('claimed by a dead worker', 8))
    expect(await readVector(redis, `${name}:3`)).toEqual(fakeVector('café ☕ third', 8))
  })

  it('--dry-run counts what it would import and writes nothing', async () => {
    const name = uniqueName('py')
    const from = uniqueName('embed_queue')
    await fillPython(redis, from, [
      { key: `${name}:a`, text: 'alpha', at: T0 },
      { key: `${name}:b`, text: '   ', at: T0 + 1 },
    ])
    const before = await redis.zrange(`${from}:pending`, 0, -1, 'WITHSCORES')
    const r = await importPython(name, '--from-prefix', from, '--dry-run')
    expect(r.code, show(r)).toBe(0)
    expect(json<Summary>(r)).toMatchObject({
      dryRun: true,
      imported: 1,
      blank: 1,
      read: { pending: 2, inflight: 0 },
    })
    expect(await redis.keys(`embedq:{${name}}:*`)).toEqual([])
    expect(await redis.zrange(`${from}:pending`, 0, -1, 'WITHSCORES')).toEqual(before)
    // After a real import, a dry run reports what is done already.
    expect((await importPython(name, '--from-prefix', from)).code).toBe(0)
    const again = await importPython(name, '--from-prefix', from, '--dry-run')
    expect(json<Summary>(again)).toMatchObject({ imported: 0, alreadyImported: 2, blank: 0 })
  })

  it('running it again imports nothing twice (the versions of the first run stay)', async () => {
    const name = uniqueName('py')
    const from = uniqueName('embed_queue')
    await fillPython(
      redis,
      from,
      [1, 2, 3].map((i) => ({ key: `${name}:${i}`, text: `text ${i}`, at: T0 + i })),
      [{ key: `${name}:9`, text: 'in flight', at: T0 }],
    )
    const first = await importPython(name, '--from-prefix', from)
    expect(first.code, show(first)).toBe(0)
    const versions = await redis.zrange(queueKeys('embedq', name).versions, 0, -1, 'WITHSCORES')
    const second = await importPython(name, '--from-prefix', from)
    expect(second.code, show(second)).toBe(0)
    expect(json<Summary>(second)).toMatchObject({ imported: 0, alreadyImported: 4 })
    expect(await redis.zrange(queueKeys('embedq', name).versions, 0, -1, 'WITHSCORES')).toEqual(versions)
  })

  it('--delete removes imported members and their dedup/retries entries, page after page, and leaves bad members', async () => {
    const name = uniqueName('py')
    const from = uniqueName('embed_queue')
    const items = Array.from({ length: 10 }, (_, i) => ({
      key: `${name}:${i}`,
      text: `text ${i}`,
      at: T0 + i,
    }))
    await fillPython(redis, from, items.slice(2), items.slice(0, 2))
    // Members the Python code never wrote: left in place and reported.
    await redis.zadd(`${from}:pending`, T0 + 20, 'not json', T0 + 21, pyDumps({ redis_key: `${name}:x` }))
    // One imported before, without --delete: removed now too.
    const plain = await importPython(name, '--from-prefix', from, '--no-inflight', '--batch-size', '4')
    expect(plain.code, show(plain)).toBe(1)
    expect(json<Summary>(plain)).toMatchObject({ imported: 8, rejected: 2, read: { inflight: 0 } })

    const r = await importPython(name, '--from-prefix', from, '--delete', '--batch-size', '3')
    expect(r.code, show(r)).toBe(1) // the two bad members
    const s = json<Summary>(r)
    expect(s).toMatchObject({ imported: 2, alreadyImported: 8, rejected: 2, deleted: 10 })
    expect(s.rejectedSample.map((x) => x.reason).sort()).toEqual(['`text` is not a string', 'not JSON'])
    expect(r.stderr).toMatch(/2 members were not imported/)

    expect(await redis.zrange(`${from}:pending`, 0, -1)).toEqual([
      'not json',
      pyDumps({ redis_key: `${name}:x` }),
    ])
    expect(await redis.exists(`${from}:inflight`)).toBe(0)
    expect(await redis.exists(`${from}:dedup`)).toBe(0)
    expect(await redis.exists(`${from}:retries`)).toBe(0)
    // Every item is in embedq: the first run's pending ones, then this run's in-flight ones.
    expect((await embedqItems(name)).map((i) => i.key)).toEqual(
      [...items.slice(2), ...items.slice(0, 2)].map((i) => i.key),
    )
  })

  it('skips an old item when embedq already holds newer text for its key (producers switched first)', async () => {
    const name = uniqueName('py')
    const from = uniqueName('embed_queue')
    // Enqueued through embedq now: newer than the Python items scored at T0, older than one scored in an hour.
    const producer = new EmbeddingBatchQueue({ redis, name, worker: false, embedder: fakeEmbedder() })
    await producer.enqueue(`${name}:a`, 'new text from embedq')
    await producer.enqueue(`${name}:b`, 'embedq text, older than the Python one')
    await producer.stop()
    const later = Date.now() / 1000 + 3600
    await fillPython(redis, from, [
      { key: `${name}:a`, text: 'stale python text', at: T0 },
      { key: `${name}:b`, text: 'newer python text', at: later },
    ])
    const r = await importPython(name, '--from-prefix', from, '--delete')
    expect(r.code, show(r)).toBe(0)
    expect(json<Summary>(r)).toMatchObject({ imported: 1, superseded: 1, deleted: 2 })
    expect(await embedqItems(name)).toEqual([
      { key: `${name}:a`, text: 'new text from embedq' },
      { key: `${name}:b`, text: 'newer python text' },
    ])
  })

  it('a key met again on a later page takes its newer text (an import does not supersede itself)', async () => {
    const name = uniqueName('py')
    const from = uniqueName('embed_queue')
    await fillPython(redis, from, [
      { key: `${name}:k`, text: 'first', at: T0 },
      { key: `${name}:other`, text: 'other', at: T0 + 1 },
      { key: `${name}:k`, text: 'second', at: T0 + 2 },
    ])
    const r = await importPython(name, '--from-prefix', from, '--batch-size', '1')
    expect(r.code, show(r)).toBe(0)
    expect(json<Summary>(r)).toMatchObject({ imported: 3, superseded: 0 })
    expect(await embedqItems(name)).toEqual([
      { key: `${name}:k`, text: 'second' },
      { key: `${name}:other`, text: 'other' },
    ])
  })

  it('reads keys under another prefix or with explicit names', async () => {
    const name = uniqueName('py')
    await redis.zadd('legacy:embed:waiting', T0, pyDumps({ redis_key: `${name}:p`, text: 'pending text' }))
    await redis.zadd(
      'legacy:embed:claimed',
      T0 + 1,
      pyDumps({ redis_key: `${name}:q`, text: 'claimed text' }),
    )
    const r = await importPython(
      name,
      '--from-prefix',
      'legacy:embed',
      '--pending-key',
      'legacy:embed:waiting',
      '--inflight-key',
      'legacy:embed:claimed',
      '--delete',
    )
    expect(r.code, show(r)).toBe(0)
    expect(json<Summary>(r)).toMatchObject({ imported: 2, deleted: 2, read: { pending: 1, inflight: 1 } })
    expect(await redis.exists('legacy:embed:waiting', 'legacy:embed:claimed')).toBe(0)
    expect((await embedqItems(name)).map((i) => i.key)).toEqual([`${name}:p`, `${name}:q`])
  })

  it('refuses --dry-run with --delete (exit 2, nothing written)', async () => {
    const name = uniqueName('py')
    const r = await importPython(name, '--dry-run', '--delete')
    expect(r.code, show(r)).toBe(2)
    expect(r.stderr).toMatch(/--dry-run and --delete/)
  })
})
