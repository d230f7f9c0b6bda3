/**
 * The package as a user gets it: `npm pack` (which builds first), then the tarball installed
 * into throwaway consumer projects from the local npm cache, once next to ioredis 5 and once
 * next to ioredis 6, without any optional peer (no prom-client, no @google/genai).
 *
 * In each consumer: every ```ts block of README.md typechecks under `strict` with
 * `skipLibCheck: false`, with `moduleResolution` `nodenext` and `bundler`; an ESM and a
 * CommonJS script embed through the installed package on a private redis-server; and the
 * installed `embedq` bin answers `--help` and `status --json`.
 *
 * One tarball serves both consumers, which install in parallel. Every step has its own bound.
 */
import { existsSync, readFileSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type RedisServer, startRedisServer } from '../helpers/redis-server.js'
import { npmEnv, type RunResult, run, show } from './run.js'

const root = fileURLToPath(new URL('../..', import.meta.url))
const PACK_TIMEOUT_MS = 120_000
const INSTALL_TIMEOUT_MS = 120_000
const TSC_TIMEOUT_MS = 120_000 // 4 runs; ~3 s each alone, up to 35 s seen on a loaded 2-core machine
const SCRIPT_TIMEOUT_MS = 30_000

const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as {
  packages: Record<string, { version?: string }>
}
/** Versions this project already installed, so the consumers resolve from the npm cache. */
const locked = (name: string): string => {
  const version = lock.packages[`node_modules/${name}`]?.version
  if (!version) throw new Error(`${name} is not in package-lock.json`)
  return version
}
const IOREDIS = { 5: locked('ioredis'), 6: locked('ioredis6') } as const
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')

interface PackResult {
  filename: string
  size: number
  unpackedSize: number
  files: Array<{ path: string; size: number; mode: number }>
}

let work: string
let tarball: string
let packed: PackResult
let server: RedisServer
const installs = new Map<5 | 6, { dir: string; result: RunResult }>()

/** The ```ts blocks of README.md, in order. */
function readmeBlocks(): string[] {
  const readme = readFileSync(join(root, 'README.md'), 'utf8')
  return [...readme.matchAll(/^```(?:ts|typescript)\n([\s\S]*?)^```/gm)].map((m) => m[1] ?? '')
}

/** A consumer project: `type: module`, the tarball, one ioredis major, and nothing optional. */
async function createConsumer(major: 5 | 6): Promise<string> {
  const dir = join(work, `consumer-ioredis${major}`)
  await mkdir(join(dir, 'readme'), { recursive: true })
  await writeFile(
    join(dir, 'package.json'),
    JSON.stringify(
      {
        name: `embedq-consumer-ioredis${major}`,
        private: true,
        type: 'module',
        dependencies: {
          embedq: `file:${tarball}`,
          ioredis: IOREDIS[major],
          '@types/node': locked('@types/node'),
        },
      },
      null,
      2,
    ),
  )
  const compilerOptions = {
    strict: true,
    target: 'ES2022',
    lib: ['ES2022'],
    types: ['node'],
    skipLibCheck: false,
    noEmit: true,
  }
  const include = ['readme/*.ts', 'types-only.ts', 'require-types.cts']
  await writeFile(
    join(dir, 'tsconfig.nodenext.json'),
    JSON.stringify({
      compilerOptions: { ...compilerOptions, module: 'NodeNext', moduleResolution: 'NodeNext' },
      include,
    }),
  )
  await writeFile(
    join(dir, 'tsconfig.bundler.json'),
    JSON.stringify({
      compilerOptions: { ...compilerOptions, module: 'ESNext', moduleResolution: 'Bundler' },
      include: ['readme/*.ts', 'types-only.ts'],
    }),
  )
  // Every README block as its own module (top-level await needs one).
  const blocks = readmeBlocks()
  for (const [i, code] of blocks.entries()) {
    await writeFile(join(dir, 'readme', `block-${i + 1}.ts`), `${code}\nexport {}\n`)
  }
  // The whole public surface, prom-client's corner included, with prom-client absent.
  await writeFile(
    join(dir, 'types-only.ts'),
    `import type { QueueMetrics, QueueMetricsOptions, MetricsRegistry, QueueOptions, Embedder } from 'embedq'
import { createQueueMetrics, EmbeddingBatchQueue, startHealthServer } from 'embedq'
import type { Cluster, Redis } from 'ioredis'
export type Surface = [QueueMetrics, QueueMetricsOptions, MetricsRegistry, QueueOptions, Embedder]
export const fns = [createQueueMetrics, startHealthServer] as const
export const accepts = (redis: Redis, cluster: Cluster, embedder: Embedder): EmbeddingBatchQueue[] => [
  new EmbeddingBatchQueue({ redis, embedder }),
  new EmbeddingBatchQueue({ redis: cluster, embedder }),
]
// No embedq command was added to ioredis's own types.
type Leaked = Extract<keyof Redis, \`embedq\${string}\`>
export const none: [Leaked] extends [never] ? true : false = true
`,
  )
  // The CommonJS declarations (index.d.cts), reached through the \`require\` condition.
  await writeFile(
    join(dir, 'require-types.cts'),
    `import embedq = require('embedq')
export const ctor: typeof embedq.EmbeddingBatchQueue = embedq.EmbeddingBatchQueue
`,
  )
  const smoke = (load: string): string => `${load}
const url = process.env.SMOKE_REDIS_URL
const redis = new Redis(url)
const queue = new EmbeddingBatchQueue({
  redis,
  name: process.env.SMOKE_NAME,
  embedder: hashingEmbedder({ dimensions: 16 }),
  maxBatchSize: 2,
  flushIntervalMs: 50,
})
const main = async () => {
  await queue.start()
  const job = await queue.enqueue('smoke:' + process.env.SMOKE_NAME, 'hello from the packed package')
  const flushed = await queue.flushAndWait({ timeoutMs: 10_000 })
  const vector = await job.result
  const blob = await redis.hgetBuffer('smoke:' + process.env.SMOKE_NAME, 'embedding')
  await queue.stop()
  const ioredisVersion = JSON.parse(readFileSync(requireResolve('ioredis/package.json'), 'utf8')).version
  await redis.quit()
  console.log(JSON.stringify({ drained: flushed.drained, dims: vector.length, blobBytes: blob ? blob.length : 0, ioredisVersion }))
}
main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
`
  await writeFile(
    join(dir, 'smoke.mjs'),
    smoke(`import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { Redis } from 'ioredis'
import { EmbeddingBatchQueue, hashingEmbedder } from 'embedq'
const requireResolve = createRequire(import.meta.url).resolve`),
  )
  await writeFile(
    join(dir, 'smoke.cjs'),
    smoke(`const { readFileSync } = require('node:fs')
const { Redis } = require('ioredis')
const { EmbeddingBatchQueue, hashingEmbedder } = require('embedq')
const requireResolve = require.resolve`),
  )
  return dir
}

