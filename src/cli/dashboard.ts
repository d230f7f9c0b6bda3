/**
 * `embedq dashboard --port 8080 [--host 127.0.0.1] [--read-only] [--token T]`: serves the web
 * dashboard of every queue under the prefix until SIGINT/SIGTERM.
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { type Command, Option } from 'commander'
import { dashboardHandler } from '../dashboard/handler.js'
import type { DashboardSource } from '../dashboard/types.js'
import {
  CliError,
  type ConnectionFlags,
  connect,
  connectionOptions,
  ExitCode,
  intArg,
  jsonLogger,
  onStopSignal,
  out,
  usageError,
} from './shared.js'

export interface DashboardFlags extends ConnectionFlags {
  port: number
  host: string
  readOnly?: boolean
  token?: string
}

export interface DashboardDeps {
  /** For tests: the data source instead of the queues in Redis. */
  source?: DashboardSource
}

/** Serves the dashboard until a stop signal; resolves once the server and Redis are closed. */
export async function serveDashboard(flags: DashboardFlags, deps: DashboardDeps = {}): Promise<void> {
  if (flags.token !== undefined && flags.token.length < 8)
    throw usageError('--token must be at least 8 characters (or set EMBEDQ_DASHBOARD_TOKEN)')
  const conn = await connect(flags, { longLived: true, command: 'dashboard' })
  const logger = jsonLogger('warn')
  try {
    let handler: ReturnType<typeof dashboardHandler>
    try {
      handler = dashboardHandler({
        redis: conn.redis,
        prefix: flags.prefix,
        readOnly: flags.readOnly === true,
        ...(flags.token ? { token: flags.token } : {}),
        ...(deps.source ? { source: deps.source } : {}),
        logger,
      })
    } catch (err) {
      throw new CliError((err as Error).message, ExitCode.Failure)
    }
    const server = createServer((req, res) => handler(req, res))
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) =>
        reject(new CliError(`cannot listen on ${flags.host}:${flags.port}: ${err.code ?? err.message}`)),
      )
      server.listen(flags.port, flags.host, () => resolve())
    })
    const { port } = server.address() as AddressInfo
    const host = flags.host.includes(':') ? `[${flags.host}]` : flags.host
    const stop = onStopSignal()
    try {
      out(`embedq dashboard: http://${host}:${port}/ (queues under prefix "${flags.prefix}" at ${conn.url})`)
      if (flags.readOnly) out('read-only: pause, resume, retry and delete are refused')
      else if (!flags.token)
        out(
          'actions (pause, resume, retry, delete) are refused: pass --token or set EMBEDQ_DASHBOARD_TOKEN to allow them',
        )
      else out('actions need the token (enter it in the page)')
      out('Ctrl-C to stop')
      await new Promise<void>((resolve) => {
        if (stop.signal.aborted) resolve()
        else stop.signal.addEventListener('abort', () => resolve(), { once: true })
      })
      out(`embedq dashboard: ${stop.received() ?? 'signal'} received, stopping`)
    } finally {
      stop.dispose()
      await new Promise<void>((resolve) => {
        server.close(() => resolve())
        // Browsers keep polling connections open: close them so close() completes now.
        server.closeAllConnections()
      })
    }
  } finally {
    await conn.close()
  }
}

export function registerDashboard(program: Command, deps: DashboardDeps = {}): void {
  connectionOptions(
    program
      .command('dashboard')
      .description(
        'serve the web dashboard: every queue under the prefix, workers, history, dead letters, pause',
      ),
  )
    .option('--port <port>', 'port to listen on (0: any free port)', intArg(0, 65_535), 8080)
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--read-only', 'refuse pause, resume, retry and delete')
    .addOption(
      new Option('--token <token>', 'bearer token that pause, resume, retry and delete need').env(
        'EMBEDQ_DASHBOARD_TOKEN',
      ),
    )
    .action(async (flags: DashboardFlags) => {
      await serveDashboard(flags, deps)
    })
}
