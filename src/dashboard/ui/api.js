// The page's calls to the JSON API (relative URLs: the page is served at `<mount>/`).

const TOKEN_KEY = 'embedq-dashboard-token'

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY) ?? '',
  set: (value) => (value ? sessionStorage.setItem(TOKEN_KEY, value) : sessionStorage.removeItem(TOKEN_KEY)),
}

async function call(path, init) {
  const res = await fetch(`api/${path}`, { cache: 'no-store', credentials: 'same-origin', ...init })
  let body = null
  try {
    body = await res.json()
  } catch {
    // not JSON: reported below
  }
  if (!res.ok) {
    const message = body?.error?.message ?? `HTTP ${res.status}`
    const err = new Error(message)
    err.status = res.status
    err.code = body?.error?.code
    throw err
  }
  return body
}

export const q = (name) => `queues/${encodeURIComponent(name)}`

export const getJson = (path) => call(path, { headers: { Accept: 'application/json' } })

/** A mutation: POST with the CSRF header, the JSON body and the bearer token if one is set. */
export function postJson(path, body = {}) {
  const headers = { 'Content-Type': 'application/json', 'X-Embedq-Csrf': '1', Accept: 'application/json' }
  const t = token.get()
  if (t) headers.Authorization = `Bearer ${t}`
  return call(path, { method: 'POST', headers, body: JSON.stringify(body) })
}
