/**
 * The `embedq` command line: one commander program, one file per command. `run()` parses,
 * runs, and turns every failure into one clear line on stderr and an exit code (never a stack
 * trace for an operator's mistake; set EMBEDQ_DEBUG=1 to see stacks of unexpected errors).
 */
import { readFileSync } from 'node:fs'
import { Command, CommanderError } from 'commander'
import { registerBackfill } from './backfill.js'
import { registerDashboard } from './dashboard.js'
import { registerFailed } from './failed.js'
import { registerImportPython } from './import-python.js'
import { registerInspect } from './inspect.js'
import { registerPause } from './pause.js'
import { registerPurge } from './purge.js'
import { CliError, ExitCode } from './shared.js'
import { registerStatus } from './status.js'
import { registerWorker } from './worker.js'
import { registerWorkers } from './workers.js'

/** The package version, from the nearest package.json named embedq (src/cli → ../.., dist → ..). */
function packageVersion(): string {
  for (const rel of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as {
        name?: string
        version?: string
      }
      if (pkg.name === 'embedq' && pkg.version) return pkg.version
    } catch {
      // try the next one
    }
  }
  return '0.0.0'
}

export function buildProgram(): Command {
  const program = new Command('embedq')
    .description('Operate embedq queues: inspect, run workers, backfill, handle dead letters.')
    .version(packageVersion(), '-v, --version')
    .exitOverride()
    .showHelpAfterError('(add --help for usage)')
    .configureOutput({
      writeOut: (s) => process.stdout.write(s),
      writeErr: (s) => process.stderr.write(s),
    })
    .addHelpText(
      'after',
      `
Every command takes --redis <url> (default: $REDIS_URL, else redis://127.0.0.1:6379), --cluster,
--name <queue> and --prefix <prefix>. Exit codes: 0 ok, 1 failure (e.g. Redis unreachable),
2 bad flags, 130 interrupted.`,
    )
  registerStatus(program)
  registerWorker(program)
  registerWorkers(program)
  registerPause(program)
  registerInspect(program)
  registerBackfill(program)
  registerFailed(program)
  registerPurge(program)
  registerImportPython(program)
  registerDashboard(program)
  return program
}

/** Runs the CLI with `argv` (as `process.argv`) and resolves with the exit code. */
export async function run(argv: readonly string[]): Promise<number> {
  const program = buildProgram()
  try {
    if (argv.length <= 2) {
      program.outputHelp({ error: true })
      return ExitCode.Usage
    }
    await program.parseAsync(argv)
    return ExitCode.Ok
  } catch (err) {
    if (err instanceof CommanderError) {
      // commander already printed its message (unknown option, invalid argument, --help…).
      return err.exitCode === 0 ? ExitCode.Ok : ExitCode.Usage
    }
    if (err instanceof CliError) {
      if (err.message) process.stderr.write(`embedq: ${err.message}\n`)
      return err.exitCode
    }
    const e = err as Error
    process.stderr.write(`embedq: ${e?.message ?? String(err)}\n`)
    if (process.env.EMBEDQ_DEBUG) process.stderr.write(`${e?.stack ?? ''}\n`)
    return ExitCode.Failure
  }
}
