/**
 * Prometheus metrics of a queue, through `prom-client` (an optional peer dependency, imported
 * when `createQueueMetrics` is called, so users who do not want metrics never load it).
 *
 * Counters and histograms are fed by the queue's events, so they count what this process did
 * (its enqueues, its worker's provider calls). Gauges are read from `queue.stats()` when
 * Prometheus scrapes, so they describe the whole queue in Redis, whichever process reports
 * them: aggregate them with `max()` across workers, not `sum()`.
 *
 * Several queues can report into one registry: their series differ by the `queue` label.
 */
import type { Counter, Gauge, Histogram, Registry } from 'prom-client'
import { EmbedqError } from './errors.js'
import type { EmbeddingBatchQueue, QueueEvents, QueueStats } from './queue.js'

type PromClient = typeof import('prom-client')

/**
 * The part of a prom-client `Registry` that embedq uses. Structural on purpose: the published
 * types must not import `prom-client` (an optional peer), so a project without it still
 * typechecks with `skipLibCheck: false`. prom-client's `Registry` (e.g. its global `register`)
 * fits; pass one as `registry` and `QueueMetrics.registry` keeps its type.
 */
export interface MetricsRegistry {
  /** `Content-Type` of `metrics()`'s text. */
  readonly contentType: string
  /** Every metric of the registry, in the Prometheus text format. */
  metrics(): Promise<string>
  /** Unregisters one metric by name. */
  removeSingleMetric(name: string): void
}

export interface QueueMetricsOptions<R extends MetricsRegistry = MetricsRegistry> {
  /**
   * Where the metrics are registered. Pass prom-client's global `register` to serve them
   * with your application's own metrics.
   * @default a new `Registry` (prom-client's global registry is left alone)
   */
  registry?: R
  /** Prefix of every metric name. @default 'embedq_' */
  prefix?: string
  /**
   * Constant labels added to this queue's series, e.g. `{ instance: 'worker-1' }`. Every queue
   * registered in one registry (with one prefix) must use the same label names. `queue` and
   * `outcome` are reserved.
   * @default {}
   */
  labels?: Record<string, string>
  /**
   * Histogram buckets (upper bounds), per histogram. Only the first queue of a registry sets them.
   * @default DEFAULT_METRIC_BUCKETS
   */
  buckets?: Partial<MetricBuckets>
}

export interface QueueMetrics<R extends MetricsRegistry = MetricsRegistry> {
  /** The registry the metrics live in (a prom-client `Registry`). */
  readonly registry: R
  /** `Content-Type` of `metrics()`'s text (Prometheus text format). */
  readonly contentType: string
  /** Every metric of the registry, in the Prometheus text format (what `/metrics` serves). */
  metrics(): Promise<string>
  /**
   * Stops following the queue (removes the event listeners) and drops its series. The metrics
   * are unregistered when the last queue of the registry is closed. Idempotent.
   */
  close(): void
}

export interface MetricBuckets {
  /** `batch_size`: texts per provider call. */
  batchSize: readonly number[]
  /** `api_latency_seconds`: duration of one provider call. */
  apiLatencySeconds: readonly number[]
  /** `enqueue_to_vector_seconds`: from enqueue (the version's Redis time) to the vector in the target hash. */
  enqueueToVectorSeconds: readonly number[]
}

export const DEFAULT_METRIC_BUCKETS: Readonly<MetricBuckets> = {
  /** Texts per provider call. */
  batchSize: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2048],
  /** Duration of one provider call, seconds. */
  apiLatencySeconds: [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
  /** From enqueue (the version's Redis time) to the vector in the target hash, seconds. */
  enqueueToVectorSeconds: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600],
}

/** The metrics of one (registry, prefix): shared by every queue that reports there. */
interface Bundle {
  labelNames: string[]
  queues: Set<Attached>
  counters: {
    enqueued: Counter
    embedded: Counter
    failed: Counter
    retried: Counter
    cacheHits: Counter
    cacheMisses: Counter
    apiCalls: Counter
    apiTokens: Counter
    rateLimited: Counter
  }
  histograms: { batchSize: Histogram; apiLatency: Histogram; enqueueToVector: Histogram }
  gauges: Gauge[]
}

interface Attached {
  queue: EmbeddingBatchQueue
  labels: Record<string, string>
  /** The last `stats()` read, shared by the gauges of one scrape. */
  snapshot: { at: number; stats: Promise<QueueStats | undefined> } | undefined
}

