/**
 * Backfill: the application already keeps its messages in Redis hashes and now wants a vector
 * in each. SCAN the hashes page by page, enqueue the ones that have text but no vector
 * (`enqueueMany`, one script call per page), and render "indexing N/M" from `stats().local`
 * while the worker drains. Nothing is kept per key, so memory does not grow with the keyspace.
 * (`embedq backfill --match 'msg:*' --missing-only` does this from the command line, with a
 * progress bar, resumable, over every master of a cluster.)
 *
 *   npx tsx examples/backfill.ts                                   # in-process Redis
 *   REDIS_URL=redis://localhost:6379 npx tsx examples/backfill.ts  # a Redis server
 *
 * It first stores the 300 sample chat messages as hashes `backfill:msg:<id>`, 100 of them
 * with a vector already, as if an earlier indexing run had reached them.
 */
import type { Redis } from 'ioredis'
import { EmbeddingBatchQueue, encodeVector } from '../src/index.js'
import {
  chooseEmbedder,
  connectRedis,
  deleteMessages,
  loadChatMessages,
  messageKey,
  storeMessages,
} from './shared.js'

const PREFIX = 'backfill'
const MATCH = `${PREFIX}:msg:*`

const { redis, description, close } = connectRedis()
const { embedder, description: embedderDescription } = chooseEmbedder()
console.log(`Redis:    ${description}`)
console.log(`Embedder: ${embedderDescription}`)

// The existing data: 300 message hashes; the first 100 non-blank ones already have a vector.
const messages = loadChatMessages()
await deleteMessages(redis, PREFIX, messages)
await storeMessages(redis, PREFIX, messages)
const indexed = messages.filter((m) => m.text.trim() !== '').slice(0, 100)
const vectors = await embedder.embed(indexed.map((m) => m.text))
const pipe = redis.pipeline()
indexed.forEach((m, i) => {
  pipe.hset(messageKey(PREFIX, m.id), 'embedding', encodeVector(vectors[i]!))
})
await pipe.exec()
console.log(`stored ${messages.length} message hashes, ${indexed.length} of them with a vector already`)

const queue = new EmbeddingBatchQueue({
  redis,
  embedder,
  name: 'backfill',
  maxBatchSize: 50,
  flushIntervalMs: 200,
})
await queue.start()

interface PassResult {
  scanned: number
  enqueued: number
  withVector: number
  blank: number
}

/** One SCAN pass: enqueue every matching hash with text and without a vector. */
async function backfill(client: Redis, match: string): Promise<PassResult> {
  const result: PassResult = { scanned: 0, enqueued: 0, withVector: 0, blank: 0 }
  let cursor = '0'
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', match, 'COUNT', 100)
    cursor = next
    if (keys.length === 0) continue
    // One round trip per page: the text and whether the vector is there.
    const read = client.pipeline()
    for (const key of keys) read.hget(key, 'text').hexists(key, 'embedding')
    const replies = (await read.exec()) ?? []
    const page: { key: string; text: string }[] = []
    keys.forEach((key, i) => {
      const text = replies[2 * i]?.[1] as string | null
      const hasVector = replies[2 * i + 1]?.[1] === 1
      if (hasVector) result.withVector++
      else if (!text?.trim()) result.blank++
      else page.push({ key, text })
    })
    // Don't await job.result here: a backfill only queues; the worker (any process) embeds.
    if (page.length) await queue.enqueueMany(page)
    result.scanned += keys.length
    result.enqueued += page.length
  } while (cursor !== '0')
  return result
}

const first = await backfill(redis, MATCH)
console.log(
  `first pass: scanned ${first.scanned} hashes, enqueued ${first.enqueued} ` +
    `(skipped ${first.withVector} with a vector, ${first.blank} without text)`,
)

// "indexing N/M": this instance's counts since it was created.
let indexing = true
const progress = setInterval(async () => {
  const { local } = await queue.stats()
  if (indexing) console.log(`indexing ${local.embedded}/${local.enqueued}`)
}, 250)
const flushed = await queue.flushAndWait({ timeoutMs: 30_000 })
indexing = false
clearInterval(progress)
const { local } = await queue.stats()
console.log(
  `indexing ${local.embedded}/${local.enqueued} ${flushed.drained ? 'done' : `(${flushed.remaining} left)`}`,
)

// Running it again finds nothing to do: a backfill is idempotent.
const second = await backfill(redis, MATCH)
console.log(
  `second pass: enqueued ${second.enqueued}; ${second.withVector} hashes have a vector, ${second.blank} have no text to embed`,
)

await queue.stop()
await close()
