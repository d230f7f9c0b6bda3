/**
 * Every provider behind the real queue: a private redis-server, the remote providers pointed
 * at their fake vendor servers, 25 keys through batches of 10, and each target hash checked
 * for the little-endian float32 blob of exactly the vector its own text gets.
 */
import type { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Embedder } from '../../src/embedder.js'
import { EmbeddingBatchQueue } from '../../src/index.js'
import { geminiEmbedder } from '../../src/providers/gemini.js'
import { hashingEmbedder } from '../../src/providers/hashing.js'
import { ollamaEmbedder } from '../../src/providers/ollama.js'
import { openAIEmbedder } from '../../src/providers/openai.js'
import { uniqueName } from '../helpers/fixtures.js'
import { type RedisServer, startRedisServer } from '../helpers/redis-server.js'
import { GEMINI_KEY, startFakeGemini } from './fake-gemini.js'
import { startFakeOllama } from './fake-ollama.js'
import { OPENAI_KEY, startFakeOpenAI } from './fake-openai.js'

interface Provider {
  embedder: Embedder
  /** Texts of each call the fake vendor received (remote providers). */
  batches?: () => string[][]
  close(): Promise<void>
}

const providers: Record<string, () => Promise<Provider>> = {
  hashing: async () => ({ embedder: hashingEmbedder({ dimensions: 64 }), close: async () => {} }),
  gemini: async () => {
    const fake = await startFakeGemini()
    return {
      embedder: geminiEmbedder({ apiKey: GEMINI_KEY, baseUrl: fake.url, outputDimensionality: 128 }),
      batches: fake.batches,
      close: fake.close,
    }
  },
  openai: async () => {
    const fake = await startFakeOpenAI()
    return {
      embedder: openAIEmbedder({ apiKey: OPENAI_KEY, baseUrl: `${fake.url}/v1`, dimensions: 256 }),
      batches: fake.batches,
      close: fake.close,
    }
  },
  ollama: async () => {
    const fake = await startFakeOllama()
    return { embedder: ollamaEmbedder({ baseUrl: fake.url }), batches: fake.batches, close: fake.close }
  },
}

const textOf = (i: number): string =>
  [`message ${i} about the weather`, `nachricht ${i}: Grüße`, `メッセージ ${i}`, `msg ${i} 🚀 launch`][i % 4]!

function decodeLE(blob: Buffer): number[] {
  const out: number[] = []
  for (let i = 0; i < blob.length; i += 4) out.push(blob.readFloatLE(i))
  return out
}

for (const [name, setup] of Object.entries(providers)) {
  describe(`${name} provider behind the queue`, () => {
    let server: RedisServer
    let redis: Redis
    let provider: Provider
    beforeAll(async () => {
      server = await startRedisServer()
      redis = server.client()
      provider = await setup()
    })
    afterAll(async () => {
      await redis?.quit()
      await server?.destroy()
      await provider?.close()
    })

    it('embeds 25 keys in batches of at most 10 and writes each vector into its own hash', async () => {
      const { embedder } = provider
      const queue = new EmbeddingBatchQueue({ redis, embedder, name: uniqueName(name), maxBatchSize: 10 })
      try {
        await queue.start()
        const keys = Array.from({ length: 25 }, (_, i) => `msg:${queue.name}:${i}`)
        const jobs = await Promise.all(keys.map((key, i) => queue.enqueue(key, textOf(i))))
        const flushed = await queue.flushAndWait({ timeoutMs: 20_000 })
        expect(flushed).toMatchObject({ drained: true, remaining: 0 })

        const results = await Promise.all(jobs.map((job) => job.result))
        const expected = await embedder.embed(keys.map((_, i) => textOf(i)))
        for (const [i, key] of keys.entries()) {
          expect(jobs[i]!.key).toBe(key)
          const blob = await redis.hgetBuffer(key, 'embedding')
          expect(blob).not.toBeNull()
          expect(blob!.length).toBe(embedder.dimensions * 4)
          const stored = decodeLE(blob!)
          expect(stored).toEqual(Array.from(results[i]!))
          // The vector of this key's own text: no misalignment anywhere between queue and provider.
          expect(stored).toEqual(Array.from(expected[i]!))
        }

        if (provider.batches) {
          const calls = provider.batches().slice(0, -1) // the last call is the `expected` check above
          expect(calls.every((texts) => texts.length >= 1 && texts.length <= 10)).toBe(true)
          expect(calls.flat().sort()).toEqual(keys.map((_, i) => textOf(i)).sort())
        }
      } finally {
        await queue.stop()
      }
    })
  })
}
