/**
 * The dashboard as a person uses it: Debian's chromium (driven by playwright-core, never a
 * downloaded browser) opens the page at desktop and phone sizes, the figures on screen are
 * checked against the source's stats(), and a dead letter is retried and the queue paused by
 * clicking. Screenshots go to test/artifacts/ (git-ignored).
 */
import { existsSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import type { Browser, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type FakeSource, fakeSource } from './fake-source.js'
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

describe.skipIf(!haveChromium)('dashboard in a real browser (chromium)', () => {
  let browser: Browser
  let source: FakeSource
  let served: Served

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true })
    source = fakeSource()
    served = await serveDashboard({ source, token: TOKEN }, '/admin/embedq')
    const { chromium } = await import('playwright-core')
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-background-networking'],
    })
  }, 30_000)

  afterAll(async () => {
    await browser?.close()
    await served?.close()
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
    for (const name of ['chat', 'docs', 'idle']) {
      const stats = await source.queue(name).stats()
      const row = page.locator(`table.queues tr[data-queue="${name}"]`)
      await expect
        .poll(() => row.locator('[data-stat="unfinished"]').textContent())
        .toBe(fmt(stats.unfinished))
      expect(await row.locator('[data-stat="pending"]').textContent()).toBe(fmt(stats.pending))
      expect(await row.locator('[data-stat="inflight"]').textContent()).toBe(fmt(stats.inflight))
      expect(await row.locator('[data-stat="failed"]').textContent()).toBe(fmt(stats.failed))
      expect(await row.locator('[data-stat="workers"]').textContent()).toBe(
        String((await source.queue(name).workers()).length),
      )
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
      const chat = await source.queue('chat').stats()
      const cards = page.locator('[data-testid="stat-cards"]')
      expect(await cards.locator('[data-card="pending"] .card-value').textContent()).toBe(fmt(chat.pending))
      expect(await cards.locator('[data-card="retrying"] .card-value').textContent()).toBe(fmt(chat.retrying))
      expect(await cards.locator('[data-card="failed"] .card-value').textContent()).toBe(fmt(chat.failed))
      // Two uPlot charts drawn on canvases; two workers with their heartbeat ages.
      await expect.poll(() => page.locator('[data-testid="charts"] canvas').count()).toBe(2)
      expect(await page.locator('[data-testid="workers"] tr[data-worker]').count()).toBe(2)
      expect(await page.locator('[data-testid="workers"]').textContent()).toMatch(/\d ms ago|\d\.\d s ago/)
      // Dead letters grouped by error, and backfills in progress.
      await page.locator('[data-testid="dead-letters"] .group').first().waitFor()
      expect(await page.locator('[data-testid="dead-letters"] .group').first().textContent()).toContain(
        'text too long',
      )
      expect(await page.locator('[data-testid="backfills"]').textContent()).toContain('in progress')
      // Live: a change in the source shows up within a few polls, without a reload.
      await page.evaluate('window.__sameDocument = true')
      source.states.get('idle')!.pending.set('late:1', 'arrived after the page opened')
      const idleRow = page.locator('table.queues tr[data-queue="idle"] [data-stat="unfinished"]')
      await expect.poll(() => idleRow.textContent(), { timeout: 8_000 }).toBe('1')
      expect(await page.evaluate('window.__sameDocument')).toBe(true)
      source.states.get('idle')!.pending.delete('late:1')
      await expect.poll(() => idleRow.textContent(), { timeout: 8_000 }).toBe('0')
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
      expect(source.mutations).toEqual([])

      await page.getByLabel('token').fill(TOKEN)
      await page.getByRole('button', { name: 'Use token' }).click()

      const key = 'msg:chat:1004'
      expect(source.states.get('chat')!.failed.has(key)).toBe(true)
      await page.getByRole('button', { name: `Retry dead letter ${key}` }).click()
      await expect.poll(() => source.mutations.length).toBe(1)
      expect(source.mutations[0]).toEqual({
        queue: 'chat',
        op: 'retryFailed',
        filter: { keys: [key] },
        count: 1,
      })
      expect(source.states.get('chat')!.failed.has(key)).toBe(false)
      await page.locator(`tr[data-letter="${key}"]`).waitFor({ state: 'detached' })

      await page.getByRole('button', { name: 'Pause queue chat' }).click()
      await expect.poll(() => source.mutations.length).toBe(2)
      expect(source.mutations[1]).toEqual({ queue: 'chat', op: 'pause', by: 'dashboard' })
      expect(await source.queue('chat').isPaused()).toBe(true)
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
      await page.getByLabel('key to inspect').fill('msg:chat:1001')
      await page.getByRole('button', { name: 'Inspect' }).click()
      await expect.poll(() => page.locator('[data-testid="inspection"]').textContent()).toContain('failed')
      await page.screenshot({ path: join(ARTIFACTS, 'dashboard-390x844.png'), fullPage: true })
      expect(errors).toEqual([])
    } finally {
      await page.context().close()
    }
  })
})