/** The gauges, each read from one field of `stats()`. */
const GAUGES: Array<{ name: string; help: string; read: (s: QueueStats) => number }> = [
  {
    name: 'unfinished',
    help: 'Items not finished: waiting, in flight or backing off',
    read: (s) => s.unfinished,
  },
  { name: 'pending', help: 'Items waiting for a worker', read: (s) => s.pending },
  { name: 'inflight', help: 'Items claimed by a worker now', read: (s) => s.inflight },
  { name: 'retrying', help: 'Items backing off after a failed attempt', read: (s) => s.retrying },
  { name: 'dead_letters', help: 'Items given up after maxAttempts (dead letters)', read: (s) => s.failed },
  {
    name: 'oldest_age_seconds',
    help: 'Age of the oldest unfinished item (0 when the queue is empty)',
    read: (s) => (s.oldestAgeMs ?? 0) / 1000,
  },
  {
    name: 'paused_seconds',
    help: 'Claims are paused for this long (shared provider rate limit)',
    read: (s) => s.pausedForMs / 1000,
  },
  {
    name: 'quota_exhausted',
    help: 'Claims are paused until an exhausted provider quota resets (1) or not (0)',
    read: (s) => (s.rateLimit.reason === 'quota' ? 1 : 0),
  },
  {
    name: 'workers',
    help: 'Live workers of the queue (heartbeating into its keys), in every process',
    read: (s) => s.workers,
  },
  {
    name: 'backlog_without_worker',
    help: 'Unfinished items and no live worker: nothing drains the queue (1) or not (0)',
    read: (s) => (s.backlogWithoutWorker ? 1 : 0),
  },
  {
    name: 'paused',
    help: 'An operator paused the queue (embedq pause / queue.pause()) (1) or not (0)',
    read: (s) => (s.paused.paused ? 1 : 0),
  },
  {
    name: 'finished_last_minute',
    help: 'Items finished by all workers over about the last minute',
    read: (s) => s.finishedLastMinute,
  },
  {
    name: 'bulk_waiting',
    help: 'Bulk-lane items waiting to be gathered into a provider batch job',
    read: (s) => s.bulk?.waiting ?? 0,
  },
  {
    name: 'bulk_in_jobs',
    help: 'Bulk-lane items inside submitted provider batch jobs',
    read: (s) => s.bulk?.inJobs ?? 0,
  },
  {
    // Totals kept in Redis by every worker of the queue (monotonic), exposed as gauges.
    name: 'bulk_tokens_total',
    help: 'Estimated tokens sent in provider batch jobs by all workers, ever',
    read: (s) => s.bulk?.tokensSent ?? 0,
  },
  {
    name: 'bulk_saving_usd_total',
    help: 'Estimated USD saved by the bulk lane versus the online price, all workers, ever',
    read: (s) => s.bulk?.estimatedSavingUsd ?? 0,
  },
]

/** States a bulk job can be in, as `embedq_bulk_jobs{state}` reports them (always all of them). */
const BULK_JOB_STATES = ['submitting', 'pending', 'running', 'succeeded', 'failed', 'expired', 'cancelled']

/** How long one `stats()` read serves the gauges (one scrape reads it once). */
const SNAPSHOT_MS = 250

const bundles = new WeakMap<Registry, Map<string, Bundle>>()

async function loadPromClient(): Promise<PromClient> {
  let mod: PromClient & { default?: PromClient }
  try {
    mod = (await import('prom-client')) as PromClient & { default?: PromClient }
  } catch (err) {
    const code = (err as { code?: string }).code
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
      throw new EmbedqError(
        "embedq: createQueueMetrics needs the optional peer dependency 'prom-client' (npm install prom-client)",
        { cause: err },
      )
    }
    throw err
  }
  return typeof mod.Registry === 'function' ? mod : (mod.default as PromClient)
}

