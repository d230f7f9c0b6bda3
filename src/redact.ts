/**
 * Redaction of secrets the library was given (API keys, bearer tokens, Redis passwords) from
 * everything it emits: error messages and causes, dead letters, events, logs. A remote server
 * may echo a key back in its error body, so redaction runs on text we did not write ourselves.
 */

/** What a redacted secret is replaced with. */
export const REDACTED = '[redacted]'

/**
 * Secrets shorter than this are not redacted: replacing every "ab" in a message would make it
 * unreadable, and a key that short is no secret anyway.
 */
export const MIN_SECRET_LENGTH = 4

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

/** The forms a secret can take in text: as is, URL-encoded (both cases of hex), form-encoded, JSON-escaped. */
function secretForms(secret: string): string[] {
  const forms = new Set<string>([secret])
  const uri = encodeURIComponent(secret)
  forms.add(uri)
  forms.add(uri.replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase()))
  forms.add(uri.replace(/%20/g, '+'))
  forms.add(encodeURI(secret))
  forms.add(JSON.stringify(secret).slice(1, -1))
  return [...forms]
}

/**
 * Replaces every known secret in text. Built once per set of secrets; `redact` is one regular
 * expression pass (longest forms first, so a secret that contains another is replaced whole).
 */
export class Redactor {
  private readonly pattern: RegExp | undefined

  constructor(secrets: Iterable<string | undefined | null> = []) {
    const forms = new Set<string>()
    for (const s of secrets) {
      if (typeof s !== 'string' || s.length < MIN_SECRET_LENGTH) continue
      for (const f of secretForms(s)) forms.add(f)
    }
    const sorted = [...forms].sort((a, b) => b.length - a.length)
    this.pattern = sorted.length ? new RegExp(sorted.map(escapeRegExp).join('|'), 'g') : undefined
  }

  /** Whether there is anything to redact at all. */
  get active(): boolean {
    return this.pattern !== undefined
  }

  /** `text` with every known secret replaced by `[redacted]`. */
  redact(text: string): string {
    if (!this.pattern || typeof text !== 'string') return text
    return text.replace(this.pattern, REDACTED)
  }

  /**
   * Redacts an error in place and returns it: its message, stack, string properties (a body a
   * provider attached) and its cause chain (AggregateError's errors too). Redacting in place
   * keeps the error's class and fields, so `instanceof` and `retryable` still work downstream.
   * A property that cannot be read or written is left alone; cycles are followed once.
   */
  error<T>(err: T): T {
    if (this.pattern) this.walk(err, new Set(), 0)
    return err
  }

  private walk(value: unknown, seen: Set<object>, depth: number): void {
    if (typeof value !== 'object' || value === null || seen.has(value) || depth > 8) return
    if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) return
    seen.add(value)
    for (const prop of ['message', 'stack', 'cause']) this.redactProp(value, prop)
    let names: string[] = []
    try {
      names = Object.keys(value).slice(0, 200)
    } catch {
      return
    }
    for (const name of names) this.redactProp(value, name)
    // Nested objects: the cause chain, AggregateError's errors, a body or response a provider attached.
    for (const name of new Set(['cause', 'errors', ...names])) {
      try {
        this.walk((value as Record<string, unknown>)[name], seen, depth + 1)
      } catch {
        // a getter that throws: nothing more to redact there
      }
    }
  }

  private redactProp(target: object, prop: string): void {
    try {
      const v = (target as Record<string, unknown>)[prop]
      if (typeof v !== 'string') return
      const r = this.redact(v)
      if (r === v) return
      const desc = Object.getOwnPropertyDescriptor(target, prop)
      if (desc && 'value' in desc) Object.defineProperty(target, prop, { ...desc, value: r })
      else (target as Record<string, unknown>)[prop] = r
    } catch {
      // frozen or a throwing getter: leave it
    }
  }
}

/** `text` with every secret replaced (a one-off; build a `Redactor` to reuse). */
export function redactSecrets(text: string, secrets: Iterable<string | undefined | null>): string {
  return new Redactor(secrets).redact(text)
}

/** Headers whose values are credentials. */
const SECRET_HEADER = /authorization|api[-_]?key|token|secret|password|cookie/i

/**
 * The secrets in a provider's configuration: the API key, credential header values (and the
 * token after `Bearer `/`Basic `), and the password of a base URL with `user:pass@`.
 */
