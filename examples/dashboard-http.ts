/**
 * The embedq dashboard mounted at /admin/embedq in a plain node:http server, next to the app's
 * own routes. Run: `npx tsx examples/dashboard-http.ts`, open the printed URL.
 * Actions (pause, resume, retry, delete) need EMBEDQ_DASHBOARD_TOKEN, entered in the page.
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { dashboardHandler } from '../src/index.js'
import { connectRedis } from './shared.js'

const { redis, close } = connectRedis()
const dashboard = dashboardHandler({
  redis,
  basePath: '/admin/embedq',
  token: process.env.EMBEDQ_DASHBOARD_TOKEN,
})

const server = createServer((req, res) => {
  // The dashboard answers under its mount and hands everything else to `next`.
  dashboard(req, res, () => {
    res.setHeader('Content-Type', 'text/plain; charset=utf-8')
    res.end('your app; the dashboard is at /admin/embedq/\n')
  })
})
server.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo
  console.log(`dashboard: http://127.0.0.1:${port}/admin/embedq/`)
})

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    server.close(() => void close())
    server.closeAllConnections()
  })
}