beforeAll(
  async () => {
    work = await mkdtemp(join(tmpdir(), 'embedq-pack-'))
    const [pack, redis] = await Promise.all([
      run('npm', ['pack', '--json', '--pack-destination', work], {
        cwd: root,
        env: npmEnv(),
        timeoutMs: PACK_TIMEOUT_MS,
      }),
      startRedisServer(),
    ])
    server = redis
    if (pack.code !== 0) throw new Error(show('npm pack', pack))
    // `prepack` prints the build's output on stdout before npm's JSON.
    const jsonStart =
      pack.stdout.lastIndexOf('\n[\n') >= 0 ? pack.stdout.lastIndexOf('\n[\n') : pack.stdout.indexOf('[')
    packed = (JSON.parse(pack.stdout.slice(jsonStart)) as PackResult[])[0]!
    tarball = join(work, packed.filename)

    // Both consumers install at once, from the cache npm ci filled (no network beyond the registry).
    await Promise.all(
      ([5, 6] as const).map(async (major) => {
        const dir = await createConsumer(major)
        const result = await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund'], {
          cwd: dir,
          env: npmEnv(),
          timeoutMs: INSTALL_TIMEOUT_MS,
        })
        installs.set(major, { dir, result })
      }),
    )
  },
  PACK_TIMEOUT_MS + INSTALL_TIMEOUT_MS + 30_000,
)

afterAll(async () => {
  await server?.destroy()
  if (work) await rm(work, { recursive: true, force: true })
})

