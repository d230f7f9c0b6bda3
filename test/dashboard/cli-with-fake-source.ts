/**
 * The `embedq dashboard` command wired to the in-memory fake source (until QueueAdmin gives the
 * real default): `node --import tsx test/dashboard/cli-with-fake-source.ts dashboard …`.
 */
import { Command } from 'commander'
import { registerDashboard } from '../../src/cli/dashboard.js'
import { CliError } from '../../src/cli/shared.js'
import { fakeSource } from './fake-source.js'

const program = new Command('embedq').exitOverride()
registerDashboard(program, { source: fakeSource() })
try {
  await program.parseAsync(process.argv)
} catch (err) {
  process.stderr.write(`embedq: ${(err as Error).message}\n`)
  process.exitCode = err instanceof CliError ? err.exitCode : 1
}