function checkOptions(queue: EmbeddingBatchQueue, opts: QueueMetricsOptions): Record<string, string> {
  const q = queue as Partial<EmbeddingBatchQueue> | null
  if (!q || typeof q.stats !== 'function' || typeof q.on !== 'function') {
    throw new TypeError(
      `embedq: createQueueMetrics expects an EmbeddingBatchQueue, received ${String(queue)}`,
    )
  }
  const labels = opts.labels ?? {}
  if (typeof labels !== 'object' || labels === null) {
    throw new TypeError(`embedq: option \`labels\` must be an object, received ${String(labels)}`)
  }
  for (const [name, value] of Object.entries(labels)) {
    if (name === 'queue' || name === 'outcome') {
      throw new TypeError(`embedq: option \`labels\` must not set the reserved label \`${name}\``)
    }
    if (!/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(name) || typeof value !== 'string') {
      throw new TypeError(
        `embedq: option \`labels\` must map label names ([a-zA-Z_][a-zA-Z0-9_]*) to strings, received ${JSON.stringify(name)}: ${typeof value}`,
      )
    }
  }
  const prefix = opts.prefix ?? 'embedq_'
  if (typeof prefix !== 'string' || !/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(prefix)) {
    throw new TypeError(
      `embedq: option \`prefix\` must be a valid metric name prefix, received ${String(prefix)}`,
    )
  }
  return { queue: queue.name, ...labels }
}

function createBundle(
  client: PromClient,
  registry: Registry,
  prefix: string,
  labelNames: string[],
  buckets: MetricBuckets,
): Bundle {
  const queues = new Set<Attached>()
  const registers = [registry]
  const counter = (name: string, help: string, extra: string[] = []): Counter =>
    new client.Counter({ name: `${prefix}${name}`, help, labelNames: [...labelNames, ...extra], registers })
  const histogram = (name: string, help: string, b: readonly number[]): Histogram =>
    new client.Histogram({ name: `${prefix}${name}`, help, labelNames, buckets: [...b], registers })
  const bundle: Bundle = {
    labelNames,
    queues,
    counters: {
      enqueued: counter('enqueued_total', 'Items durably queued by this process'),
      embedded: counter('embedded_total', 'Items whose vector this process wrote'),
      failed: counter('failed_total', 'Items this process gave up on after maxAttempts'),
      retried: counter('retried_total', 'Failed attempts this process scheduled for a retry'),
      cacheHits: counter('cache_hits_total', 'Texts served from the vector cache'),
      cacheMisses: counter('cache_misses_total', 'Texts not found in the vector cache'),
      apiCalls: counter('api_calls_total', 'Provider calls, by outcome (ok or error)', ['outcome']),
      apiTokens: counter(
        'api_tokens_total',
        'Estimated tokens sent to the provider (with a rate limit only)',
      ),
      rateLimited: counter(
        'rate_limited_calls_total',
        'Provider calls of this process refused by a rate limit or quota (no attempt charged)',
      ),
    },
    histograms: {
      batchSize: histogram('batch_size', 'Texts per provider call', buckets.batchSize),
      apiLatency: histogram('api_latency_seconds', 'Duration of provider calls', buckets.apiLatencySeconds),
      enqueueToVector: histogram(
        'enqueue_to_vector_seconds',
        'Time from enqueue to the vector in the target hash',
        buckets.enqueueToVectorSeconds,
      ),
    },
    gauges: GAUGES.map(
      ({ name, help, read }) =>
        new client.Gauge({
          name: `${prefix}${name}`,
          help,
          labelNames,
          registers,
          async collect() {
            for (const a of queues) {
              const stats = await snapshot(a)
              if (stats) this.set(a.labels, read(stats))
              else this.remove(a.labels) // Redis unreachable: no value rather than a stale one
            }
          },
        }),
    ),
  }
  bundle.gauges.push(
    new client.Gauge({
      name: `${prefix}bulk_jobs`,
      help: 'Provider batch jobs of the bulk lane not settled yet, by state',
      labelNames: [...labelNames, 'state'],
      registers,
      async collect() {
        this.reset()
        for (const a of queues) {
          const stats = await snapshot(a)
          if (!stats) continue
          for (const state of BULK_JOB_STATES)
            this.set({ ...a.labels, state }, stats.bulk?.jobs.filter((j) => j.state === state).length ?? 0)
        }
      },
    }),
  )
  return bundle
}

function snapshot(a: Attached): Promise<QueueStats | undefined> {
  const now = Date.now()
  if (!a.snapshot || now - a.snapshot.at > SNAPSHOT_MS) {
    a.snapshot = { at: now, stats: a.queue.stats().catch(() => undefined) }
  }
  return a.snapshot.stats
}

