/**
 * Spawns private `redis-server` processes on free ports for the tests, so no test
 * touches the machine's shared instance. Every server is stopped by `stop()`; a
 * process-exit hook kills any a crashed test left behind.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'

export interface RedisServerOptions {
  /** Extra `redis-server` arguments, e.g. `['--appendonly', 'yes']`. */
  args?: string[]
  /** Reuse a port (restart on the same address). */
  port?: number
  /** Reuse a data directory (restart with the same AOF/RDB). */
  dir?: string
}

export interface RedisServer {
  readonly port: number
  readonly url: string
  readonly dir: string
  /** A new client to this server; the caller closes it. */
  client(): Redis
  /** SIGTERM (or SIGKILL with `kill: true`) and wait for exit. Keeps the data dir. */
  stop(opts?: { kill?: boolean }): Promise<void>
  /** Stop, then start again on the same port and data dir. */
  restart(opts?: { kill?: boolean; downMs?: number }): Promise<void>
  /** Stop and delete the data dir. */
  destroy(): Promise<void>
}

const live = new Set<ChildProcess>()
process.once('exit', () => {
  for (const p of live) p.kill('SIGKILL')
})

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address()
      const port = typeof addr === 'object' && addr ? addr.port : 0
      srv.close(() => resolve(port))
    })
  })
}

async function waitReady(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const c = new Redis({
      port,
      host: '127.0.0.1',
      lazyConnect: true,
      retryStrategy: () => null,
      maxRetriesPerRequest: 0,
    })
    c.on('error', () => {})
    try {
      await c.connect()
      const info = await c.info('persistence')
      if (!/loading:1/.test(info)) return
    } catch {
      // not up yet
    } finally {
      c.disconnect()
    }
    if (Date.now() > deadline) throw new Error(`redis-server on ${port} did not come up in ${timeoutMs} ms`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

function launch(port: number, dir: string, args: string[]): ChildProcess {
  const child = spawn(
    'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--save',
      '',
      '--appendonly',
      'no',
      ...args,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  )
  live.add(child)
  child.once('exit', () => live.delete(child))
  return child
}

export async function startRedisServer(opts: RedisServerOptions = {}): Promise<RedisServer> {
  const port = opts.port ?? (await freePort())
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'embedq-redis-'))
  const args = opts.args ?? []
  let child = launch(port, dir, args)
  await waitReady(port)

  const stop = async ({ kill = false } = {}): Promise<void> => {
    const c = child
    if (c.exitCode !== null || c.signalCode !== null) return
    const exited = new Promise<void>((r) => c.once('exit', () => r()))
    c.kill(kill ? 'SIGKILL' : 'SIGTERM')
    await exited
  }

  return {
    port,
    dir,
    url: `redis://127.0.0.1:${port}`,
    client: () => new Redis({ port, host: '127.0.0.1' }),
    stop,
    async restart({ kill = false, downMs = 0 } = {}) {
      await stop({ kill })
      if (downMs > 0) await new Promise((r) => setTimeout(r, downMs))
      child = launch(port, dir, args)
      await waitReady(port)
    },
    async destroy() {
      await stop()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
