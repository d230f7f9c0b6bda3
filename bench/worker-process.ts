/**
 * A bench worker process for the scale workload. The parent (bench/run.ts) forks it with an
 * IPC channel and drives it with messages:
 *   { type: 'start', name, latencyMs }  → runs an EmbeddingBatchQueue worker, replies 'started'
 *   { type: 'stop' }                    → stops that queue, replies 'stopped' with its counts
 *   { type: 'exit' }                    → closes its connection and exits
 * Env: BENCH_REDIS_URL. Exits by itself if the parent goes away.
 */
import { Redis } from 'ioredis'
import type { EmbeddingBatchQueue } from '../src/index.js'
import { makeQueue } from './contenders/embedq.js'
import type { FakeEmbedder } from './lib/fake-embedder.js'

export type ToWorker =
  | { type: 'start'; name: string; latencyMs: number }
  | { type: 'stop' }
  | { type: 'exit' }
export type FromWorker =
  | { type: 'ready' }
  | { type: 'started' }
  | { type: 'stopped'; calls: number; texts: number }
  | { type: 'error'; message: string }

const url = process.env.BENCH_REDIS_URL
if (!url || !process.send)
  throw new Error('worker-process: run me from bench/run.ts (needs BENCH_REDIS_URL and IPC)')
const send = (m: FromWorker): void => {
  process.send?.(m)
}

const redis = new Redis(url)
let current: { queue: EmbeddingBatchQueue; embedder: FakeEmbedder } | undefined

async function handle(m: ToWorker): Promise<void> {
  if (m.type === 'start') {
    current = makeQueue({ redis, name: m.name, worker: true, latencyMs: m.latencyMs })
    current.queue.on('error', (err) => send({ type: 'error', message: err.message }))
    await current.queue.start()
    send({ type: 'started' })
  } else if (m.type === 'stop') {
    const c = current
    current = undefined
    await c?.queue.stop()
    send({ type: 'stopped', calls: c?.embedder.calls ?? 0, texts: c?.embedder.texts ?? 0 })
  } else {
    await current?.queue.stop()
    await redis.quit()
    process.disconnect()
  }
}

process.on('message', (m: ToWorker) => {
  handle(m).catch((err: unknown) => send({ type: 'error', message: String(err) }))
})
process.on('disconnect', () => {
  // Parent gone (or told us to exit): make sure nothing keeps the event loop alive.
  setTimeout(() => process.exit(0), 5_000).unref()
  redis.disconnect()
})
await redis.ping()
send({ type: 'ready' })
