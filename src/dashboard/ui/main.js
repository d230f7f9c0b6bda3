// The embedq dashboard: one page, polling the JSON API every 2 s (no reloads, no websockets).
import 'uplot/dist/uPlot.min.css'
import './style.css'
import { html } from 'htm/preact'
import { render } from 'preact'
import { useCallback, useEffect, useRef, useState } from 'preact/hooks'
import { getJson, postJson, q, token } from './api.js'
import { Chart } from './chart.js'
import { ago, fmtDuration, fmtInt, fmtTime } from './format.js'

const POLL_MS = 2_000

/** Calls `load` now and every POLL_MS after the previous call ended; `deps` restart it. */
function usePoll(load, deps, every = POLL_MS) {
  const [state, setState] = useState({ data: null, error: null, at: 0 })
  const tick = useRef(0)
  const run = useCallback(async () => {
    const mine = tick.current
    try {
      const data = await load()
      if (mine === tick.current) setState({ data, error: null, at: Date.now() })
    } catch (error) {
      if (mine === tick.current) setState((s) => ({ ...s, error, at: Date.now() }))
    }
  }, deps)
  useEffect(() => {
    tick.current++
    setState({ data: null, error: null, at: 0 })
    let stopped = false
    let timer
    const loop = async () => {
      // A hidden tab does not poll (it catches up when shown again).
      if (!document.hidden || !timer) await run()
      if (!stopped) timer = setTimeout(loop, every)
    }
    loop()
    return () => {
      stopped = true
      clearTimeout(timer)
    }
  }, [run])
  return [state, run]
}

function useHashQueue() {
  const read = () => {
    const m = /^#\/queue\/(.+)$/.exec(location.hash)
    if (!m) return null
    try {
      return decodeURIComponent(m[1])
    } catch {
      return null
    }
  }
  const [name, setName] = useState(read)
  useEffect(() => {
    const on = () => setName(read())
    addEventListener('hashchange', on)
    return () => removeEventListener('hashchange', on)
  }, [])
  return name
}

// ------------------------------------------------------------------------------------------
// Small pieces

const Badge = ({ kind, children, title }) =>
  html`<span class="badge ${kind}" title=${title}>${children}</span>`

function pauseBadges(pause) {
  if (!pause) return null
  return html`${pause.operator.paused ? html`<${Badge} kind="warn" title="paused by an operator">paused</${Badge}>` : null}
  ${pause.rateLimit.paused ? html`<${Badge} kind="warn" title="claims paused by the provider's rate limit">${pause.rateLimit.reason ?? 'rate-limit'}</${Badge}>` : null}`
}

function NoWorkerAlert({ stats }) {
  return html`<div class="alert" role="alert" data-testid="no-live-worker">
    <strong>Backlog with no live worker.</strong> ${fmtInt(stats.unfinished)} unfinished items and no worker has
    sent a heartbeat: nothing will embed them until a worker starts.
  </div>`
}

/** A button that runs a mutation, shows it busy and reports the outcome. */
function Action({ label, busyLabel, run, kind = '', disabled, reason, confirm, ariaLabel, notify }) {
  const [busy, setBusy] = useState(false)
  const [armed, setArmed] = useState(false)
  const click = async () => {
    if (confirm && !armed) {
      setArmed(true)
      setTimeout(() => setArmed(false), 4000)
      return
    }
    setArmed(false)
    setBusy(true)
    try {
      const message = await run()
      if (message) notify?.({ kind: 'ok', text: message })
    } catch (err) {
      notify?.({ kind: 'error', text: `${label} refused: ${err.message}` })
    } finally {
      setBusy(false)
    }
  }
  return html`<button
    type="button"
    class="btn ${kind} ${armed ? 'armed' : ''}"
    disabled=${busy || disabled}
    title=${disabled ? reason : ''}
    aria-label=${ariaLabel}
    onClick=${click}
  >${busy ? (busyLabel ?? '…') : armed ? `Confirm ${label.toLowerCase()}` : label}</button>`
}

function mutationBlock(auth, hasToken) {
  if (auth === 'read-only') return 'read-only dashboard'
  if (auth === 'none') return 'mutations are disabled: start the dashboard with a token or an authorize hook'
  if ((auth === 'token' || auth === 'token+hook') && !hasToken) return 'enter the token first'
  return null
}

