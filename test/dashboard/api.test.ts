import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type FakeSource, fakeSource } from './fake-source.js'
import { type Served, serveDashboard } from './serve.js'

const TOKEN = 'secret-token-123'
const MUTATE = { 'Content-Type': 'application/json', 'X-Embedq-Csrf': '1', Authorization: `Bearer ${TOKEN}` }

let source: FakeSource
let served: Served

beforeAll(async () => {
  source = fakeSource()
  served = await serveDashboard({ source, token: TOKEN }, '/admin/embedq')
})
afterAll(async () => {
  await served?.close()
})

const get = (path: string, init?: RequestInit) => fetch(`${served.url}${path}`, init)
const post = (path: string, body: unknown, headers: Record<string, string> = MUTATE) =>
  fetch(`${served.url}${path}`, {
    method: 'POST',
    headers,
    body: typeof body === 'string' ? body : JSON.stringify(body),
  })

describe('dashboard JSON API: reads', () => {
  it('lists every queue of the source with the figures of its stats(), workers and pause state', async () => {
    const res = await get('/api/queues')
    expect(res.status).toBe(200)
    expect(res.headers.get('cache-control')).toBe('no-store')
    const body = (await res.json()) as {
      auth: string
      queues: Array<{ name: string; stats: Record<string, unknown>; workers: number; noLiveWorker: boolean }>
    }
    expect(body.auth).toBe('token')
    expect(body.queues.map((q) => q.name)).toEqual(['chat', 'docs', 'idle'])
    for (const q of body.queues) {
      type Countdown = { pausedForMs: number; rateLimit: { pausedForMs: number } }
      // As the JSON carries it (dates as strings).
      const read = JSON.parse(JSON.stringify(await source.queue(q.name).stats())) as Countdown
      const { local: _local, pausedForMs, rateLimit, ...stats } = read as Countdown & { local: unknown }
      const { pausedForMs: shownPause, rateLimit: shownRate, ...shown } = q.stats as unknown as Countdown
      expect(shown).toEqual(stats)
      const { pausedForMs: rl, ...rate } = rateLimit
      const { pausedForMs: shownRl, ...shownRateRest } = shownRate
      expect(shownRateRest).toEqual(rate)
      // A countdown: read a moment apart.
      expect(Math.abs(shownPause - pausedForMs)).toBeLessThan(2_000)
      expect(Math.abs(shownRl - rl)).toBeLessThan(2_000)
      expect(q.workers).toBe((await source.queue(q.name).workers()).length)
    }
  })

  it('flags a backlog with no live worker, and only there', async () => {
    const body = (await (await get('/api/queues')).json()) as {
      queues: Array<{ name: string; noLiveWorker: boolean }>
    }
    expect(Object.fromEntries(body.queues.map((q) => [q.name, q.noLiveWorker]))).toEqual({
      chat: false,
      docs: true,
      idle: false,
    })
  })

  it('details one queue: stats, workers with heartbeats, pause state, backfills, server time', async () => {
    const res = await get('/api/queues/chat')
    const d = (await res.json()) as {
      workerList: Array<{ lastSeenAt: number }>
      pause: unknown
      backfills: unknown[]
      time: number
    }
    expect(d.workerList).toHaveLength(2)
    expect(d.pause).toEqual(await source.queue('chat').pauseState())
    expect(d.backfills).toEqual(await source.queue('chat').backfills())
    expect(Math.abs(d.time - Date.now())).toBeLessThan(5_000)
  })

  it('returns history for the asked minutes, and refuses minutes outside 1–1440', async () => {
    const body = (await (await get('/api/queues/chat/history?minutes=30')).json()) as { points: unknown[] }
    expect(body.points).toHaveLength(30)
    for (const bad of ['0', '1441', 'abc', '-5', '1e3']) {
      const res = await get(`/api/queues/chat/history?minutes=${bad}`)
      expect(res.status, bad).toBe(400)
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('bad_request')
    }
  })

  it('pages dead letters with a cursor, groups them by error, and sends only a preview of their text', async () => {
    const first = (await (await get('/api/queues/chat/failed?count=5')).json()) as {
      items: Array<{ key: string; textPreview: string; text?: string }>
      cursor: string
      groups: Array<{ error: string; count: number; keys: string[] }>
    }
    expect(first.items).toHaveLength(5)
    expect(first.cursor).not.toBe('0')
    expect(first.items[0]!.text).toBeUndefined()
    expect(first.items[0]!.textPreview.length).toBeLessThanOrEqual(200)
    expect(first.groups.reduce((n, g) => n + g.count, 0)).toBe(5)
    expect(first.groups[0]!.error).toContain('text too long')
    const keys = new Set(first.items.map((i) => i.key))
    let cursor = first.cursor
    while (cursor !== '0') {
      const page = (await (await get(`/api/queues/chat/failed?count=5&cursor=${cursor}`)).json()) as {
        items: Array<{ key: string }>
        cursor: string
      }
      for (const i of page.items) keys.add(i.key)
      cursor = page.cursor
    }
    expect(keys.size).toBe(source.states.get('chat')!.failed.size)
  })

  it('filters dead letters by status, error text and key pattern', async () => {
    const byStatus = (await (await get('/api/queues/chat/failed?status=429&count=100')).json()) as {
      items: Array<{ status: number }>
    }
    expect(byStatus.items.length).toBeGreaterThan(0)
    expect(byStatus.items.every((i) => i.status === 429)).toBe(true)
    const byError = (await (await get('/api/queues/chat/failed?error=NaN&count=100')).json()) as {
      items: Array<{ error: string }>
    }
    expect(byError.items.length).toBeGreaterThan(0)
    expect(byError.items.every((i) => i.error.includes('NaN'))).toBe(true)
    const byMatch = (await (await get('/api/queues/chat/failed?match=msg:chat:100?&count=100')).json()) as {
      items: unknown[]
    }
    expect(byMatch.items).toHaveLength(10)
  })

  it('inspects a key, and refuses a missing, oversized or control-character key', async () => {
    const res = await get(`/api/queues/chat/inspect?key=${encodeURIComponent('msg:chat:1003')}`)
    expect(((await res.json()) as { state: string }).state).toBe('failed')
    for (const bad of ['', 'a'.repeat(1025), 'bad%0Akey']) {
      const r = await get(`/api/queues/chat/inspect?key=${bad}`)
      expect(r.status).toBe(400)
    }
    expect((await get('/api/queues/chat/inspect')).status).toBe(400)
  })

  it('refuses queue names with braces, spaces or bad encoding before reaching the source', async () => {
    const before = source.opened.length
    for (const bad of ['a%7Bb%7D', 'a%20b', '%E0%A4%A', 'x'.repeat(201)]) {
      const res = await get(`/api/queues/${bad}`)
      expect(res.status, bad).toBe(400)
    }
    expect(source.opened.length).toBe(before)
  })

  it('answers unknown routes with a JSON 404 and leaves paths outside the mount to the next handler', async () => {
    const res = await get('/api/nope')
    expect(res.status).toBe(404)
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('not_found')
    const outside = await fetch(served.url.replace('/admin/embedq', '/elsewhere'))
    expect(await outside.text()).toBe('outside')
  })
})

