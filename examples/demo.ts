/**
 * The embedq demo: `npm run demo` (or `npx tsx examples/demo.ts`). No setup needed.
 *
 *   REDIS_URL unset       → an in-process Redis (ioredis-mock)
 *   REDIS_URL=redis://…   → that Redis server
 *   GEMINI_API_KEY unset  → the local hashing embedder (lexical feature hashing, not semantic)
 *   GEMINI_API_KEY=…      → Gemini (geminiEmbedder from src/providers)
 *
 * It plays a chat service: 300 messages from examples/data/chat-messages.json arrive over about
 * a second; each is stored in its own hash `demo:msg:<id>` and queued for embedding (single
 * `enqueue` calls for live messages, `enqueueMany` for bursts). The queue embeds them in batches
 * and writes each vector into the message's hash. The demo shows progress, waits with
 * `flushAndWait()`, edits one message (the latest text wins), then answers similarity queries
 * with `queue.vectorIndex().search()` over the stored blobs.
 */
import { EmbeddingBatchQueue, type EmbedJob } from '../src/index.js'
import {
  arrivalOrder,
  type ChatMessage,
  chooseEmbedder,
  connectRedis,
  cosine,
  countingEmbedder,
  deleteMessages,
  embedOne,
  formatSearchHit,
  loadChatMessages,
  messageFields,
  messageKey,
  ms,
  readStored,
  sleep,
  storeMessages,
} from './shared.js'

const PREFIX = 'demo'
const QUERIES = [
  'when does our flight to Lisbon leave?',
  'checkout returns 500 errors for card payments',
  'how long does the risotto cook',
  'who is bringing the birthday cake',
]
/** The message Ana edits after sending it, to show that the latest text wins. */
const EDITED = {
  id: 'msg-011',
  text: 'booked! flight TP1351 on the 14th, seats 14A to 14C, confirmation code is in your email',
}
/** Messages per arrival tick, cycled: ones and twos are live chat, bigger bursts are imports. */
const BURSTS = [1, 2, 1, 24, 1, 3, 40, 1, 2, 12, 1, 30]
const BULK_FROM = 10

const log = (line = ''): void => console.log(line)

