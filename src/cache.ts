/**
 * Opt-in vector cache: `<prefix>:cache:<sha256(namespace, dimensions, text)>` → float32
 * blob with a TTL. Chat is full of identical texts ("ok", "thanks"); a hit costs no API
 * call and the vector still lands in the item's own target hash. Cache keys spread over
 * the cluster like target keys, so they are read and written with per-node pipelines.
 */
import { createHash } from 'node:crypto'
import { decodeVector, encodeVector } from './codec.js'
import type { RedisLike } from './scripts.js'
import { pipelinesByNode } from './target-store.js'

export class VectorCache {
  constructor(
    private readonly redis: RedisLike,
    private readonly prefix: string,
    private readonly namespace: string,
    private readonly dimensions: number,
    private readonly ttlSeconds: number,
  ) {}

  key(text: string): string {
    const h = createHash('sha256')
      .update(`${this.namespace}\u0000${this.dimensions}\u0000${text}`)
      .digest('hex')
    return `${this.prefix}:cache:${h}`
  }

  /** The cached vector per text, or null. A read error counts as a miss. */
  async get(texts: readonly string[]): Promise<(Float32Array | null)[]> {
    const keys = texts.map((t) => this.key(t))
    const out: (Float32Array | null)[] = keys.map(() => null)
    await Promise.all(
      pipelinesByNode(this.redis, keys).map(async ({ pipeline, indexes }) => {
        for (const i of indexes) pipeline.getBuffer(keys[i]!)
        const res = await pipeline.exec()
        indexes.forEach((idx, j) => {
          const [err, blob] = res?.[j] ?? [null, null]
          if (!err && Buffer.isBuffer(blob) && blob.length === this.dimensions * 4)
            out[idx] = decodeVector(blob)
        })
      }),
    )
    return out
  }

  async set(entries: readonly { text: string; vector: Float32Array }[]): Promise<void> {
    const keys = entries.map((e) => this.key(e.text))
    await Promise.all(
      pipelinesByNode(this.redis, keys).map(async ({ pipeline, indexes }) => {
        for (const i of indexes)
          pipeline.set(keys[i]!, encodeVector(entries[i]!.vector), 'EX', this.ttlSeconds)
        await pipeline.exec()
      }),
    )
  }
}
