/**
 * What every CLI command shares: the connection options and the Redis client, errors with
 * exit codes, number parsing, the embedder built from flags, a JSON-lines logger, formatting.
 */
import { type Command, InvalidArgumentError, Option } from 'commander'
import { Cluster, type ClusterOptions, Redis, type RedisOptions } from 'ioredis'
import { QueueAdmin } from '../admin.js'
import type { Embedder } from '../embedder.js'
import { isValidKeyPart } from '../keys.js'
import type { Logger } from '../logger.js'
import { geminiEmbedder, hashingEmbedder, ollamaEmbedder, openAIEmbedder } from '../providers/index.js'
import { EmbeddingBatchQueue } from '../queue.js'
import { Redactor, redactUrl as redactAnyUrl, urlPasswords } from '../redact.js'

// ---------------------------------------------------------------------------------------------
// Errors and exit codes

export const ExitCode = {
  Ok: 0,
  /** Runtime failure: Redis unreachable, a command failed. */
  Failure: 1,
  /** Bad flags or configuration: nothing was done. */
  Usage: 2,
  /** Stopped by SIGINT/SIGTERM before finishing (backfill: progress saved). */
  Interrupted: 130,
} as const

/** An error meant for the operator: printed as one line, no stack trace. */
export class CliError extends Error {
  override name = 'CliError'
  constructor(
    message: string,
    readonly exitCode: number = ExitCode.Failure,
  ) {
    super(message)
  }
}

export const usageError = (message: string): CliError => new CliError(message, ExitCode.Usage)

// ---------------------------------------------------------------------------------------------
// Option parsing

/** A commander argument parser for an integer in [min, max]. */
export function intArg(min: number, max = Number.MAX_SAFE_INTEGER): (value: string) => number {
  return (value) => {
    const n = Number(value)
    if (value.trim() === '' || !Number.isInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(
        max === Number.MAX_SAFE_INTEGER
          ? `expected an integer ≥ ${min}.`
          : `expected an integer in [${min}, ${max}].`,
      )
    }
    return n
  }
}

function keyPartArg(value: string): string {
  if (!isValidKeyPart(value))
    throw new InvalidArgumentError('expected a non-empty string without braces or spaces.')
  return value
}

export interface ConnectionFlags {
  redis: string
  cluster?: boolean
  name: string
  prefix: string
}

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379'

/** `--redis`, `--cluster`, `--name`, `--prefix`: every command takes them. */
export function connectionOptions(cmd: Command): Command {
  return cmd
    .addOption(
      new Option('--redis <url>', 'Redis URL (redis:// or rediss://)')
        .env('REDIS_URL')
        .default(DEFAULT_REDIS_URL),
    )
    .addOption(new Option('--cluster', 'the URL is a seed node of a Redis Cluster').env('EMBEDQ_CLUSTER'))
    .addOption(
      new Option('--name <queue>', 'queue name').env('EMBEDQ_NAME').default('default').argParser(keyPartArg),
    )
    .addOption(
      new Option('--prefix <prefix>', 'prefix of the queue keys')
        .env('EMBEDQ_PREFIX')
        .default('embedq')
        .argParser(keyPartArg),
    )
}

export const jsonOption = (): Option => new Option('--json', 'print machine-readable JSON on stdout')

// ---------------------------------------------------------------------------------------------
// Redis

/**
 * `redis://user:secret@host` → `redis://user:***@host`, also `?password=…`, `rediss://` and
 * strings that do not parse: a password never reaches the output (see `src/redact.ts`).
 */
export const redactUrl = redactAnyUrl

export interface Connection {
  redis: Redis | Cluster
  /** The URL with its password hidden, for messages. */
  url: string
  /** Quits the client (ours: the CLI created it). */
  close(): Promise<void>
}

export interface ConnectOptions {
  /** A worker reconnects without limit after the first connection; one-shot commands give up soon. */
  longLived?: boolean
  /** How long the first connection may take. @default 3_000 */
  connectTimeoutMs?: number
  /**
   * The command, for the connection's CLIENT SETNAME `embedq:cli:<command>` (every connection
   * the CLI opens carries a name, so CLIENT LIST shows who is who).
   */
  command?: string
}

