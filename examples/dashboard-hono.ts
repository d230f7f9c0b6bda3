/**
 * The embedq dashboard in Hono (on @hono/node-server) under /admin/embedq: the route hands
 * node's request and response to the dashboard and tells Hono the response is sent.
 * Run: `npx tsx examples/dashboard-hono.ts`, open the printed URL.
 */
import type { AddressInfo } from 'node:net'
import { type HttpBindings, serve } from '@hono/node-server'
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response'
import { type Context, Hono } from 'hono'
import { dashboardHandler } from '../src/index.js'
import { connectRedis } from './shared.js'

const { redis, close } = connectRedis()
const dashboard = dashboardHandler({
  redis,
  basePath: '/admin/embedq',
  token: process.env.EMBEDQ_DASHBOARD_TOKEN,
})

const app = new Hono<{ Bindings: HttpBindings }>()
const mount = (c: Context<{ Bindings: HttpBindings }>): Response => {
  dashboard(c.env.incoming, c.env.outgoing)
  return RESPONSE_ALREADY_SENT
}
app.all('/admin/embedq', mount)
app.all('/admin/embedq/*', mount)
app.get('/', (c) => c.text('your app; the dashboard is at /admin/embedq/\n'))

const server = serve(
  { fetch: app.fetch, port: Number(process.env.PORT ?? 3000), hostname: '127.0.0.1' },
  () => {
    const { port } = server.address() as AddressInfo
    console.log(`dashboard: http://127.0.0.1:${port}/admin/embedq/`)
  },
)

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    server.close(() => void close())
  })
}
