/**
 * #12 inspect(key): the state of one key in the queue and its target hash.
 */
import { describe, expect, it } from 'vitest'
import { EmbedderError, QueueAdmin } from '../../src/index.js'
import { runCli } from '../cli/helpers.js'
import { fakeEmbedder, uniqueName, waitFor } from '../helpers/fixtures.js'
import { useQueueHarness } from '../helpers/queue-harness.js'

const h = useQueueHarness()

describe('#12 inspect one key', () => {
  it('follows a key through pending, inflight, done, delayed and failed', async () => {
    const name = uniqueName('insp')
    const admin = new QueueAdmin({ redis: h.redis, name })
    expect(await admin.inspect('nothing:here')).toMatchObject({
      state: 'unknown',
      version: null,
      textPreview: null,
    })

    const producer = h.queue({ name, worker: false })
    const job = await producer.enqueue('i:a', 'x'.repeat(500))
    const pending = await admin.inspect('i:a')
    expect(pending).toMatchObject({
      state: 'pending',
      version: job.version,
      attempts: 0,
      lease: null,
      targetVersion: null,
    })
    expect(pending.textPreview).toHaveLength(200)

    // In flight: a slow embedder holds the lease.
    let release!: () => void
    const gate = new Promise<void>((r) => {
      release = r
    })
    const slow = fakeEmbedder()
    const inner = slow.embed.bind(slow)
    const worker = h.queue({
      name,
      flushIntervalMs: 10,
      leaseMs: 5_000,
      embedder: {
        dimensions: 8,
        embed: async (t, o) => {
          await gate
          return inner(t, o)
        },
      },
    })
    await worker.start()
    await waitFor(async () => (await admin.inspect('i:a')).state === 'inflight', 5_000, 'inflight')
    const inflight = await admin.inspect('i:a')
    expect(inflight.lease?.holder).toEqual(expect.any(String))
    expect(inflight.lease!.expiresAt).toBeGreaterThan(Date.now())
    release()
    await job.result
    const done = await admin.inspect('i:a')
    expect(done).toMatchObject({
      state: 'done',
      targetVersion: job.version,
      targetFailed: false,
      version: null,
    })
    await worker.stop()

    // Delayed, then failed, with the last error.
    const failing = h.queue({
      name,
      flushIntervalMs: 10,
      maxAttempts: 2,
      backoffBaseMs: 60_000,
      embedder: fakeEmbedder({
        fail: () => new EmbedderError('503 upstream down', { retryable: true, status: 503 }),
      }),
    })
    await failing.start()
    await failing.enqueue('i:b', 'will fail')
    await waitFor(async () => (await admin.inspect('i:b')).state === 'delayed', 5_000, 'delayed')
    const delayed = await admin.inspect('i:b')
    expect(delayed.attempts).toBe(1)
    expect(delayed.dueAt).toBeGreaterThan(Date.now() + 10_000)
    await failing.stop()

    const giveUp = h.queue({
      name: uniqueName('insp'),
      flushIntervalMs: 10,
      maxAttempts: 1,
      embedder: fakeEmbedder({
        fail: () => new EmbedderError('400 bad input', { retryable: false, status: 400 }),
      }),
    })
    await giveUp.start()
    const j = await giveUp.enqueue('i:c', 'bad text')
    await expect(j.result).rejects.toThrow()
    const failed = await giveUp.inspect('i:c')
    expect(failed).toMatchObject({
      state: 'failed',
      attempts: 1,
      lastError: expect.stringContaining('400 bad input'),
      targetFailed: true,
      textPreview: 'bad text',
    })

    const cli = await runCli(['inspect', 'i:c', '--json', '--redis', h.server.url, '--name', giveUp.name])
    expect(cli.code).toBe(0)
    expect(JSON.parse(cli.stdout)).toMatchObject({ key: 'i:c', state: 'failed', attempts: 1 })
    const text = await runCli(['inspect', 'i:c', '--redis', h.server.url, '--name', giveUp.name])
    expect(text.stdout).toContain('"i:c": failed')
    expect(text.stdout).toContain('400 bad input')
  }, 30_000)
})