/** The CLIENT SETNAME of a CLI connection (no spaces: Redis refuses them). */
export const cliConnectionName = (command: string | undefined): string =>
  `embedq:cli${command ? `:${command.replace(/[^A-Za-z0-9._-]/g, '-')}` : ''}`

/**
 * Connects to `flags.redis` and resolves once the client is ready, or throws
 * "cannot reach Redis at <url>: <reason>" quickly (no endless reconnect loop at start).
 */
export async function connect(flags: ConnectionFlags, opts: ConnectOptions = {}): Promise<Connection> {
  const shown = redactUrl(flags.redis)
  let parsed: URL
  try {
    parsed = new URL(flags.redis)
    if (!/^rediss?:$/.test(parsed.protocol)) throw new Error('not a redis URL')
  } catch {
    throw usageError(`--redis must be a redis:// or rediss:// URL, received ${JSON.stringify(shown)}`)
  }
  const connectTimeout = opts.connectTimeoutMs ?? 3_000
  let connected = false
  let lastError: Error | undefined
  // Before the first connection: fail at once. After: a worker keeps trying, a one-shot command tries a few times.
  const retry = (times: number): number | null => {
    if (!connected) return null
    if (opts.longLived) return Math.min(times * 200, 2_000)
    return times <= 3 ? times * 200 : null
  }
  const connectionName = cliConnectionName(opts.command)
  const common: RedisOptions = {
    connectionName,
    lazyConnect: true,
    connectTimeout,
    maxRetriesPerRequest: opts.longLived ? 20 : 1,
    retryStrategy: retry,
  }
  let redis: Redis | Cluster
  if (flags.cluster) {
    const tls = parsed.protocol === 'rediss:' ? { tls: {} } : {}
    const clusterOptions: ClusterOptions = {
      lazyConnect: true,
      clusterRetryStrategy: retry,
      maxRedirections: 16,
      redisOptions: {
        connectionName,
        connectTimeout,
        maxRetriesPerRequest: opts.longLived ? 20 : 1,
        ...(parsed.username ? { username: decodeURIComponent(parsed.username) } : {}),
        ...(parsed.password ? { password: decodeURIComponent(parsed.password) } : {}),
        ...tls,
      },
    }
    redis = new Cluster([{ host: parsed.hostname, port: Number(parsed.port || 6379) }], clusterOptions)
  } else {
    redis = new Redis(flags.redis, common)
  }
  redis.on('error', (err: Error) => {
    lastError = err
  })
  redis.on('node error', (err: Error) => {
    lastError = err
  })
  const timer = new Promise<never>((_, reject) => {
    const t = setTimeout(
      () => reject(new Error(`no answer within ${connectTimeout} ms`)),
      connectTimeout + 500,
    )
    t.unref()
  })
  try {
    await Promise.race([redis.connect(), timer])
    // A cluster client is "ready" once it knows the slots; a standalone one after its ready check.
    if (!flags.cluster) await Promise.race([(redis as Redis).ping(), timer])
  } catch (err) {
    // A client that gave up is closed already; disconnecting again would arm a 2 s timer.
    if (redis.status !== 'end') redis.disconnect()
    const reason = lastError?.message ?? (err as Error).message
    const explained = /NOAUTH|WRONGPASS|invalid password|invalid username/i.test(reason)
      ? `${reason} (check the user and password in --redis)`
      : reason
    // A server or proxy may echo what it was sent: the password never reaches the output.
    const safe = new Redactor(urlPasswords(flags.redis)).redact(explained)
    throw new CliError(`cannot reach Redis at ${shown}: ${safe}`, ExitCode.Failure)
  }
  connected = true
  return {
    redis,
    url: shown,
    async close() {
      try {
        await redis.quit()
      } catch {
        redis.disconnect()
      }
    },
  }
}

/** An embedder for instances that never embed (status, failed, retry-failed, backfill). */
const noEmbedder: Embedder = {
  dimensions: 1,
  embed: () => Promise.reject(new Error('embedq CLI: this queue instance does not embed')),
}

/** The operator's view of the queue named by the flags (Redis only, nothing to stop). */
export function queueAdmin(redis: Redis | Cluster, flags: ConnectionFlags): QueueAdmin {
  return new QueueAdmin({ redis, name: flags.name, prefix: flags.prefix })
}

