/**
 * A private Redis Cluster for the cluster suite: `redis-server` processes in cluster mode on
 * free ports, each with its own data dir (AOF, fsync always), joined by hand (config epochs,
 * ADDSLOTSRANGE, MEET, REPLICATE) — quicker than `redis-cli --cluster create`, which sleeps
 * between its steps. Admin commands go over short-lived direct connections, so they work
 * across node restarts. `destroy()` kills every node and removes the dirs; a process-exit
 * hook does the same for a test run that crashed.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Cluster, type ClusterOptions, Redis } from 'ioredis'
import { freePort, type RedisServer, startRedisServer } from './redis-server.js'

export interface RedisClusterOptions {
  /** Masters (at least 3: a cluster needs a majority of masters to agree on failures). @default 3 */
  masters?: number
  /** Replicas per master. @default 0 */
  replicasPerMaster?: 0 | 1
  /** Extra `redis-server` arguments for every node. */
  args?: string[]
}

export interface ClusterNodeInfo {
  id: string
  port: number
  role: 'master' | 'replica'
  /** Slots served (masters only), as [from, to] ranges. */
  slots: [number, number][]
  /** Port of the master a replica follows. */
  masterPort?: number
}

export interface RedisCluster {
  /** Ports of every node, masters first (as started; roles may change after a failover). */
  readonly nodes: readonly number[]
  /** Ports of the nodes started as masters. */
  readonly masters: readonly number[]
  /** A new Cluster client with options fit for tests that break the cluster; the caller closes it. */
  client(overrides?: ClusterOptions): Cluster
  /** One command on one node (a direct, short-lived connection). */
  call(port: number, command: string, ...args: (string | number | Buffer)[]): Promise<unknown>
  /** The cluster's current view of its nodes (from a live node). */
  topology(): Promise<ClusterNodeInfo[]>
  /** Port of the master that serves `slot`. */
  ownerOf(slot: number): Promise<number>
  /** Port of a replica of the master on `port`. */
  replicaOf(port: number): Promise<number>
  /**
   * Manual failover (`CLUSTER FAILOVER` on a replica): the replica catches up with its master,
   * then takes its slots over; the old master becomes its replica. Waits until healthy again.
   */
  failover(replicaPort: number): Promise<void>
  /**
   * Stops one node (SIGKILL by default) and starts it again on its port and data dir, then
   * waits until the cluster is healthy. A restarted master answers CLUSTERDOWN for its first
   * 2 s (Redis's CLUSTER_WRITABLE_DELAY), so this takes a little over 2 s.
   */
  restartNode(port: number, opts?: { kill?: boolean; downMs?: number }): Promise<void>
  /**
   * Moves `slot` with its keys to the master on `toPort`: SETSLOT IMPORTING/MIGRATING, MIGRATE
   * in batches of `batch` keys (waiting `pauseMs` between batches), SETSLOT NODE on every master.
   */
  migrateSlot(slot: number, toPort: number, opts?: { batch?: number; pauseMs?: number }): Promise<void>
  /** Resolves when every node reports `cluster_state:ok` and agrees on who serves every slot. */
  waitHealthy(timeoutMs?: number): Promise<void>
  /** Kills every node and removes their data dirs. */
  destroy(): Promise<void>
}

const SLOTS = 16384
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

const leftovers = new Set<() => void>()
process.once('exit', () => {
  for (const cleanup of leftovers) cleanup()
})

async function onNode<T>(port: number, fn: (c: Redis) => Promise<T>): Promise<T> {
  const c = new Redis({
    port,
    host: '127.0.0.1',
    lazyConnect: true,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
    connectTimeout: 1_000,
    enableOfflineQueue: false,
  })
  c.on('error', () => {})
  try {
    await c.connect()
    return await fn(c)
  } finally {
    c.disconnect()
  }
}

/** Polls `check` (errors count as "not yet") until it returns true or the time runs out. */
async function until(what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      if (await check()) return
    } catch (err) {
      last = err
    }
    if (Date.now() > deadline)
      throw new Error(`redis cluster: timed out after ${timeoutMs} ms waiting for ${what}`, { cause: last })
    await sleep(25)
  }
}

