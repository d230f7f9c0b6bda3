/**
 * Typed wrappers around the Lua scripts in lua/ (bundled by scripts/build-lua.mjs).
 * Scripts are registered with ioredis `defineCommand` (EVALSHA with NOSCRIPT fallback,
 * so a `SCRIPT FLUSH` or a Redis restart is survived) under `embedq*` names.
 */
import type { Cluster, Redis, Result } from 'ioredis'
import { type LuaScriptName, luaScripts } from './generated/lua.js'
import type { QueueKeys } from './keys.js'

type Arg = string | number | Buffer
type ScriptCommand<Context extends { type: 'default' | 'pipeline' }> = (
  ...args: Arg[]
) => Result<unknown, Context>

declare module 'ioredis' {
  interface RedisCommander<Context> {
    embedqEnqueue: ScriptCommand<Context & { type: 'default' | 'pipeline' }>
    embedqClaim: ScriptCommand<Context & { type: 'default' | 'pipeline' }>
    embedqAck: ScriptCommand<Context & { type: 'default' | 'pipeline' }>
    embedqFail: ScriptCommand<Context & { type: 'default' | 'pipeline' }>
    embedqRenew: ScriptCommand<Context & { type: 'default' | 'pipeline' }>
    embedqReclaim: ScriptCommand<Context & { type: 'default' | 'pipeline' }>
    embedqFlush: ScriptCommand<Context & { type: 'default' | 'pipeline' }>
    embedqPause: ScriptCommand<Context & { type: 'default' | 'pipeline' }>
    embedqWriteVector: ScriptCommand<Context & { type: 'default' | 'pipeline' }>
    embedqRateLimit: ScriptCommand<Context & { type: 'default' | 'pipeline' }>
    embedqWriteVectors: ScriptCommand<Context & { type: 'default' | 'pipeline' }>
  }
}

export type RedisLike = Redis | Cluster

const commandName = (name: LuaScriptName): string => `embedq${name[0]!.toUpperCase()}${name.slice(1)}`

/** Registers every script on a client (idempotent: a client shared by queues keeps one set). */
export function defineScripts(redis: RedisLike): void {
  const target = redis as unknown as Record<string, unknown>
  for (const [name, def] of Object.entries(luaScripts) as [
    LuaScriptName,
    (typeof luaScripts)[LuaScriptName],
  ][]) {
    const cmd = commandName(name)
    if (typeof target[cmd] !== 'function') {
      // numberOfKeys undefined: the caller passes the key count first (<name>-n.lua).
      const keys: { numberOfKeys?: number } =
        def.numberOfKeys === undefined ? {} : { numberOfKeys: def.numberOfKeys }
      redis.defineCommand(cmd, { ...keys, lua: def.lua })
    }
  }
}

export interface ClaimedItem {
  key: string
  version: number
  /** Failed attempts before this claim. */
  attempts: number
  text: string
}

export interface ClaimResult {
  items: ClaimedItem[]
  /** -1: nothing queued; otherwise ms until a batch could be due. */
  waitMs: number
  /** Ready items left after this claim. */
  readyLeft: number
}

export type FailMode = 'R' | 'G' | 'N'

export interface FailItem {
  key: string
  version: number
  mode: FailMode
  delayMs: number
  /** Dead-letter JSON (used with mode 'G'). */
  letter: string
}

/** One queue's view of the scripts: fills in its keys and channels. */
export class QueueScripts {
  constructor(
    private readonly redis: RedisLike,
    private readonly k: QueueKeys,
  ) {
    defineScripts(redis)
  }

