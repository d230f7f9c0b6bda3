/** Turns the run's results into the markdown table (bench/results/*.md, docs/benchmarks.md). */
import type { BulkResult, LaneRun } from '../workloads/bulk.js'
import type { DrainResult } from '../workloads/drain.js'
import type { EnqueueResult } from '../workloads/enqueue.js'
import type { LatencyResult } from '../workloads/latency.js'
import type { MemoryResult } from '../workloads/memory.js'
import type { ScaleRun } from '../workloads/scale.js'
import type { Timed } from './context.js'
import { median, rate } from './stats.js'

export interface Machine {
  cpu: string
  cores: number
  node: string
  redis: string
  os: string
  commit: string
}

export interface BenchResults {
  meta: {
    date: string
    n: number
    smoke: boolean
    repeat: number
    durationS: number
    /** 1-minute load average at the start and the end (other work on the machine slows runs down). */
    loadavg: [number, number]
    machine: Machine
  }
  enqueue?: EnqueueResult
  drain?: DrainResult[]
  latency?: LatencyResult[]
  memory?: MemoryResult
  scale?: ScaleRun[]
  bulk?: BulkResult
  targets: Target[]
}

export interface Target {
  name: string
  measured: number
  /** e.g. '≥ 0.8×' */
  goal: string
  pass: boolean
  unit: 'ratio' | 'per item' | 'count'
}

const int = (x: number): string => Math.round(x).toLocaleString('en-US')
const x2 = (x: number): string => `${x.toFixed(2)}×`
const f2 = (x: number): string => x.toFixed(2)
const ms1 = (x: number): string => `${x.toFixed(1)} ms`
const perSec = (t: Timed): number => rate(t.items, t.ms)
/** CPU µs per item: Redis / this Node process. */
const cpu = (t: Timed): string =>
  `${((t.redisCpuMs * 1000) / t.items).toFixed(1)} / ${((t.nodeCpuMs * 1000) / t.items).toFixed(1)}`

/** The best raw enqueue rate among `variants` (per-item or variadic pipelines). */
export function rawEnqueueCeiling(e: EnqueueResult, variadic = true): { label: string; t: Timed } {
  const variants: { label: string; t: Timed | undefined }[] = [
    { label: 'per-item ZADD+HSET pipelines, 1 in flight', t: e.rawPipelines },
    { label: 'per-item ZADD+HSET pipelines, 4 in flight', t: e.rawPipelines4 },
    ...(variadic ? [{ label: 'variadic ZADD + HSET pipelines, 4 in flight', t: e.rawVariadic4 }] : []),
  ]
  return variants
    .filter((v): v is { label: string; t: Timed } => v.t !== undefined)
    .reduce((a, b) => (perSec(b.t) > perSec(a.t) ? b : a))
}

export function computeTargets(r: BenchResults): Target[] {
  const out: Target[] = []
  if (r.enqueue) {
    for (const variadic of [false, true]) {
      const ceiling = rawEnqueueCeiling(r.enqueue, variadic)
      const ratio = perSec(r.enqueue.embedqMany) / perSec(ceiling.t)
      out.push({
        name: `enqueue: embedq enqueueMany / raw ${variadic ? 'ceiling, any form' : 'per-item pipeline ceiling'} (${ceiling.label})`,
        measured: ratio,
        goal: '≥ 0.8×',
        pass: ratio >= 0.8,
        unit: 'ratio',
      })
    }
  }
  for (const d of r.drain ?? []) {
    const goal = d.latencyMs === 0 ? 5 : d.latencyMs >= 50 ? 10 : undefined
    if (goal === undefined) continue
    const ratio = perSec(d.embedq) / perSec(d.bullmq)
    out.push({
      name: `drain ${d.latencyMs} ms provider: embedq / BullMQ`,
      measured: ratio,
      goal: `≥ ${goal}×`,
      pass: ratio >= goal,
      unit: 'ratio',
    })
  }
  if (r.scale?.length) {
    const lost = r.scale.reduce((sum, s) => sum + s.lostResults, 0)
    out.push({
      name: 'every job.result resolves (scale workload, producer in another process)',
      measured: lost,
      goal: '0 lost',
      pass: lost === 0,
      unit: 'count',
    })
  }
  for (const d of r.drain ?? []) {
    const perItem = d.embedq.cost.sent / d.embedq.items
    out.push({
      name: `commands sent per item, end to end (drain ${d.latencyMs} ms)`,
      measured: perItem,
      goal: '≤ 1.2',
      pass: perItem <= 1.2,
      unit: 'per item',
    })
  }
  return out
}

