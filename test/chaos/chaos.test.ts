/**
 * Chaos suite (`npm run test:chaos`): a real redis-server with AOF `appendfsync always`, three
 * worker processes draining through a fault-injecting embedder (latency, 429 + retry-after,
 * 500, hangs, one poison text), and a producer in this process that enqueues a few thousand
 * keys in waves, re-enqueueing about a fifth of them with new text. Meanwhile random workers
 * are SIGKILLed mid-batch and restarted, redis-server itself is SIGKILLed and restarted once,
 * and the producer's event loop stalls now and then. Then every key is checked against the
 * queue's invariants (see docs/guarantees.md):
 *   1. durable before acknowledged  2. nothing lost  3. latest text wins
 *   4. at most one claim per key at a time  5. no promise waits forever
 * and the figures are printed (keys, kills, restarts, duplicates embedded, lost = must be 0).
 *
 * Reproduce a run with CHAOS_SEED=<seed printed at the start>; CHAOS_KEYS sets the key count.
 * The seed fixes the producer's schedule and every worker's faults; process timing still varies.
 */
import { randomInt } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { encodeVector } from '../../src/codec.js'
import { EmbeddingFailedError } from '../../src/errors.js'
import { EmbeddingBatchQueue, type EmbedJob } from '../../src/index.js'
import { queueKeys } from '../../src/keys.js'
import { fakeVector, sleep, uniqueName } from '../helpers/fixtures.js'
import { type RedisServer, startRedisServer } from '../helpers/redis-server.js'
import { analyze } from './analysis.js'
import { CHAOS_DIMS, WORKER_OPTIONS } from './config.js'
import { POISON, prng } from './fault-embedder.js'
import { WorkerPool } from './worker-pool.js'

const SEED = Number(process.env.CHAOS_SEED ?? randomInt(2 ** 31))
const KEY_COUNT = Number(process.env.CHAOS_KEYS ?? 3_000)
const ROUNDS = 30
const ROUND_MS = 500
const WORKERS = 3
/** Share of keys re-enqueued with new text (some twice, some while pending or in flight). */
const REENQUEUE_SHARE = 0.2
const POISON_KEY = 'chaos:msg:poison'
const POISON_ROUND = 10
/** The redis-server SIGKILL lands this far into the producer's schedule. */
const REDIS_RESTART_AT_MS = 0.4 * ROUNDS * ROUND_MS
/** Producer stalls: after ~30 % of enqueue calls, a busy-wait of 20–100 ms (CHAOS_STALLS=0: none). */
const STALLS = process.env.CHAOS_STALLS !== '0'
const DRAIN_TIMEOUT_MS = 40_000
const SETTLE_TIMEOUT_MS = 15_000
const HARD_LIMIT_MS = 150_000

const WORDS = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet']

/** One acknowledged enqueue, and how its promise settled. */
interface Sent {
  key: string
  text: string
  version: number
  outcome?: { ok: true; vector: Float32Array } | { ok: false; error: Error }
  settledAt?: number
}

const sameVector = (a: Float32Array, text: string): boolean =>
  encodeVector(a).equals(encodeVector(fakeVector(text, CHAOS_DIMS)))

