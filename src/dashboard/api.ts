/**
 * The dashboard's JSON API over a `DashboardSource`: what each route reads or changes, and the
 * shape it answers with. Inputs arrive validated (see validate.ts); HTTP is handler.ts's job.
 */
import type { BackfillInfo, FailedFilter, PauseState, WorkerInfo } from '../admin-types.js'
import type { DeadLetter } from '../codec.js'
import type { QueueStats } from '../queue.js'
import type { DashboardSource } from './types.js'

/** Characters of a dead letter's text sent to the page. */
const TEXT_PREVIEW = 200

/** The figures of `stats()` that mean something across processes (`local` is per instance). */
export type SharedStats = Omit<QueueStats, 'local'>

export interface QueueSummary {
  name: string
  stats: SharedStats | null
  workers: number
  pause: PauseState | null
  /** Unfinished items and no live worker: nobody is going to embed them. */
  noLiveWorker: boolean
  /** Why the figures are missing (a Redis error), else absent. */
  error?: string
}

export interface QueueDetail extends QueueSummary {
  workerList: WorkerInfo[]
  backfills: BackfillInfo[]
  /** Server time (epoch ms): heartbeat ages are measured against it, not the browser's clock. */
  time: number
}

export interface DeadLetterView extends Omit<DeadLetter, 'text'> {
  textPreview: string
}

export interface DeadLetterGroup {
  error: string
  status: number | null
  count: number
  keys: string[]
  latestAt: number
}

const shared = ({ local: _local, ...rest }: QueueStats): SharedStats => rest

export const noLiveWorker = (stats: SharedStats | null, workers: number): boolean =>
  stats !== null && stats.unfinished > 0 && workers === 0

async function summary(source: DashboardSource, name: string): Promise<QueueSummary> {
  const q = source.queue(name)
  try {
    const [stats, workers, pause] = await Promise.all([q.stats(), q.workers(), q.pauseState()])
    const s = shared(stats)
    return { name, stats: s, workers: workers.length, pause, noLiveWorker: noLiveWorker(s, workers.length) }
  } catch (err) {
    return {
      name,
      stats: null,
      workers: 0,
      pause: null,
      noLiveWorker: false,
      error: (err as Error)?.message ?? 'unknown error',
    }
  }
}

export async function listQueues(source: DashboardSource, names: string[]): Promise<QueueSummary[]> {
  return Promise.all(names.map((name) => summary(source, name)))
}

export async function queueDetail(source: DashboardSource, name: string): Promise<QueueDetail> {
  const q = source.queue(name)
  const [stats, workerList, pause, backfills] = await Promise.all([
    q.stats(),
    q.workers(),
    q.pauseState(),
    q.backfills(),
  ])
  const s = shared(stats)
  return {
    name,
    stats: s,
    workers: workerList.length,
    pause,
    noLiveWorker: noLiveWorker(s, workerList.length),
    workerList,
    backfills,
    time: Date.now(),
  }
}

/** Dead letters of one page, grouped by error text (and status), biggest group first. */
export function groupByError(items: readonly DeadLetterView[]): DeadLetterGroup[] {
  const groups = new Map<string, DeadLetterGroup>()
  for (const item of items) {
    const id = `${item.status ?? ''}\u0000${item.error}`
    let g = groups.get(id)
    if (!g) {
      g = { error: item.error, status: item.status ?? null, count: 0, keys: [], latestAt: 0 }
      groups.set(id, g)
    }
    g.count++
    g.keys.push(item.key)
    g.latestAt = Math.max(g.latestAt, item.failedAt)
  }
  return [...groups.values()].sort((a, b) => b.count - a.count || b.latestAt - a.latestAt)
}

export async function failedPage(
  source: DashboardSource,
  name: string,
  opts: FailedFilter & { cursor: string; count: number },
): Promise<{ items: DeadLetterView[]; cursor: string; groups: DeadLetterGroup[] }> {
  const page = await source.queue(name).failed(opts)
  const items = page.items.map(({ text, ...rest }): DeadLetterView => {
    const flat = String(text ?? '')
    return {
      ...rest,
      textPreview: flat.length > TEXT_PREVIEW ? `${flat.slice(0, TEXT_PREVIEW - 1)}…` : flat,
    }
  })
  return { items, cursor: page.cursor, groups: groupByError(items) }
}
