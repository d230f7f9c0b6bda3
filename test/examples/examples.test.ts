/**
 * Runs the demo and every example as a child process, the way a user would, with REDIS_URL and
 * GEMINI_API_KEY unset (in-process Redis, local hashing embedder), and checks what they print.
 * Two more runs take the other branches: REDIS_URL pointing at a private redis-server, and
 * GEMINI_API_KEY with GEMINI_BASE_URL pointing at the fake Gemini server of the provider tests.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type RedisServer, startRedisServer } from '../helpers/redis-server.js'
import { type FakeGemini, GEMINI_KEY, startFakeGemini } from '../providers/fake-gemini.js'

const root = fileURLToPath(new URL('../..', import.meta.url))
const RUN_TIMEOUT_MS = 60_000

interface Run {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

/** The environment of a user with nothing configured (plus `extra`). */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra }
  for (const name of ['REDIS_URL', 'GEMINI_API_KEY', 'GEMINI_BASE_URL', 'GOOGLE_API_KEY', 'PRODUCER_ONLY']) {
    if (!(name in extra)) delete env[name]
  }
  return env
}

const live = new Set<ChildProcess>()

function start(
  file: string,
  args: string[] = [],
  env = cleanEnv(),
): { child: ChildProcess; done: Promise<Run> } {
  const child = spawn(process.execPath, ['--import', 'tsx', `examples/${file}`, ...args], {
    cwd: root,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  live.add(child)
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (d: Buffer) => {
    stdout += d.toString()
  })
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString()
  })
  const timer = setTimeout(() => child.kill('SIGKILL'), RUN_TIMEOUT_MS)
  const done = new Promise<Run>((resolve) => {
    child.once('close', (code, signal) => {
      clearTimeout(timer)
      live.delete(child)
      resolve({ code, signal, stdout, stderr })
    })
  })
  return { child, done }
}

const run = (file: string, args: string[] = [], env = cleanEnv()): Promise<Run> => start(file, args, env).done

/** A failed run shows its whole output in the assertion message. */
function expectSuccess(r: Run): void {
  expect(r.code, `exit ${r.code} (${r.signal})\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`).toBe(0)
}

