/**
 * One embedding call for one text outside the drain loop (a search query), through the same
 * guard as the worker's calls: bounded by the queue itself (an embedder that ignores its
 * AbortSignal cannot hang the caller), every throw typed and redacted, the reply checked.
 */
import type { Embedder } from './embedder.js'
import { callEmbedder, checkReply } from './embedder-guard.js'
import type { Redactor } from './redact.js'

export async function embedOne(
  embedder: Embedder,
  text: string,
  purpose: 'document' | 'query',
  timeoutMs: number,
  redactor: Redactor,
  signal: AbortSignal = new AbortController().signal,
): Promise<Float32Array> {
  const reply = await callEmbedder(embedder, [text], signal, timeoutMs, redactor, purpose)
  const [outcome] = checkReply(reply, 1, embedder.dimensions)
  if (!outcome || 'error' in outcome) throw redactor.error(outcome?.error)
  return outcome.vector
}
