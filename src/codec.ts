/** Vector blobs and the compact messages the Lua scripts publish. */

import { endianness } from 'node:os'

/** On a little-endian host (x86, ARM) a Float32Array's bytes already are the blob format. */
const LITTLE_ENDIAN = endianness() === 'LE'

/** Float32 little-endian bytes of a vector: the format Redis vector search indexes. */
export function encodeVector(values: ArrayLike<number>): Buffer {
  if (LITTLE_ENDIAN) {
    const f32 = values instanceof Float32Array ? values : Float32Array.from(values)
    return Buffer.from(f32.buffer, f32.byteOffset, f32.byteLength)
  }
  const buf = Buffer.allocUnsafe(values.length * 4)
  for (let i = 0; i < values.length; i++) buf.writeFloatLE(values[i] as number, i * 4)
  return buf
}

/** A vector from its blob (a copy: the blob's memory may be reused). */
export function decodeVector(blob: Buffer): Float32Array {
  const n = blob.length >> 2
  if (LITTLE_ENDIAN) {
    const out = new Float32Array(n)
    new Uint8Array(out.buffer).set(blob.subarray(0, n * 4))
    return out
  }
  const out = new Float32Array(n)
  for (let i = 0; i < n; i++) out[i] = blob.readFloatLE(i * 4)
  return out
}

export function toFloat32(values: ArrayLike<number>): Float32Array {
  return values instanceof Float32Array ? values : Float32Array.from(values as ArrayLike<number>)
}

export interface DoneEntry {
  /** 'D' done (vector written), 'F' given up (dead letter). */
  readonly status: 'D' | 'F'
  readonly version: number
  readonly key: string
  /** For 'F': the dead-letter JSON. */
  readonly message: string
}

/**
 * Parses `<status><version>:<keylen>:<key><msglen>:<msg>` entries, concatenated.
 * Lengths are in bytes (Lua's `#`), so the message is parsed as a Buffer.
 */
export function parseDoneMessage(raw: Buffer): DoneEntry[] {
  return readDoneMessage(raw).entries
}

/** Where a done message sits in the done log (the capped stream next to the channel). */
export interface DoneLogPosition {
  /** ID of the log entry written just before this one ('0-0' when the log was empty). */
  readonly prev: string
  /** ID of this message's log entry. */
  readonly id: string
}

const STREAM_ID = /^\d+-\d+$/

/**
 * A done message: an optional `#<prev id>:<id>:` header (present when the queue keeps a done
 * log), then the entries. The header lets a subscriber tell a missed message from none.
 */
export function readDoneMessage(raw: Buffer): { log: DoneLogPosition | undefined; entries: DoneEntry[] } {
  const out: DoneEntry[] = []
  let i = 0
  const readUntilColon = (): string => {
    const end = raw.indexOf(0x3a, i)
    if (end === -1) throw new Error('malformed done message')
    const s = raw.toString('latin1', i, end)
    i = end + 1
    return s
  }
  let log: DoneLogPosition | undefined
  if (raw[0] === 0x23) {
    i = 1
    const prev = readUntilColon()
    const id = readUntilColon()
    if (!STREAM_ID.test(prev) || !STREAM_ID.test(id)) throw new Error('malformed done message: log position')
    log = { prev, id }
  }
  while (i < raw.length) {
    const status = String.fromCharCode(raw[i] as number)
    i++
    const version = Number(readUntilColon())
    const keyLen = Number(readUntilColon())
    const key = raw.toString('utf8', i, i + keyLen)
    i += keyLen
    const msgLen = Number(readUntilColon())
    const message = raw.toString('utf8', i, i + msgLen)
    i += msgLen
    if (status !== 'D' && status !== 'F') throw new Error(`malformed done message: status ${status}`)
    out.push({ status, version, key, message })
  }
  return { log, entries: out }
}

/** Orders two Redis stream IDs (`<ms>-<seq>`): negative, 0 or positive like a comparator. */
export function compareStreamIds(a: string, b: string): number {
  const da = a.indexOf('-')
  const db = b.indexOf('-')
  const ms = Number(a.slice(0, da)) - Number(b.slice(0, db))
  if (ms !== 0) return ms
  return Number(a.slice(da + 1)) - Number(b.slice(db + 1))
}

/** The smallest stream ID after `id` (an inclusive XRANGE start that skips `id`, Redis 5+). */
export function nextStreamId(id: string): string {
  const d = id.indexOf('-')
  return `${id.slice(0, d)}-${Number(id.slice(d + 1)) + 1}`
}

/** What the `failed` hash holds per key. */
export interface DeadLetter {
  key: string
  version: number
  text: string
  error: string
  status?: number
  /** Why it was given up when not by failed attempts: `target-version-conflict` (the write fence refused it). */
  reason?: string
  attempts: number
  failedAt: number
}
