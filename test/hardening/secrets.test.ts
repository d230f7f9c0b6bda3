/**
 * #10.9: secrets the library was given never leave it. A provider that echoes the API key in its
 * error body must not get the key into dead letters, events, errors or logs; the CLI never prints
 * a Redis password, whatever form the URL takes.
 */
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Embedder } from '../../src/embedder.js'
import {
  EmbedderError,
  EmbeddingBatchQueue,
  geminiEmbedder,
  type Logger,
  ollamaEmbedder,
  openAIEmbedder,
  queueKeys,
} from '../../src/index.js'
import { Redactor, redactSecrets, redactUrl } from '../../src/redact.js'
import { show, startCli } from '../cli/helpers.js'
import { uniqueName, waitFor } from '../helpers/fixtures.js'
import { type RedisServer, startRedisServer } from '../helpers/redis-server.js'
import {
  type FakeServer,
  fakeRawVector,
  type RecordedRequest,
  type Reply,
  startFakeServer,
} from '../providers/fake-http.js'

const KEY = 'sk-live/S3CRET+key=42&more'
const DIMS = 8

/** Every form of the key a leak could take. */
const FORMS = [
  KEY,
  encodeURIComponent(KEY),
  encodeURIComponent(KEY).toLowerCase(),
  JSON.stringify(KEY).slice(1, -1),
]
const leaks = (text: string): string[] => FORMS.filter((f) => text.includes(f))

/** Everything about a value, errors included (message, stack, cause chain, own properties). */
function dump(value: unknown): string {
  const seen = new Set<unknown>()
  return JSON.stringify(value, function replacer(_k, v: unknown) {
    if (typeof v === 'bigint') return String(v)
    if (typeof v === 'object' && v !== null) {
      if (seen.has(v)) return '[cycle]'
      seen.add(v)
      if (v instanceof Error) {
        const own: Record<string, unknown> = {}
        for (const k of Object.getOwnPropertyNames(v)) own[k] = (v as unknown as Record<string, unknown>)[k]
        return { name: v.name, message: v.message, stack: v.stack, cause: v.cause, ...own }
      }
    }
    return v
  })
}

/** The key as each vendor receives it. */
function keyOf(req: RecordedRequest): string {
  const auth = req.headers.authorization
  if (typeof auth === 'string') return auth.replace(/^Bearer /, '')
  const goog = req.headers['x-goog-api-key']
  return typeof goog === 'string' ? goog : 'none'
}

/**
 * Answers like openai, ollama or gemini; a text starting with BAD gets a 400 and AUTH a 401 whose
 * bodies echo the key as received (raw and URL-encoded), as some gateways do.
 */
function echoRoute(req: RecordedRequest): Reply {
  const body = req.body as { input?: string[]; requests?: { content: { parts: { text: string }[] } }[] }
  const texts = body.input ?? body.requests?.map((r) => r.content.parts[0]!.text) ?? []
  const key = keyOf(req)
  if (texts.some((t) => t.startsWith('AUTH')))
    return { status: 401, json: { error: { message: `Incorrect API key provided: ${key}`, code: 401 } } }
  if (texts.some((t) => t.startsWith('BAD')))
    return {
      status: 400,
      json: {
        error: {
          message: `invalid input for key ${key} (url form ${encodeURIComponent(key)})`,
          status: 'INVALID_ARGUMENT',
          code: 400,
        },
      },
    }
  const vectors = texts.map((t) => fakeRawVector(t, DIMS))
  if (req.url.includes(':batchEmbedContents'))
    return { status: 200, json: { embeddings: vectors.map((values) => ({ values })) } }
  if (req.url.endsWith('/api/embed')) return { status: 200, json: { embeddings: vectors } }
  return {
    status: 200,
    json: { data: vectors.map((embedding, index) => ({ object: 'embedding', index, embedding })) },
  }
}