/**
 * Registers Prometheus metrics for `queue` and keeps them up to date until `close()`.
 *
 * @example
 * const metrics = await createQueueMetrics(queue)
 * http.createServer(async (req, res) => {
 *   res.setHeader('content-type', metrics.contentType)
 *   res.end(await metrics.metrics())
 * }).listen(9464)
 */
export async function createQueueMetrics<R extends MetricsRegistry = MetricsRegistry>(
  queue: EmbeddingBatchQueue,
  opts: QueueMetricsOptions<R> = {},
): Promise<QueueMetrics<R>> {
  const labels = checkOptions(queue, opts)
  const client = await loadPromClient()
  // Whatever was passed is used as prom-client's Registry (the type is structural only).
  const registry = (opts.registry ?? new client.Registry()) as unknown as Registry
  const prefix = opts.prefix ?? 'embedq_'
  const labelNames = Object.keys(labels)

  let byPrefix = bundles.get(registry)
  if (!byPrefix) {
    byPrefix = new Map()
    bundles.set(registry, byPrefix)
  }
  let bundle = byPrefix.get(prefix)
  if (bundle) {
    if (bundle.labelNames.join() !== labelNames.join()) {
      throw new TypeError(
        `embedq: every queue in one registry must use the same labels: this registry has [${bundle.labelNames}], received [${labelNames}]`,
      )
    }
  } else {
    bundle = createBundle(client, registry, prefix, labelNames, {
      ...DEFAULT_METRIC_BUCKETS,
      ...opts.buckets,
    })
    byPrefix.set(prefix, bundle)
  }
  const { counters: c, histograms: h } = bundle
  const attached: Attached = { queue, labels, snapshot: undefined }
  bundle.queues.add(attached)

  const withOutcome = (outcome: string): Record<string, string> => ({ ...labels, outcome })
  const listeners: { [K in keyof QueueEvents]?: (...args: QueueEvents[K]) => void } = {
    enqueued: ({ count }) => c.enqueued.inc(labels, count),
    embedded: ({ ms }) => {
      c.embedded.inc(labels)
      h.enqueueToVector.observe(labels, ms / 1000)
    },
    failed: () => c.failed.inc(labels),
    retrying: () => c.retried.inc(labels),
    rateLimited: () => c.rateLimited.inc(labels),
    cache: ({ hits, misses }) => {
      if (hits) c.cacheHits.inc(labels, hits)
      if (misses) c.cacheMisses.inc(labels, misses)
    },
    call: ({ size, ms, ok, tokens }) => {
      c.apiCalls.inc(withOutcome(ok ? 'ok' : 'error'))
      if (tokens > 0) c.apiTokens.inc(labels, tokens)
      h.batchSize.observe(labels, size)
      h.apiLatency.observe(labels, ms / 1000)
    },
  }
  const on = queue.on.bind(queue) as unknown as (event: string, listener: (...args: never[]) => void) => void
  const off = queue.off.bind(queue) as unknown as (
    event: string,
    listener: (...args: never[]) => void,
  ) => void
  for (const [event, listener] of Object.entries(listeners)) on(event, listener)

  // Series start at 0, so rate() and absent() work before the first event.
  for (const counter of Object.values(c)) if (counter !== c.apiCalls) counter.inc(labels, 0)
  c.apiCalls.inc(withOutcome('ok'), 0)
  c.apiCalls.inc(withOutcome('error'), 0)

  let closed = false
  const owner = bundle
  const prefixes = byPrefix
  return {
    registry: registry as unknown as R,
    contentType: registry.contentType,
    metrics: () => registry.metrics(),
    close() {
      if (closed) return
      closed = true
      for (const [event, listener] of Object.entries(listeners)) off(event, listener)
      owner.queues.delete(attached)
      for (const counter of Object.values(owner.counters)) {
        if (counter === owner.counters.apiCalls) {
          counter.remove(withOutcome('ok'))
          counter.remove(withOutcome('error'))
        } else counter.remove(labels)
      }
      for (const histogram of Object.values(owner.histograms)) histogram.remove(labels)
      for (const gauge of owner.gauges) gauge.remove(labels)
      if (owner.queues.size === 0) {
        const names = [
          ...Object.values(owner.counters),
          ...Object.values(owner.histograms),
          ...owner.gauges,
        ].map((m) => (m as unknown as { name: string }).name)
        for (const name of names) registry.removeSingleMetric(name)
        prefixes.delete(prefix)
      }
    },
  }
}