export function providerSecrets(
  apiKey: string | undefined,
  headers: Record<string, string> = {},
  baseUrl?: string,
): string[] {
  const out: string[] = []
  if (typeof apiKey === 'string') out.push(apiKey)
  for (const [name, value] of Object.entries(headers)) {
    if (typeof value !== 'string' || !SECRET_HEADER.test(name)) continue
    out.push(value)
    const m = /^\s*\S+\s+(.+)$/.exec(value)
    if (m) out.push(m[1]!.trim())
  }
  if (baseUrl) {
    try {
      const u = new URL(baseUrl)
      if (u.password) out.push(decodeURIComponent(u.password), u.password)
    } catch {
      // an invalid URL was refused by the factory already
    }
  }
  return out.filter((s) => s.length >= MIN_SECRET_LENGTH)
}

/** What a password in a printed URL is replaced with (`redis://user:***@host`). */
export const URL_MASK = '***'

/**
 * A URL (or something meant to be one) safe to print: the password of `user:pass@` (anything
 * after a colon and before the last `@`), a lone `secret@` userinfo, and every `password=`
 * query value are replaced with `***`, whether or not the string parses as a URL.
 */
export function redactUrl(raw: string): string {
  if (typeof raw !== 'string') return raw
  let s = raw
  const scheme = /^([a-z][a-z0-9+.-]*:\/\/)/i.exec(s)
  const start = scheme ? scheme[1]!.length : 0
  // The authority ends at the first '/', '?' or '#' after the last '@' (a password may hold '/').
  const at = s.lastIndexOf('@')
  if (at >= start) {
    const userinfo = s.slice(start, at)
    const colon = userinfo.indexOf(':')
    if (colon !== -1) {
      s = `${s.slice(0, start + colon + 1)}${URL_MASK}${s.slice(at)}`
    } else if (scheme && userinfo.length > 0 && !/[/?#]/.test(userinfo)) {
      // redis://secret@host: a lone userinfo is a password for Redis (AUTH <password>).
      s = `${s.slice(0, start)}${URL_MASK}${s.slice(at)}`
    }
  }
  return s.replace(/((?:^|[?&;\s])(?:password|pass|pwd)=)[^&#\s]*/gi, `$1${URL_MASK}`)
}

/**
 * Makes a provider's embedder redact its own secrets from every error `embed` throws (message,
 * cause chain, attached bodies) and exposes them as a non-enumerable `secrets`, so the queue
 * redacts them too and logging the embedder object does not print them.
 */
export function withSecrets<E extends { embed(texts: string[], opts?: unknown): Promise<unknown> }>(
  embedder: E,
  secrets: readonly string[],
): E & { readonly secrets: readonly string[] } {
  const redactor = new Redactor(secrets)
  const embed = embedder.embed
  const out = Object.assign(embedder, {
    async embed(this: unknown, texts: string[], opts?: unknown) {
      try {
        return await embed.call(embedder, texts, opts)
      } catch (err) {
        throw redactor.error(err)
      }
    },
  })
  Object.defineProperty(out, 'secrets', { value: Object.freeze([...secrets]), enumerable: false })
  return out as E & { readonly secrets: readonly string[] }
}

/** The passwords a Redis URL carries (`user:pass@`, `?password=`), raw and decoded, for a `Redactor`. */
export function urlPasswords(raw: string): string[] {
  if (typeof raw !== 'string') return []
  const out: string[] = []
  const scheme = /^([a-z][a-z0-9+.-]*:\/\/)/i.exec(raw)
  const start = scheme ? scheme[1]!.length : 0
  const at = raw.lastIndexOf('@')
  if (at >= start) {
    const userinfo = raw.slice(start, at)
    const colon = userinfo.indexOf(':')
    out.push(colon === -1 ? userinfo : userinfo.slice(colon + 1))
  }
  for (const m of raw.matchAll(/(?:^|[?&;\s])(?:password|pass|pwd)=([^&#\s]*)/gi)) out.push(m[1]!)
  const decoded = out.map((p) => {
    try {
      return decodeURIComponent(p)
    } catch {
      return p
    }
  })
  return [...new Set([...out, ...decoded])].filter((p) => p.length >= MIN_SECRET_LENGTH)
}

/** A redactor for the secrets an embedder declares (`embedder.secrets`; a throwing getter counts as none). */
export function embedderRedactor(embedder: { readonly secrets?: readonly string[] }): Redactor {
  let secrets: readonly string[] = []
  try {
    const s = embedder.secrets
    if (Array.isArray(s)) secrets = s.filter((x): x is string => typeof x === 'string')
  } catch {
    // a throwing getter: no secrets to know of
  }
  return new Redactor(secrets)
}
