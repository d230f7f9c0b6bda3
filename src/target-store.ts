/**
 * Reads and writes vectors in the producers' own hashes. Target keys live on any cluster
 * slot, so commands are grouped into one pipeline per node (one pipeline on a single Redis).
 */
import type { Cluster, Redis } from 'ioredis'
import { TargetVersionConflictError } from './errors.js'
import { keySlot } from './keys.js'
import { type Arg, queueScript, type RedisLike, runScript } from './scripts.js'

export interface VectorWrite {
  key: string
  version: number
  blob: Buffer
  /** A give-up's zero vector: never replaces the same version (someone else's real vector). */
  placeholder?: boolean
}

export interface StoredVector {
  blob: Buffer | null
  version: number | null
}

type Pipeline = ReturnType<Redis['pipeline']>

function isCluster(redis: RedisLike): redis is Cluster {
  return (redis as { isCluster?: boolean }).isCluster === true
}

/**
 * One pipeline per node that serves the keys (a single pipeline on a standalone Redis),
 * with the indexes of the keys it serves. ioredis Cluster pipelines must stay on one node.
 */
export function pipelinesByNode(
  redis: RedisLike,
  keys: readonly string[],
): Array<{ pipeline: Pipeline; indexes: number[] }> {
  if (keys.length === 0) return []
  if (!isCluster(redis)) return [{ pipeline: redis.pipeline(), indexes: keys.map((_, i) => i) }]
  const byNode = new Map<string, number[]>()
  keys.forEach((key, i) => {
    const slot = keySlot(key)
    // Group by the table ioredis checks a pipeline against (`_groupsBySlot`): right after a
    // MOVED, `slots[slot][0]` can disagree with it (ioredis patches an array shared by a range).
    const group = (redis as unknown as { _groupsBySlot?: (number | undefined)[] })._groupsBySlot?.[slot]
    const node = group !== undefined ? `group:${group}` : `slot:${slot}`
    const list = byNode.get(node)
    if (list) list.push(i)
    else byNode.set(node, [i])
  })
  return [...byNode.values()].map((indexes) => ({ pipeline: redis.pipeline() as Pipeline, indexes }))
}

/** The fence's refusal of one write (the worker builds the reported error with the attempts). */
const refused = (it: VectorWrite): TargetVersionConflictError =>
  new TargetVersionConflictError(it.key, it.version, 0)

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
const toError = (e: unknown): Error => (e instanceof Error ? e : new Error(String(e)))

/** Errors of an unavailable or resharding Redis: not the item's fault, worth retrying. */
export function isTransientRedisError(err: Error): boolean {
  return /^(MOVED|ASK|TRYAGAIN|CLUSTERDOWN|LOADING|MASTERDOWN|READONLY|NOSCRIPT)\b|Connection is closed|Too many Cluster redirections|None of startup nodes|ECONNRE|ETIMEDOUT|EPIPE/.test(
    err.message,
  )
}

/**
 * Runs `pipelined` (one pipeline per node), then retries the items that failed with a
 * transient error one command at a time for up to `windowMs`: ioredis does not retry a
 * pipeline whose entries failed differently (some MOVED, some fine), but it follows
 * MOVED/ASK, waits out CLUSTERDOWN/TRYAGAIN and refreshes its slot table for a single command.
 */
async function withRetries(
  count: number,
  windowMs: number,
  pipelined: (errors: (Error | null)[]) => Promise<void>,
  one: (i: number) => Promise<void>,
): Promise<(Error | null)[]> {
  const errors: (Error | null)[] = new Array(count).fill(null)
  await pipelined(errors)
  const deadline = Date.now() + windowMs
  for (let round = 0; ; round++) {
    const again = errors.flatMap((e, i) => (e && isTransientRedisError(e) ? [i] : []))
    if (again.length === 0 || Date.now() >= deadline) break
    if (round > 0) await sleep(Math.min(100 * 2 ** round, 1_000))
    await Promise.all(
      again.map(async (i) => {
        try {
          await one(i)
          errors[i] = null
        } catch (err) {
          errors[i] = toError(err)
        }
      }),
    )
  }
  return errors
}

export class TargetStore {
  /**
   * Whether Lua scripts receive binary arguments intact. Real Redis does; the in-process
   * ioredis-mock does not, so there vectors are written with a plain HSET (no stale fence,
   * which matters only across processes and the mock has one).
   */
  private binarySafe: boolean | undefined

  constructor(
    private readonly redis: RedisLike,
    private readonly field: string,
    private readonly versionField: string,
    /** How long transient Redis errors are retried before they are reported. */
    private readonly retryWindowMs = 10_000,
    /** Given-up mark field: set with a placeholder, removed by a real vector ('' for none). */
    private readonly failedField = '',
  ) {}

  private async probe(): Promise<boolean> {
    if (this.binarySafe !== undefined) return this.binarySafe
    const sample = Buffer.from([0, 255, 128, 10, 0x7b])
    try {
      const back = (await (this.redis as Redis).callBuffer('eval', 'return ARGV[1]', 0, sample)) as unknown
      this.binarySafe = Buffer.isBuffer(back) && back.equals(sample)
    } catch (err) {
      // A script engine that cannot take the argument says so; a connection error is retried later.
      if (!(err instanceof TypeError) && !/lua|script/i.test(String(err))) throw err
      this.binarySafe = false
    }
    return this.binarySafe
  }

