/**
 * `embedq workers [--json]`: the live workers of a queue, from their heartbeats in Redis.
 */
import type { Command } from 'commander'
import type { WorkerInfo } from '../admin-types.js'
import {
  type ConnectionFlags,
  connect,
  connectionOptions,
  fmtDuration,
  jsonOption,
  out,
  printJson,
  queueAdmin,
} from './shared.js'

interface WorkersFlags extends ConnectionFlags {
  json?: boolean
}

export function renderWorkers(
  name: string,
  workers: WorkerInfo[],
  unfinished: number,
  now: number,
): string[] {
  if (workers.length === 0)
    return [
      `queue "${name}" has no live worker${unfinished > 0 ? ` — BACKLOG WITH NO LIVE WORKER: ${unfinished} unfinished item(s) wait` : ''}`,
    ]
  const lines = [`queue "${name}": ${workers.length} live worker${workers.length === 1 ? '' : 's'}`]
  for (const w of workers) {
    lines.push(
      `  ${w.id}  pid ${w.pid}  up ${fmtDuration(Math.max(0, now - w.startedAt))}  seen ${fmtDuration(Math.max(0, now - w.lastSeenAt))} ago  concurrency ${w.concurrency}  in flight ${w.inflight}  ${w.embedder}  v${w.version}${w.paused ? '  PAUSED' : ''}`,
    )
  }
  return lines
}

export function registerWorkers(program: Command): void {
  connectionOptions(
    program.command('workers').description('list the live workers of the queue (from their heartbeats)'),
  )
    .addOption(jsonOption())
    .action(async (flags: WorkersFlags) => {
      const conn = await connect(flags, { command: 'workers' })
      try {
        const admin = queueAdmin(conn.redis, flags)
        const [workers, stats] = await Promise.all([admin.workers(), admin.stats()])
        if (flags.json) {
          printJson({
            queue: flags.name,
            workers,
            unfinished: stats.unfinished,
            backlogWithoutWorker: stats.unfinished > 0 && workers.length === 0,
          })
          return
        }
        for (const line of renderWorkers(flags.name, workers, stats.unfinished, Date.now())) out(line)
      } finally {
        await conn.close()
      }
    })
}
