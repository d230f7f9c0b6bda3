/**
 * `embedq worker`: a standalone worker process configured by flags and environment. Logs JSON
 * lines on stderr, serves /healthz and /metrics with `--port`, and stops gracefully on
 * SIGTERM/SIGINT: running provider calls finish (within `--stop-grace`), everything else goes
 * back to the queue, and the process exits 0. A second signal exits at once.
 */
import { type Command, Option } from 'commander'
import { type HealthServer, startHealthServer } from '../health.js'
import { createQueueMetrics, type QueueMetrics } from '../metrics.js'
import type { QueueOptions } from '../options.js'
import { EmbeddingBatchQueue } from '../queue.js'
import {
  buildEmbedder,
  CliError,
  type ConnectionFlags,
  connect,
  connectionOptions,
  ExitCode,
  intArg,
  jsonLogger,
  LOG_LEVELS,
  type LogLevel,
  PROVIDERS,
  type ProviderFlags,
  usageError,
} from './shared.js'

interface WorkerFlags extends ConnectionFlags, ProviderFlags {
  batchSize?: number
  flushInterval?: number
  concurrency?: number
  maxAttempts?: number
  lease?: number
  stopGrace?: number
  field?: string
  cache?: boolean
  requestsPerMinute?: number
  tokensPerMinute?: number
  port?: number
  host: string
  logLevel: LogLevel
}

/** How often the worker logs its progress (when something changed). */
const PROGRESS_LOG_MS = 30_000

async function runWorker(flags: WorkerFlags): Promise<void> {
  const log = jsonLogger(flags.logLevel)
  const { embedder, description } = await buildEmbedder(flags)
  const conn = await connect(flags, { longLived: true, command: 'worker' })
  const { redis } = conn
  const rateLimit =
    flags.requestsPerMinute || flags.tokensPerMinute
      ? {
          rateLimit: {
            ...(flags.requestsPerMinute ? { requestsPerMinute: flags.requestsPerMinute } : {}),
            ...(flags.tokensPerMinute ? { tokensPerMinute: flags.tokensPerMinute } : {}),
          },
        }
      : {}
  const options: QueueOptions = {
    redis,
    embedder,
    name: flags.name,
    prefix: flags.prefix,
    worker: true,
    logger: log,
    ...(flags.batchSize === undefined ? {} : { maxBatchSize: flags.batchSize }),
    ...(flags.flushInterval === undefined ? {} : { flushIntervalMs: flags.flushInterval }),
    ...(flags.concurrency === undefined ? {} : { concurrency: flags.concurrency }),
    ...(flags.maxAttempts === undefined ? {} : { maxAttempts: flags.maxAttempts }),
    ...(flags.lease === undefined ? {} : { leaseMs: flags.lease }),
    ...(flags.stopGrace === undefined ? {} : { stopGraceMs: flags.stopGrace }),
    ...(flags.field === undefined ? {} : { field: flags.field }),
    ...(flags.cache ? { cache: true } : {}),
    ...rateLimit,
  }
  let queue: EmbeddingBatchQueue
  try {
    queue = new EmbeddingBatchQueue(options)
  } catch (err) {
    await conn.close()
    if (err instanceof TypeError || err instanceof RangeError) throw usageError(err.message)
    throw err
  }

  let metrics: QueueMetrics | undefined
  let health: HealthServer | undefined
  const counts = { embedded: 0, failed: 0, retried: 0 }
  queue.on('embedded', () => {
    counts.embedded++
  })
  queue.on('retrying', ({ key, attempts, delayMs, error }) => {
    counts.retried++
    log.debug({ key, attempts, delayMs, err: error }, 'retrying')
  })
  queue.on('failed', ({ key, attempts, error }) => {
    counts.failed++
    log.warn({ key, attempts, err: error }, 'gave up on an item: zero vector and dead letter')
  })
  queue.on('call', (info) => log.debug(info, 'provider call'))
  // Errors are logged by the queue through `logger`; listening keeps them from being thrown.
  queue.on('error', () => {})

  let stopping: Promise<void> | undefined
  const shutdown = (reason: string): Promise<void> => {
    if (stopping) {
      log.warn({ reason }, 'second signal: exiting now')
      process.exit(ExitCode.Interrupted)
    }
    stopping = (async () => {
      log.info({ reason }, 'stopping: running batches finish, the rest goes back to the queue')
      clearInterval(progressTimer)
      const errors: unknown[] = []
      await queue.stop().catch((e) => errors.push(e))
      metrics?.close()
      await health?.close().catch((e) => errors.push(e))
      await conn.close()
      log.info({ ...counts }, 'worker stopped')
      if (errors.length)
        throw new CliError(`errors while stopping: ${errors.map((e) => (e as Error).message).join('; ')}`)
    })()
    return stopping
  }
  let signalled: (signal: NodeJS.Signals) => void = () => {}
  const stopped = new Promise<NodeJS.Signals>((resolve) => {
    signalled = resolve
  })
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) void shutdown(signal)
    else signalled(signal)
  }
  process.on('SIGTERM', onSignal)
  process.on('SIGINT', onSignal)

  let reported = { ...counts }
  const progressTimer = setInterval(() => {
    if (counts.embedded === reported.embedded && counts.failed === reported.failed) return
    reported = { ...counts }
    log.info({ ...counts }, 'progress')
  }, PROGRESS_LOG_MS)
  progressTimer.unref()

  try {
    if (flags.port !== undefined) {
      try {
        metrics = await createQueueMetrics(queue)
        const { collectDefaultMetrics } = await import('prom-client')
        collectDefaultMetrics({ register: metrics.registry as import('prom-client').Registry })
      } catch (err) {
        log.warn({ err }, '/metrics is off: install prom-client to serve it (npm install prom-client)')
      }
      health = await startHealthServer({
        queue,
        redis,
        port: flags.port,
        host: flags.host,
        ...(metrics ? { metrics } : {}),
      })
      log.info({ port: health.port, url: health.url }, `health server listening on ${health.url}`)
    }
    await queue.start()
    log.info(
      {
        queue: flags.name,
        prefix: flags.prefix,
        redis: conn.url,
        embedder: description,
        batchSize: flags.batchSize,
        flushIntervalMs: flags.flushInterval,
        concurrency: flags.concurrency,
        pid: process.pid,
      },
      'worker started',
    )
  } catch (err) {
    await shutdown('start failed').catch(() => {})
    throw err
  }
  const signal = await stopped
  await shutdown(signal)
  process.off('SIGTERM', onSignal)
  process.off('SIGINT', onSignal)
}

