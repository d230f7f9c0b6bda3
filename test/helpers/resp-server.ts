/**
 * A tiny RESP2 server for tests of commands no redis-server here can run (the query engine's
 * FT.* commands). It records every command it receives (arguments as Buffers) and answers
 * from a handler with plain values: string → bulk string, number → integer, array → array,
 * null → nil, `{ error }` → error reply. Loopback only; closed by `close()`.
 */
import { createServer, type Server, type Socket } from 'node:net'

export type RespValue = string | number | Buffer | null | RespValue[] | { error: string }

export interface RespServer {
  port: number
  /** Every command received, in order: `[name, ...args]` as Buffers. */
  commands: Buffer[][]
  close(): Promise<void>
}

function encode(v: RespValue): Buffer {
  if (v === null) return Buffer.from('$-1\r\n')
  if (typeof v === 'number') return Buffer.from(`:${v}\r\n`)
  if (typeof v === 'string' || Buffer.isBuffer(v)) {
    const b = Buffer.isBuffer(v) ? v : Buffer.from(v)
    return Buffer.concat([Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n')])
  }
  if (Array.isArray(v)) return Buffer.concat([Buffer.from(`*${v.length}\r\n`), ...v.map(encode)])
  return Buffer.from(`-${v.error}\r\n`)
}

/** Parses as many complete `*n $len arg…` commands as the buffer holds. */
function parse(buf: Buffer): { commands: Buffer[][]; rest: Buffer } {
  const commands: Buffer[][] = []
  let pos = 0
  outer: while (pos < buf.length) {
    if (buf[pos] !== 0x2a) throw new Error('resp-server: inline commands are not supported')
    let eol = buf.indexOf('\r\n', pos)
    if (eol === -1) break
    const n = Number(buf.subarray(pos + 1, eol).toString())
    let p = eol + 2
    const args: Buffer[] = []
    for (let i = 0; i < n; i++) {
      eol = buf.indexOf('\r\n', p)
      if (eol === -1) break outer
      const len = Number(buf.subarray(p + 1, eol).toString())
      if (eol + 2 + len + 2 > buf.length) break outer
      args.push(Buffer.from(buf.subarray(eol + 2, eol + 2 + len)))
      p = eol + 2 + len + 2
    }
    commands.push(args)
    pos = p
  }
  return { commands, rest: buf.subarray(pos) }
}

export async function startRespServer(
  handler: (cmd: string, args: Buffer[]) => RespValue,
): Promise<RespServer> {
  const commands: Buffer[][] = []
  const sockets = new Set<Socket>()
  const server: Server = createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    let pending = Buffer.alloc(0)
    socket.on('data', (chunk) => {
      pending = Buffer.concat([pending, chunk])
      const { commands: got, rest } = parse(pending)
      pending = Buffer.from(rest)
      for (const c of got) {
        commands.push(c)
        const name = c[0]!.toString().toUpperCase()
        let reply: RespValue
        if (name === 'INFO') reply = '# Server\r\nredis_version:7.2.4\r\n'
        else if (name === 'CLIENT' || name === 'SELECT') reply = 'OK'
        else reply = handler(name, c.slice(1))
        socket.write(encode(reply))
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  return {
    port,
    commands,
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