/** A producer-only queue for commands that read or enqueue; the caller stops it. */
export function producerQueue(redis: Redis | Cluster, flags: ConnectionFlags): EmbeddingBatchQueue {
  return new EmbeddingBatchQueue({
    redis,
    embedder: noEmbedder,
    name: flags.name,
    prefix: flags.prefix,
    worker: false,
    // The CLI never awaits results: keep nothing per job, so millions of keys stay bounded.
    trackResults: false,
  })
}

// ---------------------------------------------------------------------------------------------
// Providers

export const PROVIDERS = ['gemini', 'openai', 'ollama', 'hashing'] as const
export type ProviderName = (typeof PROVIDERS)[number]

export interface ProviderFlags {
  provider: ProviderName
  model?: string
  apiKey?: string
  baseUrl?: string
  dimensions?: number
  /** For tests: every provider call waits this long first (abortable). */
  providerLatencyMs?: number
}

/** Builds the embedder from flags; a bad combination is a usage error naming the flag. */
export async function buildEmbedder(
  flags: ProviderFlags,
): Promise<{ embedder: Embedder; description: string }> {
  const opt = <T>(key: string, value: T | undefined): Record<string, T> =>
    value === undefined ? {} : { [key]: value }
  let embedder: Embedder
  let description: string
  try {
    switch (flags.provider) {
      case 'hashing':
        if (flags.model !== undefined) throw usageError('--model does not apply to --provider hashing')
        embedder = hashingEmbedder(opt('dimensions', flags.dimensions))
        description = `hashing (lexical feature hashing, not a semantic model), ${embedder.dimensions} dims`
        break
      case 'gemini': {
        const apiKey = flags.apiKey ?? process.env.GEMINI_API_KEY ?? process.env.GOOGLE_API_KEY
        if (!apiKey) throw usageError('--provider gemini needs an API key: --api-key or GEMINI_API_KEY')
        try {
          await import('@google/genai')
        } catch {
          throw usageError("--provider gemini needs the package '@google/genai' (npm install @google/genai)")
        }
        embedder = geminiEmbedder({
          apiKey,
          ...opt('model', flags.model),
          ...opt('outputDimensionality', flags.dimensions),
          ...opt('baseUrl', flags.baseUrl),
        })
        description = `gemini ${flags.model ?? 'gemini-embedding-001'}, ${embedder.dimensions} dims`
        break
      }
      case 'openai':
        embedder = openAIEmbedder({
          ...opt('apiKey', flags.apiKey),
          ...opt('model', flags.model),
          ...opt('dimensions', flags.dimensions),
          ...opt('baseUrl', flags.baseUrl),
        })
        description = `openai-compatible ${flags.model ?? 'text-embedding-3-small'} at ${redactAnyUrl(flags.baseUrl ?? 'https://api.openai.com/v1')}, ${embedder.dimensions} dims`
        break
      case 'ollama':
        embedder = ollamaEmbedder({
          ...opt('model', flags.model),
          ...opt('dimensions', flags.dimensions),
          ...opt('baseUrl', flags.baseUrl),
        })
        description = `ollama ${flags.model ?? 'nomic-embed-text'} at ${redactAnyUrl(flags.baseUrl ?? 'http://127.0.0.1:11434')}, ${embedder.dimensions} dims`
        break
    }
  } catch (err) {
    if (err instanceof CliError) throw err
    if (err instanceof TypeError || err instanceof RangeError) throw usageError(err.message)
    throw err
  }
  if (flags.providerLatencyMs) {
    embedder = withLatency(embedder, flags.providerLatencyMs)
    description += `, +${flags.providerLatencyMs} ms per call (--provider-latency-ms)`
  }
  return { embedder, description }
}

/** Delays every call by `ms` (abortable through the call's signal): makes batches observable in flight. */
export function withLatency(inner: Embedder, ms: number): Embedder {
  return {
    dimensions: inner.dimensions,
    ...(inner.maxBatchSize === undefined ? {} : { maxBatchSize: inner.maxBatchSize }),
    ...(inner.id === undefined ? {} : { id: inner.id }),
    ...(inner.secrets === undefined ? {} : { secrets: inner.secrets }),
    async embed(texts, opts) {
      await new Promise<void>((resolve, reject) => {
        const signal = opts?.signal
        if (signal?.aborted) return reject(signal.reason ?? new Error('aborted'))
        const onAbort = (): void => {
          clearTimeout(t)
          reject(signal?.reason ?? new Error('aborted'))
        }
        const t = setTimeout(() => {
          signal?.removeEventListener('abort', onAbort)
          resolve()
        }, ms)
        signal?.addEventListener('abort', onAbort, { once: true })
      })
      return inner.embed(texts, opts)
    },
  }
}

