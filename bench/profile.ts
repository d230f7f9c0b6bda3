/**
 * CPU profile of one embedq drain, for finding where the time goes:
 *
 *   npx tsx bench/profile.ts [--n 20000] [--latency 0] [--top 30] [--save /tmp/drain.cpuprofile]
 *   npx tsx bench/profile.ts --rounds 5     # no profiler: items/s and CPU per item of 5 drains
 *
 * Starts a private redis-server, warms up, then profiles (node:inspector) only the timed
 * drain — first enqueue to last job.result — and prints the functions with the most self
 * time, grouped by function and file. Redis's side is shown as its CPU time per item.
 */
import { writeFileSync } from 'node:fs'
import { Session } from 'node:inspector/promises'
import { parseArgs } from 'node:util'
import { startRedisServer } from '../test/helpers/redis-server.js'
import * as embedq from './contenders/embedq.js'
import { createContext, reset, timed } from './lib/context.js'
import { items } from './lib/texts.js'

interface ProfileNode {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
  children?: number[]
}
interface Profile {
  nodes: ProfileNode[]
  samples: number[]
  timeDeltas: number[]
}

const { values } = parseArgs({
  options: {
    n: { type: 'string', default: '20000' },
    latency: { type: 'string', default: '0' },
    top: { type: 'string', default: '30' },
    save: { type: 'string' },
    rounds: { type: 'string' },
  },
})
const n = Number(values.n)
const latencyMs = Number(values.latency)

type Ctx = ReturnType<typeof createContext>

function summary(t: Awaited<ReturnType<typeof timed>>): string {
  return (
    `drain of ${n} items at ${latencyMs} ms: ${Math.round((n * 1000) / t.ms)} items/s; ` +
    `CPU per item: Redis ${((t.redisCpuMs * 1000) / n).toFixed(1)} µs, Node ${((t.nodeCpuMs * 1000) / n).toFixed(1)} µs; ` +
    `${(t.cost.sent / n).toFixed(2)} commands sent, ${(t.cost.executed / n).toFixed(2)} executed per item`
  )
}

function labelOf(node: ProfileNode): string {
  const f = node.callFrame
  const file = f.url.replace(/^file:\/\//, '').replace(`${process.cwd()}/`, '')
  return `${f.functionName || '(anonymous)'}  ${file}`.trim()
}

function show(map: Map<string, number>, total: number): void {
  for (const [label, us] of [...map].sort((a, b) => b[1] - a[1]).slice(0, Number(values.top))) {
    console.log(
      `${((100 * us) / total).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(1).padStart(7)} ms  ${label}`,
    )
  }
}

/** Self time per function, and inclusive time of the library's own (src/) functions. */
function report(profile: Profile): void {
  const total = profile.timeDeltas.reduce((a, b) => a + b, 0)
  const byNode = new Map<number, number>()
  profile.samples.forEach((id, i) => {
    byNode.set(id, (byNode.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0))
  })
  const self = new Map<string, number>()
  for (const node of profile.nodes) {
    const us = byNode.get(node.id) ?? 0
    if (us) self.set(labelOf(node), (self.get(labelOf(node)) ?? 0) + us)
  }
  const nodes = new Map(profile.nodes.map((nd) => [nd.id, nd]))
  const inclusive = new Map<string, number>()
  // A function's time counts once even when it appears again in its own subtree.
  const walk = (id: number, open: Set<string>): number => {
    const node = nodes.get(id)!
    const label = labelOf(node)
    const mine = label.includes('src/') && !open.has(label)
    if (mine) open.add(label)
    let us = byNode.get(id) ?? 0
    for (const child of node.children ?? []) us += walk(child, open)
    if (mine) {
      open.delete(label)
      inclusive.set(label, (inclusive.get(label) ?? 0) + us)
    }
    return us
  }
  walk(profile.nodes[0]!.id, new Set())
  console.log(`Node self time by function (profiled ${(total / 1000).toFixed(0)} ms):`)
  show(self, total)
  console.log(
    'Inclusive time of src/ functions (async functions: up to their first await, and each resumption):',
  )
  show(inclusive, total)
}

async function main(ctx: Ctx): Promise<void> {
  const name = 'profile'
  const rig = async () => {
    const { queue } = embedq.makeQueue({ redis: ctx.client(), name, worker: true, latencyMs })
    await queue.start()
    return queue
  }
  const warm = await rig()
  await embedq.drain(warm, items('warm', Math.min(n, 2000)))
  await warm.stop()
  await reset(ctx)

  if (values.rounds) {
    for (let r = 0; r < Number(values.rounds); r++) {
      const queue = await rig()
      console.log(summary(await timed(ctx, n, () => embedq.drain(queue, items(`${name}${r}`, n)))))
      await queue.stop()
      await reset(ctx)
    }
    return
  }

  const session = new Session()
  session.connect()
  try {
    const queue = await rig()
    await session.post('Profiler.enable')
    await session.post('Profiler.setSamplingInterval', { interval: 100 })
    await session.post('Profiler.start')
    const t = await timed(ctx, n, () => embedq.drain(queue, items(name, n)))
    const { profile } = (await session.post('Profiler.stop')) as { profile: Profile }
    await queue.stop()
    if (values.save) writeFileSync(values.save, JSON.stringify(profile))
    console.log(`profiled run: ${summary(t)}`)
    report(profile)
  } finally {
    session.disconnect()
  }
}

const server = await startRedisServer()
const ctx = createContext({ n, smoke: false, repeat: 1, port: server.port, url: server.url })
try {
  await main(ctx)
} finally {
  await ctx.closeClients()
  ctx.stats.disconnect()
  await server.destroy()
}
