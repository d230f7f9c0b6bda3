/**
 * Chaos with garbage replies (#10.3, #10.4): three worker processes whose embedder answers marked
 * texts with every kind of garbage (bad entries at random positions, unusable whole replies) mixed
 * with good replies, and fails calls in hostile ways now and then (hangs that ignore the signal,
 * rejections with non-Errors, sync throws). Workers are SIGKILLed and restarted at random. The
 * producer enqueues in waves, re-enqueueing some keys with new text (healthy or garbage).
 * Must end with: 0 lost, 0 stale, 0 hung, no worker process dying by itself, nothing in flight,
 * and exactly the keys whose latest text is garbage dead-lettered.
 * Reproduce with GARBAGE_SEED=<seed printed at the start>.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { randomInt } from 'node:crypto'
import { createInterface } from 'node:readline'
import type { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { encodeVector } from '../../src/codec.js'
import { EmbeddingFailedError } from '../../src/errors.js'
import { EmbeddingBatchQueue, type EmbedJob } from '../../src/index.js'
import { queueKeys } from '../../src/keys.js'
import { fakeVector, sleep, uniqueName } from '../helpers/fixtures.js'
import { type RedisServer, startRedisServer } from '../helpers/redis-server.js'
import { CHAOS_DIMS } from './config.js'
import { prng } from './fault-embedder.js'
import { GARBAGE } from './garbage-config.js'

const SEED = Number(process.env.GARBAGE_SEED ?? randomInt(2 ** 31))
const KEYS = 800
const WAVES = 4
const WAVE_MS = 700
const GARBAGE_SHARE = 0.06
const WORKERS = 3
const SETTLE_TIMEOUT_MS = 45_000
const HARD_LIMIT_MS = 100_000

interface Proc {
  label: string
  proc: ChildProcess
  lines: Record<string, unknown>[]
  stderr: string
  killed: boolean
  exited: Promise<number | null>
}

const procs: Proc[] = []

function startWorker(env: Record<string, string>, w: number, n: number): Promise<Proc> {
  const proc = spawn(process.execPath, ['--import', 'tsx', 'test/chaos/garbage-worker.ts'], {
    env: { ...process.env, ...env, WORKER: String(w), INCARNATION: String(n) },
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  const p: Proc = {
    label: `w${w}.${n}`,
    proc,
    lines: [],
    stderr: '',
    killed: false,
    exited: new Promise((r) => proc.once('exit', (code) => r(code))),
  }
  procs.push(p)
  proc.stderr!.on('data', (d: Buffer) => {
    p.stderr = (p.stderr + d.toString()).slice(-4_000)
  })
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${p.label} did not start: ${p.stderr}`)), 20_000)
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      const parsed = JSON.parse(line) as Record<string, unknown>
      p.lines.push(parsed)
      if (parsed.ev === 'ready') {
        clearTimeout(timer)
        resolve(p)
      }
    })
    void p.exited.then(() => {
      clearTimeout(timer)
      reject(new Error(`${p.label} exited before it was ready: ${p.stderr}`))
    })
  })
}

describe('#10.3 #10.4 chaos: garbage replies at random positions, mixed with good ones', () => {
  let server: RedisServer
  let redis: Redis

  beforeAll(async () => {
    server = await startRedisServer()
    redis = server.client()
  })
  afterAll(async () => {
    for (const p of procs) if (p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill('SIGKILL')
    redis?.disconnect()
    await server?.destroy()
  })

  it('ends with 0 lost, 0 stale, 0 hung, and only the garbage items dead-lettered', async () => {
    const hardLimit = setTimeout(() => {
      for (const p of procs) p.proc.kill('SIGKILL')
    }, HARD_LIMIT_MS)
    console.log(`garbage chaos: seed ${SEED} (GARBAGE_SEED=${SEED} to replay)`)
    const rnd = prng(SEED)
    const name = uniqueName('garbage')
    const env = { REDIS_URL: server.url, QUEUE_NAME: name, SEED: String(SEED) }
    const incarnations = new Array<number>(WORKERS).fill(0)
    const current: Proc[] = await Promise.all(
      Array.from({ length: WORKERS }, (_, w) => startWorker(env, w, ++incarnations[w]!)),
    )
    const producer = new EmbeddingBatchQueue({
      redis,
      name,
      embedder: { dimensions: CHAOS_DIMS, embed: async () => [] },
      worker: false,
      resultTimeoutMs: SETTLE_TIMEOUT_MS,
    })
    await producer.start()

    const latest = new Map<string, string>()
    const sent: { job: EmbedJob; text: string }[] = []
    let kills = 0
    for (let wave = 0; wave < WAVES; wave++) {
      const items: { key: string; text: string }[] = []
      for (let i = 0; i < KEYS / WAVES; i++) {
        // Later waves reach back into earlier keys: about a third are re-enqueues with new text.
        const n =
          wave > 0 && rnd() < 0.35 ? Math.floor(rnd() * (wave * (KEYS / WAVES))) : wave * (KEYS / WAVES) + i
        const key = `garbage:msg:${n}`
        const text = `${key} wave ${wave}${rnd() < GARBAGE_SHARE ? ` ${GARBAGE}` : ''}`
        items.push({ key, text })
      }
      const jobs = await producer.enqueueMany(items)
      jobs.forEach((job, i) => {
        sent.push({ job, text: items[i]!.text })
        latest.set(items[i]!.key, items[i]!.text)
      })
      producer.flushNow()
      await sleep(WAVE_MS * (0.5 + rnd()))
      // Kill one worker mid-run and start its next incarnation.
      const w = Math.floor(rnd() * WORKERS)
      const victim = current[w]!
      victim.killed = true
      victim.proc.kill('SIGKILL')
      await victim.exited
      kills++
      current[w] = await startWorker(env, w, ++incarnations[w]!)
    }

    const settled = await Promise.allSettled(sent.map((s) => s.job.result))
    const drained = await producer.flushAndWait({ timeoutMs: 10_000 })
    await producer.stop()
    for (const p of current) p.proc.kill('SIGTERM')
    await Promise.race([Promise.all(current.map((p) => p.exited)), sleep(10_000)])
    clearTimeout(hardLimit)

    // Hung: a promise that neither resolved nor rejected with a dead letter within the bound.
    const hung = settled.filter((s) => s.status === 'rejected' && !(s.reason instanceof EmbeddingFailedError))
    // Lost and stale: every key ends with the vector of its latest text, or (garbage) a dead letter + zero vector.
    const k = queueKeys('embedq', name)
    const letters = await redis.hgetall(k.failed)
    const zero = encodeVector(new Float32Array(CHAOS_DIMS))
    let lost = 0
    let stale = 0
    const wrongLetters: string[] = []
    for (const [key, text] of latest) {
      const blob = await redis.hgetBuffer(key, 'embedding')
      const isGarbage = text.includes(GARBAGE)
      if (isGarbage) {
        const letter = letters[key] ? (JSON.parse(letters[key]!) as { text: string }) : undefined
        if (!letter || !blob) lost++
        else if (letter.text !== text || !blob.equals(zero)) stale++
      } else {
        if (letters[key]) wrongLetters.push(key)
        if (!blob) lost++
        else if (!blob.equals(encodeVector(fakeVector(text, CHAOS_DIMS)))) stale++
      }
    }
    const garbageKeys = [...latest].filter(([, t]) => t.includes(GARBAGE)).map(([key]) => key)
    const died = procs.filter((p) => !p.killed && p.proc.exitCode !== 0 && p.proc.exitCode !== null)
    const fatal = procs.flatMap((p) =>
      p.lines.filter((l) => l.ev === 'fatal').map((l) => `${p.label}: ${l.message}`),
    )
    const figures = {
      seed: SEED,
      keys: latest.size,
      enqueues: sent.length,
      garbageKeys: garbageKeys.length,
      deadLetters: Object.keys(letters).length,
      kills,
      lost,
      stale,
      hung: hung.length,
      died: died.length,
    }
    console.log('garbage chaos figures', JSON.stringify(figures))
    expect(died.map((p) => `${p.label} exit ${p.proc.exitCode}: ${p.stderr}`)).toEqual([])
    expect(fatal).toEqual([])
    expect(hung.map((h) => String((h as PromiseRejectedResult).reason))).toEqual([])
    expect(lost).toBe(0)
    expect(stale).toBe(0)
    expect(wrongLetters).toEqual([])
    expect(Object.keys(letters).sort()).toEqual(garbageKeys.sort())
    expect(garbageKeys.length).toBeGreaterThan(0)
    expect(drained.drained).toBe(true)
    expect(await redis.zcard(k.inflight)).toBe(0)
    expect(await redis.zcard(k.versions)).toBe(0)
  }, 120_000)
})