// ------------------------------------------------------------------------------------------
// Header and the list of queues

function Header({ overview, at, error, auth, tokenValue, setTokenValue }) {
  const [draft, setDraft] = useState(tokenValue)
  const needsToken = auth === 'token' || auth === 'token+hook'
  return html`<header class="top">
    <div class="brand"><span class="logo">embedq</span> <span class="muted">prefix</span> <code>${overview?.prefix ?? '…'}</code></div>
    <div class="top-right">
      ${auth === 'read-only' ? html`<${Badge} kind="muted">read-only</${Badge}>` : null}
      ${
        needsToken
          ? html`<form class="token" onSubmit=${(e) => {
              e.preventDefault()
              token.set(draft.trim())
              setTokenValue(draft.trim())
            }}>
              <input type="password" placeholder="token for actions" aria-label="token" autocomplete="off"
                value=${draft} onInput=${(e) => setDraft(e.currentTarget.value)} />
              <button class="btn" type="submit">${tokenValue ? 'Update' : 'Use token'}</button>
            </form>`
          : null
      }
      <span class=${`live ${error ? 'stale' : ''}`} title=${error ? error.message : 'live: refreshed every 2 s'}>
        ${error ? `offline: ${error.message}` : at ? `updated ${fmtTime(at).slice(11)}` : 'loading…'}
      </span>
    </div>
  </header>`
}

function stateBadges(item) {
  const running =
    item.stats && !item.noLiveWorker && !item.pause?.operator.paused && !item.pause?.rateLimit.paused
  return html`${item.noLiveWorker ? html`<${Badge} kind="danger" title="unfinished items and no live worker">no live worker</${Badge}>` : null}
    ${pauseBadges(item.pause)}${running ? html`<${Badge} kind="ok">running</${Badge}>` : null}`
}

function QueueList({ queues, selected }) {
  if (!queues.length)
    return html`<p class="empty">No queue under this prefix yet: a queue appears once something was enqueued.</p>`
  return html`<div class="table-wrap"><table class="queues" data-testid="queues">
    <thead><tr>
      <th>Queue</th><th class="num">Unfinished</th><th class="num opt">Pending</th><th class="num opt">Retrying</th>
      <th class="num">In flight</th><th class="num">Dead</th><th class="num opt">Oldest</th><th class="num">Workers</th><th class="opt">State</th>
    </tr></thead>
    <tbody>${queues.map((item) => {
      const s = item.stats
      return html`<tr key=${item.name} class=${`${item.name === selected ? 'selected' : ''} ${item.noLiveWorker ? 'danger' : ''}`} data-queue=${item.name}>
        <td><a href=${`#/queue/${encodeURIComponent(item.name)}`}>${item.name}</a><div class="phone-only">${stateBadges(item)}</div></td>
        ${
          s
            ? html`<td class="num" data-stat="unfinished">${fmtInt(s.unfinished)}</td>
              <td class="num opt" data-stat="pending">${fmtInt(s.pending)}</td>
              <td class="num opt" data-stat="retrying">${fmtInt(s.retrying)}</td>
              <td class="num" data-stat="inflight">${fmtInt(s.inflight)}</td>
              <td class="num" data-stat="failed">${fmtInt(s.failed)}</td>
              <td class="num opt" data-stat="oldest">${fmtDuration(s.oldestAgeMs)}</td>`
            : html`<td colspan="6" class="error-text">${item.error}</td>`
        }
        <td class="num" data-stat="workers">${item.workers}</td>
        <td class="opt" data-stat="state">${stateBadges(item)}</td>
      </tr>`
    })}</tbody>
  </table></div>`
}

// ------------------------------------------------------------------------------------------
// One queue

