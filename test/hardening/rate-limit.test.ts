/**
 * Issue #10, point 5: rate limits must not burn attempts. A rate-limited call pauses every
 * worker of the queue (shared in Redis) for the server's wait and requeues its texts
 * uncharged; an exhausted daily quota pauses until its reset and is reported. Everything runs
 * on a private redis-server and, where a provider is involved, against the fake vendor servers.
 */
import { Registry } from 'prom-client'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { EmbedderError, QuotaExhaustedError } from '../../src/errors.js'
import { queueKeys } from '../../src/keys.js'
import { createQueueMetrics } from '../../src/metrics.js'
import { geminiEmbedder } from '../../src/providers/gemini.js'
import { ollamaEmbedder } from '../../src/providers/ollama.js'
import { openAIEmbedder } from '../../src/providers/openai.js'
import { nextPacificMidnight, parseResetDuration, usRulesOffset } from '../../src/providers/quota.js'
import { QueueScripts } from '../../src/scripts.js'
import { json, parsePrometheus, runCli, sampleValue, show } from '../cli/helpers.js'
import { fakeEmbedder, fakeVector, readVector, sleep, uniqueName, waitFor } from '../helpers/fixtures.js'
import { useQueueHarness } from '../helpers/queue-harness.js'
import { type FakeGemini, GEMINI_KEY, startFakeGemini } from '../providers/fake-gemini.js'
import type { Fault } from '../providers/fake-http.js'
import { type FakeOllama, startFakeOllama } from '../providers/fake-ollama.js'
import { type FakeOpenAI, OPENAI_KEY, startFakeOpenAI } from '../providers/fake-openai.js'

const h = useQueueHarness()

let gemini: FakeGemini
let openai: FakeOpenAI
let ollama: FakeOllama
beforeAll(async () => {
  ;[gemini, openai, ollama] = await Promise.all([startFakeGemini(), startFakeOpenAI(), startFakeOllama()])
})
afterAll(async () => {
  await Promise.all([gemini?.close(), openai?.close(), ollama?.close()])
})
beforeEach(() => {
  gemini.reset()
  openai.reset()
  ollama.reset()
})

const makeGemini = () => geminiEmbedder({ apiKey: GEMINI_KEY, baseUrl: gemini.url, outputDimensionality: 32 })
const makeOpenAI = () => openAIEmbedder({ apiKey: OPENAI_KEY, baseUrl: `${openai.url}/v1`, dimensions: 32 })
const makeOllama = () => ollamaEmbedder({ baseUrl: ollama.url, model: 'nomic-embed-text' })

/** The error of one call that must fail. */
async function failure(promise: Promise<unknown>): Promise<EmbedderError> {
  try {
    await promise
  } catch (err) {
    return err as EmbedderError
  }
  throw new Error('expected the call to fail')
}

const isZero = (v: Float32Array | null): boolean => !!v && v.every((x) => x === 0)

