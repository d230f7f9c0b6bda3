/**
 * A worker-only process: it drains the queue (claims batches, calls the embedder, writes each
 * vector into its target hash) and nothing else. Producers can then run with `worker: false`.
 * SIGTERM or SIGINT (Ctrl-C) stops it gracefully: provider calls already running finish (within
 * stopGraceMs), everything else stays queued in Redis for the next worker. A second signal
 * exits at once.
 *
 * Run next to producers, with a real Redis:
 *   REDIS_URL=redis://localhost:6379 npx tsx examples/worker.ts
 *   REDIS_URL=redis://localhost:6379 PRODUCER_ONLY=1 npx tsx examples/message-processor.ts
 * Without REDIS_URL it uses an in-process Redis that no other process can reach, so it queues a
 * few sample messages itself to have something to drain:
 *   npx tsx examples/worker.ts
 */
import { EmbeddingBatchQueue } from '../src/index.js'
import {
  chooseEmbedder,
  connectRedis,
  countingEmbedder,
  loadChatMessages,
  messageKey,
  storeMessages,
} from './shared.js'

const PREFIX = 'chat'

const { redis, description, inProcess, close } = connectRedis()
const choice = chooseEmbedder()
const embedder = countingEmbedder(choice.embedder)

const queue = new EmbeddingBatchQueue({
  redis,
  embedder,
  name: 'chat', // the queue examples/message-processor.ts feeds
  worker: true,
  maxBatchSize: 50,
  flushIntervalMs: 500,
})
let embedded = 0
queue.on('embedded', () => {
  embedded++
})
queue.on('failed', ({ key, attempts, error }) =>
  console.log(`gave up on ${key} after ${attempts}: ${error.message}`),
)
queue.on('error', (err) => console.error(`queue error: ${err.message}`))
// A progress line when something changed, once a second.
let reported = 0
const progress = setInterval(() => {
  if (embedded === reported) return
  reported = embedded
  console.log(`embedded ${embedded} so far, in ${embedder.calls} provider calls`)
}, 1000)

let stopping = false
async function shutdown(signal: NodeJS.Signals): Promise<void> {
  if (stopping) {
    console.log(`${signal} again: exiting without waiting`)
    process.exit(1)
  }
  stopping = true
  console.log(`${signal}: stopping (running batches finish, the rest stays queued in Redis)`)
  clearInterval(progress)
  try {
    await queue.stop()
    await close()
    console.log(`worker stopped: ${embedded} embedded in ${embedder.calls} provider calls`)
  } catch (err) {
    console.error('worker stop failed:', err)
    process.exitCode = 1
  }
}
process.on('SIGTERM', (signal) => void shutdown(signal))
process.on('SIGINT', (signal) => void shutdown(signal))

await queue.start()
console.log(`worker ready: draining queue 'chat' (pid ${process.pid})`)
console.log(`  Redis:    ${description}`)
console.log(`  Embedder: ${choice.description}`)
console.log('  Stop with SIGTERM or Ctrl-C.')

if (inProcess) {
  try {
    const sample = loadChatMessages().slice(0, 60)
    await storeMessages(redis, PREFIX, sample)
    await queue.enqueueMany(sample.map((m) => ({ key: messageKey(PREFIX, m.id), text: m.text })))
    console.log(`queued ${sample.length} sample messages (with REDIS_URL set, producers do this)`)
    // Report when they are done; a worker does not need to wait for anything itself.
    const flushed = await queue.flushAndWait({ timeoutMs: 20_000 })
    if (!stopping) console.log(`sample ${flushed.drained ? 'done' : `not done: ${flushed.remaining} left`}`)
  } catch (err) {
    if (!stopping) throw err // a signal during the seeding stops it: nothing to report
  }
}
