/**
 * Call site 1, the message processor: each incoming chat message is stored, then handed to
 * `queue.enqueue(key, text)`. That resolves as soon as the text is durable in Redis (one script
 * call, shared by every enqueue made in the same tick), so the write path never waits for an
 * embedding API. The vector arrives later, in batches, in the message's own hash.
 *
 * Run (in-process Redis and the local hashing embedder, no setup):
 *   npx tsx examples/message-processor.ts
 * With a real Redis and Gemini:
 *   REDIS_URL=redis://localhost:6379 GEMINI_API_KEY=… npx tsx examples/message-processor.ts
 * As a producer only, with the embedding done by examples/worker.ts in another terminal
 * (both with the same REDIS_URL):
 *   REDIS_URL=redis://localhost:6379 PRODUCER_ONLY=1 npx tsx examples/message-processor.ts
 */
import { EmbeddingBatchQueue } from '../src/index.js'
import {
  arrivalOrder,
  type ChatMessage,
  chooseEmbedder,
  clip,
  connectRedis,
  loadChatMessages,
  messageFields,
  messageKey,
  readStored,
  sleep,
} from './shared.js'

const PREFIX = 'chat'
const producerOnly = process.env.PRODUCER_ONLY === '1'

const { redis, description, inProcess, close } = connectRedis()
const { embedder, description: embedderDescription } = chooseEmbedder()
if (producerOnly && inProcess) {
  throw new Error('PRODUCER_ONLY=1 needs REDIS_URL: an in-process Redis has no other process to embed')
}
console.log(`Redis:    ${description}`)
console.log(`Embedder: ${embedderDescription}`)

// One queue per process, created at startup. Items wait for a batch of 50 or for 500 ms.
const queue = new EmbeddingBatchQueue({
  redis,
  embedder,
  name: 'chat',
  maxBatchSize: 50,
  flushIntervalMs: 500,
  worker: !producerOnly,
})
queue.on('error', (err) => console.error(`queue error: ${err.message}`))
await queue.start()

/** The handler your chat service calls for every incoming message. */
async function onMessage(m: ChatMessage): Promise<number> {
  const key = messageKey(PREFIX, m.id)
  await redis.hset(key, messageFields(m)) // your own data, as before
  const t0 = performance.now()
  const job = await queue.enqueue(key, m.text) // durable in Redis when this resolves
  const tookMs = performance.now() - t0
  // Nothing waits for the vector. Listening is optional; here we report a few of them.
  if (Number(m.id.slice(4)) % 20 === 0) {
    void job.result.then(
      (vector) => console.log(`  vector of ${m.id} written to ${key} (${vector.length} dims)`),
      (err: Error) => console.log(`  ${m.id}: ${err.message}`),
    )
  }
  return tookMs
}

const incoming = arrivalOrder(loadChatMessages()).slice(0, 80)
console.log(`\nProcessing ${incoming.length} incoming messages, one enqueue() per message:`)
const latencies: number[] = []
for (const [i, m] of incoming.entries()) {
  const tookMs = await onMessage(m)
  latencies.push(tookMs)
  if (i < 5) console.log(`  ${m.id} queued in ${tookMs.toFixed(2)} ms: ${m.author}: ${clip(m.text, 50)}`)
  await sleep(i % 7 === 0 ? 30 : 3) // messages trickle in
}
const sorted = [...latencies].sort((a, b) => a - b)
const median = sorted[sorted.length >> 1]!
console.log(
  `  … ${incoming.length} messages queued; median enqueue() ${median.toFixed(2)} ms, max ${sorted.at(-1)!.toFixed(2)} ms`,
)

// A processor can stop at any time: queued items stay in Redis for any worker. This example
// waits only so it can show the vectors (an in-process Redis disappears with the process).
const flushed = await queue.flushAndWait({ timeoutMs: 20_000 })
const stored = await readStored(
  redis,
  incoming.map((m) => messageKey(PREFIX, m.id)),
)
const withVector = stored.filter((s) => s.vector).length
console.log(
  `\nflushAndWait: ${flushed.drained ? 'drained' : `${flushed.remaining} left`}; ` +
    `${withVector}/${incoming.length} message hashes now hold an embedding`,
)
const s = await queue.stats()
console.log(`this process: enqueued ${s.local.enqueued}, embedded ${s.local.embedded}`)

await queue.stop()
await close()
if (!flushed.drained) process.exitCode = 1
