/**
 * #12 worker registry: every worker heartbeats its presence into the queue's keys; a clean
 * stop removes it, a SIGKILLed one disappears within WORKER_TTL_BEATS heartbeats; every
 * connection embedq opens carries a CLIENT SETNAME naming the queue and role.
 */
import { readFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { describe, expect, it } from 'vitest'
import { QueueAdmin, queueKeys } from '../../src/index.js'
import { VERSION } from '../../src/version.js'
import { heartbeatMs, WORKER_TTL_BEATS } from '../../src/worker.js'
import { runCli, startCli } from '../cli/helpers.js'
import { startQueueChild } from '../helpers/child.js'
import { fakeEmbedder, uniqueName, waitFor } from '../helpers/fixtures.js'
import { useQueueHarness } from '../helpers/queue-harness.js'

const h = useQueueHarness()

describe('#12 worker registry', () => {
  it('a started worker is listed with its host, pid, concurrency, embedder and version; a clean stop removes it', async () => {
    const q = h.queue({ concurrency: 3, leaseMs: 3_000, embedder: { ...fakeEmbedder(), id: 'fake:model:8' } })
    await q.start()
    const workers = await q.workers()
    expect(workers).toHaveLength(1)
    const w = workers[0]!
    expect(w).toMatchObject({
      host: hostname(),
      pid: process.pid,
      concurrency: 3,
      inflight: 0,
      embedder: 'fake:model:8',
      version: VERSION,
      paused: false,
    })
    expect(w.id).toContain(`${hostname()}:${process.pid}:`)
    expect(Math.abs(w.lastSeenAt - Date.now())).toBeLessThan(2_000)
    expect(w.startedAt).toBeLessThanOrEqual(w.lastSeenAt)
    // The heartbeat refreshes lastSeenAt.
    const first = w.lastSeenAt
    await waitFor(async () => ((await q.workers())[0]?.lastSeenAt ?? 0) > first, 3_000, 'a second heartbeat')
    const s = await q.stats()
    expect(s.workers).toBe(1)
    expect(s.backlogWithoutWorker).toBe(false)
    await q.stop()
    const admin = new QueueAdmin({ redis: h.redis, name: q.name })
    expect(await admin.workers()).toEqual([])
    const k = queueKeys('embedq', q.name)
    expect(await h.redis.hlen(k.workers)).toBe(0)
    expect(await h.redis.zcard(k.workersSeen)).toBe(0)
  })

  it('VERSION is the package version', () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      version: string
    }
    expect(VERSION).toBe(pkg.version)
  })

  it('a SIGKILLed worker process disappears from workers() within 3 heartbeat intervals, and the backlog is flagged', async () => {
    const name = uniqueName('kill')
    const leaseMs = 1_500
    const child = startQueueChild({
      REDIS_URL: h.server.url,
      QUEUE_NAME: name,
      ROLE: 'worker',
      LEASE_MS: String(leaseMs),
    })
    const admin = new QueueAdmin({ redis: h.redis, name })
    try {
      await child.waitFor('ready')
      await waitFor(async () => (await admin.workers()).length === 1, 5_000, 'the child listed')
      const [w] = await admin.workers()
      expect(w!.pid).toBe(child.proc.pid)
      // A producer-only instance queues work nobody will take once the worker is gone.
      const producer = h.queue({ name, worker: false })
      child.kill('SIGKILL')
      await child.exited
      const killedAt = Date.now()
      await producer.enqueue('kill:doc', 'waiting for a worker')
      const bound = WORKER_TTL_BEATS * heartbeatMs(leaseMs)
      expect(bound).toBe(1_500)
      await waitFor(async () => (await admin.workers()).length === 0, bound + 1_000, 'the killed worker gone')
      const gone = Date.now() - killedAt
      expect(gone).toBeLessThanOrEqual(bound + 500)
      const s = await admin.stats()
      expect(s.workers).toBe(0)
      expect(s.unfinished).toBe(1)
      expect(s.backlogWithoutWorker).toBe(true)
      // The CLI says so too.
      const st = await runCli(['status', '--json', '--redis', h.server.url, '--name', name])
      expect(st.code).toBe(0)
      expect(JSON.parse(st.stdout)).toMatchObject({ workers: 0, backlogWithoutWorker: true })
      const text = await runCli(['status', '--redis', h.server.url, '--name', name])
      expect(text.stdout).toContain('NO LIVE WORKER')
      const wk = await runCli(['workers', '--json', '--redis', h.server.url, '--name', name])
      expect(JSON.parse(wk.stdout)).toMatchObject({ workers: [], backlogWithoutWorker: true })
    } finally {
      child.kill('SIGKILL')
    }
  }, 30_000)

  it('embedq workers lists a live worker as JSON and as text', async () => {
    const q = h.queue()
    await q.start()
    const r = await runCli(['workers', '--json', '--redis', h.server.url, '--name', q.name])
    expect(r.code).toBe(0)
    const out = JSON.parse(r.stdout) as { workers: { pid: number }[] }
    expect(out.workers.map((w) => w.pid)).toEqual([process.pid])
    const t = await runCli(['workers', '--redis', h.server.url, '--name', q.name])
    expect(t.stdout).toContain('1 live worker')
    expect(t.stdout).toContain(`pid ${process.pid}`)
  })
})

describe('#12 CLIENT SETNAME on every connection embedq opens', () => {
  it("the subscriber is named embedq:<queue>:sub, the caller's client keeps its name, CLI connections are embedq:cli:<command>", async () => {
    const mine = h.client()
    await mine.client('SETNAME', 'my-app')
    const q = h.queue({ redis: mine })
    await q.start()
    const list = String(await h.redis.client('LIST'))
    const names = [...list.matchAll(/ name=(\S*)/g)].map((m) => m[1])
    expect(names).toContain(`embedq:${q.name}:sub`)
    expect(names).toContain('my-app')
    expect(await mine.client('GETNAME')).toBe('my-app')
    // A CLI command's connection: seen from the server while `status --watch` runs.
    const proc = startCli(['status', '--watch', '--json', '--redis', h.server.url, '--name', q.name])
    try {
      await waitFor(
        async () => String(await h.redis.client('LIST')).includes('name=embedq:cli:status'),
        10_000,
        'the CLI connection named',
      )
    } finally {
      proc.child.kill('SIGKILL')
    }
  }, 20_000)
})