describe('dashboard page and assets', () => {
  it('redirects the mount without a trailing slash to it with one (relative Location)', async () => {
    const res = await get('', { redirect: 'manual' })
    expect(res.status).toBe(308)
    expect(res.headers.get('location')).toBe('embedq/')
  })

  it('serves the page with a CSP that forbids inline scripts, and the script as its own cached route', async () => {
    const res = await get('/')
    expect(res.status).toBe(200)
    const csp = res.headers.get('content-security-policy') ?? ''
    expect(csp).toContain("script-src 'self'")
    expect(csp).not.toContain('unsafe-inline')
    expect(csp).toContain("frame-ancestors 'none'")
    expect(res.headers.get('x-content-type-options')).toBe('nosniff')
    expect(res.headers.get('cache-control')).toBe('no-cache')
    const html = await res.text()
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/)
    const src = /<script defer src="([^"]+)"/.exec(html)?.[1]
    const href = /<link rel="stylesheet" href="([^"]+)"/.exec(html)?.[1]
    expect(src).toMatch(/^assets\/app-[0-9a-f]{12}\.js$/)
    const js = await get(`/${src}`)
    expect(js.status).toBe(200)
    expect(js.headers.get('content-type')).toContain('text/javascript')
    expect(js.headers.get('cache-control')).toContain('immutable')
    expect((await js.text()).length).toBeGreaterThan(10_000)
    const css = await get(`/${href}`)
    expect(css.headers.get('content-type')).toContain('text/css')
    expect((await get('/assets/app-000000000000.js')).status).toBe(404)
  })
})