/** The first ranked hit printed after the line that shows `query`. */
function firstHit(stdout: string, query: string): string {
  const lines = stdout.split('\n')
  const at = lines.findIndex((l) => l.includes(`"${query}"`))
  expect(at, `query "${query}" not in output:\n${stdout}`).toBeGreaterThanOrEqual(0)
  const hit = lines.slice(at + 1).find((l) => /^\s+1\. \d\.\d{3} {2}\[/.test(l))
  expect(hit, `no ranked hit after "${query}":\n${stdout}`).toBeDefined()
  return hit!
}

afterAll(() => {
  for (const child of live) child.kill('SIGKILL')
})

describe('npm run demo (examples/demo.ts) with nothing configured', () => {
  let r: Run
  beforeAll(async () => {
    r = await run('demo.ts')
  }, RUN_TIMEOUT_MS + 5_000)

  it('exits by itself with code 0 and writes nothing to stderr', () => {
    expectSuccess(r)
    expect(r.stderr).toBe('')
  })

  it('says plainly which Redis and which embedder it uses', () => {
    expect(r.stdout).toContain('Redis:    in-process Redis (ioredis-mock)')
    expect(r.stdout).toContain('hashing embedder: lexical feature hashing of words, not a semantic model')
  })

  it('shows progress and reaches every non-blank message', () => {
    expect(r.stdout).toMatch(/embedded \d+\/298 · queued/)
    expect(r.stdout).toMatch(/embedded 298\/298 · queued 0 · in flight 0/)
    expect(r.stdout).toMatch(/drained in \d+ ms/)
    expect(r.stdout).toContain('check: 298/298 stored vectors equal a fresh embedding')
  })

  it('resolves blank messages to a zero vector without Redis or the embedder', () => {
    expect(r.stdout).toContain(
      'blank message msg-047 ("  \\n"): version 0, result is a zero vector of 256 dims',
    )
    expect(r.stdout).toContain('blank message msg-295 (""): version 0, result is a zero vector of 256 dims')
    expect(r.stdout).toContain('298 hashes hold a 256-dim vector (1024 bytes); 2 blank messages hold none')
  })

  it('keeps the latest text of an edited message', () => {
    expect(r.stdout).toContain('Latest text wins: msg-011 was enqueued twice')
    expect(r.stdout).toMatch(/the edit's job\.result resolved \d+ ms after its enqueue: Float32Array\(256\)/)
    expect(r.stdout).toMatch(/stored blob vs edited text: cosine 1\.000; vs original text: 0\.\d{3}/)
  })

  it('answers the similarity queries from the stored blobs', () => {
    expect(firstHit(r.stdout, 'when does our flight to Lisbon leave?')).toContain('[lisbon-trip]')
    expect(firstHit(r.stdout, 'checkout returns 500 errors for card payments')).toContain('[checkout-bug]')
    expect(firstHit(r.stdout, 'how long does the risotto cook')).toContain('[sunday-dinner]')
    expect(firstHit(r.stdout, 'who is bringing the birthday cake')).toContain('[mia-birthday]')
  })

  it('ends with a summary and a clean shutdown', () => {
    expect(r.stdout).toMatch(/provider calls: \d+, \d+ texts sent/)
    expect(r.stdout).toContain('queue now:      0 unfinished, 0 dead letters')
    expect(r.stdout.trimEnd()).toMatch(/Stopped the queue and closed the Redis connection\.$/)
  })
})

describe('the call-site examples with nothing configured', () => {
  it(
    'message-processor.ts enqueues each message and the vectors land in the hashes',
    async () => {
      const r = await run('message-processor.ts')
      expectSuccess(r)
      expect(r.stdout).toContain('Processing 80 incoming messages, one enqueue() per message')
      expect(r.stdout).toMatch(/median enqueue\(\) [\d.]+ ms/)
      expect(r.stdout).toContain('flushAndWait: drained; 80/80 message hashes now hold an embedding')
    },
    RUN_TIMEOUT_MS,
  )

  it(
    'retrieval.ts flushes, waits, and finds the travel messages for "flight to Lisbon"',
    async () => {
      const r = await run('retrieval.ts', ['flight to Lisbon'])
      expectSuccess(r)
      expect(r.stdout).toMatch(/flushAndWait\(\): drained in \d+ ms/)
      expect(r.stdout).toContain('Top 5 of 298 stored vectors for "flight to Lisbon"')
      expect(firstHit(r.stdout, 'flight to Lisbon')).toContain('[lisbon-trip]')
    },
    RUN_TIMEOUT_MS,
  )

  it(
    'llm-inference.ts calls flushNow() and does not wait for the vector',
    async () => {
      const r = await run('llm-inference.ts')
      expectSuccess(r)
      expect(r.stdout).toMatch(/flushNow\(\) returned after [\d.]+ ms/)
      expect(r.stdout).toMatch(/1\. \d\.\d{3} {2}\[lisbon-trip\] Ana: direct flight to Lisbon/)
      expect(r.stdout).toMatch(/vector was written \d+ ms after flushNow\(\)/)
      expect(r.stdout).toContain('the reply is embedded too: assistant:msg:msg-new-2')
    },
    RUN_TIMEOUT_MS,
  )

  it(
    'worker.ts runs until SIGTERM, then stops gracefully with exit code 0',
    async () => {
      const { child, done } = start('worker.ts')
      let out = ''
      await new Promise<void>((resolve, reject) => {
        const onData = (d: Buffer): void => {
          out += d.toString()
          if (out.includes('worker ready')) {
            child.stdout!.off('data', onData)
            resolve()
          }
        }
        child.stdout!.on('data', onData)
        void done.then((r) =>
          reject(new Error(`worker exited before it was ready:\n${r.stdout}\n${r.stderr}`)),
        )
      })
      child.kill('SIGTERM')
      const r = await done
      expectSuccess(r)
      expect(r.stdout).toContain('SIGTERM: stopping')
      expect(r.stdout).toMatch(/worker stopped: \d+ embedded/)
    },
    RUN_TIMEOUT_MS,
  )

  it(
    'worker.ts drains its sample and still stops on SIGINT',
    async () => {
      const { child, done } = start('worker.ts')
      await new Promise<void>((resolve, reject) => {
        let out = ''
        child.stdout!.on('data', (d: Buffer) => {
          out += d.toString()
          if (out.includes('sample done')) resolve()
        })
        void done.then((r) => reject(new Error(`worker exited early:\n${r.stdout}\n${r.stderr}`)))
      })
      child.kill('SIGINT')
      const r = await done
      expectSuccess(r)
      expect(r.stdout).toMatch(/worker stopped: 59 embedded/) // 60 samples, one of them blank
    },
    RUN_TIMEOUT_MS,
  )
})

const hasRedisServer = ((): boolean => {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
})()

describe.skipIf(!hasRedisServer)('the demo with REDIS_URL set', () => {
  let server: RedisServer
  beforeAll(async () => {
    server = await startRedisServer()
  })
  afterAll(async () => {
    await server?.destroy()
  })

  it(
    'uses that server, leaves the vectors in it, and gives the same answers on a rerun',
    async () => {
      for (let i = 0; i < 2; i++) {
        const r = await run('demo.ts', [], cleanEnv({ REDIS_URL: server.url }))
        expectSuccess(r)
        expect(r.stdout).toContain(`Redis:    Redis at ${server.url} (from REDIS_URL)`)
        expect(r.stdout).toContain('check: 298/298 stored vectors equal a fresh embedding')
        expect(firstHit(r.stdout, 'when does our flight to Lisbon leave?')).toContain('[lisbon-trip]')
      }
      const client = server.client()
      try {
        const blob = await client.hgetBuffer('demo:msg:msg-001', 'embedding')
        expect(blob?.length).toBe(256 * 4)
      } finally {
        await client.quit()
      }
    },
    2 * RUN_TIMEOUT_MS,
  )
})

describe('the demo with GEMINI_API_KEY set', () => {
  let gemini: FakeGemini
  beforeAll(async () => {
    gemini = await startFakeGemini()
  })
  afterAll(async () => {
    await gemini?.close()
  })

  it(
    'embeds through geminiEmbedder: documents in batches, queries as RETRIEVAL_QUERY',
    async () => {
      const r = await run(
        'demo.ts',
        [],
        cleanEnv({ GEMINI_API_KEY: GEMINI_KEY, GEMINI_BASE_URL: gemini.url }),
      )
      expectSuccess(r)
      expect(r.stdout).toContain(`Embedder: Gemini gemini-embedding-001, 768 dims`)
      expect(r.stdout).not.toContain('hashing embedder')
      expect(r.stdout).toMatch(/embedded 298\/298 · queued 0 · in flight 0/)
      expect(r.stdout).toContain('298 hashes hold a 768-dim vector (3072 bytes); 2 blank messages hold none')
      expect(r.stdout).toContain("stored blob vs edit's job.result: cosine 1.000")
      const taskTypes = gemini.requests.flatMap((req) =>
        ((req.body as { requests?: { taskType?: string }[] }).requests ?? []).map((x) => x.taskType),
      )
      expect(taskTypes.filter((t) => t === 'RETRIEVAL_QUERY')).toHaveLength(4)
      const documentCalls = gemini.batches().filter((texts) => texts.length > 1)
      expect(documentCalls.length).toBeGreaterThan(0)
      expect(documentCalls.every((texts) => texts.length <= 50)).toBe(true)
      expect(gemini.batches().flat()).not.toContain('')
    },
    RUN_TIMEOUT_MS,
  )
})