function StatCards({ stats }) {
  const cards = [
    ['pending', 'Pending', fmtInt(stats.pending)],
    ['retrying', 'Delayed / retrying', fmtInt(stats.retrying)],
    ['inflight', 'In flight', fmtInt(stats.inflight)],
    ['failed', 'Dead letters', fmtInt(stats.failed)],
    ['unfinished', 'Unfinished', fmtInt(stats.unfinished)],
    ['oldest', 'Oldest', fmtDuration(stats.oldestAgeMs)],
    ['finished', 'Finished, last min', fmtInt(stats.finishedLastMinute)],
  ]
  return html`<div class="cards" data-testid="stat-cards">${cards.map(
    ([id, label, value]) =>
      html`<div class="card" key=${id} data-card=${id}><div class="card-label">${label}</div><div class="card-value">${value}</div></div>`,
  )}</div>`
}

function PausePanel({ name, pause, time, blocked, notify, refresh }) {
  const op = pause.operator
  const rl = pause.rateLimit
  return html`<section class="panel" data-testid="pause">
    <h3>Pause</h3>
    <dl class="kv">
      <dt>Operator</dt>
      <dd data-testid="operator-pause">${op.paused ? html`<strong class="warn-text">paused</strong>${op.since ? ` for ${fmtDuration(time - op.since)}` : ''}${op.by ? ` by ${op.by}` : ''}` : 'running'}</dd>
      <dt>Rate limit</dt>
      <dd data-testid="rate-limit">${rl.paused ? html`<strong class="warn-text">${rl.reason ?? 'paused'}</strong>${rl.until ? `, claims resume in ${fmtDuration(rl.until - time)}` : ''}` : 'not limited'}</dd>
    </dl>
    ${blocked ? html`<p class="muted small">Actions: ${blocked}.</p>` : null}
    <div class="actions">
      ${
        op.paused
          ? html`<${Action} label="Resume" ariaLabel=${`Resume queue ${name}`} kind="primary" disabled=${!!blocked} reason=${blocked} notify=${notify}
              run=${async () => {
                await postJson(`${q(name)}/resume`)
                refresh()
                return `Queue ${name} resumed`
              }} />`
          : html`<${Action} label="Pause" ariaLabel=${`Pause queue ${name}`} kind="warn" disabled=${!!blocked} reason=${blocked} notify=${notify}
              run=${async () => {
                await postJson(`${q(name)}/pause`)
                refresh()
                return `Queue ${name} paused: workers stop claiming within about a second`
              }} />`
      }
    </div>
  </section>`
}

function Workers({ workers, time }) {
  return html`<section class="panel" data-testid="workers">
    <h3>Live workers <span class="muted">(${workers.length})</span></h3>
    ${
      workers.length === 0
        ? html`<p class="empty">No worker has sent a heartbeat recently.</p>`
        : html`<div class="table-wrap"><table>
          <thead><tr><th>Worker</th><th class="num">Heartbeat</th><th class="num">In flight</th><th class="opt">Embedder</th><th class="opt">Version</th><th class="opt">Up</th></tr></thead>
          <tbody>${workers.map((w) => {
            const age = time - w.lastSeenAt
            return html`<tr key=${w.id} data-worker=${w.id}>
              <td><div class="mono">${w.host}:${w.pid}</div><div class="muted small mono">${w.id}</div></td>
              <td class=${`num ${age > 10_000 ? 'warn-text' : ''}`}>${fmtDuration(age)} ago</td>
              <td class="num">${w.inflight} / ${w.concurrency}${w.paused ? html` <${Badge} kind="warn">paused</${Badge}>` : ''}</td>
              <td class="opt mono small">${w.embedder}</td>
              <td class="opt">${w.version}</td>
              <td class="opt">${fmtDuration(time - w.startedAt)}</td>
            </tr>`
          })}</tbody></table></div>`
    }
  </section>`
}

const MINUTE_CHOICES = [
  [60, '1 h'],
  [360, '6 h'],
  [1440, '24 h'],
]

