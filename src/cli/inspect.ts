/**
 * `embedq inspect <key> [--json]`: what the queue and the target hash know about one key.
 */
import type { Command } from 'commander'
import type { Inspection } from '../admin-types.js'
import {
  type ConnectionFlags,
  clip,
  connect,
  connectionOptions,
  jsonOption,
  out,
  printJson,
  queueAdmin,
} from './shared.js'

interface InspectFlags extends ConnectionFlags {
  json?: boolean
}

const at = (ms: number | null): string => (ms === null ? '-' : new Date(ms).toISOString())

export function renderInspection(i: Inspection): string[] {
  const row = (label: string, value: string): string => `  ${label.padEnd(15)}${value}`
  return [
    `${JSON.stringify(i.key)}: ${i.state}`,
    row('version', i.version === null ? '-' : String(i.version)),
    row('attempts', String(i.attempts)),
    row('last error', i.lastError === null ? '-' : clip(i.lastError, 200)),
    row('due at', at(i.dueAt)),
    row('lease', i.lease ? `${i.lease.holder} until ${at(i.lease.expiresAt)}` : '-'),
    row('target version', i.targetVersion === null ? '- (no vector)' : String(i.targetVersion)),
    row('given up', i.targetFailed ? 'yes (the target holds the given-up mark)' : 'no'),
    row('text', i.textPreview === null ? '-' : JSON.stringify(clip(i.textPreview, 120))),
  ]
}

export function registerInspect(program: Command): void {
  connectionOptions(
    program
      .command('inspect')
      .description('show one key: state, version, attempts, last error, lease, target version, text')
      .argument('<key>', 'the target hash key'),
  )
    .addOption(jsonOption())
    .action(async (key: string, flags: InspectFlags) => {
      const conn = await connect(flags, { command: 'inspect' })
      try {
        const inspection = await queueAdmin(conn.redis, flags).inspect(key)
        if (flags.json) printJson({ queue: flags.name, ...inspection })
        else for (const line of renderInspection(inspection)) out(line)
      } finally {
        await conn.close()
      }
    })
}
