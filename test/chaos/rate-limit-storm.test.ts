/**
 * Chaos: a rate-limit storm (issue #10, point 5). Three worker processes drain a queue through
 * a provider that answers 429 to 40 % of its calls — half with a retry wait, half with none —
 * with `maxAttempts: 2`, while random workers are SIGKILLed mid-call and restarted. A producer
 * here enqueues keys in waves and re-enqueues some with new text. Rate limits must cost no
 * attempt, so the run must end with 0 lost, 0 stale, 0 hung promises and 0 dead letters.
 *
 * Reproduce with STORM_SEED=<seed printed at the start>. Bounded: it stops by itself.
 */
import { randomInt } from 'node:crypto'
import type { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { encodeVector } from '../../src/codec.js'
import { EmbeddingBatchQueue, type EmbedJob } from '../../src/index.js'
import { queueKeys } from '../../src/keys.js'
import { fakeVector, sleep, uniqueName } from '../helpers/fixtures.js'
import { type RedisServer, startRedisServer } from '../helpers/redis-server.js'
import { CHAOS_DIMS } from './config.js'
import { prng } from './fault-embedder.js'
import { STORM_WORKER_OPTIONS } from './rate-limit-worker.js'
import { WorkerPool } from './worker-pool.js'

const SEED = Number(process.env.STORM_SEED ?? randomInt(2 ** 31))
const KEYS = 1_500
const WAVES = 12
const WAVE_MS = 400
const WORKERS = 3
const RATE_429 = 0.4
const DRAIN_TIMEOUT_MS = 40_000
const SETTLE_TIMEOUT_MS = 10_000
const HARD_LIMIT_MS = 120_000

interface Sent {
  key: string
  text: string
  version: number
  outcome?: { ok: true; vector: Float32Array } | { ok: false; error: Error }
}

describe('#10.5 chaos: a rate-limit storm while workers are SIGKILLed', () => {
  let server: RedisServer
  let redis: Redis
  let pool: WorkerPool
  let producer: EmbeddingBatchQueue
  const name = uniqueName('storm')

  beforeAll(async () => {
    server = await startRedisServer()
    redis = server.client()
    redis.on('error', () => {})
    pool = new WorkerPool(
      {
        REDIS_URL: server.url,
        QUEUE_NAME: name,
        SEED: String(SEED),
        RATE_429: String(RATE_429),
        STORM_WORKER: '1',
      },
      WORKERS,
      'test/chaos/rate-limit-worker.ts',
    )
  })

  afterAll(async () => {
    await producer?.stop().catch(() => {})
    await pool?.destroy()
    redis?.disconnect()
    await server?.destroy()
  })

  it(
    '429s on 40 % of calls, with and without retry info, maxAttempts 2: 0 lost, 0 stale, 0 hung, 0 dead letters',
    async () => {
      const t0 = Date.now()
      console.log(`rate-limit storm: seed=${SEED} (reproduce with STORM_SEED=${SEED})`)
      const rnd = prng(SEED)
      const chaosRnd = prng(SEED ^ 0x5bd1e995)
      producer = new EmbeddingBatchQueue({
        redis,
        name,
        worker: false,
        maxBatchSize: STORM_WORKER_OPTIONS.maxBatchSize,
        embedder: {
          dimensions: CHAOS_DIMS,
          embed: () => Promise.reject(new Error('the producer never embeds')),
        },
      })
      producer.on('error', () => {})
      await producer.start()
      await Promise.all(Array.from({ length: WORKERS }, (_, w) => pool.start(w)))

      const sent = new Map<string, Sent[]>()
      const results: Promise<unknown>[] = []
      const revs = new Map<string, number>()
      const record = (text: string, job: EmbedJob): void => {
        const s: Sent = { key: job.key, text, version: job.version }
        const list = sent.get(job.key)
        if (list) list.push(s)
        else sent.set(job.key, [s])
        results.push(
          job.result.then(
            (vector) => {
              s.outcome = { ok: true, vector }
            },
            (error: Error) => {
              s.outcome = { ok: false, error }
            },
          ),
        )
      }
      const enqueue = async (keys: string[]): Promise<void> => {
        const items = keys.map((key) => {
          const rev = (revs.get(key) ?? 0) + 1
          revs.set(key, rev)
          return { key, text: `${key} rev ${rev}` }
        })
        const jobs = await producer.enqueueMany(items)
        jobs.forEach((job, i) => {
          record(items[i]!.text, job)
        })
      }

      // ---- chaos: SIGKILL a worker (mid-call when one is busy), restart it 200 ms later ----
      let kills = 0
      let stopChaos = false
      const restarting: Promise<unknown>[] = []
      const chaos = (async () => {
        await sleep(500)
        while (!stopChaos) {
          for (let i = 0; i < 30 && pool.busy().length === 0; i++) await sleep(10)
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
          await sleep(400 + Math.floor(chaosRnd() * 400))
        }
      })()

      // ---- producer: waves of fresh keys, plus re-enqueues of recent ones with new text ----
      const perWave = KEYS / WAVES
      const known: string[] = []
      for (let w = 0; w < WAVES; w++) {
        const fresh = Array.from({ length: perWave }, (_, i) => `storm:${name}:${w * perWave + i}`)
        known.push(...fresh)
        const again = Array.from({ length: 15 }, () => known[Math.floor(rnd() * known.length)]!)
        await Promise.all([
          enqueue(fresh),
          sleep(Math.floor(rnd() * 200)).then(() => enqueue([...new Set(again)])),
        ])
        if (w % 4 === 3) producer.flushNow()
        await sleep(WAVE_MS)
      }

      // ---- wind down ----
      await sleep(1_000)
      stopChaos = true
      await chaos
      await Promise.all(restarting)
      for (let w = 0; w < WORKERS; w++) if (!pool.alive().includes(w)) await pool.start(w)
      const drain = await producer.flushAndWait({ timeoutMs: DRAIN_TIMEOUT_MS })
      await Promise.race([Promise.allSettled(results), sleep(SETTLE_TIMEOUT_MS)])
      const stats = await producer.stats()
      await pool.stopAll()

      // ---- checks ----
      const k = queueKeys('embedq', name)
      const keys = [...sent.keys()]
      const lost: string[] = []
      const stale: string[] = []
      const zero: string[] = []
      for (const key of keys) {
        const latest = sent.get(key)!.reduce((a, b) => (b.version > a.version ? b : a))
        const [blob, version] = await redis.hmgetBuffer(key, 'embedding', 'embedding_version')
        const v = version ? Number(version.toString()) : null
        if (!blob || v === null) lost.push(key)
        else if (v < latest.version) stale.push(`${key}: v${v} < v${latest.version}`)
        else if (blob.equals(encodeVector(new Float32Array(CHAOS_DIMS)))) zero.push(key)
        else if (v !== latest.version || !blob.equals(encodeVector(fakeVector(latest.text, CHAOS_DIMS))))
          lost.push(key)
      }
      const allSent = [...sent.values()].flat()
      const hung = allSent.filter((s) => !s.outcome)
      const rejected = allSent.filter((s) => s.outcome?.ok === false)
      const letters = await producer.failed()
      const leftovers = {
        pending: await redis.zcard(k.pending),
        inflight: await redis.zcard(k.inflight),
        delayed: await redis.zcard(k.delayed),
        versions: await redis.zcard(k.versions),
        retries: await redis.hlen(k.retries),
      }
      const outcomes: Record<string, number> = {}
      for (const inc of pool.all)
        for (const line of inc.lines)
          if (line.ev === 'end') outcomes[line.outcome] = (outcomes[line.outcome] ?? 0) + 1
      const calls = Object.values(outcomes).reduce((a, b) => a + b, 0)
      // Kills that landed while the process had a provider call running (a call with no end).
      const killsMidCall = pool.all.filter((inc) => {
        if (inc.killedAt === undefined) return false
        const ended = new Set(inc.lines.flatMap((l) => (l.ev === 'end' ? [l.id] : [])))
        return inc.lines.some((l) => l.ev === 'call' && !ended.has(l.id))
      }).length
      const figures = {
        seed: SEED,
        keys: keys.length,
        enqueues: allSent.length,
        kills,
        killsMidCall,
        incarnations: pool.all.length,
        calls,
        outcomes,
        rateLimitedCallsInRedis: stats.rateLimit.rateLimitedCalls,
        lost: lost.length,
        stale: stale.length,
        zeroVectors: zero.length,
        hung: hung.length,
        rejected: rejected.length,
        deadLetters: letters.length,
        drained: drain.drained,
        leftovers,
        totalS: (Date.now() - t0) / 1000,
      }
      console.log(`rate-limit storm figures: ${JSON.stringify(figures)}`)

      // The storm really happened: a large share of 429s, both kinds, and kills.
      expect(kills).toBeGreaterThanOrEqual(3)
      expect(killsMidCall).toBeGreaterThanOrEqual(1)
      expect(outcomes['429'] ?? 0).toBeGreaterThan(calls * 0.1)
      expect(outcomes['429-bare'] ?? 0).toBeGreaterThan(calls * 0.1)
      expect(stats.rateLimit.rateLimitedCalls).toBeGreaterThan(calls * 0.2)
      // Nothing lost, nothing stale, nothing hung, and not one dead letter (maxAttempts is 2).
      expect(drain).toMatchObject({ drained: true, remaining: 0 })
      expect(lost).toEqual([])
      expect(stale).toEqual([])
      expect(zero).toEqual([])
      expect(hung.map((s) => `${s.key} v${s.version}`)).toEqual([])
      expect(rejected.map((s) => `${s.key}: ${(s.outcome as { error: Error }).error.message}`)).toEqual([])
      expect(letters).toEqual([])
      expect(leftovers).toEqual({ pending: 0, inflight: 0, delayed: 0, versions: 0, retries: 0 })
    },
    HARD_LIMIT_MS,
  )
})
