/**
 * What one worker process costs, for sizing a Kubernetes Deployment (docs/deployment.md):
 * RSS at rest and at peak, CPU per item, throughput, and how long stop() takes with calls in
 * flight. The worker runs in THIS process against a private redis-server; a producer client
 * enqueues N texts (768 dims, 100 texts per provider call, LATENCY ms per call, concurrency 8).
 *
 *   npx tsx bench/experiments/footprint.ts [N=20000] [LATENCY=50]
 */
import { Redis } from 'ioredis'
import { EmbeddingBatchQueue } from '../../src/index.js'
import { startRedisServer } from '../../test/helpers/redis-server.js'
import { fakeEmbedder } from '../lib/fake-embedder.js'

const n = Number(process.argv[2] ?? 20_000)
const latency = Number(process.argv[3] ?? 50)
const mib = (b: number): string => (b / 1024 / 1024).toFixed(1)

const server = await startRedisServer()
const redis = new Redis(server.url)
const producerRedis = new Redis(server.url)
const worker = new EmbeddingBatchQueue({
  redis,
  name: 'footprint',
  embedder: fakeEmbedder(latency, 100),
  maxBatchSize: 100,
  concurrency: 8,
  flushIntervalMs: 100,
})
const producer = new EmbeddingBatchQueue({
  redis: producerRedis,
  name: 'footprint',
  embedder: fakeEmbedder(latency, 100),
  worker: false,
  trackResults: false,
})
await worker.start()
global.gc?.()
const rest = process.memoryUsage().rss
let peak = rest
const sampler = setInterval(() => {
  peak = Math.max(peak, process.memoryUsage().rss)
}, 20)
const cpu0 = process.cpuUsage()
const t0 = Date.now()
await producer.enqueueMany(
  Array.from({ length: n }, (_, i) => ({ key: `fp:${i}`, text: `text number ${i} ${'x'.repeat(200)}` })),
)
const r = await producer.flushAndWait({ timeoutMs: 120_000 })
const ms = Date.now() - t0
const cpu = process.cpuUsage(cpu0)
clearInterval(sampler)
// stop() while calls are in flight: the grace period lets them finish.
await producer.enqueueMany(
  Array.from({ length: 800 }, (_, i) => ({ key: `fp:stop:${i}`, text: `late ${i}` })),
)
producer.flushNow()
await new Promise((res) => setTimeout(res, 20))
const s0 = Date.now()
await worker.stop()
const stopMs = Date.now() - s0
await producer.stop()
console.log(
  JSON.stringify({
    n,
    providerLatencyMs: latency,
    drained: r.drained,
    seconds: ms / 1000,
    itemsPerSecond: Math.round(n / (ms / 1000)),
    rssAtRestMiB: mib(rest),
    rssPeakMiB: mib(peak),
    cpuMsPerThousandItems: Math.round((cpu.user + cpu.system) / 1000 / (n / 1000)),
    cpuCoresWhileDraining: ((cpu.user + cpu.system) / 1000 / ms).toFixed(2),
    stopWithCallsInFlightMs: stopMs,
  }),
)
await redis.quit()
await producerRedis.quit()
await server.destroy()
