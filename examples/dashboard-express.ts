/**
 * The embedq dashboard as Express middleware under /admin/embedq (the mount is read from
 * `req.originalUrl`). Run: `npx tsx examples/dashboard-express.ts`, open the printed URL.
 * Behind your own auth middleware you would pass `authorize: (req) => isAdmin(req)` instead of a token.
 */
import type { AddressInfo } from 'node:net'
import express from 'express'
import { dashboardHandler } from '../src/index.js'
import { connectRedis } from './shared.js'

const { redis, close } = connectRedis()
const app = express()
app.use(
  '/admin/embedq',
  dashboardHandler({
    redis,
    token: process.env.EMBEDQ_DASHBOARD_TOKEN,
  }),
)
app.get('/', (_req, res) => {
  res.type('text/plain').send('your app; the dashboard is at /admin/embedq/\n')
})

const server = app.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo
  console.log(`dashboard: http://127.0.0.1:${port}/admin/embedq/`)
})

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    server.close(() => void close())
    server.closeAllConnections()
  })
}
