/**
 * The chaos suite's worker processes (test/chaos/worker.ts): start, SIGKILL, restart, and keep
 * every incarnation's JSON lines for the analysis. Every process is killed on `destroy()` and,
 * as a last resort, when the test process exits.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import type { WorkerLine } from './config.js'

export interface Incarnation {
  /** `w<worker>.<incarnation>`, e.g. `w2.5`. */
  readonly label: string
  readonly worker: number
  readonly proc: ChildProcess
  readonly lines: WorkerLine[]
  readonly startedAt: number
  /** When the suite sent SIGKILL (undefined for a process that was stopped or is alive). */
  killedAt: number | undefined
  /** Provider calls running right now (from its `call`/`end` lines). */
  openCalls: number
  readonly exited: Promise<void>
  stderr: string
}

const live = new Set<ChildProcess>()
process.once('exit', () => {
  for (const p of live) p.kill('SIGKILL')
})

export class WorkerPool {
  /** Every incarnation ever started, in start order. */
  readonly all: Incarnation[] = []
  private readonly current: (Incarnation | undefined)[]
  private readonly incarnations: number[]

  constructor(
    private readonly env: Record<string, string>,
    readonly size: number,
    /** The worker program each process runs. */
    private readonly script = 'test/chaos/worker.ts',
  ) {
    this.current = new Array(size).fill(undefined)
    this.incarnations = new Array(size).fill(0)
  }

  /**
   * Starts worker `w` (a new incarnation) and resolves when its queue has started (or when the
   * suite killed it first).
   */
  async start(w: number, timeoutMs = 20_000): Promise<Incarnation> {
    const n = ++this.incarnations[w]!
    const proc = spawn(process.execPath, ['--import', 'tsx', this.script], {
      env: { ...process.env, ...this.env, WORKER: String(w), INCARNATION: String(n) },
      // stdin stays open: the worker exits when it closes, so no worker outlives the suite.
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    live.add(proc)
    const lines: WorkerLine[] = []
    let onLine: (() => void) | undefined
    const inc: Incarnation = {
      label: `w${w}.${n}`,
      worker: w,
      proc,
      lines,
      startedAt: Date.now(),
      killedAt: undefined,
      openCalls: 0,
      stderr: '',
      exited: new Promise<void>((resolve) => {
        proc.once('exit', () => {
          live.delete(proc)
          resolve()
        })
      }),
    }
    proc.stderr!.on('data', (d: Buffer) => {
      inc.stderr = (inc.stderr + d.toString()).slice(-4_000)
    })
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      try {
        const parsed = JSON.parse(line) as WorkerLine
        lines.push(parsed)
        if (parsed.ev === 'call') inc.openCalls++
        else if (parsed.ev === 'end') inc.openCalls--
      } catch {
        lines.push({ ev: 'error', at: Date.now(), message: `unparsable line: ${line}` })
      }
      onLine?.()
    })
    this.all.push(inc)
    this.current[w] = inc
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        onLine = undefined
        reject(new Error(`${inc.label} did not start within ${timeoutMs} ms: ${inc.stderr}`))
      }, timeoutMs)
      onLine = () => {
        const last = lines[lines.length - 1]
        if (last?.ev === 'ready' || last?.ev === 'fatal') {
          onLine = undefined
          clearTimeout(timer)
          if (last.ev === 'ready') resolve()
          else reject(new Error(`${inc.label} failed to start: ${last.message}`))
        }
      }
      void inc.exited.then(() => {
        if (!onLine) return
        onLine = undefined
        clearTimeout(timer)
        // Killed by the chaos schedule while starting: that is not a failure to start.
        if (inc.killedAt !== undefined) resolve()
        else reject(new Error(`${inc.label} exited before it was ready: ${inc.stderr}`))
      })
    })
    return inc
  }

  /** Workers whose current incarnation is running (started and not killed). */
  alive(): number[] {
    return this.current.flatMap((inc, w) =>
      inc && inc.killedAt === undefined && inc.proc.exitCode === null && inc.proc.signalCode === null
        ? [w]
        : [],
    )
  }

  /** Running workers that have a provider call in progress right now. */
  busy(): number[] {
    return this.alive().filter((w) => this.current[w]!.openCalls > 0)
  }

  /** SIGKILLs worker `w` and waits until the process is gone. */
  async kill(w: number): Promise<Incarnation | undefined> {
    const inc = this.current[w]
    if (!inc || inc.killedAt !== undefined) return undefined
    inc.killedAt = Date.now()
    inc.proc.kill('SIGKILL')
    await inc.exited
    return inc
  }

  /** SIGTERM (graceful stop) for every running worker; SIGKILL whatever is left after `graceMs`. */
  async stopAll(graceMs = 10_000): Promise<void> {
    const running = this.all.filter((i) => i.proc.exitCode === null && i.proc.signalCode === null)
    for (const inc of running) inc.proc.kill('SIGTERM')
    const timer = new Promise<'late'>((r) => setTimeout(() => r('late'), graceMs).unref())
    const done = await Promise.race([
      Promise.all(running.map((i) => i.exited)).then(() => 'ok' as const),
      timer,
    ])
    if (done === 'late') await this.destroy()
  }

  /** SIGKILLs every process still running. */
  async destroy(): Promise<void> {
    const running = this.all.filter((i) => i.proc.exitCode === null && i.proc.signalCode === null)
    for (const inc of running) inc.proc.kill('SIGKILL')
    await Promise.all(running.map((i) => i.exited))
  }
}
