/**
 * A worker service with health and metrics, written with the library (the `embedq worker`
 * command does the same from flags): it drains the queue, serves `GET /healthz` (200 while
 * connected and draining, 503 otherwise: a readiness/liveness probe) and `GET /metrics`
 * (Prometheus text from prom-client), and on SIGTERM or Ctrl-C finishes its running batches,
 * leaves the rest queued in Redis, and exits 0.
 *
 * Run it next to producers, with a real Redis:
 *   REDIS_URL=redis://localhost:6379 PORT=9464 npx tsx examples/worker-service.ts
 *   curl -s localhost:9464/healthz; curl -s localhost:9464/metrics | grep ^embedq_
 * Without REDIS_URL it uses an in-process Redis that no other process can reach, so it queues
 * a few sample messages itself to have something to drain:
 *   npx tsx examples/worker-service.ts
 * PORT=0 picks a free port; HOST=0.0.0.0 makes the server reachable from other machines.
 */
import { collectDefaultMetrics, Registry } from 'prom-client'
import { startHealthServer } from '../src/health.js'
import { EmbeddingBatchQueue } from '../src/index.js'
import { createQueueMetrics } from '../src/metrics.js'
import { chooseEmbedder, connectRedis, loadChatMessages, messageKey, storeMessages } from './shared.js'

const PREFIX = 'chat'
const port = Number(process.env.PORT ?? 9464)
const host = process.env.HOST ?? '127.0.0.1'

const { redis, description, inProcess, close } = connectRedis()
const choice = chooseEmbedder()

const queue = new EmbeddingBatchQueue({
  redis,
  embedder: choice.embedder,
  name: 'chat', // the queue examples/message-processor.ts feeds
  maxBatchSize: 50,
  flushIntervalMs: 500,
})
queue.on('failed', ({ key, attempts, error }) =>
  console.log(`gave up on ${key} after ${attempts} attempts: ${error.message}`),
)
queue.on('error', (err) => console.error(`queue error: ${err.message}`))

// Counters and histograms follow the queue's events; gauges read queue.stats() at each scrape.
const registry = new Registry()
const metrics = await createQueueMetrics(queue, { registry, labels: { service: 'worker-service' } })
collectDefaultMetrics({ register: registry }) // process CPU, memory, event loop lag
const health = await startHealthServer({ queue, redis, port, host, metrics })

let stopping = false
async function shutdown(signal: NodeJS.Signals): Promise<void> {
  if (stopping) {
    console.log(`${signal} again: exiting without waiting`)
    process.exit(1)
  }
  stopping = true
  console.log(`${signal}: stopping (running batches finish, the rest stays queued in Redis)`)
  try {
    await queue.stop() // /healthz answers 503 from here on
    const { local } = await queue.stats()
    metrics.close()
    await health.close()
    await close()
    console.log(`stopped: ${local.embedded} embedded, ${local.failed} given up`)
  } catch (err) {
    console.error('stop failed:', err)
    process.exitCode = 1
  }
}
process.on('SIGTERM', (signal) => void shutdown(signal))
process.on('SIGINT', (signal) => void shutdown(signal))

await queue.start()
console.log(`worker service ready: draining queue 'chat' (pid ${process.pid})`)
console.log(`  Redis:    ${description}`)
console.log(`  Embedder: ${choice.description}`)
console.log(`  health:   ${health.url}/healthz`)
console.log(`  metrics:  ${health.url}/metrics`)
console.log('  Stop with SIGTERM or Ctrl-C.')

if (inProcess) {
  try {
    const sample = loadChatMessages().slice(0, 60)
    await storeMessages(redis, PREFIX, sample)
    await queue.enqueueMany(sample.map((m) => ({ key: messageKey(PREFIX, m.id), text: m.text })))
    const flushed = await queue.flushAndWait({ timeoutMs: 20_000 })
    const { local } = await queue.stats()
    if (!stopping) {
      console.log(
        `sample: ${local.embedded} embedded in ${local.apiCalls} provider calls${flushed.drained ? '' : ` (${flushed.remaining} left)`}; ` +
          `see embedq_embedded_total at ${health.url}/metrics`,
      )
    }
  } catch (err) {
    if (!stopping) throw err // a signal during the seeding stops it: nothing to report
  }
}
