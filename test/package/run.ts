/** Runs a command to completion with a hard bound, for the package tests. */
import { spawn } from 'node:child_process'

export interface RunResult {
  code: number | null
  stdout: string
  stderr: string
  ms: number
}

export interface RunOptions {
  cwd: string
  /** Killed (SIGKILL) after this long; the result then has `code: null`. */
  timeoutMs: number
  env?: NodeJS.ProcessEnv
}

export function run(cmd: string, args: readonly string[], opts: RunOptions): Promise<RunResult> {
  const started = Date.now()
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString()
    })
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString()
    })
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs)
    child.once('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
    child.once('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr, ms: Date.now() - started })
    })
  })
}

/** The whole run, for assertion messages. */
export const show = (cmd: string, r: RunResult): string =>
  `${cmd}: exit ${r.code} in ${r.ms} ms\n--- stdout\n${r.stdout.slice(-4000)}\n--- stderr\n${r.stderr.slice(-4000)}`

/** Settings of the `npm test` around us that children keep: the same cache and registry. */
const KEEP = new Set(['npm_config_cache', 'npm_config_registry', 'npm_config_userconfig'])

/**
 * The environment for npm and node children: none of the lifecycle variables of the `npm test`
 * around us (`npm_config_local_prefix` would point a child npm at this project), and nothing
 * that would configure embedq behind the test's back.
 */
export function npmEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('npm_') && !KEEP.has(k)) continue
    if (k === 'INIT_CWD' || k === 'REDIS_URL' || k.startsWith('EMBEDQ_') || /_API_KEY$/.test(k)) continue
    env[k] = v
  }
  return env
}
