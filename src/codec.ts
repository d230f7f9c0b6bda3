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
  const out: DoneEntry[] = []
  let i = 0
  const readUntilColon = (): string => {
    const end = raw.indexOf(0x3a, i)
    if (end === -1) throw new Error('malformed done message')
    const s = raw.toString('latin1', i, end)
    i = end + 1
    return s
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
  return out
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
