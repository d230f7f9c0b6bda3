/**
 * A worker process of the garbage-replies chaos test (#10.3, #10.4): its embedder answers texts
 * marked GARBAGE with every kind of garbage (a bad entry at the text's position, or a whole reply
 * that is unusable), and now and then fails a call in a hostile way (a hang that ignores the
 * signal, a rejection with a non-Error, a sync throw, a non-promise reply). Healthy texts only ever
 * meet those transient faults. No unhandledRejection handler: a leak would kill the process.
 * Env: REDIS_URL, QUEUE_NAME, SEED, WORKER, INCARNATION. Prints {"ev":"ready"} and {"ev":"stopped"}.
 */
import { Redis } from 'ioredis'
import type { Embedder, EmbedOptions } from '../../src/embedder.js'
import { EmbeddingBatchQueue } from '../../src/index.js'
import { fakeVector } from '../helpers/fixtures.js'
import { CHAOS_DIMS, WORKER_OPTIONS } from './config.js'
import { mixSeed, prng } from './fault-embedder.js'
import { GARBAGE, GARBAGE_EMBED_TIMEOUT_MS } from './garbage-config.js'

const env = (name: string): string => {
  const v = process.env[name]
  if (v === undefined) throw new Error(`garbage worker: ${name} is not set`)
  return v
}
const say = (line: Record<string, unknown>): void => {
  process.stdout.write(`${JSON.stringify(line)}\n`)
}

const dims = CHAOS_DIMS
const rnd = prng(mixSeed(Number(env('SEED')), Number(env('WORKER')), Number(env('INCARNATION'))))
const pick = <T>(list: readonly T[]): T => list[Math.floor(rnd() * list.length)]!

const ENTRY: (() => unknown)[] = [
  () => null,
  () => undefined,
  () => 'vector',
  () => [1, 2],
  () => new Float32Array(dims + 1),
  () => Array.from({ length: dims }, () => Number.NaN),
  () => ({ 0: 1, length: dims }),
  () =>
    Object.defineProperty(new Array(dims).fill(0.1), 1, {
      get() {
        throw new Error('getter')
      },
    }),
]
const WHOLE: ((texts: string[]) => unknown)[] = [
  () => null,
  () => ({}),
  (texts) => texts.slice(1).map((t) => fakeVector(t, dims)),
  (texts) => [...texts, 'x'].map((t) => fakeVector(t, dims)),
]

const embedder: Embedder = {
  dimensions: dims,
  // Not async on purpose: a sync throw and a non-promise reply must be survived too.
  embed(texts: string[], _o?: EmbedOptions): Promise<ArrayLike<number>[]> {
    const r = rnd()
    if (r < 0.02) return new Promise(() => {}) // hangs and ignores its signal
    if (r < 0.04) return Promise.reject(rnd() < 0.5 ? 'a string' : null)
    if (r < 0.05) throw 42
    const garbage = texts.some((t) => t.includes(GARBAGE))
    if (garbage && r < 0.3) return Promise.resolve(pick(WHOLE)(texts) as number[][])
    const reply = texts.map((t) => (t.includes(GARBAGE) ? pick(ENTRY)() : fakeVector(t, dims)))
    return (r < 0.5 ? reply : Promise.resolve(reply)) as Promise<number[][]>
  },
}

const redis = new Redis(env('REDIS_URL'))
redis.on('error', () => {})
const queue = new EmbeddingBatchQueue({
  redis,
  embedder,
  name: env('QUEUE_NAME'),
  ...WORKER_OPTIONS,
  embedTimeoutMs: GARBAGE_EMBED_TIMEOUT_MS,
})
queue.on('error', (err) => say({ ev: 'error', message: err.message }))

async function main(): Promise<void> {
  await queue.start()
  say({ ev: 'ready' })
  const stop = (): void => {
    void queue
      .stop()
      .then(() => redis.quit())
      .then(() => say({ ev: 'stopped' }))
  }
  process.once('SIGTERM', stop)
  process.stdin.once('close', stop)
  process.stdin.resume()
}

main().catch((err) => {
  say({ ev: 'fatal', message: String(err?.stack ?? err) })
  process.exitCode = 1
})
