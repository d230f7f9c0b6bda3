/**
 * Which ioredis the suites run on: the one this project resolves fits the peer range, and in
 * the ioredis 6 pass of `npm run test:peers` (EMBEDQ_EXPECT_IOREDIS_MAJOR=6) it is 6.x, so that
 * pass cannot silently run on 5.
 */
import { createRequire } from 'node:module'
import { describe, expect, it } from 'vitest'

const require = createRequire(import.meta.url)

describe('the ioredis under test', () => {
  it('is a major the package accepts as a peer (and the expected one in a peer pass)', () => {
    const { version } = require('ioredis/package.json') as { version: string }
    const major = Number(version.split('.')[0])
    expect([5, 6]).toContain(major)
    const expected = process.env.EMBEDQ_EXPECT_IOREDIS_MAJOR
    if (expected) expect(major).toBe(Number(expected))
  })
})
