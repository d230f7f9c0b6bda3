/**
 * Operator mistakes get one clear line on stderr and an exit code, never a stack trace:
 * 2 for bad flags, 1 for an unreachable Redis (fast).
 */
import { describe, expect, it } from 'vitest'
import { runCli, show } from './helpers.js'

describe('embedq errors', () => {
  it('an unknown provider is a usage error (exit 2) that lists the choices', async () => {
    const r = await runCli(['worker', '--provider', 'nope'])
    expect(r.code, show(r)).toBe(2)
    expect(r.stderr).toContain(
      "error: option '--provider <name>' argument 'nope' is invalid. Allowed choices are gemini, openai, ollama, hashing.",
    )
    expect(r.stdout).toBe('')
  })

  it('a bad number, an unknown option or command, and no command at all are usage errors', async () => {
    const runs = await Promise.all([
      runCli(['worker', '--batch-size', 'many']),
      runCli(['status', '--bogus']),
      runCli(['frobnicate']),
      runCli([]),
      runCli(['status', '--name', 'has space']),
      runCli(['backfill']),
    ])
    for (const r of runs) expect(r.code, show(r)).toBe(2)
    expect(runs[0]!.stderr).toContain("argument 'many' is invalid. expected an integer in [1, 1000].")
    expect(runs[1]!.stderr).toContain("error: unknown option '--bogus'")
    expect(runs[2]!.stderr).toContain("error: unknown command 'frobnicate'")
    expect(runs[3]!.stderr).toContain('Usage: embedq [options] [command]')
    expect(runs[4]!.stderr).toContain('expected a non-empty string without braces or spaces')
    expect(runs[5]!.stderr).toContain("error: required option '--match <pattern>' not specified")
  })

  it('a provider without its key, or a malformed URL, is a usage error naming the flag', async () => {
    const gemini = await runCli(['worker', '--provider', 'gemini'])
    expect(gemini.code, show(gemini)).toBe(2)
    expect(gemini.stderr).toBe('embedq: --provider gemini needs an API key: --api-key or GEMINI_API_KEY\n')
    const openai = await runCli(['worker', '--provider', 'openai'])
    expect(openai.code, show(openai)).toBe(2)
    expect(openai.stderr).toContain('option `apiKey` is required for https://api.openai.com/v1')
    const url = await runCli(['status', '--redis', 'localhost:6379'])
    expect(url.code, show(url)).toBe(2)
    expect(url.stderr).toContain('--redis must be a redis:// or rediss:// URL')
  })

  it('an unreachable Redis fails within seconds with "cannot reach Redis" and exit 1, password hidden', async () => {
    const r = await runCli(['status', '--redis', 'redis://user:s3cret@127.0.0.1:1'])
    expect(r.code, show(r)).toBe(1)
    expect(r.stderr).toBe(
      'embedq: cannot reach Redis at redis://user:***@127.0.0.1:1: connect ECONNREFUSED 127.0.0.1:1\n',
    )
    expect(r.ms).toBeLessThan(3_000)
    const worker = await runCli(['worker', '--redis', 'redis://127.0.0.1:1', '--port', '0'])
    expect(worker.code, show(worker)).toBe(1)
    expect(worker.stderr).toContain('embedq: cannot reach Redis at redis://127.0.0.1:1')
    expect(worker.ms).toBeLessThan(3_000)
  })

  it('REDIS_URL is the default of --redis', async () => {
    const r = await runCli(['failed'], { env: { REDIS_URL: 'redis://127.0.0.1:1' } })
    expect(r.code, show(r)).toBe(1)
    expect(r.stderr).toContain('cannot reach Redis at redis://127.0.0.1:1')
  })

  it('--help and --version exit 0', async () => {
    const help = await runCli(['worker', '--help'])
    expect(help.code, show(help)).toBe(0)
    expect(help.stdout).toContain('--provider <name>')
    expect(help.stdout).toContain('--provider-latency-ms <ms>')
    const version = await runCli(['--version'])
    expect(version.code, show(version)).toBe(0)
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/)
  })
})
