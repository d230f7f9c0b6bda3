/**
 * Setup shared by the examples, so each example file shows only its own call site:
 *
 * - `connectRedis()`: `REDIS_URL` set → a real ioredis client; unset → an in-process Redis
 *   (ioredis-mock), so every example runs with no setup at all.
 * - `chooseEmbedder()`: `GEMINI_API_KEY` set → Gemini (`geminiEmbedder` from src/providers;
 *   `GEMINI_BASE_URL` optionally points it at a proxy, or at the fake server the tests use);
 *   unset → the local hashing embedder (lexical feature hashing, not a semantic model).
 * - the chat dataset in examples/data/chat-messages.json, and the message hashes it is stored in.
 * - `searchStored()`: a brute-force cosine search over the float32 blobs the queue wrote.
 */
import { readFileSync } from 'node:fs'
import { Redis } from 'ioredis'
import RedisMock from 'ioredis-mock'
import { decodeVector, type Embedder, geminiEmbedder, hashingEmbedder } from '../src/index.js'

// ---------------------------------------------------------------------------------------------
// Redis

export interface RedisConnection {
  redis: Redis
  /** One line saying which Redis this is, for the examples' output. */
  description: string
  /** True for the in-process ioredis-mock (data lives only as long as this process). */
  inProcess: boolean
  /** Closes the client (the queue never closes a client it was given: that is our job). */
  close(): Promise<void>
}

/** `redis://user:secret@host` → `redis://user:***@host`, so a password never reaches the output. */
function redactUrl(url: string): string {
  try {
    const u = new URL(url)
    if (u.password) u.password = '***'
    return u.toString()
  } catch {
    return '(unparsable REDIS_URL)'
  }
}

export function connectRedis(): RedisConnection {
  const url = process.env.REDIS_URL
  if (url) {
    const redis = new Redis(url)
    // ioredis reconnects by itself; say what is wrong once instead of on every retry.
    let lastError = ''
    redis.on('error', (err: Error) => {
      if (err.message !== lastError) console.error(`Redis connection error: ${err.message}`)
      lastError = err.message
    })
    redis.on('ready', () => {
      lastError = ''
    })
    return {
      redis,
      description: `Redis at ${redactUrl(url)} (from REDIS_URL)`,
      inProcess: false,
      close: async () => {
        await redis.quit()
      },
    }
  }
  const redis = new RedisMock()
  return {
    redis,
    description: 'in-process Redis (ioredis-mock); set REDIS_URL to use a Redis server',
    inProcess: true,
    close: async () => {
      redis.disconnect()
    },
  }
}

// ---------------------------------------------------------------------------------------------
// Embedders

export interface EmbedderChoice {
  /** Embeds the stored messages (documents). */
  embedder: Embedder
  /** Embeds search queries. Gemini tunes vectors per task; the hashing embedder has one mode. */
  queryEmbedder: Embedder
  /** True when this is the local hashing embedder. */
  local: boolean
  /** One line saying plainly what the embedder is, for the examples' output. */
  description: string
}

export function chooseEmbedder(): EmbedderChoice {
  const apiKey = process.env.GEMINI_API_KEY
  if (apiKey) {
    const dims = 768
    const baseUrl = process.env.GEMINI_BASE_URL || undefined
    const options = { apiKey, outputDimensionality: dims, ...(baseUrl ? { baseUrl } : {}) }
    return {
      embedder: geminiEmbedder({ ...options, taskType: 'RETRIEVAL_DOCUMENT' }),
      queryEmbedder: geminiEmbedder({ ...options, taskType: 'RETRIEVAL_QUERY' }),
      local: false,
      description:
        `Gemini gemini-embedding-001, ${dims} dims (a semantic model; key from GEMINI_API_KEY` +
        `${baseUrl ? `, API at ${baseUrl}` : ''})`,
    }
  }
  const embedder = hashingEmbedder({ dimensions: 256 })
  return {
    embedder,
    queryEmbedder: embedder,
    local: true,
    description: 'hashing embedder: lexical feature hashing of words, not a semantic model (local, 256 dims)',
  }
}

/** An embedder wrapper that counts provider calls, so the examples can show the batching. */
export interface CountingEmbedder extends Embedder {
  readonly calls: number
  readonly texts: number
}

export function countingEmbedder(inner: Embedder): CountingEmbedder {
  let calls = 0
  let texts = 0
  return {
    dimensions: inner.dimensions,
    ...(inner.maxBatchSize === undefined ? {} : { maxBatchSize: inner.maxBatchSize }),
    ...(inner.id === undefined ? {} : { id: inner.id }),
    get calls() {
      return calls
    },
    get texts() {
      return texts
    },
    embed(batch, opts) {
      calls++
      texts += batch.length
      return inner.embed(batch, opts)
    },
  }
}

/** Embeds one text (a search query) and returns it as a Float32Array. */
export async function embedOne(embedder: Embedder, text: string): Promise<Float32Array> {
  const [vector] = await embedder.embed([text])
  if (!vector) throw new Error('the embedder returned no vector')
  return Float32Array.from(vector)
}

// ---------------------------------------------------------------------------------------------
// The chat dataset and the message hashes

export interface ChatMessage {
  id: string
  conversation: string
  author: string
  text: string
}

/** The 300 chat messages shipped in examples/data/chat-messages.json. */
export function loadChatMessages(): ChatMessage[] {
  const raw = readFileSync(new URL('./data/chat-messages.json', import.meta.url), 'utf8')
  return JSON.parse(raw) as ChatMessage[]
}

