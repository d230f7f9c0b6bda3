import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { keySlot, queueKeys } from '../../src/keys.js'

const luaDir = join(import.meta.dirname, '..', '..', 'lua')
const files = readdirSync(luaDir).filter((f) => f.endsWith('.lua'))
// Commands whose first argument is not a key.
const KEYLESS = new Set(['TIME', 'PUBLISH'])

describe('invariant 6: Lua scripts touch only declared keys of one slot', () => {
  it('every queue key and channel of a queue hashes to the same cluster slot', () => {
    for (const name of ['default', 'chat', 'a-b_c.1']) {
      const k = queueKeys('embedq', name)
      const slots = new Set(Object.values(k).map(keySlot))
      expect(slots.size).toBe(1)
    }
    // Different queues can land on different slots (they spread over a cluster).
    const many = new Set(Array.from({ length: 50 }, (_, i) => keySlot(queueKeys('embedq', `q${i}`).pending)))
    expect(many.size).toBeGreaterThan(40)
  })

  it('computes the Redis Cluster slot like Redis does', () => {
    // Values from the Redis cluster specification / CLUSTER KEYSLOT.
    expect(keySlot('foo')).toBe(12182)
    expect(keySlot('{user1000}.following')).toBe(keySlot('{user1000}.followers'))
    expect(keySlot('foo{}{bar}')).toBe(keySlot('foo{}{bar}'))
    expect(keySlot('{}foo')).not.toBe(keySlot('foo'))
  })

  it.each(files)('%s names every key it touches through KEYS[i], within its declared count', (file) => {
    const m = /-(\d+|n)\.lua$/.exec(file)
    expect(m, 'file name must be <name>-<numberOfKeys>.lua or <name>-n.lua').not.toBeNull()
    // -n: a variable number of keys, all passed as KEYS (indexed by a loop variable).
    const variable = m![1] === 'n'
    const numberOfKeys = variable ? Number.POSITIVE_INFINITY : Number(m![1])
    const src = readFileSync(join(luaDir, file), 'utf8').replace(/--\[\[[\s\S]*?\]\]/g, '')
    const calls = [...src.matchAll(/redis\.p?call\(\s*'([A-Z]+)'\s*(?:,\s*([^,)]+))?/g)]
    expect(calls.length).toBeGreaterThan(0)
    for (const [, cmd, firstArg] of calls) {
      if (KEYLESS.has(cmd!)) continue
      expect(firstArg?.trim(), `${cmd} in ${file}`).toMatch(
        variable ? /^KEYS\[(\d+|[a-z]\w*)\]$/ : /^KEYS\[\d+\]$/,
      )
    }
    for (const [, idx] of src.matchAll(/KEYS\[(\d+)\]/g)) {
      expect(Number(idx)).toBeGreaterThanOrEqual(1)
      expect(Number(idx)).toBeLessThanOrEqual(numberOfKeys)
    }
    // The header documents every key.
    const header = readFileSync(join(luaDir, file), 'utf8')
    if (variable) expect(header).toContain('KEYS[1..n]')
    else for (let i = 1; i <= numberOfKeys; i++) expect(header).toContain(`KEYS[${i}]`)
  })
})
