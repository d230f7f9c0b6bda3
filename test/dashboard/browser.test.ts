/**
 * The dashboard as a person uses it: Debian's chromium (driven by playwright-core, never a
 * downloaded browser) opens the page at desktop and phone sizes over REAL queues on a private
 * redis-server (the default source: QueueAdmin on every discovered queue). The figures on
 * screen are checked against `stats()`, a dead letter is retried and the queue paused by
 * clicking, and Redis is checked after each. Screenshots go to test/artifacts/ (git-ignored).
 */
import { existsSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import type { Redis } from 'ioredis'
import type { Browser, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EmbedderError, EmbeddingBatchQueue, QueueAdmin, queueKeys } from '../../src/index.js'
import { QueueScripts } from '../../src/scripts.js'
import { fakeEmbedder } from '../helpers/fixtures.js'
import { type RedisServer, startRedisServer } from '../helpers/redis-server.js'
import { type Served, serveDashboard } from './serve.js'

const CHROMIUM = '/usr/bin/chromium'
const TOKEN = 'browser-test-token'
const ARTIFACTS = join(process.cwd(), 'test', 'artifacts')
const haveChromium = existsSync(CHROMIUM)
if (!haveChromium) {
  process.stderr.write(
    `dashboard browser test skipped: ${CHROMIUM} is missing (apt-get install -y chromium)\n`,
  )
}

const fmt = (n: number): string => n.toLocaleString('en-US')
const BAD = ['msg:chat:1001', 'msg:chat:1002', 'msg:chat:1003', 'msg:chat:1004']

describe.skipIf(!haveChromium)('dashboard in a real browser (chromium) on real queues', () => {
  let browser: Browser
  let server: RedisServer
  let redis: Redis
  let served: Served
  let chat: EmbeddingBatchQueue
  let docs: EmbeddingBatchQueue
  /** The chat worker refuses 'bad' texts while this is set (cleared before the retry click). */
  let refuseBad = true
  const admin = (name: string): QueueAdmin => new QueueAdmin({ redis, name })

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true })
    server = await startRedisServer()
    redis = server.client()
    // chat: a live worker, 20 embedded items and 4 dead letters ("text too long").
    chat = new EmbeddingBatchQueue({
      redis,
      name: 'chat',
      maxAttempts: 1,
      leaseMs: 3_000,
      flushIntervalMs: 50,
      embedder: fakeEmbedder({
        maxBatchSize: 1,
        fail: (texts) =>
          refuseBad && texts[0]!.startsWith('bad')
            ? new EmbedderError('400 text too long', { retryable: false, status: 400 })
            : undefined,
      }),
    })
    await chat.start()
    const jobs = await chat.enqueueMany([
      ...Array.from({ length: 20 }, (_, i) => ({ key: `msg:chat:${i}`, text: `hello ${i}` })),
      ...BAD.map((key) => ({ key, text: `bad ${key}` })),
    ])
    await chat.flushAndWait({ timeoutMs: 15_000 })
    await Promise.allSettled(jobs.map((j) => j.result))
    // A backfill in progress on chat.
    await redis.hset(
      'embedq:{chat}:backfill',
      'b1',
      JSON.stringify({
        match: 'msg:*',
        scanned: 40,
        enqueued: 24,
        updatedAt: Date.now(),
        cursors: { n: '17' },
      }),
    )
    // docs: a backlog and no worker, and a rate-limit pause.
    docs = new EmbeddingBatchQueue({ redis, name: 'docs', worker: false, embedder: fakeEmbedder() })
    await docs.enqueueMany(Array.from({ length: 5 }, (_, i) => ({ key: `doc:${i}`, text: `doc ${i}` })))
    await new QueueScripts(redis, queueKeys('embedq', 'docs')).pause({
      delayMs: 600_000,
      baseMs: 1_000,
      maxMs: 600_000,
      reason: 'rate-limit',
      quotaId: undefined,
      message: '429 slow down',
      streakWindowMs: 60_000,
    })
    served = await serveDashboard({ redis, token: TOKEN, discoveryTtlMs: 200 }, '/admin/embedq')
    const { chromium } = await import('playwright-core')
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-background-networking'],
    })
  }, 60_000)

  afterAll(async () => {
    await browser?.close()
    await served?.close()
    await chat?.stop()
    await docs?.stop()
    redis?.disconnect()
    await server?.destroy()
  })

  async function open(width: number, height: number): Promise<{ page: Page; errors: string[] }> {
    const context = await browser.newContext({ viewport: { width, height } })
    const page = await context.newPage()
    page.setDefaultTimeout(10_000)
    const errors: string[] = []
    page.on('pageerror', (e) => errors.push(e.message))
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text())
    })
    // Without the trailing slash: the handler redirects to the mount with one.
    await page.goto(served.url)
    await page.locator('table.queues tr[data-queue="chat"]').waitFor()
    await page.locator('[data-testid="detail"]').waitFor()
    return { page, errors }
  }

  async function checkFigures(page: Page): Promise<void> {
    for (const name of ['chat', 'docs']) {
      const stats = await admin(name).stats()
      const row = page.locator(`table.queues tr[data-queue="${name}"]`)
      await expect
        .poll(() => row.locator('[data-stat="unfinished"]').textContent())
        .toBe(fmt(stats.unfinished))
      await expect.poll(() => row.locator('[data-stat="pending"]').textContent()).toBe(fmt(stats.pending))
      expect(await row.locator('[data-stat="inflight"]').textContent()).toBe(fmt(stats.inflight))
      await expect.poll(() => row.locator('[data-stat="failed"]').textContent()).toBe(fmt(stats.failed))
      expect(await row.locator('[data-stat="workers"]').textContent()).toBe(String(stats.workers))
    }
    // `docs` has a backlog and no worker: flagged in red.
    await expect
      .poll(() => page.locator('table.queues tr[data-queue="docs"]').textContent())
      .toContain('no live worker')
    expect(await page.locator('table.queues tr[data-queue="chat"]').textContent()).not.toContain(
      'no live worker',
    )
  }

  it('shows every queue with the figures of stats() at 1280×800, and charts, workers, dead letters', async () => {
    const { page, errors } = await open(1280, 800)
    try {
      expect(page.url()).toBe(`${served.url}/`)
      await checkFigures(page)
      const chatStats = await admin('chat').stats()
      expect(chatStats).toMatchObject({ failed: 4, workers: 1, unfinished: 0 })
      const cards = page.locator('[data-testid="stat-cards"]')
      expect(await cards.locator('[data-card="pending"] .card-value').textContent()).toBe(
        fmt(chatStats.pending),
      )
      expect(await cards.locator('[data-card="retrying"] .card-value').textContent()).toBe(
        fmt(chatStats.retrying),
      )
      expect(await cards.locator('[data-card="failed"] .card-value').textContent()).toBe(
        fmt(chatStats.failed),
      )
      // Two uPlot charts drawn on canvases; the live worker with its heartbeat age.
      await expect.poll(() => page.locator('[data-testid="charts"] canvas').count()).toBe(2)
      expect(await page.locator('[data-testid="workers"] tr[data-worker]').count()).toBe(1)
      expect(await page.locator('[data-testid="workers"]').textContent()).toMatch(/\d ms ago|\d\.\d s ago/)
      // Dead letters grouped by error, and backfills in progress.
      await page.locator('[data-testid="dead-letters"] .group').first().waitFor()
      expect(await page.locator('[data-testid="dead-letters"] .group').first().textContent()).toContain(
        'text too long',
      )
      expect(await page.locator('[data-testid="backfills"]').textContent()).toContain('in progress')
      // Live: a change in the source shows up within a few polls, without a reload.
      await page.evaluate('window.__sameDocument = true')
      const docsRow = page.locator('table.queues tr[data-queue="docs"] [data-stat="unfinished"]')
      expect(await docsRow.textContent()).toBe('5')
      await docs.enqueue('doc:late', 'arrived after the page opened')
      await expect.poll(() => docsRow.textContent(), { timeout: 8_000 }).toBe('6')
      expect(await page.evaluate('window.__sameDocument')).toBe(true)
      await page.screenshot({ path: join(ARTIFACTS, 'dashboard-1280x800.png'), fullPage: true })
      await page.screenshot({ path: join(ARTIFACTS, 'dashboard-1280x800-fold.png') })
      expect(errors).toEqual([])
    } finally {
      await page.context().close()
    }
  })

  it('flags the queue with a backlog and no live worker on its own view', async () => {
    const { page, errors } = await open(1280, 800)
    try {
      await page.locator('table.queues tr[data-queue="docs"] a').click()
      await page.locator('[data-testid="no-live-worker"]').waitFor()
      expect(await page.locator('[data-testid="rate-limit"]').textContent()).toContain('rate-limit')
      await page.screenshot({ path: join(ARTIFACTS, 'dashboard-docs-no-worker.png'), fullPage: true })
      expect(errors).toEqual([])
    } finally {
      await page.context().close()
    }
  })

  it('refuses a mutation without the token, then retries a dead letter and pauses the queue by clicking', async () => {
    const { page, errors } = await open(1280, 800)
    try {
      // Without the token the buttons are disabled, and the API refuses a direct call.
      const pause = page.getByRole('button', { name: 'Pause queue chat' })
      expect(await pause.isDisabled()).toBe(true)
      const refused = await page.evaluate(async () => {
        const r = await fetch('api/queues/chat/pause', {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', 'X-Embedq-Csrf': '1' },
          body: '{}',
        })
        return { status: r.status, body: await r.json() }
      })
      expect(refused).toEqual({
        status: 403,
        body: { error: { code: 'unauthorized', message: expect.any(String) } },
      })
      expect(await redis.hlen(queueKeys('embedq', 'chat').failed)).toBe(4)
      expect(await admin('chat').isPaused()).toBe(false)

      await page.getByLabel('token').fill(TOKEN)
      await page.getByRole('button', { name: 'Use token' }).click()

      const key = 'msg:chat:1004'
      const k = queueKeys('embedq', 'chat')
      expect(await redis.hexists(k.failed, key)).toBe(1)
      // The give-up left a zero vector at its version, with the given-up mark.
      const givenUpVersion = await redis.hget(key, 'embedding_version')
      expect(await redis.hexists(key, 'embedding_failed')).toBe(1)
      refuseBad = false // the retried text now embeds
      await page.getByRole('button', { name: `Retry dead letter ${key}` }).click()
      await expect.poll(() => redis.hexists(k.failed, key)).toBe(0)
      // Re-enqueued, then embedded by the live worker: the target gets a real vector at a newer
      // version, and the mark is gone with it (one script writes both).
      await expect
        .poll(() => redis.hget(key, 'embedding_version'), { timeout: 10_000 })
        .not.toBe(givenUpVersion)
      expect(await redis.hexists(key, 'embedding_failed')).toBe(0)
      const blob = await redis.hgetBuffer(key, 'embedding')
      expect(blob?.some((b) => b !== 0)).toBe(true)
      await page.locator(`tr[data-letter="${key}"]`).waitFor({ state: 'detached' })

      await page.getByRole('button', { name: 'Pause queue chat' }).click()
      await expect.poll(() => redis.get(k.paused)).not.toBeNull()
      expect(JSON.parse((await redis.get(k.paused))!)).toMatchObject({ by: 'dashboard' })
      expect(await chat.isPaused()).toBe(true)
      // The page shows the new state without a reload.
      await page.getByRole('button', { name: 'Resume queue chat' }).waitFor()
      await expect
        .poll(() => page.locator('[data-testid="operator-pause"]').textContent())
        .toContain('paused')
      await checkFigures(page)
      await page.screenshot({ path: join(ARTIFACTS, 'dashboard-after-actions.png'), fullPage: true })
      // The one refused call above is logged by the browser; nothing else went wrong.
      expect(errors.filter((e) => !e.includes('status of 403'))).toEqual([])
    } finally {
      await page.context().close()
    }
  })

  it('is usable at 390×844: same figures, no horizontal page scroll, actions reachable', async () => {
    const { page, errors } = await open(390, 844)
    try {
      await checkFigures(page)
      await page.screenshot({ path: join(ARTIFACTS, 'dashboard-390x844-fold.png') })
      const overflow = await page.evaluate<number>('document.documentElement.scrollWidth - window.innerWidth')
      expect(overflow).toBeLessThanOrEqual(0)
      await expect.poll(() => page.locator('[data-testid="charts"] canvas').count()).toBe(2)
      expect(await page.getByRole('button', { name: /^(Pause|Resume) queue chat$/ }).isVisible()).toBe(true)
      // Inspect a key from the phone.
      await page.getByLabel('key to inspect').fill(BAD[0]!)
      await page.getByRole('button', { name: 'Inspect' }).click()
      await expect.poll(() => page.locator('[data-testid="inspection"]').textContent()).toContain('failed')
      await page.screenshot({ path: join(ARTIFACTS, 'dashboard-390x844.png'), fullPage: true })
      expect(errors).toEqual([])
    } finally {
      await page.context().close()
    }
  })
})