describe('chaos: SIGKILLed workers, a SIGKILLed redis-server and a faulty provider', () => {
  let server: RedisServer
  let redis: Redis
  let checker: Redis
  let pool: WorkerPool
  let producer: EmbeddingBatchQueue
  const name = uniqueName('chaos')

  beforeAll(async () => {
    server = await startRedisServer({ args: ['--appendonly', 'yes', '--appendfsync', 'always'] })
    redis = server.client()
    checker = server.client()
    // Connection errors while redis-server restarts are expected; ioredis reconnects.
    redis.on('error', () => {})
    checker.on('error', () => {})
    pool = new WorkerPool({ REDIS_URL: server.url, QUEUE_NAME: name, SEED: String(SEED) }, WORKERS)
  })

  afterAll(async () => {
    await producer?.stop().catch(() => {})
    await pool?.destroy()
    redis?.disconnect()
    checker?.disconnect()
    await server?.destroy()
  })

  it(
    'every key ends with the vector of its latest text (or a zero vector and a dead letter), nothing stays queued, every promise settles',
    async () => {
      const t0 = Date.now()
      console.log(`chaos: seed=${SEED} keys=${KEY_COUNT} (reproduce with CHAOS_SEED=${SEED})`)
      const rnd = prng(SEED)
      const chaosRnd = prng(SEED ^ 0x5bd1e995)

      producer = new EmbeddingBatchQueue({
        redis,
        name,
        worker: false,
        maxBatchSize: WORKER_OPTIONS.maxBatchSize,
        embedder: {
          dimensions: CHAOS_DIMS,
          embed: () => Promise.reject(new Error('the producer never embeds')),
        },
      })
      producer.on('error', () => {})
      await producer.start()
      await Promise.all(Array.from({ length: WORKERS }, (_, w) => pool.start(w)))

      // ---- producer bookkeeping -------------------------------------------------------------
      const sent = new Map<string, Sent[]>()
      const results: Promise<unknown>[] = []
      let enqueueCalls = 0
      let enqueueErrors = 0
      const revs = new Map<string, number>()
      const textFor = (key: string, poison = false): string => {
        const rev = (revs.get(key) ?? 0) + 1
        revs.set(key, rev)
        const word = WORDS[Math.floor(rnd() * WORDS.length)]!
        return `${poison ? `${POISON} ` : ''}${key} rev ${rev} ${word}`
      }
      const record = (text: string, job: EmbedJob): void => {
        const s: Sent = { key: job.key, text, version: job.version }
        const list = sent.get(job.key)
        if (list) list.push(s)
        else sent.set(job.key, [s])
        results.push(
          job.result.then(
            (vector) => {
              s.outcome = { ok: true, vector }
              s.settledAt = Date.now()
            },
            (error: Error) => {
              s.outcome = { ok: false, error }
              s.settledAt = Date.now()
            },
          ),
        )
      }
      /** Enqueues (retrying a failed call: its items may or may not be in Redis, so send them again). */
      const enqueue = async (
        items: { key: string; text: string }[],
        how: 'many' | 'single',
      ): Promise<void> => {
        for (let attempt = 1; ; attempt++) {
          enqueueCalls++
          try {
            const sending =
              how === 'many'
                ? producer.enqueueMany(items)
                : Promise.all(items.map((it) => producer.enqueue(it.key, it.text)))
            maybeStall()
            const jobs = await sending
            jobs.forEach((job, i) => {
              record(items[i]!.text, job)
            })
            return
          } catch (err) {
            enqueueErrors++
            if (attempt >= 5) throw err
            await sleep(250)
          }
        }
      }
      const latestVersions = (): Map<string, number> => {
        const out = new Map<string, number>()
        for (const [key, list] of sent) out.set(key, Math.max(...list.map((s) => s.version)))
        return out
      }

      // ---- chaos schedule -------------------------------------------------------------------
      let kills = 0
      let redisRestarts = 0
      let stopChaos = false
      const restarting: Promise<unknown>[] = []
      let durability: { acked: number; lost: string[] } | undefined
      const redisRestartAt = Date.now() + REDIS_RESTART_AT_MS
      const chaos = (async () => {
        await sleep(700)
        while (!stopChaos) {
          if (redisRestarts === 0 && Date.now() >= redisRestartAt) {
            const acked = latestVersions() // acknowledged before the kill
            await server.restart({ kill: true, downMs: 300 })
            redisRestarts++
            durability = { acked: acked.size, lost: await notDurable(checker, name, acked) }
            continue
          }
          // Kill mid-batch: wait (a little) for a worker with a provider call running.
          for (let i = 0; i < 40 && pool.busy().length === 0; i++) await sleep(10)
          const alive = pool.alive()
          const busy = pool.busy()
          if (alive.length >= 2) {
            const from = busy.length > 0 ? busy : alive
            const w = from[Math.floor(chaosRnd() * from.length)]!
            if (await pool.kill(w)) {
              kills++
              restarting.push(sleep(200).then(() => pool.start(w)))
            }
          }
          await sleep(500 + Math.floor(chaosRnd() * 500))
        }
      })()

      // The producer's event loop stalls now and then right after it sent an enqueue, as in a
      // GC pause or on a starved CPU: the enqueue's reply and the done message of the same items
      // (on the subscriber connection) can then be read in either order.
      const stallRnd = prng(SEED ^ 0x2545f491)
      let stalls = 0
      const maybeStall = (): void => {
        if (!STALLS || stopChaos || stallRnd() >= 0.3) return
        const ms = 20 + Math.floor(stallRnd() * 81)
        setImmediate(() => {
          const until = Date.now() + ms
          while (Date.now() < until) {
            // busy: nothing else runs in this process
          }
          stalls++
        })
      }

      // ---- producer schedule ----------------------------------------------------------------
      const perRound = Math.ceil(KEY_COUNT / ROUNDS)
      const reenqueuesPerRound = Math.round((KEY_COUNT * REENQUEUE_SHARE) / ROUNDS)
      const known: string[] = []
      const pick = (list: readonly string[]): string => list[Math.floor(rnd() * list.length)]!
      for (let r = 0; r < ROUNDS; r++) {
        const fresh: string[] = []
        for (let i = r * perRound; i < Math.min((r + 1) * perRound, KEY_COUNT); i++)
          fresh.push(`chaos:msg:${i}`)
        const items = fresh.map((key) => ({ key, text: textFor(key) }))
        if (r === 0) items.push({ key: POISON_KEY, text: textFor(POISON_KEY) })
        const recent = [...known.slice(-2 * perRound), ...fresh]
        known.push(...fresh)
        // Re-enqueues: half of recent keys (likely pending or in flight), half of any key (likely done).
        const again = Array.from({ length: reenqueuesPerRound }, (_, i) => {
          const key = pick(i % 2 === 0 ? recent : known)
          return { key, text: textFor(key) }
        })
        // One key twice in the same call: the later text must win.
        const twice = pick(known)
        again.push({ key: twice, text: textFor(twice) }, { key: twice, text: textFor(twice) })
        if (r === POISON_ROUND) again.push({ key: POISON_KEY, text: textFor(POISON_KEY, true) })
        const half = again.length >> 1
        const delays = [Math.floor(rnd() * ROUND_MS * 0.5), Math.floor(rnd() * ROUND_MS)]

        const tasks: Promise<void>[] = []
        if (r % 3 === 0) tasks.push(enqueue(items, 'many'))
        else if (r % 3 === 1) tasks.push(enqueue(items, 'single'))
        else for (let i = 0; i < items.length; i += 20) tasks.push(enqueue(items.slice(i, i + 20), 'many'))
        tasks.push(sleep(delays[0]!).then(() => enqueue(again.slice(half), 'many')))
        tasks.push(sleep(delays[1]!).then(() => enqueue(again.slice(0, half), 'single')))
        if (r % 5 === 4) producer.flushNow()
        await Promise.all([...tasks, sleep(ROUND_MS)])
      }
      const producedAt = Date.now()

      // ---- wind down: stop the chaos, let every worker run, drain ---------------------------
      await sleep(1_500)
      stopChaos = true
      await chaos
      await Promise.all(restarting)
      for (let w = 0; w < WORKERS; w++) if (!pool.alive().includes(w)) await pool.start(w)
      const drain = await producer.flushAndWait({ timeoutMs: DRAIN_TIMEOUT_MS })
      await Promise.race([Promise.allSettled(results), sleep(SETTLE_TIMEOUT_MS)])
      await pool.stopAll()

      // ---- checks ---------------------------------------------------------------------------
      const allSent = [...sent.values()].flat()
      const unsettled = allSent.filter((s) => !s.outcome)
      const keys = [...sent.keys()]
      const stored = await readTargets(checker, keys)
      const k = queueKeys('embedq', name)
      const leftovers = {
        pending: await checker.zcard(k.pending),
        inflight: await checker.zcard(k.inflight),
        delayed: await checker.zcard(k.delayed),
        versions: await checker.zcard(k.versions),
        jobs: await checker.hlen(k.jobs),
        leases: await checker.hlen(k.leases),
        retries: await checker.hlen(k.retries),
      }
      const letters = await producer.failed()

      const lost: string[] = []
      const stale: string[] = []
      const badPromises: string[] = []
      keys.forEach((key, i) => {
        const list = sent.get(key)!
        const latest = list.reduce((a, b) => (b.version > a.version ? b : a))
        const { blob, version } = stored[i]!
        const poisoned = latest.text.includes(POISON)
        const expected = poisoned
          ? encodeVector(new Float32Array(CHAOS_DIMS))
          : encodeVector(fakeVector(latest.text, CHAOS_DIMS))
        if (!blob || version === null) lost.push(key)
        else if (version < latest.version) stale.push(`${key}: v${version} < v${latest.version}`)
        else if (version !== latest.version || !blob.equals(expected)) lost.push(key)
        for (const s of list) {
          if (!s.outcome) continue
          const failedOk = s.outcome.ok === false && s.outcome.error instanceof EmbeddingFailedError
          let ok: boolean
          if (s === latest) ok = poisoned ? failedOk : s.outcome.ok && sameVector(s.outcome.vector, s.text)
          else {
            // An older job resolves with its own vector or a newer one of the same key.
            const vector = s.outcome.ok ? s.outcome.vector : undefined
            const newer = list.filter((n) => n.version >= s.version && !n.text.includes(POISON))
            ok =
              (vector !== undefined && newer.some((n) => sameVector(vector, n.text))) ||
              (poisoned && failedOk)
          }
          if (!ok) {
            badPromises.push(
              `${key} v${s.version}: ${s.outcome.ok ? 'resolved with another vector' : s.outcome.error.message}`,
            )
          }
        }
      })
      const poisonLetter = letters.find((l) => l.key === POISON_KEY)
      const poisonLatest = sent.get(POISON_KEY)!.reduce((a, b) => (b.version > a.version ? b : a))

      const a = analyze(pool.all, WORKER_OPTIONS.leaseMs)
      // How long after the ack that finished it did each resolved promise settle? A done
      // message that got lost is still caught by the waiters' periodic re-check, so it shows
      // here as a settle seconds late rather than as a promise that never settles.
      const settleLags = allSent.flatMap((s) => {
        const at = s.outcome?.ok ? a.finishedAt(s.key, s.version) : undefined
        return at !== undefined && s.settledAt !== undefined ? [s.settledAt - at] : []
      })
      const settledLate = settleLags.filter((ms) => ms > 1_000).length
      const maxSettleLagMs = Math.max(0, ...settleLags)
      const reenqueues = allSent.length - keys.length
      const figures = {
        seed: SEED,
        keys: keys.length,
        enqueues: allSent.length,
        reenqueues,
        enqueueCalls,
        enqueueErrors,
        kills,
        killsMidCall: a.killsMidCall,
        producerStalls: stalls,
        workerIncarnations: pool.all.length,
        redisRestarts,
        ackedBeforeRedisKill: durability?.acked ?? 0,
        lostInRedisRestart: durability?.lost.length ?? -1,
        providerCalls: a.calls.length,
        outcomes: a.outcomes,
        claims: a.claims,
        textsEmbedded: a.textsEmbedded,
        duplicatesEmbedded: a.duplicatesEmbedded,
        textsEmbeddedTwice: a.textsEmbeddedTwice,
        overlappingEmbedsAfterLeaseExpiry: a.overlappingEmbeds,
        claimsWhileLeaseValid: a.violations.length,
        lost: lost.length,
        stale: stale.length,
        deadLetters: letters.length,
        unsettled: unsettled.length,
        settledLateOver1s: settledLate,
        maxSettleLagMs,
        wrongPromiseOutcomes: badPromises.length,
        drained: drain.drained,
        remaining: drain.remaining,
        leftovers,
        producedInS: (producedAt - t0) / 1000,
        drainedInS: drain.elapsedMs / 1000,
        totalS: (Date.now() - t0) / 1000,
      }
      console.log(
        `chaos figures: keys=${figures.keys} enqueues=${figures.enqueues} re-enqueues=${reenqueues} ` +
          `kills=${kills} (mid-call ${a.killsMidCall}) redis-restarts=${redisRestarts} producer-stalls=${stalls} ` +
          `provider-calls=${figures.providerCalls} texts-embedded=${a.textsEmbedded} ` +
          `duplicates-embedded=${a.duplicatesEmbedded} overlapping-after-expiry=${a.overlappingEmbeds} ` +
          `claims-while-lease-valid=${a.violations.length} lost=${lost.length} stale=${stale.length} ` +
          `dead-letters=${letters.length} unsettled=${unsettled.length} ` +
          `settled-late=${settledLate} (max lag ${maxSettleLagMs} ms) total=${figures.totalS}s`,
      )
      console.log(`chaos details: ${JSON.stringify(figures)}`)

      const failing =
        !drain.drained ||
        lost.length + stale.length + unsettled.length + badPromises.length + a.violations.length > 0 ||
        (durability?.lost.length ?? 1) > 0 ||
        letters.length !== 1 ||
        Object.values(leftovers).some((n) => n > 0)
      if (failing) {
        const dir = mkdtempSync(join(tmpdir(), 'embedq-chaos-'))
        writeFileSync(
          join(dir, 'report.json'),
          JSON.stringify(
            {
              figures,
              lost,
              stale,
              badPromises,
              unsettled: unsettled.map((s) => `${s.key} v${s.version}`),
              violations: a.violations,
              durability,
              letters,
              sent: Object.fromEntries(
                keys.map((key, i) => [
                  key,
                  {
                    sent: sent
                      .get(key)!
                      .map((s) => ({ text: s.text, version: s.version, ok: s.outcome?.ok })),
                    stored: stored[i]!.version,
                  },
                ]),
              ),
            },
            null,
            1,
          ),
        )
        for (const inc of pool.all)
          writeFileSync(join(dir, `${inc.label}.jsonl`), inc.lines.map((l) => JSON.stringify(l)).join('\n'))
        console.log(`chaos: failing run; report and worker logs in ${dir}`)
        console.log(`chaos: worker errors (last 10): ${JSON.stringify(a.errors.slice(-10))}`)
      }

      // The chaos really happened.
      expect(redisRestarts).toBe(1)
      expect(kills).toBeGreaterThan(5)
      expect(figures.outcomes['429'] ?? 0).toBeGreaterThan(0)
      // 1. Durable before acknowledged: everything acknowledged before redis-server was SIGKILLed survived.
      expect(durability?.lost ?? ['no restart']).toEqual([])
      // 2 + 3. Nothing lost, latest text wins.
      expect(drain).toMatchObject({ drained: true, remaining: 0 })
      expect(lost).toEqual([])
      expect(stale).toEqual([])
      expect(leftovers).toEqual({
        pending: 0,
        inflight: 0,
        delayed: 0,
        versions: 0,
        jobs: 0,
        leases: 0,
        retries: 0,
      })
      expect(letters.map((l) => l.key)).toEqual([POISON_KEY])
      expect(poisonLetter).toMatchObject({ version: poisonLatest.version, text: poisonLatest.text })
      // 4. At most one claim per key at a time (an expired lease may be claimed again).
      expect(a.violations).toEqual([])
      // 5. No promise waits forever, and each settles the right way.
      expect(unsettled.map((s) => `${s.key} v${s.version}`)).toEqual([])
      expect(badPromises).toEqual([])
    },
    HARD_LIMIT_MS,
  )
})

