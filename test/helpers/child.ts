/** Runs test/fixtures/queue-process.ts in a child process and reads its JSON lines. */
import { type ChildProcess, spawn } from 'node:child_process'
import { createInterface } from 'node:readline'

export interface QueueChild {
  proc: ChildProcess
  lines: Record<string, unknown>[]
  /** Resolves with the first line that has `field`. */
  waitFor(field: string, timeoutMs?: number): Promise<Record<string, unknown>>
  exited: Promise<number | null>
  kill(signal?: NodeJS.Signals): void
}

const live = new Set<ChildProcess>()
process.once('exit', () => {
  for (const p of live) p.kill('SIGKILL')
})

export function startQueueChild(env: Record<string, string>): QueueChild {
  const proc = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/queue-process.ts'], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  live.add(proc)
  const lines: Record<string, unknown>[] = []
  const listeners = new Set<() => void>()
  let stderr = ''
  proc.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString()
  })
  createInterface({ input: proc.stdout! }).on('line', (line) => {
    try {
      lines.push(JSON.parse(line) as Record<string, unknown>)
    } catch {
      lines.push({ raw: line })
    }
    for (const l of listeners) l()
  })
  const exited = new Promise<number | null>((resolve) =>
    proc.once('exit', (code) => {
      live.delete(proc)
      for (const l of listeners) l()
      resolve(code)
    }),
  )
  return {
    proc,
    lines,
    exited,
    kill: (signal = 'SIGKILL') => proc.kill(signal),
    waitFor(field, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const check = (): boolean => {
          const hit = lines.find((l) => field in l)
          if (hit) {
            cleanup()
            resolve(hit)
            return true
          }
          if (proc.exitCode !== null || proc.signalCode !== null) {
            cleanup()
            reject(
              new Error(`child exited before "${field}": ${stderr.slice(-2000)} ${JSON.stringify(lines)}`),
            )
            return true
          }
          return false
        }
        const timer = setTimeout(() => {
          cleanup()
          reject(new Error(`timed out waiting for "${field}": ${stderr.slice(-2000)}`))
        }, timeoutMs)
        const cleanup = (): void => {
          clearTimeout(timer)
          listeners.delete(onLine)
        }
        const onLine = (): void => {
          check()
        }
        if (!check()) listeners.add(onLine)
      })
    },
  }
}
