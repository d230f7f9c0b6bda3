// Formatting shared by the dashboard's views.

export const fmtInt = (n) => (n === null || n === undefined ? '–' : Number(n).toLocaleString('en-US'))

/** `850 ms`, `12.3 s`, `4m 05s`, `2h 10m`, `3d 4h`. */
export function fmtDuration(ms) {
  if (ms === null || ms === undefined) return '–'
  if (ms < 0) ms = 0
  if (ms < 1_000) return `${Math.round(ms)} ms`
  const s = ms / 1000
  if (s < 60) return `${s.toFixed(1)} s`
  const m = Math.floor(s / 60)
  if (m < 60) return `${m}m ${String(Math.floor(s % 60)).padStart(2, '0')}s`
  const h = Math.floor(m / 60)
  if (h < 48) return `${h}h ${String(m % 60).padStart(2, '0')}m`
  return `${Math.floor(h / 24)}d ${h % 24}h`
}

export function fmtTime(ms) {
  if (!ms) return '–'
  const d = new Date(ms)
  const pad = (n) => String(n).padStart(2, '0')
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
}

export const ago = (ms, now) => (ms ? `${fmtDuration(now - ms)} ago` : '–')