/** Vector blob and version of every target hash. */
async function readTargets(
  redis: Redis,
  keys: readonly string[],
): Promise<{ blob: Buffer | null; version: number | null }[]> {
  const out: { blob: Buffer | null; version: number | null }[] = []
  for (let i = 0; i < keys.length; i += 500) {
    const p = redis.pipeline()
    for (const key of keys.slice(i, i + 500)) p.hmgetBuffer(key, 'embedding', 'embedding_version')
    for (const [err, res] of (await p.exec()) ?? []) {
      if (err) throw err
      const [blob, version] = res as [Buffer | null, Buffer | null]
      out.push({ blob, version: version ? Number(version.toString()) : null })
    }
  }
  return out
}

/**
 * Keys whose acknowledged version is nowhere: neither pending (its version or a newer one in the
 * queue's `versions`) nor finished (a vector of that version or a newer one in the target).
 * `versions` is read first: an item leaves it only after its vector (or zero vector) is written.
 */
async function notDurable(redis: Redis, name: string, acked: Map<string, number>): Promise<string[]> {
  const k = queueKeys('embedq', name)
  const keys = [...acked.keys()]
  const queued: (string | null)[] = []
  for (let i = 0; i < keys.length; i += 500)
    queued.push(...(await redis.zmscore(k.versions, ...keys.slice(i, i + 500))))
  const stored = await readTargets(redis, keys)
  return keys.filter((key, i) => {
    const v = acked.get(key)!
    const q = queued[i]
    const s = stored[i]!.version
    return !((q !== null && q !== undefined && Number(q) >= v) || (s !== null && s >= v))
  })
}
