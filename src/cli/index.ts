#!/usr/bin/env node
/**
 * Entry point of the `embedq` binary (package.json `bin`, built to dist/cli.js). The program
 * itself lives in ./program.ts, free of side effects; only this file runs it.
 */
import { run } from './program.js'

// `embedq status --json | head` closes our stdout early: that is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0)
  throw err
})

void run(process.argv).then((code) => {
  process.exitCode = code
  // Everything we opened is closed by now; a handle left by a dependency must not keep us alive.
  setTimeout(() => process.exit(code), 1_000).unref()
})
