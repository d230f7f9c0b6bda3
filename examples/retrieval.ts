/**
 * Call site 2, before retrieval: `await queue.flushAndWait()` returns once everything queued
 * before the call is embedded (or given up), so a vector search right after it sees every
 * message, including the ones sent a moment ago. Then `queue.vectorIndex().search()` finds the
 * context for an LLM call.
 *
 * On Redis 8 / Redis Stack (the query engine) `index.ensure()` creates an FT index once
 * (HNSW, COSINE, the embedder's dimensions; given-up items are filtered out of it) and
 * `search()` runs FT.SEARCH KNN on the server. Without the query engine (a plain Redis, the
 * in-process one) the same calls run an exact scan over the prefix.
 *
 * Run (in-process Redis and the local hashing embedder, no setup):
 *   npx tsx examples/retrieval.ts ["your question"]
 *   REDIS_URL=redis://localhost:6379 GEMINI_API_KEY=… npx tsx examples/retrieval.ts "when do we fly?"
 */
import { EmbeddingBatchQueue } from '../src/index.js'
import {
  chooseEmbedder,
  clip,
  connectRedis,
  formatSearchHit,
  loadChatMessages,
  messageKey,
  storeMessages,
} from './shared.js'

const PREFIX = 'retrieval'
const question = process.argv[2] ?? 'flight to Lisbon'

const { redis, description, close } = connectRedis()
const { embedder, description: embedderDescription } = chooseEmbedder()
console.log(`Redis:    ${description}`)
console.log(`Embedder: ${embedderDescription}`)

// flushIntervalMs keeps its default (1 hour): only full batches of 50 go on their own; the
// rest waits for a flush, which is what flushAndWait() does first.
const queue = new EmbeddingBatchQueue({ redis, embedder, name: 'retrieval', maxBatchSize: 50 })
queue.on('error', (err) => console.error(`queue error: ${err.message}`))
await queue.start()

try {
  // Messages arrive (here: a bulk import of the whole dataset, one pipeline + one enqueueMany).
  const messages = loadChatMessages()
  await storeMessages(redis, PREFIX, messages)
  await queue.enqueueMany(messages.map((m) => ({ key: messageKey(PREFIX, m.id), text: m.text })))
  const before = await queue.stats()
  console.log(`\nQueued ${messages.length} messages; ${before.unfinished} not embedded yet.`)

  // A user asks a question. Make everything queued so far searchable, then search.
  const flushed = await queue.flushAndWait({ timeoutMs: 20_000 })
  if (!flushed.drained)
    throw new Error(`not drained: ${flushed.remaining} items left after ${flushed.elapsedMs} ms`)
  console.log(`flushAndWait(): drained in ${flushed.elapsedMs} ms, nothing left to embed.`)

  // One index per prefix; ensure() is cheap when it exists (and checks that it fits).
  const index = queue.vectorIndex({ indexName: `${PREFIX}:idx`, prefixes: [`${PREFIX}:msg:`] })
  const { engine } = await index.ensure()
  const hits = await index.search(question, { k: 5, returnFields: ['text', 'author', 'conversation'] })
  console.log(
    `\nTop 5 of ${messages.filter((m) => m.text.trim()).length} stored vectors for "${question}" (${engine}):`,
  )
  for (const [i, hit] of hits.entries()) console.log(formatSearchHit(hit, i + 1))

  // What an LLM call would get as context (no model is called here).
  const context = hits.map((h) => `- ${h.fields.author}: ${clip(h.fields.text ?? '', 100)}`).join('\n')
  console.log(`\nPrompt context for the LLM (${context.length} chars):\n${context}`)
} finally {
  await queue.stop()
  await close()
}