function Charts({ name }) {
  const [minutes, setMinutes] = useState(60)
  // Per-minute points: the hour view follows every poll, longer ranges every 10 s.
  const [state] = usePoll(
    () => getJson(`${q(name)}/history?minutes=${minutes}`),
    [name, minutes],
    minutes > 60 ? 10_000 : POLL_MS,
  )
  const points = state.data?.points ?? []
  const xs = points.map((p) => p.minute / 1000)
  const throughput = [
    xs,
    points.map((p) => p.embedded),
    points.map((p) => p.failed),
    points.map((p) => p.retried),
  ]
  const latency = [xs, points.map((p) => p.p50Ms), points.map((p) => p.p95Ms)]
  const total = points.reduce((n, p) => n + p.embedded, 0)
  return html`<section class="panel wide" data-testid="charts">
    <div class="panel-head">
      <h3>History <span class="muted">(${fmtInt(total)} embedded)</span></h3>
      <div class="seg" role="group" aria-label="history range">${MINUTE_CHOICES.map(
        ([m, label]) =>
          html`<button type="button" class=${`btn small ${m === minutes ? 'on' : ''}`} onClick=${() => setMinutes(m)}>${label}</button>`,
      )}</div>
    </div>
    ${state.error ? html`<p class="error-text">${state.error.message}</p>` : null}
    <div class="charts">
      <${Chart} key=${`t-${name}`} title="Throughput, items per minute" data=${throughput}
        series=${[
          { label: 'embedded', stroke: '#2f80ed' },
          { label: 'failed', stroke: '#d63b3b' },
          { label: 'retried', stroke: '#e0a100' },
        ]} />
      <${Chart} key=${`l-${name}`} title="Enqueue-to-vector latency, ms" data=${latency}
        series=${[{ label: 'p50', stroke: '#27ae60' }, { label: 'p95', stroke: '#9b51e0' }]} />
    </div>
  </section>`
}

function DeadLetters({ name, blocked, notify, refreshAll }) {
  const [filter, setFilter] = useState({ match: '', error: '', status: '' })
  const [draft, setDraft] = useState(filter)
  const [cursor, setCursor] = useState('0')
  const query = () => {
    const p = new URLSearchParams({ count: '100', cursor })
    for (const [k, v] of Object.entries(filter)) if (v) p.set(k, v)
    return p.toString()
  }
  const [state, reload] = usePoll(() => getJson(`${q(name)}/failed?${query()}`), [name, filter, cursor])
  const page = state.data
  const act = (verb, body, what) => async () => {
    const result = await postJson(`${q(name)}/failed/${verb}`, body)
    reload()
    refreshAll()
    const n = verb === 'retry' ? result.retried : result.deleted
    return `${verb === 'retry' ? 'Re-enqueued' : 'Deleted'} ${fmtInt(n)} dead letter${n === 1 ? '' : 's'} (${what})`
  }
  return html`<section class="panel wide" data-testid="dead-letters">
    <div class="panel-head"><h3>Dead letters</h3></div>
    <form class="filters" onSubmit=${(e) => {
      e.preventDefault()
      setCursor('0')
      setFilter(draft)
    }}>
      <input placeholder="key pattern (glob)" aria-label="key pattern" value=${draft.match} onInput=${(e) => setDraft({ ...draft, match: e.currentTarget.value })} />
      <input placeholder="error contains" aria-label="error contains" value=${draft.error} onInput=${(e) => setDraft({ ...draft, error: e.currentTarget.value })} />
      <input placeholder="status" aria-label="HTTP status" inputmode="numeric" class="short" value=${draft.status} onInput=${(e) => setDraft({ ...draft, status: e.currentTarget.value.replace(/\D/g, '').slice(0, 3) })} />
      <button class="btn" type="submit">Filter</button>
    </form>
    ${state.error ? html`<p class="error-text">${state.error.message}</p>` : null}
    ${!page ? html`<p class="muted">loading…</p>` : page.items.length === 0 ? html`<p class="empty">No dead letters${cursor !== '0' ? ' on this page' : ''}.</p>` : null}
    ${
      page && page.groups.length > 0
        ? html`<h4>By error <span class="muted small">(this page)</span></h4>
          <ul class="groups">${page.groups.map(
            (g) => html`<li class="group" key=${`${g.status}|${g.error}`}>
              <div class="group-main">
                <span class="count">${fmtInt(g.count)}×</span>
                ${g.status ? html`<${Badge} kind="muted">HTTP ${g.status}</${Badge}>` : null}
                <span class="error-text">${g.error}</span>
                <span class="muted small">latest ${fmtTime(g.latestAt)}</span>
              </div>
              <div class="actions">
                <${Action} label="Retry" ariaLabel=${`Retry ${g.count} dead letters with this error`} kind="primary small" disabled=${!!blocked} reason=${blocked} notify=${notify}
                  run=${act('retry', { keys: g.keys }, 'group')} />
                <${Action} label="Delete" confirm ariaLabel=${`Delete ${g.count} dead letters with this error`} kind="danger small" disabled=${!!blocked} reason=${blocked} notify=${notify}
                  run=${act('delete', { keys: g.keys }, 'group')} />
              </div>
            </li>`,
          )}</ul>
          <h4>Letters</h4>
          <div class="table-wrap"><table class="letters">
            <thead><tr><th>Key</th><th class="opt">Error</th><th class="num opt">Attempts</th><th class="opt">Failed at</th><th></th></tr></thead>
            <tbody>${page.items.map(
              (d) => html`<tr key=${d.key} data-letter=${d.key}>
                <td><div class="mono">${d.key}</div><div class="muted small clip" title=${d.textPreview}>${d.textPreview}</div></td>
                <td class="opt"><span class="error-text">${d.status ? `HTTP ${d.status}: ` : ''}${d.error}</span></td>
                <td class="num opt">${d.attempts}</td>
                <td class="opt small">${fmtTime(d.failedAt)}</td>
                <td><div class="actions">
                  <${Action} label="Retry" ariaLabel=${`Retry dead letter ${d.key}`} kind="primary small" disabled=${!!blocked} reason=${blocked} notify=${notify}
                    run=${act('retry', { keys: [d.key] }, d.key)} />
                  <${Action} label="Delete" confirm ariaLabel=${`Delete dead letter ${d.key}`} kind="danger small" disabled=${!!blocked} reason=${blocked} notify=${notify}
                    run=${act('delete', { keys: [d.key] }, d.key)} />
                </div></td>
              </tr>`,
            )}</tbody>
          </table></div>`
        : null
    }
    <div class="pager">
      ${cursor !== '0' ? html`<button class="btn small" type="button" onClick=${() => setCursor('0')}>First page</button>` : null}
      ${page && page.cursor !== '0' ? html`<button class="btn small" type="button" onClick=${() => setCursor(page.cursor)}>Next page</button>` : null}
    </div>
  </section>`
}