/**
 * Messages in the order a chat service would see them: conversations interleaved round-robin,
 * each conversation keeping its own order.
 */
export function arrivalOrder(messages: readonly ChatMessage[]): ChatMessage[] {
  const byConversation = new Map<string, ChatMessage[]>()
  for (const m of messages) {
    const list = byConversation.get(m.conversation)
    if (list) list.push(m)
    else byConversation.set(m.conversation, [m])
  }
  const queues = [...byConversation.values()]
  const out: ChatMessage[] = []
  for (let i = 0; out.length < messages.length; i++) {
    for (const q of queues) {
      const m = q[i]
      if (m) out.push(m)
    }
  }
  return out
}

/** The producer's own hash for a message; the queue writes field `embedding` into it. */
export const messageKey = (prefix: string, id: string): string => `${prefix}:msg:${id}`

/** What the chat service stores for a message before asking for its vector. */
export function messageFields(m: ChatMessage): Record<string, string> {
  return { text: m.text, author: m.author, conversation: m.conversation }
}

/** Stores many messages in one round trip (a pipeline of HSETs). */
export async function storeMessages(
  redis: Redis,
  prefix: string,
  messages: readonly ChatMessage[],
): Promise<void> {
  const pipeline = redis.pipeline()
  for (const m of messages) pipeline.hset(messageKey(prefix, m.id), messageFields(m))
  await pipeline.exec()
}

/** Deletes the example's message hashes (only the keys the example itself writes). */
export async function deleteMessages(
  redis: Redis,
  prefix: string,
  messages: readonly ChatMessage[],
): Promise<void> {
  const keys = messages.map((m) => messageKey(prefix, m.id))
  for (let i = 0; i < keys.length; i += 500) await redis.del(...keys.slice(i, i + 500))
}

// ---------------------------------------------------------------------------------------------
// Brute-force vector search over the stored blobs

export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let dot = 0
  let na = 0
  let nb = 0
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!
    const y = b[i]!
    dot += x * y
    na += x * x
    nb += y * y
  }
  return na === 0 || nb === 0 ? 0 : dot / Math.sqrt(na * nb)
}

export interface StoredMessage {
  key: string
  text: string
  author: string
  conversation: string
  /** Decoded from the `embedding` field (little-endian float32); null when the hash has none. */
  vector: Float32Array | null
}

/** Reads message hashes (text, author, conversation and the `embedding` blob) in one pipeline. */
export async function readStored(redis: Redis, keys: readonly string[]): Promise<StoredMessage[]> {
  const pipeline = redis.pipeline()
  for (const key of keys) pipeline.hmgetBuffer(key, 'text', 'author', 'conversation', 'embedding')
  const replies = (await pipeline.exec()) ?? []
  return keys.map((key, i) => {
    const [err, value] = replies[i] ?? [null, null]
    if (err) throw err
    const [text, author, conversation, blob] = (value ?? []) as (Buffer | null)[]
    return {
      key,
      text: text?.toString() ?? '',
      author: author?.toString() ?? '',
      conversation: conversation?.toString() ?? '',
      vector: blob ? decodeVector(blob) : null,
    }
  })
}

/** Every key matching `pattern`, via SCAN (never KEYS, which blocks a real server). */
export async function scanKeys(redis: Redis, pattern: string): Promise<string[]> {
  const keys: string[] = []
  let cursor = '0'
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 500)
    keys.push(...batch)
    cursor = next
  } while (cursor !== '0')
  return keys.sort()
}

export interface Hit {
  score: number
  message: StoredMessage
}

/**
 * The `k` stored messages most similar to `query` (cosine), by reading every blob: fine for a
 * few thousand messages. With Redis Stack, index the same `embedding` field and let the server
 * do it: FT.SEARCH idx "*=>[KNN 3 @embedding $q AS score]" PARAMS 2 q <query blob> DIALECT 2.
 */
export function topK(stored: readonly StoredMessage[], query: Float32Array, k: number): Hit[] {
  const hits: Hit[] = []
  for (const message of stored) {
    if (!message.vector) continue
    const score = cosine(query, message.vector)
    if (score > 0) hits.push({ score, message })
  }
  return hits.sort((a, b) => b.score - a.score).slice(0, k)
}

/** A `vectorIndex().search()` hit as `  1. 0.612  [lisbon-trip] Ana: …` (score = 1 − cosine distance). */
export function formatSearchHit(
  hit: { key: string; distance: number; fields: Record<string, string> },
  rank: number,
): string {
  const f = hit.fields
  return `  ${rank}. ${(1 - hit.distance).toFixed(3)}  [${f.conversation ?? '?'}] ${f.author ?? '?'}: ${clip(f.text ?? hit.key, 70)}`
}

/** `  1. 0.612  [lisbon-trip] Ana: direct flight to Lisbon …` */
export function formatHit(hit: Hit, rank: number): string {
  const m = hit.message
  return `  ${rank}. ${hit.score.toFixed(3)}  [${m.conversation}] ${m.author}: ${clip(m.text, 70)}`
}

export function clip(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ').trim()
  return flat.length <= max ? flat : `${flat.slice(0, max - 1)}…`
}

// ---------------------------------------------------------------------------------------------
// Small helpers

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

export const ms = (since: number): string => `${Math.round(performance.now() - since)} ms`