  /** Returns `{ full }` (nothing written) when the chunk would go over `maxPending`. */
  async enqueue(
    items: readonly { key: string; text: string }[],
    maxBatch: number,
    maxPending: number,
  ): Promise<{ ready: number; versions: number[] } | { full: true; unfinished: number }> {
    const args: Arg[] = [maxBatch, this.k.wakeChannel, maxPending]
    for (const it of items) args.push(it.key, it.text)
    const res = (await this.redis.embedqEnqueue(
      this.k.pending,
      this.k.jobs,
      this.k.versions,
      this.k.seq,
      this.k.retries,
      this.k.failed,
      this.k.delayed,
      ...args,
    )) as (string | number)[]
    if (Number(res[0]) === -1) return { full: true, unfinished: Number(res[1]) }
    return { ready: Number(res[0]), versions: res.slice(1).map(Number) }
  }

  async claim(
    maxBatch: number,
    flushIntervalMs: number,
    leaseMs: number,
    token: string,
  ): Promise<ClaimResult> {
    const k = this.k
    const res = (await this.redis.embedqClaim(
      k.pending,
      k.inflight,
      k.jobs,
      k.versions,
      k.leases,
      k.retries,
      k.flush,
      k.seq,
      k.delayed,
      k.pause,
      maxBatch,
      flushIntervalMs,
      leaseMs,
      token,
    )) as (string | number)[]
    const count = Number(res[0])
    const items: ClaimedItem[] = []
    for (let i = 0; i < count; i++) {
      const b = 3 + i * 4
      items.push({
        key: String(res[b]),
        version: Number(res[b + 1]),
        attempts: Number(res[b + 2]),
        text: String(res[b + 3]),
      })
    }
    return { items, waitMs: Number(res[1]), readyLeft: Number(res[2]) }
  }

  async ack(token: string, items: readonly { key: string; version: number }[]): Promise<string[]> {
    const k = this.k
    const args: Arg[] = [token, k.doneChannel]
    for (const it of items) args.push(it.key, String(it.version))
    return (await this.redis.embedqAck(
      k.inflight,
      k.leases,
      k.jobs,
      k.versions,
      k.retries,
      k.pending,
      k.throughput,
      ...args,
    )) as string[]
  }

  async fail(token: string, items: readonly FailItem[]): Promise<number[]> {
    const k = this.k
    const args: Arg[] = [token, k.doneChannel]
    for (const it of items)
      args.push(it.key, String(it.version), it.mode, Math.max(0, Math.round(it.delayMs)), it.letter)
    const res = (await this.redis.embedqFail(
      k.inflight,
      k.leases,
      k.jobs,
      k.versions,
      k.retries,
      k.delayed,
      k.failed,
      k.pending,
      k.flush,
      ...args,
    )) as number[]
    return res.map(Number)
  }

  async renew(token: string, leaseMs: number, keys: readonly string[]): Promise<string[]> {
    return (await this.redis.embedqRenew(this.k.inflight, this.k.leases, token, leaseMs, ...keys)) as string[]
  }

  async reclaim(limit: number): Promise<number> {
    const k = this.k
    return Number(
      await this.redis.embedqReclaim(
        k.inflight,
        k.leases,
        k.pending,
        k.versions,
        k.flush,
        limit,
        k.wakeChannel,
      ),
    )
  }

  /** Forces a flush everywhere; returns the watermark (highest version queued so far). */
  async flush(): Promise<number> {
    return Number(await this.redis.embedqFlush(this.k.flush, this.k.seq, this.k.wakeChannel))
  }

  async pause(ms: number): Promise<void> {
    await this.redis.embedqPause(this.k.pause, Math.max(1, Math.round(ms)))
  }

  /**
   * Asks the shared limiter to admit one provider call of `tokens` tokens.
   * Returns 0 when admitted, else how long to wait (ms).
   */
  async rateLimit(
    keys: { log: string; total: string },
    windowMs: number,
    requests: number,
    tokensPerWindow: number,
    tokens: number,
    id: string,
  ): Promise<number> {
    return Number(
      await this.redis.embedqRateLimit(
        keys.log,
        keys.total,
        windowMs,
        requests,
        tokensPerWindow,
        Math.ceil(tokens),
        id,
      ),
    )
  }
}