function Inspect({ name }) {
  const [key, setKey] = useState('')
  const [result, setResult] = useState(null)
  const [error, setError] = useState(null)
  const submit = async (e) => {
    e.preventDefault()
    setError(null)
    try {
      setResult(await getJson(`${q(name)}/inspect?key=${encodeURIComponent(key)}`))
    } catch (err) {
      setResult(null)
      setError(err.message)
    }
  }
  const rows = result
    ? [
        [
          'State',
          html`<${Badge} kind=${result.state === 'failed' ? 'danger' : result.state === 'done' ? 'ok' : 'muted'}>${result.state}</${Badge}>`,
        ],
        ['Version', result.version ?? '–'],
        ['Attempts', result.attempts],
        ['Last error', result.lastError ?? '–'],
        ['Due at', result.dueAt ? fmtTime(result.dueAt) : '–'],
        ['Lease', result.lease ? `${result.lease.holder} until ${fmtTime(result.lease.expiresAt)}` : '–'],
        ['Version in target', result.targetVersion ?? '–'],
        ['Given-up mark', result.targetFailed ? 'yes' : 'no'],
        ['Text', result.textPreview ?? '–'],
      ]
    : []
  return html`<section class="panel" data-testid="inspect">
    <h3>Look up a key</h3>
    <form class="filters" onSubmit=${submit}>
      <input placeholder="target key, e.g. msg:123" aria-label="key to inspect" value=${key} required maxlength="1024" onInput=${(e) => setKey(e.currentTarget.value)} />
      <button class="btn" type="submit">Inspect</button>
    </form>
    ${error ? html`<p class="error-text">${error}</p>` : null}
    ${result ? html`<dl class="kv" data-testid="inspection"><dt>Key</dt><dd class="mono">${result.key}</dd>${rows.map(([k, v]) => html`<dt>${k}</dt><dd>${v}</dd>`)}</dl>` : null}
  </section>`
}