describe('#10.5 rate limits burn no attempts', () => {
  const everyFourth = [
    // No retry info at all: the hardest case (the queue's own doubling default applies).
    {
      provider: 'openai',
      via: 'no retry info',
      server: () => openai,
      make: makeOpenAI,
      fault: { kind: 'rate-limit', via: 'none' },
    },
    {
      provider: 'gemini',
      via: 'RetryInfo "0.02s"',
      server: () => gemini,
      make: makeGemini,
      fault: { kind: 'rate-limit', retryAfterMs: 20 },
    },
  ] as const
  for (const c of everyFourth) {
    it(`a provider answering 429 to every 4th call (${c.provider}, ${c.via}), maxAttempts 2, 600 items: 0 dead letters, 600 real vectors, 0 zero vectors`, async () => {
      const server = c.server()
      server.failEvery(4, c.fault)
      const embedder = c.make()
      const q = h.queue({
        embedder,
        maxAttempts: 2,
        maxBatchSize: 10,
        concurrency: 4,
        rateLimitPauseMs: 10,
        backoffBaseMs: 10,
        backoffMaxMs: 80,
        pollIntervalMs: 20,
      })
      let retrying = 0
      let limited = 0
      q.on('retrying', () => retrying++)
      q.on('rateLimited', () => limited++)
      await q.start()
      const items = Array.from({ length: 600 }, (_, i) => ({
        key: `rl4:${q.name}:${i}`,
        text: `message ${i}`,
      }))
      const jobs = await q.enqueueMany(items)
      const drained = await q.flushAndWait({ timeoutMs: 25_000 })
      expect(drained).toMatchObject({ drained: true, remaining: 0 })
      await Promise.all(jobs.map((j) => j.result))
      const served429 = Math.floor(server.requests.length / 4)
      expect(served429).toBeGreaterThan(10) // the 429s really happened

      expect(await q.failed()).toEqual([])
      expect(retrying).toBe(0) // no attempt was charged
      expect(limited).toBe(served429) // each 429 paused the queue once
      expect((await q.stats()).rateLimit.rateLimitedCalls).toBe(served429)

      server.reset()
      const expected = await embedder.embed(items.map((it) => it.text))
      let zero = 0
      for (const [i, it] of items.entries()) {
        const stored = await readVector(h.redis, it.key)
        if (isZero(stored)) zero++
        expect(Array.from(stored!)).toEqual(Array.from(expected[i]!))
      }
      expect(zero).toBe(0)
    })
  }

  it('two queue instances (two workers) both pause on one 429: no call of either starts before the pause ends', async () => {
    const name = uniqueName('rl2')
    const PAUSE = 1_000
    let limitedAt = 0
    const a = fakeEmbedder({
      fail: (_texts, i) => {
        if (i !== 0) return undefined
        limitedAt = Date.now()
        return makeLimit(PAUSE)
      },
    })
    // B is slow and claims ahead: its second chunk waits for B's only slot while A is limited.
    const b = fakeEmbedder({ latencyMs: 300 })
    const qb = h.queue({
      name,
      embedder: b,
      redis: h.client(),
      concurrency: 1,
      maxBatchSize: 5,
      pollIntervalMs: 20,
    })
    const qa = h.queue({ name, embedder: a, concurrency: 1, maxBatchSize: 5, pollIntervalMs: 20 })
    const items = Array.from({ length: 40 }, (_, i) => ({ key: `rl2:${name}:${i}`, text: `t${i}` }))
    const jobs = await qb.enqueueMany(items)
    qb.flushNow()
    await qb.start()
    await waitFor(() => b.calls.length === 1, 5_000, "B's first call")
    await qa.start()
    await waitFor(() => limitedAt > 0, 5_000, "A's 429")
    await sleep(100)
    for (const q of [qa, qb]) {
      const s = await q.stats()
      expect(s.rateLimit).toMatchObject({ reason: 'rate-limit', rateLimitedCalls: 1 })
      expect(s.pausedForMs).toBeGreaterThan(500)
    }
    await Promise.all(jobs.map((j) => j.result))
    const resumed = limitedAt + PAUSE - 50
    const early = [...a.calls.slice(1), ...b.calls.slice(1)].filter((c) => c.startedAt < resumed)
    expect(early.map((c) => c.startedAt - limitedAt)).toEqual([])
    expect(b.calls.length).toBeGreaterThan(1)
    for (const it of items)
      expect(Array.from((await readVector(h.redis, it.key))!)).toEqual(Array.from(fakeVector(it.text, 8)))
    expect(await h.redis.hlen(queueKeys('embedq', name).retries)).toBe(0)
  })

  it('an exhausted daily quota (Gemini QuotaFailure PerDay) pauses until midnight Pacific, is reported once, in stats(), metrics and embedq status', async () => {
    // Gemini sends a RetryInfo of 22 s with its daily quotas too; retrying then only fails again.
    gemini.fail({ kind: 'quota', retryAfterMs: 22_000 })
    gemini.fail({ kind: 'quota', retryAfterMs: 22_000 })
    const q = h.queue({ embedder: makeGemini(), concurrency: 2, maxBatchSize: 2, pollIntervalMs: 20 })
    const errors: Error[] = []
    q.on('error', (e) => errors.push(e))
    const registry = new Registry()
    const metrics = await createQueueMetrics(q, { registry })
    await q.start()
    await q.enqueueMany(Array.from({ length: 4 }, (_, i) => ({ key: `quota:${q.name}:${i}`, text: `q${i}` })))
    const t0 = Date.now()
    q.flushNow()
    await waitFor(() => errors.length > 0, 5_000, 'the quota report')
    await sleep(1_500) // not retried every few seconds: nothing at all in this time
    expect(gemini.requests.length).toBeLessThanOrEqual(2)
    const quotaErrors = errors.filter((e) => e instanceof QuotaExhaustedError) as QuotaExhaustedError[]
    expect(quotaErrors).toHaveLength(1)
    expect(errors).toHaveLength(1)
    const reset = nextPacificMidnight(t0)
    const err = quotaErrors[0]!
    expect(err.quotaId).toBe('EmbedContentRequestsPerDayPerProjectPerModel-FreeTier')
    expect(Math.abs(err.resumesAt.getTime() - reset)).toBeLessThan(3_000)

    const stats = await q.stats()
    expect(stats.rateLimit).toMatchObject({
      reason: 'quota',
      quotaId: 'EmbedContentRequestsPerDayPerProjectPerModel-FreeTier',
      rateLimitedCalls: gemini.requests.length,
    })
    expect(Math.abs(stats.rateLimit.resumesAt!.getTime() - reset)).toBeLessThan(3_000)
    expect(stats.pausedForMs).toBe(stats.rateLimit.pausedForMs)
    expect(stats.pausedForMs).toBeGreaterThan(reset - Date.now() - 3_000)
    // Nothing charged, nothing given up: the items wait for the reset.
    const k = queueKeys('embedq', q.name)
    expect(await h.redis.hlen(k.retries)).toBe(0)
    expect(await q.failed()).toEqual([])
    expect(stats.unfinished).toBe(4)

    const { samples } = parsePrometheus(await metrics.metrics())
    expect(sampleValue(samples, 'embedq_quota_exhausted', { queue: q.name })).toBe(1)
    expect(sampleValue(samples, 'embedq_rate_limited_calls_total', { queue: q.name })).toBe(
      gemini.requests.length,
    )
    metrics.close()

    const asJson = await runCli(['status', '--redis', h.server.url, '--name', q.name, '--json'])
    expect(asJson.code, show(asJson)).toBe(0)
    const report = json<{ rateLimit: Record<string, unknown>; pausedForMs: number }>(asJson)
    expect(report.rateLimit).toMatchObject({
      reason: 'quota',
      quotaId: 'EmbedContentRequestsPerDayPerProjectPerModel-FreeTier',
    })
    expect(Math.abs(Date.parse(String(report.rateLimit.resumesAt)) - reset)).toBeLessThan(3_000)
    const text = await runCli(['status', '--redis', h.server.url, '--name', q.name])
    expect(text.stdout).toMatch(
      /QUOTA EXHAUSTED \(EmbedContentRequestsPerDayPerProjectPerModel-FreeTier\): every worker waits until/,
    )
    expect(text.stdout).toMatch(/paused .*provider quota exhausted/)

    // An operator who raised the quota resumes every worker by deleting the pause key.
    gemini.reset() // the second quota answer may not have been used
    await h.redis.del(k.pause)
    expect((await q.flushAndWait({ timeoutMs: 5_000 })).drained).toBe(true)
    expect((await q.stats()).rateLimit.reason).toBeNull()
  })

  it('a wait longer than quotaPauseThresholdMs is a quota pause too (Ollama behind a metering proxy)', async () => {
    ollama.fail({ kind: 'quota', retryAfterMs: 2 * 3_600_000 })
    const q = h.queue({ embedder: makeOllama(), quotaPauseThresholdMs: 60_000 })
    const errors: Error[] = []
    q.on('error', (e) => errors.push(e))
    await q.start()
    await q.enqueue(`proxy:${q.name}`, 'hello')
    q.flushNow()
    await waitFor(() => errors.length > 0, 5_000, 'the quota report')
    expect(errors[0]).toBeInstanceOf(QuotaExhaustedError)
    const s = await q.stats()
    expect(s.rateLimit.reason).toBe('quota')
    expect(s.pausedForMs).toBeGreaterThan(2 * 3_600_000 - 10_000)
  })

  it('retryDelay "0.25s" is read as 250 ms: the queue resumes after a quarter second, not a whole one', async () => {
    gemini.fail({ kind: 'rate-limit', retryAfterMs: 250 })
    const q = h.queue({ embedder: makeGemini(), pollIntervalMs: 10 })
    await q.start()
    const job = await q.enqueue(`frac:${q.name}`, 'fractional')
    q.flushNow()
    await job.result
    expect(gemini.requests).toHaveLength(2)
    const waited = gemini.requests[1]!.at - gemini.requests[0]!.at
    expect(waited).toBeGreaterThanOrEqual(240)
    expect(waited).toBeLessThan(900)
    expect((await q.stats()).rateLimit.rateLimitedCalls).toBe(1)
  })

  it('a 429 without any retry info still pauses (the default, doubling with consecutive rate limits)', async () => {
    const scripts = new QueueScripts(h.redis, queueKeys('embedq', uniqueName('streak')))
    const req = (delayMs?: number) =>
      scripts.pause({
        delayMs,
        baseMs: 200,
        maxMs: 1_000,
        reason: 'rate-limit',
        quotaId: undefined,
        message: '429',
        streakWindowMs: 60_000,
      })
    const first = await req()
    expect(first).toMatchObject({ extended: true, quotaStarted: false })
    expect(first.leftMs).toBe(200)
    // A second 429 during the pause came from a call started before it: same streak, no longer pause.
    expect((await req()).leftMs).toBeLessThanOrEqual(200)
    await sleep(250)
    expect((await req()).leftMs).toBe(400) // the pause was not enough: doubled
    await sleep(450)
    expect((await req()).leftMs).toBe(800)
    await sleep(850)
    expect((await req()).leftMs).toBe(1_000) // capped
    await scripts.endRateLimitStreak() // a call succeeded
    await sleep(1_050)
    expect((await req()).leftMs).toBe(200)
  })

  it("a pause never shortens a longer one, and keeps the longer pause's reason", async () => {
    const k = queueKeys('embedq', uniqueName('longer'))
    const scripts = new QueueScripts(h.redis, k)
    const base = { baseMs: 100, maxMs: 1_000, quotaId: undefined, message: 'm', streakWindowMs: 60_000 }
    const long = await scripts.pause({ ...base, delayMs: 5_000, reason: 'quota' })
    expect(long).toMatchObject({ extended: true, quotaStarted: true, leftMs: 5_000 })
    const short = await scripts.pause({ ...base, delayMs: 100, reason: 'rate-limit' })
    expect(short.extended).toBe(false)
    expect(short.leftMs).toBeGreaterThan(4_800)
    expect(await h.redis.pttl(k.pause)).toBeGreaterThan(4_800)
    expect(await h.redis.hget(k.pauseInfo, 'reason')).toBe('quota')
    // Another quota call while the quota pause holds is not reported again.
    expect((await scripts.pause({ ...base, delayMs: 6_000, reason: 'quota' })).quotaStarted).toBe(false)
  })

  it("a rate-limited chunk's items are not claimed again before the pause ends", async () => {
    const calls: number[] = []
    let limitedAt = 0
    const embedder = fakeEmbedder({
      fail: (_t, i) => {
        calls.push(Date.now())
        if (i === 0) {
          limitedAt = Date.now()
          return makeLimit(700)
        }
        return undefined
      },
    })
    const q = h.queue({ embedder, pollIntervalMs: 10, maxAttempts: 1 })
    await q.start()
    const job = await q.enqueue(`again:${q.name}`, 'once more')
    q.flushNow()
    await job.result // maxAttempts 1: a charged 429 would have been a dead letter
    expect(calls).toHaveLength(2)
    expect(calls[1]! - limitedAt).toBeGreaterThanOrEqual(680)
    expect(await q.failed()).toEqual([])
  })

  it("a custom embedder's SDK error with status 429 (e.g. the OpenAI SDK's RateLimitError) is a rate limit too", async () => {
    let first = true
    const embedder = fakeEmbedder({
      fail: () => {
        if (!first) return undefined
        first = false
        return Object.assign(new Error('Rate limit reached'), { name: 'RateLimitError', status: 429 })
      },
    })
    const q = h.queue({ embedder, maxAttempts: 1, rateLimitPauseMs: 50, pollIntervalMs: 10 })
    let limited = 0
    q.on('rateLimited', () => limited++)
    await q.start()
    const job = await q.enqueue(`sdk:${q.name}`, 'sdk error')
    q.flushNow()
    expect(Array.from(await job.result)).toEqual(Array.from(fakeVector('sdk error', 8)))
    expect(limited).toBe(1)
    expect(await q.failed()).toEqual([])
  })
})