// ---------------------------------------------------------------------------------------------
// Logging (JSON lines on stderr, pino-compatible call signature)

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

function serialize(value: unknown): unknown {
  if (value instanceof Error) {
    const out: Record<string, unknown> = { type: value.name, message: value.message }
    const status = (value as { status?: unknown }).status
    if (status !== undefined) out.status = status
    if (value instanceof AggregateError) out.errors = value.errors.map(serialize)
    if (value.cause !== undefined) out.cause = serialize(value.cause)
    return out
  }
  return value
}

/** A logger writing one JSON object per line: `{"time":…,"level":"info","msg":…,…fields}`. */
export function jsonLogger(
  level: LogLevel,
  write: (line: string) => void = (l) => process.stderr.write(l),
): Logger {
  const rank = LOG_LEVELS.indexOf(level)
  const make =
    (lvl: Exclude<LogLevel, 'silent'>) =>
    (obj: object, msg?: string): void => {
      if (LOG_LEVELS.indexOf(lvl) < rank) return
      const fields: Record<string, unknown> = {}
      for (const [k, v] of Object.entries(obj ?? {})) fields[k] = serialize(v)
      write(
        `${JSON.stringify({ time: new Date().toISOString(), level: lvl, ...(msg ? { msg } : {}), ...fields })}\n`,
      )
    }
  return { debug: make('debug'), info: make('info'), warn: make('warn'), error: make('error') }
}

// ---------------------------------------------------------------------------------------------
// Output

export const out = (line = ''): void => {
  process.stdout.write(`${line}\n`)
}

export const printJson = (value: unknown): void => out(JSON.stringify(value))

export const fmtInt = (n: number): string => n.toLocaleString('en-US')

/** `850 ms`, `12.3 s`, `4m 05s`, `2h 10m`, `3d 4h`. */
export function fmtDuration(ms: number): string {
  if (ms < 1_000) return `${Math.round(ms)} ms`
  const s = ms / 1000
  if (s < 60) return `${s.toFixed(1)} s`
  const m = Math.floor(s / 60)
  if (m < 60) return `${m}m ${String(Math.floor(s % 60)).padStart(2, '0')}s`
  const h = Math.floor(m / 60)
  if (h < 48) return `${h}h ${String(m % 60).padStart(2, '0')}m`
  return `${Math.floor(h / 24)}d ${h % 24}h`
}

/** `1 attempt`, `3 attempts` */
export const plural = (n: number, word: string): string => `${fmtInt(n)} ${word}${n === 1 ? '' : 's'}`

export function clip(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ').trim()
  return flat.length <= max ? flat : `${flat.slice(0, max - 1)}…`
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve()
    const done = (): void => {
      clearTimeout(t)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    const t = setTimeout(done, ms)
    signal?.addEventListener('abort', done, { once: true })
  })
}

/**
 * Aborts the returned signal on the first SIGINT/SIGTERM; a second one exits at once with
 * `ExitCode.Interrupted`. `dispose()` removes the handlers.
 */
export function onStopSignal(onFirst?: (signal: NodeJS.Signals) => void): {
  signal: AbortSignal
  received: () => NodeJS.Signals | undefined
  dispose(): void
} {
  const controller = new AbortController()
  let got: NodeJS.Signals | undefined
  const handler = (sig: NodeJS.Signals): void => {
    if (got) {
      process.stderr.write(`embedq: ${sig} again: exiting now\n`)
      process.exit(ExitCode.Interrupted)
    }
    got = sig
    onFirst?.(sig)
    controller.abort()
  }
  process.on('SIGINT', handler)
  process.on('SIGTERM', handler)
  return {
    signal: controller.signal,
    received: () => got,
    dispose() {
      process.off('SIGINT', handler)
      process.off('SIGTERM', handler)
    },
  }
}