function parseNodes(text: string): (ClusterNodeInfo & { flags: string[]; masterId: string })[] {
  return text
    .trim()
    .split('\n')
    .map((line) => {
      const [id, addr, flagList, masterId, , , , , ...slotSpecs] = line.trim().split(' ')
      const flags = flagList!.split(',')
      const slots: [number, number][] = []
      for (const spec of slotSpecs) {
        if (spec.startsWith('[')) continue // a slot being imported/migrated
        const [from, to] = spec.split('-').map(Number)
        slots.push([from!, to ?? from!])
      }
      return {
        id: id!,
        port: Number(addr!.split('@')[0]!.split(':')[1]),
        role: flags.includes('master') ? 'master' : 'replica',
        slots,
        flags,
        masterId: masterId!,
      }
    })
}

export async function startRedisCluster(opts: RedisClusterOptions = {}): Promise<RedisCluster> {
  const masterCount = opts.masters ?? 3
  const replicas = opts.replicasPerMaster ?? 0
  if (masterCount < 3) throw new RangeError('startRedisCluster: masters must be at least 3')
  const total = masterCount * (1 + replicas)
  const servers = new Map<number, RedisServer>()
  const dirs: string[] = []
  const cleanup = (): void => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
  }
  leftovers.add(cleanup)

  const call = (port: number, command: string, ...args: (string | number | Buffer)[]): Promise<unknown> =>
    onNode(port, (c) => c.call(command, ...args))

  const destroy = async (): Promise<void> => {
    await Promise.allSettled([...servers.values()].map((s) => s.stop({ kill: true })))
    cleanup()
    leftovers.delete(cleanup)
  }

  try {
    // Each node gets its client port and an explicit bus port (`cluster-port`, Redis 7):
    // the default port + 10000 may be taken or out of range for an ephemeral port.
    const ports: { port: number; bus: number }[] = []
    const taken = new Set<number>()
    while (ports.length < total) {
      const port = await freePort()
      const bus = await freePort()
      if (port === bus || taken.has(port) || taken.has(bus)) continue
      taken.add(port).add(bus)
      ports.push({ port, bus })
    }
    await Promise.all(
      ports.map(async ({ port, bus }) => {
        const dir = mkdtempSync(join(tmpdir(), 'embedq-cluster-'))
        dirs.push(dir)
        const server = await startRedisServer({
          port,
          dir,
          args: [
            '--cluster-enabled',
            'yes',
            '--cluster-config-file',
            'nodes.conf',
            '--cluster-node-timeout',
            '1000',
            '--cluster-port',
            String(bus),
            '--appendonly',
            'yes',
            '--appendfsync',
            'always',
            '--save',
            '',
            // A replica syncs at once instead of waiting 5 s for more replicas to join.
            '--repl-diskless-sync-delay',
            '0',
            ...(opts.args ?? []),
          ],
        })
        servers.set(port, server)
      }),
    )
    const masters = ports.slice(0, masterCount)
    const ids = new Map<number, string>()
    await Promise.all(
      ports.map(async ({ port }) => ids.set(port, String(await call(port, 'cluster', 'myid')))),
    )
    // Distinct config epochs before the nodes meet: no epoch-collision round to wait for.
    await Promise.all(
      masters.map(async ({ port }, i) => {
        await call(port, 'cluster', 'set-config-epoch', i + 1)
        const from = Math.floor((i * SLOTS) / masterCount)
        const to = Math.floor(((i + 1) * SLOTS) / masterCount) - 1
        await call(port, 'cluster', 'addslotsrange', from, to)
      }),
    )
    const first = ports[0]!.port
    for (const { port, bus } of ports.slice(1)) await call(first, 'cluster', 'meet', '127.0.0.1', port, bus)
    await until('every node to know every other node', 10_000, async () => {
      for (const { port } of ports) {
        const nodes = parseNodes(String(await call(port, 'cluster', 'nodes')))
        if (nodes.length !== total) return false
        if (nodes.some((n) => n.flags.includes('handshake') || n.flags.includes('noaddr'))) return false
      }
      return true
    })
    for (let r = 0; r < replicas; r++) {
      await Promise.all(
        masters.map(async (m, i) => {
          const replica = ports[masterCount * (r + 1) + i]!
          await call(replica.port, 'cluster', 'replicate', ids.get(m.port)!)
        }),
      )
    }

    const topology = async (): Promise<ClusterNodeInfo[]> => {
      let lastErr: unknown
      for (const port of servers.keys()) {
        try {
          const nodes = parseNodes(String(await call(port, 'cluster', 'nodes')))
          return nodes.map(({ id, port: p, role, slots, masterId }) => {
            const masterPort = nodes.find((n) => n.id === masterId)?.port
            return { id, port: p, role, slots, ...(masterPort !== undefined ? { masterPort } : {}) }
          })
        } catch (err) {
          lastErr = err
        }
      }
      throw new Error('redis cluster: no node answers', { cause: lastErr })
    }

    const waitHealthy = async (timeoutMs = 15_000): Promise<void> => {
      await until('cluster_state:ok on every node, one view of the slots', timeoutMs, async () => {
        let view: string | undefined
        for (const port of servers.keys()) {
          const info = String(await call(port, 'cluster', 'info'))
          if (!info.includes('cluster_state:ok') || !info.includes(`cluster_slots_ok:${SLOTS}`)) return false
          const nodes = parseNodes(String(await call(port, 'cluster', 'nodes')))
          if (nodes.length !== total) return false
          if (nodes.some((n) => n.flags.some((f) => f === 'fail' || f === 'fail?' || f === 'handshake')))
            return false
          const slotView = JSON.stringify(
            nodes
              .filter((n) => n.role === 'master' && n.slots.length)
              .map((n) => `${n.port}:${JSON.stringify(n.slots)}`)
              .sort(),
          )
          if (view !== undefined && view !== slotView) return false
          view = slotView
          // A replica is useful only once it has synced.
          const me = nodes.find((n) => n.flags.includes('myself'))
          if (me?.role === 'replica') {
            const repl = String(await call(port, 'info', 'replication'))
            if (!repl.includes('master_link_status:up')) return false
          }
        }
        return true
      })
    }

    await waitHealthy()

    const ownerOf = async (slot: number): Promise<number> => {
      const nodes = await topology()
      const owner = nodes.find((n) => n.role === 'master' && n.slots.some(([a, b]) => slot >= a && slot <= b))
      if (!owner) throw new Error(`redis cluster: no master serves slot ${slot}`)
      return owner.port
    }

    /**
     * Where each slot moved by `migrateSlot` should be (node id). Back-to-back migrations
     * between two masters can end with each of them pointing at the other for a slot: the
     * epoch bump of a later import lets a stale claim win somewhere, and since neither node
     * claims the slot any more, gossip never repairs it (seen as endless MOVED ping-pong).
     */
    const moved = new Map<number, string>()
    /**
     * Re-asserts every moved slot (the new owner bumps its epoch so its claim wins, stale
     * nodes are told again) until every node agrees on all of them for three looks in a row (about 150 ms).
     */
    const settleMoves = async (what: string): Promise<void> => {
      let clean = 0
      await until(what, 15_000, async () => {
        const nodes = await topology()
        const portOf = new Map(nodes.map((n) => [n.id, n.port]))
        const stale: [port: number, slot: number, id: string][] = []
        for (const port of servers.keys()) {
          const slots = (await call(port, 'cluster', 'slots')) as [number, number, [string, number]][]
          for (const [slot, id] of moved) {
            const owner = slots.find(([a, b]) => slot >= a && slot <= b)
            if (!owner || Number(owner[2][1]) !== portOf.get(id)) stale.push([port, slot, id])
          }
        }
        if (stale.length === 0) {
          if (++clean >= 3) return true
          await sleep(50)
          return false
        }
        clean = 0
        for (const id of new Set(stale.map(([, , id]) => id))) {
          const port = portOf.get(id)
          if (port !== undefined) await call(port, 'cluster', 'bumpepoch')
        }
        for (const [port, slot, id] of stale) await call(port, 'cluster', 'setslot', slot, 'node', id)
        await sleep(100)
        return false
      })
    }

    const clients = new Set<Cluster>()
    return {
      nodes: ports.map((p) => p.port),
      masters: masters.map((p) => p.port),
      call,
      topology,
      ownerOf,
      waitHealthy,
      client(overrides = {}) {
        const c = new Cluster(
          masters.map(({ port }) => ({ host: '127.0.0.1', port })),
          {
            scaleReads: 'master',
            enableOfflineQueue: true,
            // Reconnect quickly and forever: the tests restart nodes on purpose.
            clusterRetryStrategy: (times) => Math.min(50 * times, 500),
            retryDelayOnFailover: 100,
            retryDelayOnClusterDown: 100,
            retryDelayOnTryAgain: 100,
            slotsRefreshTimeout: 1_000,
            redisOptions: { connectTimeout: 1_000 },
            ...overrides,
          },
        )
        c.on('error', () => {}) // node restarts are expected; commands still report their errors
        c.on('node error', () => {})
        clients.add(c)
        c.once('end', () => clients.delete(c))
        return c
      },
      async replicaOf(port) {
        const replica = (await topology()).find((n) => n.role === 'replica' && n.masterPort === port)
        if (!replica) throw new Error(`redis cluster: the master on ${port} has no replica`)
        return replica.port
      },
      async failover(replicaPort) {
        const before = await topology()
        const replica = before.find((n) => n.port === replicaPort)
        const oldMaster = before.find((n) => n.port === replica?.masterPort)
        await call(replicaPort, 'cluster', 'failover')
        await until(`${replicaPort} to take over as a master`, 15_000, async () => {
          const role = (await call(replicaPort, 'role')) as [string]
          return role[0] === 'master'
        })
        // The replica took over its master's slots, moved ones included.
        for (const [slot, id] of moved) if (id === oldMaster?.id && replica) moved.set(slot, replica.id)
        await waitHealthy()
      },
      async restartNode(port, { kill = true, downMs = 0 } = {}) {
        const server = servers.get(port)
        if (!server) throw new Error(`redis cluster: no node on port ${port}`)
        await server.restart({ kill, downMs })
        await waitHealthy()
      },
      async migrateSlot(slot, toPort, { batch = 100, pauseMs = 0 } = {}) {
        const nodes = await topology()
        const from = await ownerOf(slot)
        if (from === toPort) return
        const src = nodes.find((n) => n.port === from)!
        const dst = nodes.find((n) => n.port === toPort)
        if (dst?.role !== 'master') throw new Error(`redis cluster: ${toPort} is not a master`)
        await call(dst.port, 'cluster', 'setslot', slot, 'importing', src.id)
        await call(src.port, 'cluster', 'setslot', slot, 'migrating', dst.id)
        for (;;) {
          const keys = (await onNode(src.port, (c) =>
            c.callBuffer('cluster', 'getkeysinslot', slot, batch),
          )) as Buffer[]
          if (keys.length === 0) break
          await call(src.port, 'migrate', '127.0.0.1', dst.port, '', 0, 10_000, 'KEYS', ...keys)
          if (pauseMs > 0) await sleep(pauseMs)
        }
        // Target first, then source, then everyone else (the documented order).
        await call(dst.port, 'cluster', 'setslot', slot, 'node', dst.id)
        await call(src.port, 'cluster', 'setslot', slot, 'node', dst.id)
        for (const n of nodes) {
          if (n.role === 'master' && n.port !== src.port && n.port !== dst.port)
            await call(n.port, 'cluster', 'setslot', slot, 'node', dst.id)
        }
        moved.set(slot, dst.id)
        await settleMoves(`slot ${slot} to settle on ${toPort}`)
      },
      async destroy() {
        for (const c of clients) c.disconnect()
        await destroy()
      },
    }
  } catch (err) {
    await destroy()
    throw err
  }
}