  /**
   * Writes each vector unless a newer version is there. Returns per item: null when written,
   * a `TargetVersionConflictError` when the fence refused it (a newer version, or for a
   * placeholder the same version, was there), or the error that kept it from being written.
   * Without the fence (ioredis-mock, see `binarySafe`) nothing is ever refused.
   */
  async write(items: readonly VectorWrite[]): Promise<(Error | null)[]> {
    if (items.length === 0) return []
    const fenced = await this.probe()
    return withRetries(
      items.length,
      this.retryWindowMs,
      async (errors) => {
        if (fenced && !isCluster(this.redis)) {
          await this.writeChunkScript(items, errors)
          return
        }
        await Promise.all(
          pipelinesByNode(
            this.redis,
            items.map((it) => it.key),
          ).map(async ({ pipeline, indexes }) => {
            for (const i of indexes) this.queueWrite(pipeline, items[i]!, fenced)
            try {
              const res = await pipeline.exec()
              indexes.forEach((idx, j) => {
                const [err, written] = res?.[j] ?? [null, 1]
                errors[idx] = err ?? (fenced && Number(written) === 0 ? refused(items[idx]!) : null)
              })
              if (!fenced)
                await this.clearMarks(
                  indexes.filter((i) => !errors[i] && !items[i]!.placeholder),
                  items,
                )
            } catch (err) {
              for (const idx of indexes) errors[idx] = toError(err)
            }
          }),
        )
      },
      async (i) => {
        if ((await this.writeOne(items[i]!, fenced)) === 0) throw refused(items[i]!)
      },
    )
  }

  /**
   * A single Redis: one script call writes the whole chunk with the same fence per target
   * (one command for the chunk instead of one per vector).
   */
  private async writeChunkScript(items: readonly VectorWrite[], errors: (Error | null)[]): Promise<void> {
    const args: Arg[] = [this.field, this.versionField, this.failedField]
    for (const it of items) args.push(String(it.version), it.placeholder ? '1' : '0', it.blob)
    try {
      const res = (await runScript(
        this.redis,
        'writeVectors',
        items.map((it) => it.key),
        args,
      )) as (number | string)[]
      items.forEach((_, i) => {
        const r = res[i]
        errors[i] = typeof r === 'string' ? new Error(r) : Number(r) === 0 ? refused(items[i]!) : null
      })
    } catch (err) {
      errors.fill(toError(err))
    }
  }

  private writeArgs(it: VectorWrite): Arg[] {
    return [
      this.field,
      this.versionField,
      String(it.version),
      it.blob,
      it.placeholder ? '1' : '0',
      this.failedField,
    ]
  }

  /** The unfenced write (ioredis-mock): the fields, with the given-up mark for a placeholder. */
  private plainFields(it: VectorWrite): (string | Buffer)[] {
    const fields: (string | Buffer)[] = [this.field, it.blob, this.versionField, String(it.version)]
    if (it.placeholder && this.failedField) fields.push(this.failedField, '1')
    return fields
  }

  /** Without the fence (ioredis-mock, one process), a written real vector clears the mark afterwards. */
  private async clearMarks(indexes: readonly number[], items: readonly VectorWrite[]): Promise<void> {
    if (!this.failedField || indexes.length === 0) return
    const pipeline = (this.redis as Redis).pipeline()
    for (const i of indexes) pipeline.hdel(items[i]!.key, this.failedField)
    await pipeline.exec()
  }

  /** Queues one target's write on a node's pipeline, fenced when scripts take binary arguments. */
  private queueWrite(pipeline: Pipeline, it: VectorWrite, fenced: boolean): void {
    if (fenced) queueScript(pipeline, 'writeVector', [it.key], this.writeArgs(it))
    else pipeline.hset(it.key, ...this.plainFields(it))
  }

  /** Writes one target on its own (a retry after a transient error, NOSCRIPT included): 1 written, 0 refused. */
  private async writeOne(it: VectorWrite, fenced: boolean): Promise<number> {
    if (fenced) return Number(await runScript(this.redis, 'writeVector', [it.key], this.writeArgs(it)))
    await (this.redis as Redis).hset(it.key, ...this.plainFields(it))
    if (!it.placeholder && this.failedField) await (this.redis as Redis).hdel(it.key, this.failedField)
    return 1
  }

  /** Reads the vector blob and its version from each target (nulls where the read failed). */
  async read(keys: readonly string[]): Promise<StoredVector[]> {
    const out: StoredVector[] = keys.map(() => ({ blob: null, version: null }))
    const store = (idx: number, value: unknown): void => {
      const [blob, version] = value as [Buffer | null, Buffer | null]
      out[idx] = { blob, version: version ? Number(version.toString()) : null }
    }
    await withRetries(
      keys.length,
      this.retryWindowMs,
      async (errors) => {
        await Promise.all(
          pipelinesByNode(this.redis, keys).map(async ({ pipeline, indexes }) => {
            for (const i of indexes) pipeline.hmgetBuffer(keys[i]!, this.field, this.versionField)
            try {
              const res = await pipeline.exec()
              indexes.forEach((idx, j) => {
                const entry = res?.[j]
                if (entry?.[0]) errors[idx] = entry[0]
                else if (entry) store(idx, entry[1])
              })
            } catch (err) {
              for (const idx of indexes) errors[idx] = toError(err)
            }
          }),
        )
      },
      async (i) => {
        store(i, await this.redis.hmgetBuffer(keys[i]!, this.field, this.versionField))
      },
    )
    return out
  }
}
