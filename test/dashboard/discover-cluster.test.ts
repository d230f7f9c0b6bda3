/**
 * Queue discovery on a Redis Cluster: queues live in different slots, so on different masters;
 * every master is scanned.
 */
import type { Cluster } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { discoverQueues } from '../../src/dashboard/discover.js'
import { keySlot, queueKeys } from '../../src/keys.js'
import { type RedisCluster, startRedisCluster } from '../helpers/redis-cluster.js'

let cluster: RedisCluster
let client: Cluster

beforeAll(async () => {
  cluster = await startRedisCluster({ masters: 3 })
  client = cluster.client()
}, 60_000)
afterAll(async () => {
  client?.disconnect()
  await cluster?.destroy()
})

describe('dashboard queue discovery on a cluster', () => {
  it('finds queues whose keys sit on different masters', async () => {
    const names = Array.from({ length: 12 }, (_, i) => `q${i}`)
    for (const name of names) await client.set(queueKeys('cl', name).seq, '1')
    const owners = new Set(
      await Promise.all(names.map((n) => cluster.ownerOf(keySlot(queueKeys('cl', n).seq)))),
    )
    expect(owners.size).toBeGreaterThan(1)
    expect(await discoverQueues(client, 'cl')).toEqual([...names].sort())
  })
})