export function registerWorker(program: Command): void {
  connectionOptions(
    program
      .command('worker')
      .description(
        'run a worker: drain the queue, write vectors, serve /healthz and /metrics; stops cleanly on SIGTERM',
      ),
  )
    .addOption(
      new Option('--provider <name>', 'embedding provider')
        .choices(PROVIDERS)
        .env('EMBEDQ_PROVIDER')
        .default('hashing'),
    )
    .addOption(new Option('--model <model>', 'model name (gemini, openai, ollama)').env('EMBEDQ_MODEL'))
    .addOption(
      new Option(
        '--api-key <key>',
        'API key (default: GEMINI_API_KEY for gemini, OPENAI_API_KEY for openai)',
      ),
    )
    .addOption(
      new Option('--base-url <url>', 'API root of the provider (openai, ollama, gemini proxy)').env(
        'EMBEDQ_BASE_URL',
      ),
    )
    .addOption(
      new Option('--dimensions <n>', 'vector length (hashing: 256, gemini: 768, openai: 1536, ollama: 768)')
        .env('EMBEDQ_DIMENSIONS')
        .argParser(intArg(1, 65_536)),
    )
    .addOption(
      new Option('--batch-size <n>', 'items per claim; a full batch flushes at once (default 50)')
        .env('EMBEDQ_BATCH_SIZE')
        .argParser(intArg(1, 1000)),
    )
    .addOption(
      new Option(
        '--flush-interval <ms>',
        'the oldest item waits at most this long for a full batch (default 3600000)',
      )
        .env('EMBEDQ_FLUSH_INTERVAL')
        .argParser(intArg(0)),
    )
    .addOption(
      new Option('--concurrency <n>', 'provider calls in flight (default 4)')
        .env('EMBEDQ_CONCURRENCY')
        .argParser(intArg(1, 1000)),
    )
    .addOption(
      new Option('--max-attempts <n>', 'failed attempts before a dead letter (default 3)').argParser(
        intArg(1, 1000),
      ),
    )
    .addOption(
      new Option('--lease <ms>', 'claim lease without heartbeat (default 30000)').argParser(intArg(1000)),
    )
    .addOption(
      new Option(
        '--stop-grace <ms>',
        'on SIGTERM, how long running calls may finish (default 10000)',
      ).argParser(intArg(0)),
    )
    .addOption(
      new Option('--field <name>', 'target hash field of the vector (default embedding)').env('EMBEDQ_FIELD'),
    )
    .option('--cache', 'cache vectors by text (identical texts cost one call)')
    .addOption(
      new Option('--requests-per-minute <n>', 'shared rate limit of provider calls').argParser(intArg(1)),
    )
    .addOption(
      new Option('--tokens-per-minute <n>', 'shared rate limit of estimated tokens').argParser(intArg(1)),
    )
    .addOption(
      new Option('--port <port>', 'serve GET /healthz and GET /metrics on this port (0: any free port)')
        .env('EMBEDQ_PORT')
        .argParser(intArg(0, 65_535)),
    )
    .addOption(
      new Option('--host <host>', 'interface of the HTTP server (0.0.0.0: every interface)')
        .env('EMBEDQ_HOST')
        .default('127.0.0.1'),
    )
    .addOption(
      new Option('--log-level <level>', 'log level')
        .choices(LOG_LEVELS)
        .env('EMBEDQ_LOG_LEVEL')
        .default('info'),
    )
    .addOption(
      new Option(
        '--provider-latency-ms <ms>',
        'for testing: delay every provider call by this much',
      ).argParser(intArg(1)),
    )
    .action(async (flags: WorkerFlags) => {
      await runWorker(flags)
    })
}