function Backfills({ backfills, time }) {
  return html`<section class="panel" data-testid="backfills">
    <h3>Backfills</h3>
    ${
      backfills.length === 0
        ? html`<p class="empty">No backfill saved.</p>`
        : html`<div class="table-wrap"><table>
          <thead><tr><th>Match</th><th class="num">Scanned</th><th class="num">Enqueued</th><th>State</th></tr></thead>
          <tbody>${backfills.map(
            (b) => html`<tr key=${b.id}>
              <td class="mono">${b.match}</td><td class="num">${fmtInt(b.scanned)}</td><td class="num">${fmtInt(b.enqueued)}</td>
              <td>${b.done ? html`<${Badge} kind="ok">done</${Badge}>` : html`<${Badge} kind="warn">in progress</${Badge}>`} <span class="muted small">${b.updatedAt ? ago(b.updatedAt, time) : ''}</span></td>
            </tr>`,
          )}</tbody></table></div>`
    }
  </section>`
}

function QueueDetail({ name, auth, tokenValue, notify, refreshAll }) {
  const [state, reload] = usePoll(() => getJson(q(name)), [name])
  const d = state.data
  const refresh = () => {
    reload()
    refreshAll()
  }
  const blocked = mutationBlock(auth, tokenValue)
  if (!d)
    return html`<section class="detail"><h2>${name}</h2><p class=${state.error ? 'error-text' : 'muted'}>${state.error ? state.error.message : 'loading…'}</p></section>`
  return html`<section class="detail" data-testid="detail">
    <div class="detail-head"><h2>${name}</h2>${pauseBadges(d.pause)}</div>
    ${d.noLiveWorker ? html`<${NoWorkerAlert} stats=${d.stats} />` : null}
    <${StatCards} stats=${d.stats} />
    <div class="grid">
      <${PausePanel} name=${name} pause=${d.pause} time=${d.time} blocked=${blocked} notify=${notify} refresh=${refresh} />
      <${Workers} workers=${d.workerList} time=${d.time} />
    </div>
    <${Charts} name=${name} />
    <${DeadLetters} name=${name} blocked=${blocked} notify=${notify} refreshAll=${refresh} />
    <div class="grid">
      <${Inspect} name=${name} />
      <${Backfills} backfills=${d.backfills} time=${d.time} />
    </div>
  </section>`
}

// ------------------------------------------------------------------------------------------

function App() {
  const [tokenValue, setTokenValue] = useState(token.get())
  const [overview, refreshAll] = usePoll(() => getJson('queues'), [])
  const hashQueue = useHashQueue()
  const [toasts, setToasts] = useState([])
  const notify = useCallback((t) => {
    const id = Math.random()
    setToasts((list) => [...list.slice(-3), { ...t, id }])
    setTimeout(() => setToasts((list) => list.filter((x) => x.id !== id)), 6000)
  }, [])
  const data = overview.data
  const queues = data?.queues ?? []
  const selected = hashQueue ?? queues[0]?.name ?? null
  const stuck = queues.filter((x) => x.noLiveWorker)
  return html`
    <${Header} overview=${data} at=${overview.at} error=${overview.error} auth=${data?.auth} tokenValue=${tokenValue} setTokenValue=${setTokenValue} />
    <main>
      ${stuck.length ? html`<div class="alert" role="alert">Backlog with no live worker: ${stuck.map((x) => x.name).join(', ')}</div>` : null}
      <section class="panel wide">
        <h3>Queues <span class="muted">(${queues.length})</span></h3>
        ${data ? html`<${QueueList} queues=${queues} selected=${selected} />` : html`<p class=${overview.error ? 'error-text' : 'muted'}>${overview.error ? overview.error.message : 'loading…'}</p>`}
      </section>
      ${selected ? html`<${QueueDetail} key=${selected} name=${selected} auth=${data?.auth} tokenValue=${tokenValue} notify=${notify} refreshAll=${refreshAll} />` : null}
    </main>
    <div class="toasts" aria-live="polite">${toasts.map((t) => html`<div key=${t.id} class=${`toast ${t.kind}`} role="status">${t.text}</div>`)}</div>
  `
}

const root = document.getElementById('app')
root.textContent = ''
render(html`<${App} />`, root)
