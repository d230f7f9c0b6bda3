/**
 * One worker process of the chaos suite: a queue that drains with the fault-injecting embedder.
 * The suite SIGKILLs it at random and starts a new incarnation. Configured by env:
 *   REDIS_URL, QUEUE_NAME, SEED (the run's seed), WORKER (index), INCARNATION
 * Prints one JSON line per event (see `WorkerLine` in config.ts): provider calls and their
 * outcomes, and every claim, heartbeat and release the queue sends to Redis, each with the
 * time it was sent and answered. The suite checks "at most one claim per key at a time" from
 * these. Recording them wraps EVALSHA/EVAL on this process's own client (the queue runs its
 * scripts through them); nothing in the library is changed.
 */
import { createHash } from 'node:crypto'
import { Redis } from 'ioredis'
import { luaScripts } from '../../src/generated/lua.js'
import { EmbeddingBatchQueue } from '../../src/index.js'
import { CHAOS_DIMS, WORKER_OPTIONS, type WorkerLine } from './config.js'
import { faultEmbedder, mixSeed } from './fault-embedder.js'

const env = (name: string): string => {
  const v = process.env[name]
  if (v === undefined) throw new Error(`chaos worker: ${name} is not set`)
  return v
}
// Pipes are written synchronously on Linux: a line printed before a SIGKILL is not lost.
const say = (line: WorkerLine): void => {
  process.stdout.write(`${JSON.stringify(line)}\n`)
}

const redis = new Redis(env('REDIS_URL'))
redis.on('error', () => {}) // connection errors while redis-server restarts; ioredis reconnects

const embedder = faultEmbedder({
  seed: mixSeed(Number(env('SEED')), Number(env('WORKER')), Number(env('INCARNATION'))),
  dims: CHAOS_DIMS,
  onStart: (c) => say({ ev: 'call', id: c.id, at: c.at, texts: c.texts }),
  onEnd: (c) => say({ ev: 'end', id: c.id, at: c.at, outcome: c.outcome }),
})

const queue = new EmbeddingBatchQueue({
  redis,
  embedder,
  name: env('QUEUE_NAME'),
  ...WORKER_OPTIONS,
})
queue.on('error', (err) => say({ ev: 'error', at: Date.now(), message: err.message }))

type Command = (...args: unknown[]) => Promise<unknown>
type Recorder = {
  onSend: (argv: unknown[], s: number) => void
  onReply: (argv: unknown[], reply: unknown, s: number, r: number) => void
}

/**
 * The queue runs its scripts through EVALSHA (EVAL after NOSCRIPT) on our client; wrapping
 * those two commands records the calls of the scripts we follow, by SHA1 or by source.
 */
const recorders = new Map<string, Recorder>()
const bySource = new Map<string, string>()
for (const [name, def] of Object.entries(luaScripts)) {
  bySource.set(createHash('sha1').update(def.lua).digest('hex'), name)
  bySource.set(def.lua, name)
}
for (const command of ['evalsha', 'eval'] as const) {
  const client = redis as unknown as Record<string, Command>
  const original = client[command]!
  client[command] = async (...args: unknown[]) => {
    const rec = recorders.get(bySource.get(String(args[0])) ?? '')
    if (!rec) return original.apply(redis, args)
    const argv = args.slice(2 + Number(args[1]))
    const s = Date.now()
    rec.onSend(argv, s)
    const reply = await original.apply(redis, args)
    rec.onReply(argv, reply, s, Date.now())
    return reply
  }
}

/** Records every call of `script` the queue makes. */
function record(
  script: 'claim' | 'renew' | 'ack' | 'fail',
  onSend: Recorder['onSend'],
  onReply: Recorder['onReply'],
): void {
  if (!(script in luaScripts)) throw new Error(`chaos worker: no script named ${script}`)
  recorders.set(script, { onSend, onReply })
}

/** The first element (the key) of each group of `size` in a flat argument list. */
const groupKeys = (flat: unknown[], size: number): string[] => {
  const keys: string[] = []
  for (let i = 0; i < flat.length; i += size) keys.push(String(flat[i]))
  return keys
}

// ARGV layouts are those documented at the top of lua/claim-10.lua, renew-2.lua, ack-6.lua, fail-9.lua.
record(
  'claim',
  () => {},
  (argv, reply, s, r) => {
    const res = reply as unknown[]
    const count = Number(res[0])
    const items: [string, number][] = []
    for (let i = 0; i < count; i++) items.push([String(res[3 + i * 4]), Number(res[4 + i * 4])])
    if (count > 0) say({ ev: 'claim', tok: String(argv[3]), s, r, items })
  },
)
record(
  'renew',
  () => {},
  (argv, reply, s, r) =>
    say({
      ev: 'renew',
      tok: String(argv[0]),
      s,
      r,
      keys: argv.slice(2).map(String),
      lost: (reply as unknown[]).map(String),
    }),
)
record(
  'ack',
  (argv, s) =>
    say({ ev: 'release', kind: 'ack', tok: String(argv[0]), s, keys: groupKeys(argv.slice(2, -1), 2) }),
  (argv, reply, _s, r) => {
    const pairs = argv.slice(2, -1) // the last argument is the done log's cap
    const done: [string, number][] = []
    ;(reply as unknown[]).forEach((status, i) => {
      if (String(status) === 'D') done.push([String(pairs[2 * i]), Number(pairs[2 * i + 1])])
    })
    if (done.length > 0) say({ ev: 'acked', r, done })
  },
)
record(
  'fail',
  (argv, s) =>
    say({ ev: 'release', kind: 'fail', tok: String(argv[0]), s, keys: groupKeys(argv.slice(2, -1), 5) }),
  () => {},
)

// The suite holds our stdin open; when it goes away (even killed outright), so do we.
process.stdin.on('close', () => process.exit(0))
process.stdin.resume()

async function main(): Promise<void> {
  await queue.start()
  say({ ev: 'ready', at: Date.now() })
  process.once('SIGTERM', () => {
    void (async () => {
      await queue.stop().catch((err: unknown) => say({ ev: 'error', at: Date.now(), message: String(err) }))
      await redis.quit().catch(() => redis.disconnect())
      say({ ev: 'stopped', at: Date.now() })
      process.stdin.destroy() // the last handle: the process exits
    })()
  })
}

main().catch((err: unknown) => {
  say({ ev: 'fatal', at: Date.now(), message: String((err as Error)?.stack ?? err) })
  process.exitCode = 1
})
