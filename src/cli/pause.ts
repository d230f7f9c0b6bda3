/**
 * `embedq pause [--by WHO]` and `embedq resume`: the operator pause of a queue, persisted in
 * Redis; every worker in every process stops claiming within about a second (calls in flight
 * finish, producers keep enqueueing). The rate-limit pause is separate and not touched.
 */
import { hostname, userInfo } from 'node:os'
import type { Command } from 'commander'
import {
  type ConnectionFlags,
  connect,
  connectionOptions,
  jsonOption,
  out,
  printJson,
  queueAdmin,
} from './shared.js'

interface PauseFlags extends ConnectionFlags {
  json?: boolean
  by?: string
}

function who(): string {
  try {
    return `${userInfo().username}@${hostname()}`
  } catch {
    return hostname()
  }
}

export function registerPause(program: Command): void {
  connectionOptions(
    program
      .command('pause')
      .description(
        'pause claims of every worker of the queue until `embedq resume` (producers keep enqueueing)',
      ),
  )
    .option('--by <who>', 'who paused it (shown by status and the dashboard)')
    .addOption(jsonOption())
    .action(async (flags: PauseFlags) => {
      const conn = await connect(flags, { command: 'pause' })
      try {
        const admin = queueAdmin(conn.redis, flags)
        await admin.pause({ by: flags.by ?? `cli:${who()}` })
        const state = await admin.pauseState()
        if (flags.json) printJson({ queue: flags.name, ...state })
        else
          out(
            `queue "${flags.name}" paused${state.operator.by ? ` by ${state.operator.by}` : ''} since ${new Date(state.operator.since ?? Date.now()).toISOString()}; resume with: embedq resume`,
          )
      } finally {
        await conn.close()
      }
    })

  connectionOptions(
    program.command('resume').description('lift the operator pause: every worker claims again'),
  )
    .addOption(jsonOption())
    .action(async (flags: PauseFlags) => {
      const conn = await connect(flags, { command: 'resume' })
      try {
        const admin = queueAdmin(conn.redis, flags)
        await admin.resume()
        const state = await admin.pauseState()
        if (flags.json) printJson({ queue: flags.name, ...state })
        else
          out(
            `queue "${flags.name}" resumed${state.rateLimit.paused ? ` (still paused by a ${state.rateLimit.reason} until ${new Date(state.rateLimit.until ?? 0).toISOString()})` : ''}`,
          )
      } finally {
        await conn.close()
      }
    })
}
