/**
 * Reproduction: a producer-only instance whose items are finished by workers in other
 * processes can be left with `job.result` promises that never settle, although every item
 * is finished in Redis (flushAndWait drained, the vector and its version are in the hash).
 *
 *   npx tsx bench/experiments/lost-results.ts [--rounds 8] [--n 20000] [--workers 2]
 *
 * Cause: `writeChunks` (src/queue.ts) registers a chunk's waiters only after the enqueue
 * script's reply has been handled. A worker in another process can claim, embed, write and
 * ack an item in that window; its done message arrives on the subscriber connection first,
 * `Waiters.onMessage` finds no waiter and drops it, and nothing ever looks again.
 * Prints, per round, how many results never resolved, with evidence for a few of them.
 */
import { type ChildProcess, fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { Redis } from 'ioredis'
import { queueKeys } from '../../src/index.js'
import { startRedisServer } from '../../test/helpers/redis-server.js'
import { makeQueue, PREFIX } from '../contenders/embedq.js'
import { now, sleep } from '../lib/stats.js'
import { items } from '../lib/texts.js'
import type { FromWorker, ToWorker } from '../worker-process.js'

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '8' },
    n: { type: 'string', default: '20000' },
    workers: { type: 'string', default: '2' },
  },
})
const n = Number(values.n)

function next(p: ChildProcess, type: FromWorker['type']): Promise<void> {
  return new Promise((resolve) => {
    const on = (m: FromWorker): void => {
      if (m.type !== type) return
      p.off('message', on)
      resolve()
    }
    p.on('message', on)
  })
}

/** Keys of a done message: entries `<status><version>:<keylen>:<key><msglen>:<msg>` (src/codec.ts). */
function doneKeys(raw: Buffer): string[] {
  const keys: string[] = []
  let i = 0
  const until = (): number => {
    const end = raw.indexOf(0x3a, i)
    const v = Number(raw.toString('latin1', i, end))
    i = end + 1
    return v
  }
  while (i < raw.length) {
    i++ // status
    until() // version
    const keyLen = until()
    keys.push(raw.toString('utf8', i, i + keyLen))
    i += keyLen
    const msgLen = until() // read before adding: until() moves i
    i += msgLen
  }
  return keys
}

const server = await startRedisServer()
const script = fileURLToPath(new URL('../worker-process.ts', import.meta.url))
const procs = Array.from({ length: Number(values.workers) }, () =>
  fork(script, [], {
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, BENCH_REDIS_URL: server.url },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  }),
)
const send = (m: ToWorker): void => {
  for (const p of procs) p.send(m)
}
let lost = 0
try {
  await Promise.all(procs.map((p) => next(p, 'ready')))
  for (let round = 0; round < Number(values.rounds); round++) {
    const name = `lost-results-${round}`
    send({ type: 'start', name, latencyMs: 0 })
    await Promise.all(procs.map((p) => next(p, 'started')))
    const redis = new Redis(server.port)
    const spy = new Redis(server.port)
    const doneAt = new Map<string, number>()
    spy.on('messageBuffer', (_channel: Buffer, message: Buffer) => {
      const t = now()
      for (const key of doneKeys(message)) doneAt.set(key, t)
    })
    await spy.subscribe(queueKeys(PREFIX, name).doneChannel)
    const { queue } = makeQueue({ redis, name, worker: false })
    const chunkHandledAt: number[] = []
    queue.on('enqueued', () => chunkHandledAt.push(now()))
    await queue.start()
    const list = items(name, n)
    const jobs = await queue.enqueueMany(list)
    const flushed = await queue.flushAndWait({ timeoutMs: 60_000 })
    const resolved = new Set<number>()
    jobs.forEach((j, i) => {
      j.result.then(
        () => resolved.add(i),
        () => {},
      )
    })
    await sleep(3_000)
    const stuck = jobs.map((_, i) => i).filter((i) => !resolved.has(i))
    lost += stuck.length
    console.log(`round ${round}: drained=${flushed.drained}, ${stuck.length} of ${n} results never resolved`)
    for (const i of stuck.slice(0, 3)) {
      const key = list[i]!.key
      const [stored] = await redis.hmget(key, 'embedding_version')
      const t0 = chunkHandledAt[0]!
      console.log(
        `  ${key}: job.version ${jobs[i]!.version}, version in its hash ${stored}; done message at ` +
          `+${((doneAt.get(key) ?? Number.NaN) - t0).toFixed(1)} ms, its chunk's enqueue reply handled at ` +
          `+${(chunkHandledAt[Math.floor(i / 500)]! - t0).toFixed(1)} ms`,
      )
    }
    send({ type: 'stop' })
    await Promise.all(procs.map((p) => next(p, 'stopped')))
    await queue.stop()
    redis.disconnect()
    spy.disconnect()
  }
  console.log(`lost results in total: ${lost}`)
} finally {
  send({ type: 'exit' })
  await Promise.all(procs.map((p) => new Promise((r) => p.once('exit', r))))
  await server.destroy()
}