describe('#10.5 provider conformance: 429 parsing against the fake vendor servers', () => {
  const cases: {
    title: string
    server: () => FakeOpenAI | FakeGemini | FakeOllama
    make: () => { embed(texts: string[]): Promise<unknown> }
    fault: Fault
    retryAfterMs: number | undefined | [number, number]
    quota?: boolean
  }[] = [
    {
      title: 'gemini: RetryInfo "0.25s"',
      server: () => gemini,
      make: makeGemini,
      fault: { kind: 'rate-limit', retryAfterMs: 250 },
      retryAfterMs: 250,
    },
    {
      title: 'gemini: RetryInfo "1.5s"',
      server: () => gemini,
      make: makeGemini,
      fault: { kind: 'rate-limit', retryAfterMs: 1500 },
      retryAfterMs: 1500,
    },
    {
      title: 'gemini: Retry-After seconds',
      server: () => gemini,
      make: makeGemini,
      fault: { kind: 'rate-limit', retryAfterMs: 3000, via: 'header' },
      retryAfterMs: 3000,
    },
    {
      title: 'gemini: Retry-After HTTP date',
      server: () => gemini,
      make: makeGemini,
      fault: { kind: 'rate-limit', retryAfterMs: 5000, via: 'date' },
      retryAfterMs: [3_900, 6_100],
    },
    {
      title: 'gemini: no retry info',
      server: () => gemini,
      make: makeGemini,
      fault: { kind: 'rate-limit', via: 'none' },
      retryAfterMs: undefined,
    },
    {
      title: 'openai: retry-after-ms',
      server: () => openai,
      make: makeOpenAI,
      fault: { kind: 'rate-limit', retryAfterMs: 1234 },
      retryAfterMs: 1234,
    },
    {
      title: 'openai: Retry-After HTTP date',
      server: () => openai,
      make: makeOpenAI,
      fault: { kind: 'rate-limit', retryAfterMs: 4000, via: 'date' },
      retryAfterMs: [2_900, 5_100],
    },
    {
      title: 'openai: x-ratelimit-reset-tokens of the empty bucket',
      server: () => openai,
      make: makeOpenAI,
      fault: { kind: 'rate-limit', retryAfterMs: 65_500, via: 'reset-headers' },
      retryAfterMs: 65_500,
    },
    {
      title: 'openai: "try again in" in the message',
      server: () => openai,
      make: makeOpenAI,
      fault: { kind: 'rate-limit', retryAfterMs: 20, via: 'body' },
      retryAfterMs: 20,
    },
    {
      title: 'openai: no retry info',
      server: () => openai,
      make: makeOpenAI,
      fault: { kind: 'rate-limit', via: 'none' },
      retryAfterMs: undefined,
    },
    {
      title: 'ollama (proxy): Retry-After seconds',
      server: () => ollama,
      make: makeOllama,
      fault: { kind: 'rate-limit', retryAfterMs: 2500 },
      retryAfterMs: 2500,
    },
    {
      title: 'ollama (proxy): Retry-After HTTP date',
      server: () => ollama,
      make: makeOllama,
      fault: { kind: 'rate-limit', retryAfterMs: 3000, via: 'date' },
      retryAfterMs: [1_900, 4_100],
    },
    {
      title: 'ollama (proxy): no retry info',
      server: () => ollama,
      make: makeOllama,
      fault: { kind: 'rate-limit', via: 'none' },
      retryAfterMs: undefined,
    },
    {
      title: 'openai: insufficient_quota is an exhausted quota',
      server: () => openai,
      make: makeOpenAI,
      fault: { kind: 'quota' },
      retryAfterMs: undefined,
      quota: true,
    },
  ]
  for (const c of cases) {
    it(`${c.title}: rateLimited, retryable, the right wait`, async () => {
      c.server().fail(c.fault)
      const err = await failure(c.make().embed(['some text']))
      expect(err).toMatchObject({
        status: 429,
        rateLimited: true,
        retryable: true,
        quotaExhausted: c.quota ?? false,
      })
      if (Array.isArray(c.retryAfterMs)) {
        expect(err.retryAfterMs).toBeGreaterThanOrEqual(c.retryAfterMs[0])
        expect(err.retryAfterMs).toBeLessThanOrEqual(c.retryAfterMs[1])
      } else expect(err.retryAfterMs).toBe(c.retryAfterMs)
      expect(c.server().requests).toHaveLength(1)
    })
  }

  it('gemini: a PerDay QuotaFailure is an exhausted quota that waits for midnight Pacific, not its 22 s RetryInfo', async () => {
    gemini.fail({ kind: 'quota', retryAfterMs: 22_000 })
    const before = Date.now()
    const err = await failure(makeGemini().embed(['x']))
    expect(err).toMatchObject({
      status: 429,
      rateLimited: true,
      quotaExhausted: true,
      quotaId: 'EmbedContentRequestsPerDayPerProjectPerModel-FreeTier',
    })
    const until = nextPacificMidnight(before) - before
    expect(Math.abs(err.retryAfterMs! - until)).toBeLessThan(2_000)
  })

  it('gemini: a per-minute QuotaFailure is a plain rate limit', async () => {
    gemini.fail({ kind: 'rate-limit', retryAfterMs: 7000 })
    const err = await failure(makeGemini().embed(['x']))
    expect(err).toMatchObject({ rateLimited: true, quotaExhausted: false, retryAfterMs: 7000 })
    expect(err.quotaId).toBe('EmbedContentRequestsPerMinutePerProjectPerModel-FreeTier')
  })
})