describe('npm pack', () => {
  it('builds first and ships the built library, the bin and the legal files, nothing else', () => {
    const paths = packed.files.map((f) => f.path).sort()
    for (const needed of [
      'dist/index.js',
      'dist/index.cjs',
      'dist/index.d.ts',
      'dist/index.d.cts',
      'dist/cli.js',
      'package.json',
      'README.md',
      'LICENSE',
      'CHANGELOG.md',
    ]) {
      expect(paths).toContain(needed)
    }
    // No source maps, no Lua sources (they are inside the bundles), no TypeScript sources.
    expect(paths.filter((p) => p.endsWith('.map') || p.startsWith('lua/') || p.startsWith('src/'))).toEqual(
      [],
    )
    const cli = packed.files.find((f) => f.path === 'dist/cli.js')!
    expect(cli.mode & 0o111).not.toBe(0)
  })

  it('the CLI imports the library from shared chunks instead of bundling a second copy', async () => {
    const installed = join(installs.get(5)!.dir, 'node_modules', 'embedq', 'dist')
    const cli = await readFile(join(installed, 'cli.js'), 'utf8')
    expect(cli.startsWith('#!/usr/bin/env node\n')).toBe(true)
    expect(cli).toMatch(/from "\.\/chunk-[A-Z0-9]+\.js"/)
    // The queue class is defined once, in the chunk index.js re-exports.
    expect(cli).not.toMatch(/class EmbeddingBatchQueue\b/)
    const index = await readFile(join(installed, 'index.js'), 'utf8')
    expect(index).not.toMatch(/class EmbeddingBatchQueue\b/)
  })

  it('declares ioredis as a peer (^5 || ^6) and only run-time needs as dependencies', async () => {
    const pkg = JSON.parse(
      await readFile(join(installs.get(5)!.dir, 'node_modules', 'embedq', 'package.json'), 'utf8'),
    ) as Record<string, Record<string, string>>
    expect(pkg.peerDependencies?.ioredis).toBe('^5.0.0 || ^6.0.0')
    expect(pkg.peerDependencies?.['@google/genai']).toBe('^2.0.0 || ^3.0.0')
    expect(pkg.peerDependenciesMeta?.ioredis).toBeUndefined()
    expect(Object.keys(pkg.dependencies ?? {})).toEqual(['commander'])
  })
})

for (const major of [5, 6] as const) {
  describe(`installed next to ioredis ${major}`, () => {
    const dir = (): string => installs.get(major)!.dir
    const bin = (...args: string[]): Promise<RunResult> =>
      run('npx', ['--no-install', 'embedq', ...args], {
        cwd: dir(),
        env: npmEnv(),
        timeoutMs: SCRIPT_TIMEOUT_MS,
      })

    it('installs from the tarball with one ioredis (no nested copy) and no optional peer', async () => {
      const { result } = installs.get(major)!
      expect(result.code, show('npm install', result)).toBe(0)
      const ioredis = JSON.parse(
        await readFile(join(dir(), 'node_modules', 'ioredis', 'package.json'), 'utf8'),
      )
      expect(ioredis.version).toBe(IOREDIS[major])
      expect(existsSync(join(dir(), 'node_modules', 'embedq', 'node_modules', 'ioredis'))).toBe(false)
      expect(existsSync(join(dir(), 'node_modules', 'prom-client'))).toBe(false)
      expect(existsSync(join(dir(), 'node_modules', '@google', 'genai'))).toBe(false)
    })

    for (const resolution of ['nodenext', 'bundler'] as const) {
      it(
        `every README ts block and the whole public surface typecheck (strict, skipLibCheck false, ${resolution})`,
        async () => {
          expect(readmeBlocks().length).toBeGreaterThan(0)
          const r = await run(process.execPath, [tsc, '-p', `tsconfig.${resolution}.json`], {
            cwd: dir(),
            env: npmEnv(),
            timeoutMs: TSC_TIMEOUT_MS,
          })
          expect(r.code, show(`tsc (${resolution})`, r)).toBe(0)
        },
        TSC_TIMEOUT_MS + 5_000,
      )
    }

    for (const script of ['smoke.mjs', 'smoke.cjs']) {
      it(
        `${script} embeds through the installed package on a private redis-server`,
        async () => {
          const name = `smoke-${major}-${script.replace('.', '-')}`
          const r = await run(process.execPath, [script], {
            cwd: dir(),
            env: { ...npmEnv(), SMOKE_REDIS_URL: server.url, SMOKE_NAME: name },
            timeoutMs: SCRIPT_TIMEOUT_MS,
          })
          expect(r.code, show(script, r)).toBe(0)
          expect(JSON.parse(r.stdout.trim())).toEqual({
            drained: true,
            dims: 16,
            blobBytes: 64,
            ioredisVersion: IOREDIS[major],
          })
        },
        SCRIPT_TIMEOUT_MS + 5_000,
      )
    }

    it(
      'the installed bin answers --help',
      async () => {
        const r = await bin('--help')
        expect(r.code, show('embedq --help', r)).toBe(0)
        expect(r.stdout).toMatch(/Usage: embedq/)
        expect(r.stdout).toMatch(/import-python/)
      },
      SCRIPT_TIMEOUT_MS + 5_000,
    )

    it(
      'the installed bin reports a queue with status --json',
      async () => {
        const name = `smoke-${major}-smoke-mjs`
        const r = await bin('status', '--json', '--redis', `redis://127.0.0.1:${server.port}`, '--name', name)
        expect(r.code, show('embedq status --json', r)).toBe(0)
        const status = JSON.parse(r.stdout) as { unfinished: number }
        expect(status.unfinished).toBe(0)
      },
      SCRIPT_TIMEOUT_MS + 5_000,
    )
  })
}
