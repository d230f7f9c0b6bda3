/**
 * Call site 2, before retrieval: `await queue.flushAndWait()` returns once everything queued
 * before the call is embedded (or given up), so a vector search right after it sees every
 * message, including the ones sent a moment ago.
 *
 * The search here is brute force: read every `embedding` blob (little-endian float32) and rank by
 * cosine similarity. That is fine for a few thousand messages. With Redis Stack (RediSearch) you
 * would index the same field and let the server do the KNN:
 *
 *   FT.CREATE chat-idx ON HASH PREFIX 1 retrieval:msg:
 *     SCHEMA text TEXT conversation TAG
 *            embedding VECTOR HNSW 6 TYPE FLOAT32 DIM 256 DISTANCE_METRIC COSINE
 *   FT.SEARCH chat-idx "*=>[KNN 3 @embedding $q AS score]" PARAMS 2 q <query blob>
 *     SORTBY score RETURN 3 text conversation score DIALECT 2
 *
 * (DIM is the embedder's dimensions: 256 for the hashing embedder, 768 for Gemini here.)
 *
 * Run (in-process Redis and the local hashing embedder, no setup):
 *   npx tsx examples/retrieval.ts ["your question"]
 *   REDIS_URL=redis://localhost:6379 GEMINI_API_KEY=… npx tsx examples/retrieval.ts "when do we fly?"
 */
import { EmbeddingBatchQueue } from '../src/index.js'
import {
  chooseEmbedder,
  connectRedis,
  embedOne,
  formatHit,
  loadChatMessages,
  messageKey,
  readStored,
  scanKeys,
  storeMessages,
  topK,
} from './shared.js'

const PREFIX = 'retrieval'
const question = process.argv[2] ?? 'flight to Lisbon'

const { redis, description, close } = connectRedis()
const { embedder, queryEmbedder, description: embedderDescription } = chooseEmbedder()
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

  const keys = await scanKeys(redis, `${PREFIX}:msg:*`)
  const stored = await readStored(redis, keys)
  const query = await embedOne(queryEmbedder, question)
  console.log(`\nTop 5 of ${stored.filter((s) => s.vector).length} stored vectors for "${question}":`)
  for (const [i, hit] of topK(stored, query, 5).entries()) console.log(formatHit(hit, i + 1))
} finally {
  await queue.stop()
  await close()
}