function table(head: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`
  return [line(head), line(head.map(() => '---')), ...rows.map(line)].join('\n')
}

export function renderMarkdown(r: BenchResults): string {
  const m = r.meta
  const parts: string[] = []
  parts.push(
    `N = ${int(m.n)} texts of 100–300 characters, 768-dim vectors · ${m.date} · ${m.machine.cores} × ${m.machine.cpu} · ` +
      `Node ${m.machine.node} · Redis ${m.machine.redis} · ${m.machine.os} · commit ${m.machine.commit} · best of ${m.repeat} runs per contender · load average ${m.loadavg[0].toFixed(1)} → ${m.loadavg[1].toFixed(1)} · run took ${Math.round(m.durationS)} s`,
  )

  if (r.targets.length) {
    parts.push(
      '### Targets',
      table(
        ['target', 'measured', 'goal', 'result'],
        r.targets.map((t) => [
          t.name,
          t.unit === 'ratio' ? x2(t.measured) : t.unit === 'count' ? int(t.measured) : f2(t.measured),
          t.goal,
          t.pass ? '✅ pass' : '❌ miss',
        ]),
      ),
    )
  }

  if (r.enqueue) {
    const e = r.enqueue
    const ceiling = perSec(rawEnqueueCeiling(e).t)
    const row = (name: string, t: Timed): string[] => [
      name,
      int(perSec(t)),
      x2(perSec(t) / ceiling),
      f2(t.cost.sent / t.items),
      f2(t.cost.executed / t.items),
      cpu(t),
    ]
    parts.push(
      '### 1. Enqueue',
      table(
        [
          'contender',
          'items/s',
          'vs best raw',
          'cmds sent/item',
          'cmds executed/item',
          'CPU µs/item Redis / Node',
        ],
        [
          row('embedq `enqueueMany` (one call, 500 items per script call)', e.embedqMany),
          row('embedq `enqueue`, 100 calls in flight', e.embedqSingles),
          row('raw: ZADD+HSET pipelines of 500 items, 1 in flight', e.rawPipelines),
          row('raw: ZADD+HSET pipelines of 500 items, 4 in flight', e.rawPipelines4),
          row('raw: one variadic ZADD + HSET per 500 items, 4 pipelines in flight', e.rawVariadic4),
          row('raw: one ZADD+HSET pipeline per item, 100 in flight', e.rawSingles),
        ],
      ),
      `embedq \`enqueue\` ×100 in flight vs raw per-item pipelines ×100 in flight: ${x2(perSec(e.embedqSingles) / perSec(e.rawSingles))}.`,
    )
  }

  if (r.drain?.length) {
    const rows: string[][] = []
    for (const d of r.drain) {
      const bull = perSec(d.bullmq)
      const rawRate = perSec(d.raw)
      for (const [name, t] of [
        ['embedq (maxBatchSize 100, concurrency 8)', d.embedq],
        ['raw hand-rolled batching (100/call, 8 in flight)', d.raw],
        ['BullMQ (1 job per text, concurrency 50)', d.bullmq],
      ] as const) {
        rows.push([
          `${d.latencyMs} ms`,
          name,
          int(perSec(t)),
          `${(t.ms / 1000).toFixed(2)} s`,
          int(t.providerCalls),
          x2(perSec(t) / bull),
          x2(perSec(t) / rawRate),
          cpu(t),
        ])
      }
    }
    parts.push(
      '### 2. Drain end to end (first enqueue → last result)',
      table(
        [
          'provider latency',
          'contender',
          'items/s',
          'time',
          'provider calls',
          'vs BullMQ',
          'vs raw',
          'CPU µs/item Redis / Node',
        ],
        rows,
      ),
    )
  }

  if (r.latency?.length) {
    parts.push(
      '### 3. Latency: `flushNow()` → each `job.result`',
      table(
        ['provider latency', 'pending', 'rounds', 'p50', 'p99', 'max', 'all done (median round)'],
        r.latency.map((l) => [
          `${l.latencyMs} ms`,
          int(l.pending),
          String(l.rounds),
          ms1(l.p50),
          ms1(l.p99),
          ms1(l.max),
          ms1(median(l.allDoneMs)),
        ]),
      ),
    )
  }

  if (r.drain?.length || r.enqueue) {
    const rows: string[][] = []
    const cost = (what: string, name: string, t: Timed): string[] => [
      what,
      name,
      f2(t.cost.sent / t.items),
      f2(t.cost.inner / t.items),
      f2(t.cost.executed / t.items),
    ]
    for (const d of r.drain ?? []) {
      rows.push(cost(`drain ${d.latencyMs} ms`, 'embedq', d.embedq))
      rows.push(cost(`drain ${d.latencyMs} ms`, 'raw', d.raw))
      rows.push(cost(`drain ${d.latencyMs} ms`, 'BullMQ', d.bullmq))
    }
    if (r.enqueue) rows.push(cost('enqueue only', 'embedq `enqueueMany`', r.enqueue.embedqMany))
    parts.push(
      '### 4. Redis cost',
      'Commands per item (client-sent counted where ioredis writes them; executed = `INFO commandstats` delta; inner = executed − sent, the calls made inside Lua scripts):',
      table(['workload', 'contender', 'sent/item', 'inner/item', 'executed/item'], rows),
    )
  }

  if (r.memory) {
    const mem = r.memory
    parts.push(
      'Redis memory per pending item (`MEMORY USAGE … SAMPLES 0` summed over the keys; `used_memory` growth for comparison):',
      table(
        [
          'contender',
          'bytes/item (MEMORY USAGE)',
          'bytes/item (used_memory Δ)',
          'keys',
          'vs raw',
          'vs BullMQ',
        ],
        [
          ['embedq', mem.embedq],
          ['raw (ZSET + HASH)', mem.raw],
          ['BullMQ (waiting jobs)', mem.bullmq],
        ].map(([name, f]) => {
          const fig = f as MemoryResult['raw']
          return [
            name as string,
            int(fig.bytesPerItem),
            int(fig.usedMemoryPerItem),
            int(fig.keys),
            x2(fig.bytesPerItem / mem.raw.bytesPerItem),
            x2(fig.bytesPerItem / mem.bullmq.bytesPerItem),
          ]
        }),
      ),
    )
  }

  if (r.memory) {
    const parts2 = (f: MemoryResult['raw']): string =>
      Object.entries(f.byKey)
        .sort((a, b) => b[1] - a[1])
        .filter(([, b]) => b >= 1)
        .map(([k, b]) => `${k} ${int(b)}`)
        .join(', ')
    parts.push(
      `Where the bytes go (bytes/item): embedq — ${parts2(r.memory.embedq)}; BullMQ — ${parts2(r.memory.bullmq)}; raw — ${parts2(r.memory.raw)}.`,
    )
  }

  if (r.scale?.length) {
    const rows = r.scale.map((s) => {
      const base = r.scale!.find(
        (b) => b.latencyMs === s.latencyMs && b.processes === 1 && b.trackResults === s.trackResults,
      )!
      return [
        `${s.latencyMs} ms`,
        String(s.processes),
        s.trackResults ? 'yes (default)' : 'no',
        int(rate(s.items, s.drainedMs)),
        x2(base.drainedMs / s.drainedMs),
        s.lostResults > 0
          ? `⚠ ${int(s.lostResults)} never resolved`
          : s.resultsMs === null
            ? '—'
            : int(rate(s.items, s.resultsMs)),
        int(s.embedded),
      ]
    })
    parts.push(
      '### 5. Scale: worker processes (producer-only instance in the bench process)',
      table(
        [
          'provider latency',
          'worker processes',
          'producer trackResults',
          'drained items/s',
          'speedup vs 1',
          'results resolved items/s',
          'texts embedded',
        ],
        rows,
      ),
    )
  }
  if (r.bulk) {
    const b = r.bulk
    const row = (x: LaneRun): string[] => [
      x.lane,
      int(x.items),
      int(x.providerCalls),
      int(x.textCalls),
      x.lane === 'bulk' ? int(x.jobs) : '—',
      int(x.tokens),
      `$${x.priceUsd.toFixed(4)}`,
      x.lane === 'bulk' ? `${((1 - b.bulk.priceUsd / b.online.priceUsd) * 100).toFixed(0)}% less` : '—',
    ]
    parts.push(
      '### 6. Bulk lane: a backfill online versus through provider batch jobs (fake OpenAI APIs, text-embedding-3-small prices)',
      table(
        [
          'lane',
          'texts',
          'provider HTTP calls',
          'calls carrying texts',
          'batch jobs',
          'tokens',
          'price',
          'saving',
        ],
        [row(b.online), row(b.bulk)],
      ),
    )
  }
  return `${parts.join('\n\n')}\n`
}
