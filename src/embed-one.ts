/**
 * One embedding call for one text outside the drain loop (a search query), with the same
 * distrust as the worker: the call is bounded by the queue itself (an embedder that ignores
 * its AbortSignal cannot hang the caller) and the reply is checked before it is used.
 */
import { toFloat32 } from './codec.js'
import type { Embedder } from './embedder.js'
import { EmbedderError, toError } from './errors.js'

export async function embedOne(
  embedder: Embedder,
  text: string,
  purpose: 'document' | 'query',
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<Float32Array> {
  const controller = new AbortController()
  const onAbort = (): void => controller.abort(signal?.reason)
  if (signal?.aborted) onAbort()
  else signal?.addEventListener('abort', onAbort, { once: true })
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const err = new EmbedderError(`embedding call did not return within ${timeoutMs} ms`, {
        retryable: true,
      })
      controller.abort(err)
      reject(err)
    }, timeoutMs)
  })
  try {
    let reply: unknown
    try {
      reply = await Promise.race([
        Promise.resolve().then(() => embedder.embed([text], { signal: controller.signal, purpose })),
        deadline,
      ])
    } catch (err) {
      if (err instanceof EmbedderError) throw err
      const e = toError(err)
      throw new EmbedderError(e.message, { retryable: true, cause: e })
    }
    const first = Array.isArray(reply) && reply.length === 1 ? (reply[0] as unknown) : undefined
    const vec =
      first !== null && typeof first === 'object' && typeof (first as ArrayLike<number>).length === 'number'
        ? toFloat32(first as ArrayLike<number>)
        : undefined
    if (!vec) throw new EmbedderError('provider returned no vector for the query', { retryable: false })
    if (vec.length !== embedder.dimensions)
      throw new EmbedderError(
        `provider returned ${vec.length} dimensions for the query, expected ${embedder.dimensions}`,
        { retryable: false },
      )
    for (let i = 0; i < vec.length; i++)
      if (!Number.isFinite(vec[i]!))
        throw new EmbedderError('provider returned a non-finite value for the query', { retryable: false })
    return vec
  } finally {
    clearTimeout(timer)
    signal?.removeEventListener('abort', onAbort)
  }
}
