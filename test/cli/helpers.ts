/**
 * Runs the `embedq` CLI the way an operator does: a child process (`node --import tsx
 * src/cli/index.ts …`) with a clean environment, and reads what it prints. Also a parser of the
 * Prometheus text format, for the `/metrics` scrapes.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

export const root = fileURLToPath(new URL('../..', import.meta.url))

export interface CliRun {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  ms: number
}

/** The environment without anything that would configure the CLI behind the test's back. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (k === 'REDIS_URL' || k.startsWith('EMBEDQ_') || /_API_KEY$/.test(k)) continue
    env[k] = v
  }
  return { ...env, ...extra }
}

const live = new Set<ChildProcess>()
process.once('exit', () => {
  for (const p of live) p.kill('SIGKILL')
})

export interface CliProcess {
  child: ChildProcess
  readonly stdout: string
  readonly stderr: string
  /** Resolves when the process exits. */
  done: Promise<CliRun>
  /** Resolves with the first match of `re` in stdout+stderr (so far or later). */
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>
}

export function startCli(
  args: string[],
  opts: { env?: Record<string, string>; timeoutMs?: number; script?: string } = {},
): CliProcess {
  const started = Date.now()
  const child = spawn(process.execPath, ['--import', 'tsx', opts.script ?? 'src/cli/index.ts', ...args], {
    cwd: root,
    env: cleanEnv(opts.env),
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  live.add(child)
  let stdout = ''
  let stderr = ''
  const listeners = new Set<() => void>()
  child.stdout!.on('data', (d: Buffer) => {
    stdout += d.toString()
    for (const l of listeners) l()
  })
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString()
    for (const l of listeners) l()
  })
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000)
  const done = new Promise<CliRun>((resolve) => {
    child.once('close', (code, signal) => {
      clearTimeout(timer)
      live.delete(child)
      for (const l of listeners) l()
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started })
    })
  })
  return {
    child,
    get stdout() {
      return stdout
    },
    get stderr() {
      return stderr
    },
    done,
    waitFor(re, timeoutMs = 15_000) {
      return new Promise((resolve, reject) => {
        const check = (): boolean => {
          const m = (stdout + stderr).match(re)
          if (m) {
            cleanup()
            resolve(m)
            return true
          }
          if (child.exitCode !== null || child.signalCode !== null) {
            cleanup()
            reject(new Error(`process exited before ${re}:\n--- stdout\n${stdout}\n--- stderr\n${stderr}`))
            return true
          }
          return false
        }
        const t = setTimeout(() => {
          cleanup()
          reject(new Error(`timed out waiting for ${re}:\n--- stdout\n${stdout}\n--- stderr\n${stderr}`))
        }, timeoutMs)
        const cleanup = (): void => {
          clearTimeout(t)
          listeners.delete(onData)
        }
        const onData = (): void => {
          check()
        }
        if (!check()) listeners.add(onData)
      })
    },
  }
}

/** Runs the CLI to completion. */
export const runCli = (
  args: string[],
  opts: { env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<CliRun> => startCli(args, opts).done

/** The whole run, for assertion messages. */
export const show = (r: CliRun): string =>
  `exit ${r.code} (${r.signal}) in ${r.ms} ms\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`

/** Parses stdout as one JSON document. */
export function json<T = Record<string, unknown>>(r: CliRun): T {
  try {
    return JSON.parse(r.stdout) as T
  } catch {
    throw new Error(`stdout is not JSON:\n${show(r)}`)
  }
}

export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

/** Parses the Prometheus text exposition format (what `/metrics` serves) into samples. */
export function parsePrometheus(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = []
  const types = new Map<string, string>()
  for (const line of text.split('\n')) {
    if (line.startsWith('# TYPE ')) {
      const [, , name, type] = line.split(' ')
      types.set(name!, type!)
      continue
    }
    if (line === '' || line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/.exec(line)
    if (!m) throw new Error(`not a Prometheus sample line: ${line}`)
    const labels: Record<string, string> = {}
    for (const lm of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[lm[1]!] = lm[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c))
    }
    const raw = m[3]!
    const value =
      raw === '+Inf' ? Number.POSITIVE_INFINITY : raw === '-Inf' ? Number.NEGATIVE_INFINITY : Number(raw)
    samples.push({ name: m[1]!, labels, value })
  }
  return { samples, types }
}

/** The value of the one sample of `name` whose labels include `labels` (undefined when absent). */
export function sampleValue(
  samples: Sample[],
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const hits = samples.filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  )
  if (hits.length > 1) throw new Error(`${hits.length} samples of ${name} match ${JSON.stringify(labels)}`)
  return hits[0]?.value
}

export async function getText(url: string): Promise<{ status: number; body: string; type: string | null }> {
  const res = await fetch(url)
  return { status: res.status, body: await res.text(), type: res.headers.get('content-type') }
}