describe('dashboard JSON API: mutations', () => {
  it('pauses and resumes through POST with the token and the CSRF header', async () => {
    const res = await post('/api/queues/idle/pause', {})
    expect(res.status).toBe(200)
    expect(await source.queue('idle').isPaused()).toBe(true)
    expect(source.mutations.at(-1)).toMatchObject({ queue: 'idle', op: 'pause' })
    expect((await post('/api/queues/idle/resume', {})).status).toBe(200)
    expect(await source.queue('idle').isPaused()).toBe(false)
  })

  it('retries and deletes dead letters by the filter in the body', async () => {
    const res = await post('/api/queues/chat/failed/retry', { keys: ['msg:chat:1000'] })
    expect(await res.json()).toEqual({ retried: 1 })
    expect(source.mutations.at(-1)).toMatchObject({ op: 'retryFailed', filter: { keys: ['msg:chat:1000'] } })
    const del = await post('/api/queues/chat/failed/delete', { error: 'NaN' })
    expect(((await del.json()) as { deleted: number }).deleted).toBeGreaterThan(0)
  })

  it('never changes anything on GET', async () => {
    const before = source.mutations.length
    for (const path of [
      '/api/queues/chat/pause',
      '/api/queues/chat/resume',
      '/api/queues/chat/failed/retry',
      '/api/queues/chat/failed/delete',
    ]) {
      const res = await get(path, { headers: MUTATE })
      expect(res.status, path).toBe(405)
      expect(res.headers.get('allow')).toBe('POST')
    }
    expect(source.mutations.length).toBe(before)
  })

  it('refuses a mutation without the token, with a wrong token, or without the CSRF header (403, JSON)', async () => {
    const before = source.mutations.length
    const { Authorization: _a, ...noToken } = MUTATE
    const { 'X-Embedq-Csrf': _c, ...noCsrf } = MUTATE
    const cases: Array<[Record<string, string>, string]> = [
      [noToken, 'unauthorized'],
      [{ ...MUTATE, Authorization: 'Bearer wrong-token-000' }, 'unauthorized'],
      [noCsrf, 'csrf'],
      [{ ...MUTATE, 'Sec-Fetch-Site': 'cross-site' }, 'cross_origin'],
    ]
    for (const [headers, code] of cases) {
      const res = await post('/api/queues/chat/pause', {}, headers)
      expect(res.status, code).toBe(403)
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe(code)
    }
    expect(source.mutations.length).toBe(before)
    expect(await source.queue('chat').isPaused()).toBe(false)
  })

  it('refuses a simple form-encoded POST (what a cross-site form can send)', async () => {
    const res = await post('/api/queues/chat/pause', 'a=1', {
      ...MUTATE,
      'Content-Type': 'application/x-www-form-urlencoded',
    })
    expect(res.status).toBe(415)
  })

  it('never answers a CORS preflight with CORS headers', async () => {
    const res = await get('/api/queues/chat/pause', {
      method: 'OPTIONS',
      headers: { Origin: 'https://evil.example', 'Access-Control-Request-Method': 'POST' },
    })
    expect(res.status).toBe(405)
    expect(res.headers.get('access-control-allow-origin')).toBeNull()
  })

  it('validates bodies: JSON object, known fields, bounded size, explicit all', async () => {
    const cases: Array<[unknown, number]> = [
      ['not json', 400],
      [[1, 2], 400],
      [{ nope: 1 }, 400],
      [{}, 400],
      [{ status: 'x' }, 400],
      [{ keys: [] }, 400],
      [{ keys: ['ok', 5] }, 400],
      [{ all: true, error: 'x' }, 400],
      [{ keys: Array.from({ length: 1001 }, (_, i) => `k${i}`) }, 400],
      [{ match: 'x'.repeat(70_000) }, 413],
    ]
    for (const [body, status] of cases) {
      const res = await post('/api/queues/chat/failed/delete', body)
      expect(res.status, JSON.stringify(body).slice(0, 40)).toBe(status)
    }
    const all = await post('/api/queues/idle/failed/delete', { all: true })
    expect(await all.json()).toEqual({ deleted: 0 })
  })
})

