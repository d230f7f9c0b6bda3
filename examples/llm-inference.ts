/**
 * Call site 3, before LLM inference: the user's new message should be searchable soon, but the
 * reply must not wait for the embedding API. `queue.flushNow()` starts embedding everything
 * queued now (in every worker process) and returns at once; the prompt is built and the model
 * called while the vector is being written.
 *
 * The queue keeps the default flushIntervalMs (1 hour), so without flushNow() a lone message
 * would wait for a batch of 50 to fill. The "LLM" is a stand-in that takes 300 ms.
 *
 * Run (in-process Redis and the local hashing embedder, no setup):
 *   npx tsx examples/llm-inference.ts
 *   REDIS_URL=redis://localhost:6379 GEMINI_API_KEY=… npx tsx examples/llm-inference.ts
 */
import { EmbeddingBatchQueue } from '../src/index.js'
import {
  type ChatMessage,
  chooseEmbedder,
  clip,
  connectRedis,
  embedOne,
  formatHit,
  loadChatMessages,
  messageFields,
  messageKey,
  readStored,
  sleep,
  storeMessages,
  topK,
} from './shared.js'

const PREFIX = 'assistant'

const { redis, description, close } = connectRedis()
const { embedder, queryEmbedder, description: embedderDescription } = chooseEmbedder()
console.log(`Redis:    ${description}`)
console.log(`Embedder: ${embedderDescription}`)

const queue = new EmbeddingBatchQueue({ redis, embedder, name: 'assistant', maxBatchSize: 50 })
queue.on('error', (err) => console.error(`queue error: ${err.message}`))
await queue.start()

/** A stand-in for your LLM call. */
async function callLlm(prompt: string): Promise<string> {
  await sleep(300)
  const firstFact = prompt.split('\n').find((line) => line.startsWith('- '))
  return `(stand-in LLM) From the chat history: ${firstFact?.slice(2) ?? 'nothing relevant found'}`
}

try {
  // The conversation so far is already indexed (it was embedded as it happened).
  const history = loadChatMessages().filter((m) => m.conversation === 'lisbon-trip')
  await storeMessages(redis, PREFIX, history)
  await queue.enqueueMany(history.map((m) => ({ key: messageKey(PREFIX, m.id), text: m.text })))
  await queue.flushAndWait()
  console.log(`\nHistory: ${history.length} messages of the lisbon-trip chat, embedded.`)

  // A new message arrives and the assistant is asked to answer it.
  const incoming: ChatMessage = {
    id: 'msg-new-1',
    conversation: 'lisbon-trip',
    author: 'Chloe',
    text: '@assistant what time does our flight to Lisbon leave on the 14th?',
  }
  const key = messageKey(PREFIX, incoming.id)
  await redis.hset(key, messageFields(incoming))
  const job = await queue.enqueue(key, incoming.text)
  let writtenAt = 0
  const written = job.result.then(() => {
    writtenAt = performance.now()
  })
  console.log(`\n${incoming.author}: ${incoming.text}`)
  const waiting = await queue.stats()
  console.log(`  queued: ${waiting.unfinished} item waits for a batch of 50 (or for flushIntervalMs: 1 hour)`)

  const flushedAt = performance.now()
  queue.flushNow() // start embedding it now; do not wait
  console.log(`  flushNow() returned after ${(performance.now() - flushedAt).toFixed(2)} ms`)

  // Build the prompt: recent turns plus the most similar earlier messages.
  const stored = await readStored(
    redis,
    history.map((m) => messageKey(PREFIX, m.id)),
  )
  const related = topK(stored, await embedOne(queryEmbedder, incoming.text), 3)
  const prompt = [
    'Answer the last message using the chat history.',
    'Relevant earlier messages:',
    ...related.map((h) => `- ${h.message.author}: ${h.message.text}`),
    'Recent turns:',
    ...history.slice(-3).map((m) => `${m.author}: ${m.text}`),
    `${incoming.author}: ${incoming.text}`,
  ].join('\n')
  console.log('  related messages in the prompt:')
  for (const [i, hit] of related.entries()) console.log(`  ${formatHit(hit, i + 1)}`)

  const reply = await callLlm(prompt)
  const repliedAt = performance.now()
  console.log(`\nAssistant: ${clip(reply, 100)}`)
  await written
  console.log(
    `  the new message's vector was written ${Math.round(writtenAt - flushedAt)} ms after flushNow(); ` +
      `the reply ${Math.round(repliedAt - flushedAt)} ms after it ` +
      `(${writtenAt <= repliedAt ? 'the embedding finished while the LLM was answering' : 'after the reply'})`,
  )

  // The reply is a message too: store it, queue it, and flush again.
  const replyKey = messageKey(PREFIX, 'msg-new-2')
  await redis.hset(replyKey, { text: reply, author: 'assistant', conversation: incoming.conversation })
  const replyJob = await queue.enqueue(replyKey, reply)
  queue.flushNow()
  await replyJob.result
  console.log(`  the reply is embedded too: ${replyKey}`)
} finally {
  await queue.stop()
  await close()
}
