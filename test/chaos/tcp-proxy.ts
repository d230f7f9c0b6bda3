/**
 * A TCP proxy in front of redis-server for the repro tests. Bytes can be held back (nothing is
 * lost, nothing is closed), as on a network partition that heals or a connection whose replies
 * are late: `freeze()` holds both directions of every connection; `holdReplies(i)` holds only
 * what Redis sends to the i-th connection made through the proxy (0 = the first).
 */
import { connect, createServer, type Server, type Socket } from 'node:net'

export interface FreezableProxy {
  readonly port: number
  /** Connections made through the proxy so far. */
  readonly connections: number
  freeze(): void
  thaw(): void
  holdReplies(connection: number): void
  releaseReplies(connection: number): void
  close(): Promise<void>
}

export async function startProxy(targetPort: number): Promise<FreezableProxy> {
  const pairs: { client: Socket; upstream: Socket }[] = []
  let frozen = false
  const server: Server = createServer((client) => {
    const upstream = connect(targetPort, '127.0.0.1')
    pairs.push({ client, upstream })
    for (const s of [client, upstream]) {
      s.on('error', () => {
        client.destroy()
        upstream.destroy()
      })
    }
    client.pipe(upstream)
    upstream.pipe(client)
    if (frozen) {
      client.pause()
      upstream.pause()
    }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  const port = typeof address === 'object' && address ? address.port : 0
  const pair = (i: number): { client: Socket; upstream: Socket } => {
    const p = pairs[i]
    if (!p) throw new Error(`no connection #${i} through the proxy (${pairs.length} so far)`)
    return p
  }
  return {
    port,
    get connections() {
      return pairs.length
    },
    freeze() {
      frozen = true
      for (const p of pairs) {
        p.client.pause()
        p.upstream.pause()
      }
    },
    thaw() {
      frozen = false
      for (const p of pairs) {
        p.client.resume()
        p.upstream.resume()
      }
    },
    holdReplies(i) {
      pair(i).upstream.pause()
    },
    releaseReplies(i) {
      pair(i).upstream.resume()
    },
    async close() {
      for (const p of pairs) {
        p.client.destroy()
        p.upstream.destroy()
      }
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