describe('#10.5 quota reset time and wire formats', () => {
  it('the next midnight in America/Los_Angeles, across both DST changes and a year end', () => {
    const utc = (s: string) => Date.parse(s)
    // PST (UTC-8): midnight is 08:00 UTC; PDT (UTC-7): 07:00 UTC.
    expect(nextPacificMidnight(utc('2026-01-15T12:00:00Z'))).toBe(utc('2026-01-16T08:00:00Z'))
    expect(nextPacificMidnight(utc('2026-07-15T06:59:59Z'))).toBe(utc('2026-07-15T07:00:00Z'))
    expect(nextPacificMidnight(utc('2026-07-15T07:00:00Z'))).toBe(utc('2026-07-16T07:00:00Z'))
    // 2026-03-08 is the day PDT starts: the next midnight after it is at 07:00 UTC.
    expect(nextPacificMidnight(utc('2026-03-08T12:00:00Z'))).toBe(utc('2026-03-09T07:00:00Z'))
    // 2026-11-01 is the day PST returns.
    expect(nextPacificMidnight(utc('2026-11-01T12:00:00Z'))).toBe(utc('2026-11-02T08:00:00Z'))
    expect(nextPacificMidnight(utc('2026-12-31T20:00:00Z'))).toBe(utc('2027-01-01T08:00:00Z'))
  })

  it('the fallback without time-zone data follows the same US rules as Intl, hour by hour over two years', () => {
    const fmt = new Intl.DateTimeFormat('en-US', {
      timeZone: 'America/Los_Angeles',
      timeZoneName: 'shortOffset',
    })
    for (let t = Date.parse('2026-01-01T00:30:00Z'); t < Date.parse('2028-01-01T00:00:00Z'); t += 3_600_000) {
      const name = fmt.formatToParts(new Date(t)).find((p) => p.type === 'timeZoneName')!.value
      expect(`GMT${usRulesOffset(t) / 3_600_000}`, new Date(t).toISOString()).toBe(name)
    }
  })

  it("parses OpenAI's reset durations", () => {
    expect(parseResetDuration('20ms')).toBe(20)
    expect(parseResetDuration('1s')).toBe(1000)
    expect(parseResetDuration('1.5s')).toBe(1500)
    expect(parseResetDuration('6m0s')).toBe(360_000)
    expect(parseResetDuration('1h2m3.5s')).toBe(3_723_500)
    expect(parseResetDuration('soon')).toBeUndefined()
    expect(parseResetDuration('')).toBeUndefined()
  })
})

/** What a custom embedder throws for a 429 with a wait. */
function makeLimit(ms: number): EmbedderError {
  return new EmbedderError('429 Too Many Requests', { status: 429, retryable: true, retryAfterMs: ms })
}