describe('dashboard authorization modes', () => {
  it('read-only refuses every mutation even with a valid token', async () => {
    const s = fakeSource()
    const ro = await serveDashboard({ source: s, token: TOKEN, readOnly: true })
    try {
      const res = await fetch(`${ro.url}/api/queues/chat/pause`, {
        method: 'POST',
        headers: MUTATE,
        body: '{}',
      })
      expect(res.status).toBe(403)
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('read_only')
      expect(s.mutations).toHaveLength(0)
      expect(((await (await fetch(`${ro.url}/api/queues`)).json()) as { auth: string }).auth).toBe(
        'read-only',
      )
    } finally {
      await ro.close()
    }
  })

  it('with neither token nor hook, mutations are refused; the authorize hook decides when given', async () => {
    const s = fakeSource()
    const open = await serveDashboard({ source: s })
    const hooked = await serveDashboard({ source: s, authorize: (req) => req.headers['x-user'] === 'admin' })
    try {
      const headers = { 'Content-Type': 'application/json', 'X-Embedq-Csrf': '1' }
      const a = await fetch(`${open.url}/api/queues/chat/pause`, { method: 'POST', headers, body: '{}' })
      expect(a.status).toBe(403)
      const b = await fetch(`${hooked.url}/api/queues/chat/pause`, { method: 'POST', headers, body: '{}' })
      expect(b.status).toBe(403)
      expect(s.mutations).toHaveLength(0)
      const c = await fetch(`${hooked.url}/api/queues/chat/pause`, {
        method: 'POST',
        headers: { ...headers, 'X-User': 'admin' },
        body: '{}',
      })
      expect(c.status).toBe(200)
      expect(s.mutations).toEqual([{ queue: 'chat', op: 'pause', by: 'dashboard' }])
    } finally {
      await open.close()
      await hooked.close()
    }
  })

  it('without a source, says so clearly (the default source comes with QueueAdmin)', async () => {
    const { dashboardHandler } = await import('../../src/dashboard/index.js')
    expect(() => dashboardHandler({})).toThrow(/redis/)
    expect(() => dashboardHandler({ prefix: 'bad prefix', source: fakeSource() })).toThrow(/prefix/)
    expect(() => dashboardHandler({ token: 'short', source: fakeSource() })).toThrow(/token/)
  })
})

describe('dashboard behind a body parser', () => {
  it('takes the body express.json() already parsed instead of waiting for a consumed stream', async () => {
    const { default: express } = await import('express')
    const { dashboardHandler } = await import('../../src/dashboard/index.js')
    const s = fakeSource()
    const app = express()
    app.use(express.json())
    app.use('/ops/q', dashboardHandler({ source: s, token: TOKEN }))
    const server = app.listen(0, '127.0.0.1')
    await new Promise<void>((resolve) => server.once('listening', () => resolve()))
    try {
      const { port } = server.address() as import('node:net').AddressInfo
      const res = await fetch(`http://127.0.0.1:${port}/ops/q/api/queues/chat/failed/retry`, {
        method: 'POST',
        headers: MUTATE,
        body: JSON.stringify({ keys: ['msg:chat:1001'] }),
        signal: AbortSignal.timeout(5_000),
      })
      expect(await res.json()).toEqual({ retried: 1 })
      expect(s.mutations).toEqual([
        { queue: 'chat', op: 'retryFailed', filter: { keys: ['msg:chat:1001'] }, count: 1 },
      ])
    } finally {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  })
})
