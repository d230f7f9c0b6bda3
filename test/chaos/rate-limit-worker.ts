/**
 * One worker process of the rate-limit storm (rate-limit-storm.test.ts): a queue draining
 * through a provider that answers 429 to a large share of its calls — half of them with a
 * retry wait, half with none — while the suite SIGKILLs and restarts it. Configured by env:
 *   REDIS_URL, QUEUE_NAME, SEED, WORKER, INCARNATION, RATE_429 (share of calls, 0..1)
 * Prints the chaos suite's JSON lines (`ready`, `call`/`end` with outcome `ok`, `429` or
 * `429-bare`, `error`, `stopped`) so the shared WorkerPool can tell when it is mid-call.
 */
import { Redis } from 'ioredis'
import type { Embedder, EmbedOptions } from '../../src/embedder.js'
import { EmbedderError } from '../../src/errors.js'
import { EmbeddingBatchQueue } from '../../src/index.js'
import { fakeVector } from '../helpers/fixtures.js'
import { CHAOS_DIMS, type WorkerLine } from './config.js'
import { mixSeed, prng } from './fault-embedder.js'

/** Options of every storm worker: few attempts, so a charged 429 would soon be a dead letter. */
export const STORM_WORKER_OPTIONS = {
  leaseMs: 1_500,
  reclaimIntervalMs: 300,
  maxAttempts: 2,
  backoffBaseMs: 50,
  backoffMaxMs: 300,
  rateLimitPauseMs: 20,
  pollIntervalMs: 50,
  flushIntervalMs: 200,
  concurrency: 3,
  maxBatchSize: 10,
  stopGraceMs: 2_000,
} as const

const env = (name: string): string => {
  const v = process.env[name]
  if (v === undefined) throw new Error(`storm worker: ${name} is not set`)
  return v
}
const say = (line: WorkerLine): void => {
  process.stdout.write(`${JSON.stringify(line)}\n`)
}

/** 429 on `share` of the calls: half with a retry wait of 30–150 ms, half with none. */
function stormEmbedder(seed: number, share: number): Embedder {
  const random = prng(seed)
  let nextId = 0
  return {
    dimensions: CHAOS_DIMS,
    id: 'storm',
    async embed(texts: string[], o?: EmbedOptions): Promise<Float32Array[]> {
      const id = nextId++
      const roll = random()
      const latency = Math.floor(random() * 40)
      const waitMs = 30 + Math.floor(random() * 121)
      say({ ev: 'call', id, at: Date.now(), texts })
      let outcome = 'ok'
      try {
        await new Promise<void>((resolve, reject) => {
          const t = setTimeout(resolve, latency)
          o?.signal?.addEventListener('abort', () => {
            clearTimeout(t)
            reject(o.signal?.reason ?? new Error('aborted'))
          })
        })
        if (roll < share / 2) {
          outcome = '429'
          throw new EmbedderError('429 Too Many Requests', {
            status: 429,
            retryable: true,
            retryAfterMs: waitMs,
          })
        }
        if (roll < share) {
          outcome = '429-bare'
          throw new EmbedderError('429 Too Many Requests (no retry info)', { status: 429, retryable: true })
        }
        return texts.map((t) => fakeVector(t, CHAOS_DIMS))
      } catch (err) {
        if (o?.signal?.aborted) outcome = 'aborted'
        throw err
      } finally {
        say({ ev: 'end', id, at: Date.now(), outcome })
      }
    },
  }
}

async function main(): Promise<void> {
  const redis = new Redis(env('REDIS_URL'))
  redis.on('error', () => {})
  const queue = new EmbeddingBatchQueue({
    redis,
    name: env('QUEUE_NAME'),
    embedder: stormEmbedder(
      mixSeed(Number(env('SEED')), Number(env('WORKER')), Number(env('INCARNATION'))),
      Number(env('RATE_429')),
    ),
    ...STORM_WORKER_OPTIONS,
  })
  queue.on('error', (err) => say({ ev: 'error', at: Date.now(), message: err.message }))
  // The suite holds our stdin open; when it goes away (even killed outright), so do we.
  process.stdin.on('close', () => process.exit(0))
  process.stdin.resume()
  await queue.start()
  say({ ev: 'ready', at: Date.now() })
  process.once('SIGTERM', () => {
    void (async () => {
      await queue.stop().catch((err: unknown) => say({ ev: 'error', at: Date.now(), message: String(err) }))
      await redis.quit().catch(() => redis.disconnect())
      say({ ev: 'stopped', at: Date.now() })
      process.stdin.destroy()
    })()
  })
}

// Only when run as a process: the suite imports STORM_WORKER_OPTIONS from this file too.
if (process.env.STORM_WORKER === '1') {
  main().catch((err: unknown) => {
    say({ ev: 'fatal', at: Date.now(), message: String((err as Error)?.stack ?? err) })
    process.exitCode = 1
  })
}