async function main(): Promise<void> {
  const started = performance.now()
  const { redis, description: redisDescription, inProcess, close } = connectRedis()
  const choice = chooseEmbedder()
  const embedder = countingEmbedder(choice.embedder)
  const messages = loadChatMessages()
  const conversations = new Set(messages.map((m) => m.conversation))

  log('embedq demo')
  log(`  Redis:    ${redisDescription}`)
  log(`  Embedder: ${choice.description}`)
  log(`  Dataset:  ${messages.length} chat messages in ${conversations.size} conversations (examples/data)`)
  log("  Queue:    'demo', maxBatchSize 50, flushIntervalMs 200")
  if (choice.local) {
    log('            It is deterministic and needs no network: "similar" here means "shares words",')
    log('            not "means the same". Set GEMINI_API_KEY to use Gemini, a semantic model.')
  }

  const queue = new EmbeddingBatchQueue({
    redis,
    embedder,
    name: 'demo',
    maxBatchSize: 50,
    flushIntervalMs: 200,
  })
  queue.on('error', (err) => console.error(`  queue error: ${err.message}`))
  queue.on('retrying', (i) =>
    log(`  retrying ${i.key} in ${i.delayMs} ms (attempt ${i.attempts}): ${i.error.message}`),
  )
  queue.on('failed', (i) => log(`  gave up on ${i.key} after ${i.attempts} attempts: ${i.error.message}`))
  const embeddedKeys = new Set<string>()
  queue.on('embedded', ({ key }) => embeddedKeys.add(key))

  let exitCode = 0
  let stopProgress = false
  let progress: Promise<void> = Promise.resolve()
  try {
    // A rerun against a real server starts from the same state (only the demo's own keys).
    if (!inProcess) await deleteMessages(redis, PREFIX, messages)
    await queue.start()

    // ---- 1. messages arrive -------------------------------------------------------------
    const toEmbed = messages.filter((m) => m.text.trim() !== '').length
    log()
    log(`1. ${messages.length} messages arrive; each is stored (HSET demo:msg:<id>) and queued for embedding`)
    const counts = { enqueue: 0, enqueueMany: 0, inBulk: 0 }
    const jobs = new Map<string, EmbedJob>()
    let editJob: EmbedJob | undefined
    let editQueuedAt = 0
    let editResolvedAt = 0

    // A live message: store it, then enqueue() it. Resolves when the item is durable in Redis.
    const onMessage = async (m: ChatMessage): Promise<void> => {
      const key = messageKey(PREFIX, m.id)
      await redis.hset(key, messageFields(m))
      const job = await queue.enqueue(key, m.text)
      counts.enqueue++
      jobs.set(m.id, job)
      if (m.text.trim() === '') await showBlank(m, job)
    }
    // A burst (a reconnecting client uploading its backlog): one pipeline, one enqueueMany().
    const onBurst = async (burst: ChatMessage[]): Promise<void> => {
      await storeMessages(redis, PREFIX, burst)
      const batch = await queue.enqueueMany(
        burst.map((m) => ({ key: messageKey(PREFIX, m.id), text: m.text })),
      )
      counts.enqueueMany++
      counts.inBulk += burst.length
      for (const [i, m] of burst.entries()) {
        jobs.set(m.id, batch[i]!)
        if (m.text.trim() === '') await showBlank(m, batch[i]!)
      }
    }
    const showBlank = async (m: ChatMessage, job: EmbedJob): Promise<void> => {
      const vector = await job.result
      const zeros = vector.every((x) => x === 0)
      log(
        `   blank message ${m.id} (${JSON.stringify(m.text)}): version ${job.version}, result is ` +
          `${zeros ? 'a zero vector' : 'NOT a zero vector'} of ${vector.length} dims at once (no Redis write, no API call)`,
      )
    }

    let lastProgress = ''
    const showProgress = async (): Promise<void> => {
      const s = await queue.stats()
      const line = `   embedded ${embeddedKeys.size}/${toEmbed} · queued ${s.pending} · in flight ${s.inflight} · provider calls ${embedder.calls}`
      if (line !== lastProgress) log(line)
      lastProgress = line
    }
    progress = (async () => {
      while (!stopProgress) {
        await sleep(150)
        if (!stopProgress) await showProgress().catch(() => {})
      }
    })()

    const enqueueStart = performance.now()
    const arriving = arrivalOrder(messages)
    for (let i = 0, tick = 0; i < arriving.length; tick++) {
      const burst = arriving.slice(i, i + BURSTS[tick % BURSTS.length]!)
      i += burst.length
      if (burst.length >= BULK_FROM) await onBurst(burst)
      else await Promise.all(burst.map(onMessage))
      if (!editJob && jobs.has(EDITED.id)) {
        // Ana fixes her message right after sending it, while the first text is still queued.
        const key = messageKey(PREFIX, EDITED.id)
        await redis.hset(key, 'text', EDITED.text)
        editQueuedAt = performance.now()
        editJob = await queue.enqueue(key, EDITED.text)
        void editJob.result.then(() => {
          editResolvedAt = performance.now()
        })
        log(`   ${EDITED.id} edited by its author and enqueued again (version ${editJob.version})`)
      }
      await sleep(25)
    }
    const enqueueMs = performance.now() - enqueueStart
    log(
      `   all queued in ${Math.round(enqueueMs)} ms: ${counts.enqueue} enqueue() calls, ` +
        `${counts.enqueueMany} enqueueMany() calls (${counts.inBulk} messages), 1 edit`,
    )

    // ---- 2. wait until everything is searchable -------------------------------------------
    log()
    log('2. flushAndWait(): everything queued so far is embedded when it returns')
    const flushStart = performance.now()
    const flushed = await queue.flushAndWait({ timeoutMs: 30_000 })
    const drainedAt = performance.now()
    if (!flushed.drained) {
      throw new Error(
        `flushAndWait() did not drain: ${flushed.remaining} items left after ${flushed.elapsedMs} ms`,
      )
    }
    // Every job.result has resolved too (the vectors are written before the promises resolve).
    await Promise.allSettled([...jobs.values(), editJob!].map((job) => job.result))
    stopProgress = true
    await progress
    await showProgress()
    log(`   drained in ${Math.round(drainedAt - flushStart)} ms`)

    // ---- 3. the latest text wins ----------------------------------------------------------
    const original = messages.find((m) => m.id === EDITED.id)!
    const firstJob = jobs.get(EDITED.id)!
    log()
    log(`3. Latest text wins: ${EDITED.id} was enqueued twice`)
    log(`   v${firstJob.version}: ${JSON.stringify(original.text)}`)
    log(`   v${editJob!.version}: ${JSON.stringify(EDITED.text)}`)
    const editVector = await editJob!.result
    const after = Math.round(editResolvedAt - editQueuedAt)
    log(`   the edit's job.result resolved ${after} ms after its enqueue: Float32Array(${editVector.length})`)
    const [stored] = await readStored(redis, [messageKey(PREFIX, EDITED.id)])
    const firstVector = await firstJob.result
    if (choice.local) {
      const asEdited = await embedOne(choice.embedder, EDITED.text)
      const asOriginal = await embedOne(choice.embedder, original.text)
      log(
        `   stored blob vs edited text: cosine ${cosine(stored!.vector ?? [], asEdited).toFixed(3)}; ` +
          `vs original text: ${cosine(stored!.vector ?? [], asOriginal).toFixed(3)}`,
      )
      const firstGotEdit = cosine(firstVector, asEdited) > 0.9999
      log(
        firstGotEdit
          ? '   the first job resolved with the edited vector too: the old text was never embedded'
          : '   the first job resolved with the original vector (embedded before the edit arrived); the edit replaced it',
      )
    } else {
      log(
        `   stored blob vs edit's job.result: cosine ${cosine(stored!.vector ?? [], editVector).toFixed(3)}`,
      )
    }

    // ---- 4. similarity search over the stored blobs --------------------------------------
    log()
    log('4. Similarity search: the vectors sit in the hashes (field `embedding`, float32 LE); the query')
    log('   is embedded in query mode with queue.embedQuery() and ranked by cosine distance')
    const storedAll = await readStored(
      redis,
      messages.map((m) => messageKey(PREFIX, m.id)),
    )
    const withVector = storedAll.filter((s) => s.vector)
    log(
      `   ${withVector.length} hashes hold a ${choice.embedder.dimensions}-dim vector ` +
        `(${choice.embedder.dimensions * 4} bytes); ${storedAll.length - withVector.length} blank messages hold none`,
    )
    if (choice.local) {
      const fresh = await choice.embedder.embed(withVector.map((s) => s.text))
      const same = withVector.filter((s, i) => s.vector!.every((x, j) => x === fresh[i]![j])).length
      log(
        `   check: ${same}/${withVector.length} stored vectors equal a fresh embedding of the hash's current text`,
      )
      if (same !== withVector.length) exitCode = 1
    }
    // The same call works on Redis 8 / Redis Stack (an FT index, created once) and on a plain
    // Redis or the in-process one (an exact scan over the prefix): the hit shape is the same.
    const index = queue.vectorIndex({ indexName: `${PREFIX}:idx`, prefixes: [`${PREFIX}:msg:`] })
    const { engine } = await index.ensure()
    log(
      engine === 'query-engine'
        ? `   vectorIndex().search(): the Redis query engine (index ${PREFIX}:idx)`
        : '   vectorIndex().search(): no query engine here, so an exact scan over demo:msg:* (same API)',
    )
    for (const query of QUERIES) {
      const hits = await index.search(query, { k: 3, returnFields: ['text', 'author', 'conversation'] })
      log()
      log(`   query: "${query}"`)
      for (const [i, hit] of hits.entries()) log(`   ${formatSearchHit(hit, i + 1)}`)
    }

    // ---- 5. summary ---------------------------------------------------------------------
    const s = await queue.stats()
    const perCall = (embedder.texts / Math.max(1, embedder.calls)).toFixed(1)
    log()
    log('5. Summary')
    log(
      `   messages:       ${messages.length}: ${toEmbed} embedded, ${messages.length - toEmbed} blank (zero vector, no API call)`,
    )
    log(
      `   provider calls: ${embedder.calls}, ${embedder.texts} texts sent (${perCall} per call; batches of up to 50)`,
    )
    if (embedder.texts < toEmbed) {
      log(
        `                   fewer texts than messages: identical texts in a batch ("ok", "thanks") are sent once`,
      )
    }
    log(`   queue now:      ${s.unfinished} unfinished, ${s.failed} dead letters`)
    log(
      `   time:           arrivals ${Math.round(enqueueMs)} ms, everything searchable ` +
        `${Math.round(drainedAt - enqueueStart)} ms after the first message, ${ms(started)} in total`,
    )
    if (!inProcess) {
      log(`   the hashes stay in Redis: try  redis-cli HGETALL ${messageKey(PREFIX, 'msg-001')}`)
    }
  } catch (err) {
    exitCode = 1
    console.error('demo failed:', err)
  } finally {
    stopProgress = true
    await progress.catch(() => {})
    await queue.stop().catch((err: unknown) => console.error('stopping the queue failed:', err))
    await close()
  }
  log()
  log('Stopped the queue and closed the Redis connection.')
  process.exitCode = exitCode
}

await main()