function capturingLogger(): Logger & { lines: string[] } {
  const lines: string[] = []
  const log = (level: string) => (obj: unknown, msg?: string) => {
    lines.push(`${level} ${dump(obj)} ${msg ?? ''}`)
  }
  return { lines, debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') }
}

let redisServer: RedisServer
let redis: Redis
let fake: FakeServer
beforeAll(async () => {
  redisServer = await startRedisServer()
  redis = redisServer.client()
  fake = await startFakeServer(echoRoute)
})
afterAll(async () => {
  await fake?.close()
  redis?.disconnect()
  await redisServer?.destroy()
})

/** Runs BAD + good texts through a queue on `embedder`; returns everything it emitted or stored. */
async function runLeaky(embedder: Embedder, texts: string[], opts: { until?: RegExp } = {}) {
  const name = uniqueName()
  const logger = capturingLogger()
  const events: string[] = []
  const q = new EmbeddingBatchQueue({
    redis,
    embedder,
    name,
    logger,
    maxAttempts: 1,
    authPauseMs: 100,
    flushIntervalMs: 60_000,
    resultTimeoutMs: 10_000,
  })
  for (const ev of ['failed', 'retrying', 'error', 'refused'] as const)
    q.on(ev, (info: unknown) => events.push(`${ev} ${dump(info)}`))
  try {
    await q.start()
    const jobs = await q.enqueueMany(texts.map((text, i) => ({ key: `${name}:k${i}`, text })))
    q.flushNow()
    const until = opts.until
    if (until) await waitFor(() => events.some((e) => until.test(e)), 10_000, `an event matching ${until}`)
    const outcomes = until ? [] : await Promise.allSettled(jobs.map((j) => j.result))
    const rejections = outcomes.flatMap((o) => (o.status === 'rejected' ? [dump(o.reason)] : []))
    // A failure message can reach the subscriber before the worker's script reply: wait for the events.
    await waitFor(
      () => events.filter((e) => e.startsWith('failed')).length >= rejections.length,
      5_000,
      'the failed events',
    )
    const letters = Object.values(await redis.hgetall(queueKeys('embedq', name).failed))
    return { outcomes, rejections, letters, events, logs: logger.lines, name }
  } finally {
    await q.stop()
  }
}

describe('#10.9 secrets: an API key a provider echoes back never reaches dead letters, events, errors or logs', () => {
  const providers: Record<string, () => Embedder> = {
    openai: () => openAIEmbedder({ apiKey: KEY, baseUrl: fake.url, dimensions: DIMS }),
    gemini: () => geminiEmbedder({ apiKey: KEY, baseUrl: fake.url, outputDimensionality: DIMS }),
    ollama: () =>
      ollamaEmbedder({ baseUrl: fake.url, dimensions: DIMS, headers: { authorization: `Bearer ${KEY}` } }),
  }

  for (const [provider, make] of Object.entries(providers)) {
    it(`${provider}: a 400 body echoing the key is redacted in the dead letter, the failed event, the rejection and the logs`, async () => {
      const r = await runLeaky(make(), ['good one', 'BAD text', 'good two'])
      expect(r.outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled'])
      expect(r.letters).toHaveLength(1)
      // The server did echo it (the redaction marker proves it was there), and no form survived.
      expect(r.letters[0]).toContain('[redacted]')
      expect(r.events.some((e) => e.startsWith('failed'))).toBe(true)
      for (const text of [...r.letters, ...r.events, ...r.rejections, ...r.logs])
        expect(leaks(text)).toEqual([])
    })

    it(`${provider}: the embedder's own error is redacted, and it lists its secrets without printing them`, async () => {
      const e = make()
      expect(e.secrets).toContain(KEY)
      expect(JSON.stringify(e)).not.toContain(KEY)
      const err = await e.embed(['BAD direct']).catch((x: unknown) => x)
      expect(err).toBeInstanceOf(EmbedderError)
      expect(leaks(dump(err))).toEqual([])
      expect((err as Error).message).toContain('[redacted]')
    })
  }

  it('a 401 echoing the key: the error event and the logs carry it redacted', async () => {
    const r = await runLeaky(providers.openai!(), ['AUTH me'], { until: /^error / })
    // 401 pauses and charges nothing: the item stays queued, so look at what was reported.
    expect(r.events.some((e) => e.startsWith('error') && e.includes('[redacted]'))).toBe(true)
    for (const text of [...r.events, ...r.logs]) expect(leaks(text)).toEqual([])
  })

  it('a custom embedder that lists its secrets gets them redacted by the worker (defense in depth)', async () => {
    const custom: Embedder = {
      dimensions: DIMS,
      secrets: [KEY],
      async embed(texts) {
        if (texts.some((t) => t.startsWith('BAD'))) {
          const err = new EmbedderError(`upstream said: bad key ${KEY}`, {
            retryable: false,
            cause: new Error(`nested ${encodeURIComponent(KEY)}`),
          })
          Object.assign(err, { body: { echoed: KEY }, raw: `key=${KEY}` })
          throw err
        }
        return texts.map((t) => fakeRawVector(t, DIMS))
      },
    }
    const r = await runLeaky(custom, ['BAD one', 'good'])
    expect(r.outcomes.map((o) => o.status)).toEqual(['rejected', 'fulfilled'])
    expect(r.letters[0]).toContain('[redacted]')
    for (const text of [...r.letters, ...r.events, ...r.rejections, ...r.logs])
      expect(leaks(text)).toEqual([])
  })
})

describe('#10.9 the redactor and URL redaction', () => {
  it('replaces every form of every secret, longest first', () => {
    const r = new Redactor(['abcd/ef+gh', 'abcd', undefined, 'xy'])
    expect(r.redact('a abcd/ef+gh b abcd%2Fef%2Bgh c abcd%2fef%2bgh d abcd')).toBe(
      'a [redacted] b [redacted] c [redacted] d [redacted]',
    )
    // Secrets shorter than 4 characters are not redacted (they would mangle every message).
    expect(r.redact('xy')).toBe('xy')
    expect(redactSecrets('say "q\\"uote"', ['q"uote'])).toBe('say "[redacted]"')
  })

  it('redacts an error in place: message, stack, cause chain, attached bodies; class and fields kept', () => {
    const cause = new Error('inner s3cretKEY')
    const err = new EmbedderError('outer s3cretKEY', { retryable: false, status: 400, cause })
    Object.assign(err, { response: { data: 'echo s3cretKEY' } })
    const agg = new AggregateError([new Error('agg s3cretKEY')], 'many')
    new Redactor(['s3cretKEY']).error(err)
    new Redactor(['s3cretKEY']).error(agg)
    expect(err).toBeInstanceOf(EmbedderError)
    expect(err.status).toBe(400)
    expect(dump(err)).not.toContain('s3cretKEY')
    expect(dump(agg.errors)).not.toContain('s3cretKEY')
  })

  const password = 'Pa55:w0rd/x'
  const urls = [
    `redis://user:${password}@host:6379/0`,
    `redis://:${encodeURIComponent(password)}@host:6379`,
    `rediss://default:${password}@host:6380`,
    `redis://host:6379/?password=${encodeURIComponent(password)}`,
    `redis://host:6379/?db=1&password=${password}`,
    `redis://user:${password}@@[not a host`,
    `user:${password}@host`,
    `redis://${password}@host`,
  ]
  for (const url of urls) {
    it(`never shows the password of ${JSON.stringify(url.replace(password, 'P'))}`, () => {
      const shown = redactUrl(url)
      for (const f of [password, encodeURIComponent(password), 'w0rd']) expect(shown).not.toContain(f)
      expect(shown).toContain('host')
    })
  }
})

describe('#10.9 the CLI never prints a Redis password or an API key', () => {
  const PW = 'CliPassw0rdSecret'
  let server: RedisServer
  let admin: Redis
  beforeAll(async () => {
    server = await startRedisServer()
    admin = server.client()
    await admin.config('SET', 'requirepass', PW)
  })
  afterAll(async () => {
    admin?.disconnect()
    await server?.destroy()
  })
  const noSecret = (text: string): void => {
    expect(text).not.toContain(PW)
    expect(leaks(text)).toEqual([])
  }

  for (const form of ['userinfo', 'query'] as const) {
    it(`status: the header shows the URL without the password (${form})`, async () => {
      const url =
        form === 'userinfo'
          ? `redis://default:${PW}@127.0.0.1:${server.port}`
          : `redis://127.0.0.1:${server.port}/?password=${PW}`
      const run = await startCli(['status', '--redis', url, '--name', uniqueName()], { timeoutMs: 20_000 })
        .done
      expect(run.code, show(run)).toBe(0)
      expect(run.stdout).toContain(`127.0.0.1:${server.port}`)
      noSecret(run.stdout + run.stderr)
    })
  }

  for (const url of [
    `rediss://user:${PW}@127.0.0.1:1`,
    `redis://127.0.0.1:1/?password=${PW}`,
    `redis://user:${PW}@@[127.0.0.1`,
    `http://user:${PW}@127.0.0.1:1`,
    `user:${PW}@127.0.0.1`,
  ]) {
    it(`an unreachable or unparsable --redis is reported without its password: ${url.replace(PW, 'PW')}`, async () => {
      const run = await startCli(['status', '--redis', url], { timeoutMs: 20_000 }).done
      // The operator still sees which address failed.
      expect(run.stderr).toContain('127.0.0.1')
      expect(run.code, show(run)).not.toBe(0)
      expect(run.stderr.length).toBeGreaterThan(0)
      noSecret(run.stdout + run.stderr)
    })
  }

  it('worker: the start log and the logged failures of a key-echoing provider show neither password nor key', async () => {
    const name = uniqueName()
    const worker = startCli(
      [
        'worker',
        '--redis',
        `redis://127.0.0.1:${server.port}/?password=${PW}`,
        '--name',
        name,
        '--provider',
        'openai',
        '--base-url',
        fake.url,
        '--api-key',
        KEY,
        '--dimensions',
        String(DIMS),
        '--max-attempts',
        '1',
        '--flush-interval',
        '50',
      ],
      { timeoutMs: 40_000 },
    )
    const producerClient = new Redis({ port: server.port, host: '127.0.0.1', password: PW })
    try {
      await worker.waitFor(/worker started/)
      const q = new EmbeddingBatchQueue({
        redis: producerClient,
        name,
        worker: false,
        embedder: { dimensions: DIMS, embed: async () => [] },
      })
      const [bad, good] = await q.enqueueMany([
        { key: `${name}:bad`, text: 'BAD text' },
        { key: `${name}:good`, text: 'good text' },
      ])
      await expect(bad!.result).rejects.toThrow(/redacted/)
      await good!.result
      await q.stop()
      await waitFor(() => /gave up on an item/.test(worker.stdout + worker.stderr), 10_000, 'the failure log')
    } finally {
      worker.child.kill('SIGTERM')
      const run = await worker.done
      producerClient.disconnect()
      const out = run.stdout + run.stderr
      expect(out).toContain('worker started')
      expect(out).toContain('[redacted]')
      noSecret(out)
    }
  })
})
