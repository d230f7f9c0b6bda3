/**
 * `embedq dashboard` as an operator runs it: a child process that prints its URL (never the
 * Redis password or the token), serves the page and the API, and stops cleanly on SIGTERM.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runCli, startCli } from '../cli/helpers.js'
import { type RedisServer, startRedisServer } from '../helpers/redis-server.js'

const PASSWORD = 'pw-never-printed-42'
const TOKEN = 'tok-never-printed-42'
const SCRIPT = 'test/dashboard/cli-with-fake-source.ts'

let redis: RedisServer

beforeAll(async () => {
  redis = await startRedisServer()
  // Set after start: the helper's readiness check connects without a password.
  const c = redis.client()
  await c.config('SET', 'requirepass', PASSWORD)
  c.disconnect()
})
afterAll(async () => {
  await redis?.destroy()
})

describe('embedq dashboard (CLI)', () => {
  it('is listed in the help of the embedq program', async () => {
    const r = await runCli(['dashboard', '--help'])
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('--read-only')
    expect(r.stdout).toContain('--token')
  })

  it('prints its URL without secrets, serves the API, refuses tokenless actions, and stops on SIGTERM', async () => {
    const cli = startCli(
      ['dashboard', '--port', '0', '--redis', `redis://:${PASSWORD}@127.0.0.1:${redis.port}`],
      { script: SCRIPT, env: { EMBEDQ_DASHBOARD_TOKEN: TOKEN } },
    )
    const m = await cli.waitFor(/http:\/\/127\.0\.0\.1:(\d+)\//, 20_000)
    const base = `http://127.0.0.1:${m[1]}`
    const list = (await (await fetch(`${base}/api/queues`)).json()) as { auth: string; queues: unknown[] }
    expect(list.auth).toBe('token')
    expect(list.queues).toHaveLength(3)
    const refused = await fetch(`${base}/api/queues/chat/pause`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-Embedq-Csrf': '1' },
      body: '{}',
    })
    expect(refused.status).toBe(403)
    const allowed = await fetch(`${base}/api/queues/chat/pause`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-Embedq-Csrf': '1', Authorization: `Bearer ${TOKEN}` },
      body: '{}',
    })
    expect(allowed.status).toBe(200)
    // A browser keeps a connection open: the stop must not wait for it.
    const keepAlive = fetch(`${base}/`, { headers: { Connection: 'keep-alive' } })
    await (await keepAlive).text()
    cli.child.kill('SIGTERM')
    const run = await cli.done
    expect(run.code).toBe(0)
    expect(run.ms).toBeLessThan(20_000)
    expect(run.stdout).toContain('stopping')
    expect(run.stdout + run.stderr).not.toContain(PASSWORD)
    expect(run.stdout + run.stderr).not.toContain(TOKEN)
    expect(run.stdout).toContain(':***@')
  })

  it('says plainly that actions are refused without a token', async () => {
    const cli = startCli(
      ['dashboard', '--port', '0', '--redis', `redis://:${PASSWORD}@127.0.0.1:${redis.port}`],
      {
        script: SCRIPT,
      },
    )
    await cli.waitFor(/Ctrl-C to stop/, 20_000)
    expect(cli.stdout).toMatch(/refused: pass --token/)
    cli.child.kill('SIGINT')
    expect((await cli.done).code).toBe(0)
  })
})
