#!/usr/bin/env node
// `npm run test:peers`: the suites again on the other majors of our peer dependencies.
//
// - ioredis 6: the core suites (queue, failures, crash with its child processes) and the
//   cluster suites run on ioredis 6 (the devDependency alias `ioredis6`, installed by `npm ci`).
// - @google/genai 3: the Gemini conformance suite runs on 3.x. 3.x needs Node >= 22: on an older
//   Node this pass is skipped with a message (2.x runs in `npm test`); on Node >= 22 it installs
//   @google/genai@^3 from the registry (npm cache first) into a temp dir.
//
// How: a temp copy of the sources and tests whose node_modules is a directory of symlinks to
// this project's packages, except the swapped one. Node resolves `ioredis` from the copied
// src/ and test/ (and from the crash test's child processes, which run in the copy) to the
// swapped package; every other package is this project's own.
//
// Usage: node scripts/test-peers.mjs [ioredis6] [genai3]   (default: both)
import { spawnSync } from 'node:child_process'
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const rootModules = join(root, 'node_modules')
const vitest = join(rootModules, 'vitest', 'vitest.mjs')
const passes = process.argv.slice(2).length ? process.argv.slice(2) : ['ioredis6', 'genai3']
/** Each vitest run is bounded: a hang fails the pass instead of blocking CI. */
const PASS_TIMEOUT_MS = 15 * 60_000

function log(line) {
  process.stdout.write(`[test:peers] ${line}\n`)
}

function run(cmd, args, opts) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', timeout: PASS_TIMEOUT_MS, ...opts })
  if (r.error) throw r.error
  return r.status ?? 1
}

/** A copy of the project whose node_modules links to ours, with `swaps` (name → dir) replaced. */
function projectCopy(label, swaps) {
  const dir = mkdtempSync(join(tmpdir(), `embedq-${label}-`))
  for (const entry of [
    'src',
    'test',
    'lua',
    'scripts',
    'package.json',
    'tsconfig.json',
    'vitest.config.ts',
  ]) {
    cpSync(join(root, entry), join(dir, entry), { recursive: true })
  }
  const modules = join(dir, 'node_modules')
  mkdirSync(modules)
  for (const entry of readdirSync(rootModules)) {
    if (entry === '.vite' || entry === '.vitest') continue
    if (entry.startsWith('@')) {
      mkdirSync(join(modules, entry))
      for (const sub of readdirSync(join(rootModules, entry))) {
        const name = `${entry}/${sub}`
        if (!(name in swaps)) symlinkSync(join(rootModules, entry, sub), join(modules, entry, sub), 'dir')
      }
    } else if (!(entry in swaps)) {
      symlinkSync(join(rootModules, entry), join(modules, entry), 'dir')
    }
  }
  for (const [name, target] of Object.entries(swaps)) {
    mkdirSync(dirname(join(modules, name)), { recursive: true })
    symlinkSync(target, join(modules, name), 'dir')
  }
  return dir
}

/** The version of `name` that Node resolves (as an ES module import) from the copy's src/. */
function resolvedVersion(dir, name) {
  const script = `
    import { readFileSync } from 'node:fs'
    import { dirname, join } from 'node:path'
    import { fileURLToPath } from 'node:url'
    let d = dirname(fileURLToPath(import.meta.resolve(${JSON.stringify(name)})))
    for (;;) {
      try {
        const p = JSON.parse(readFileSync(join(d, 'package.json'), 'utf8'))
        if (p.name === ${JSON.stringify(name)}) { console.log(p.version); break }
      } catch {}
      if (dirname(d) === d) break
      d = dirname(d)
    }`
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    cwd: join(dir, 'src'),
    encoding: 'utf8',
  })
  return r.stdout.trim()
}

function ioredis6() {
  const target = join(rootModules, 'ioredis6')
  if (!existsSync(target)) throw new Error('node_modules/ioredis6 is missing: run `npm ci` first')
  const dir = projectCopy('ioredis6', { ioredis: target })
  try {
    const version = resolvedVersion(dir, 'ioredis')
    if (!version.startsWith('6.')) throw new Error(`the copy resolves ioredis ${version}, not 6.x`)
    log(`core and cluster suites on ioredis ${version} (copy in ${dir})`)
    return run(
      process.execPath,
      [
        vitest,
        'run',
        'test/queue.test.ts',
        'test/failures.test.ts',
        'test/crash.test.ts',
        'test/cluster',
        'test/package/ioredis-version.test.ts',
      ],
      { cwd: dir, env: { ...process.env, EMBEDQ_EXPECT_IOREDIS_MAJOR: '6' } },
    )
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

function genai3() {
  const major = Number(process.versions.node.split('.')[0])
  if (major < 22 && !process.env.EMBEDQ_FORCE_GENAI3) {
    log(
      `skipped: @google/genai 3.x needs Node >= 22 and this is Node ${process.versions.node}; ` +
        'the Gemini conformance suite ran on @google/genai 2.x in `npm test`.',
    )
    return 0
  }
  const install = mkdtempSync(join(tmpdir(), 'embedq-genai3-install-'))
  let dir
  try {
    log('installing @google/genai@^3 (npm cache first)')
    const code = run(
      'npm',
      [
        'install',
        '--prefix',
        install,
        '--no-save',
        '--no-package-lock',
        '--prefer-offline',
        '--no-audit',
        '--no-fund',
        '@google/genai@^3',
      ],
      { cwd: install },
    )
    if (code !== 0) return code
    const target = join(install, 'node_modules', '@google', 'genai')
    dir = projectCopy('genai3', { '@google/genai': target })
    const version = resolvedVersion(dir, '@google/genai')
    if (!version.startsWith('3.')) throw new Error(`the copy resolves @google/genai ${version}, not 3.x`)
    log(`Gemini conformance suite on @google/genai ${version}`)
    return run(process.execPath, [vitest, 'run', 'test/providers/gemini.test.ts'], { cwd: dir })
  } finally {
    if (dir) rmSync(dir, { recursive: true, force: true })
    rmSync(install, { recursive: true, force: true })
  }
}

const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
log(`peers: ioredis ${pkg.peerDependencies.ioredis}, @google/genai ${pkg.peerDependencies['@google/genai']}`)
const PASSES = { ioredis6, genai3 }
let failed = 0
for (const pass of passes) {
  const code = pass in PASSES ? PASSES[pass]() : 2
  if (code !== 0) {
    log(`${pass}: FAILED (exit ${code}${pass in PASSES ? '' : ': unknown pass'})`)
    failed++
  } else log(`${pass}: ok`)
}
process.exitCode = failed ? 1 : 0
