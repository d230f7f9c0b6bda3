/**
 * The embedq dashboard in Fastify under /admin/embedq, as a raw route: the reply is hijacked and
 * the dashboard answers on node's request and response. Bodies are left unread in this scope
 * (the dashboard reads and bounds them itself). Run: `npx tsx examples/dashboard-fastify.ts`.
 */
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify'
import { dashboardHandler } from '../src/index.js'
import { connectRedis } from './shared.js'

const { redis, close } = connectRedis()
const dashboard = dashboardHandler({
  redis,
  basePath: '/admin/embedq',
  token: process.env.EMBEDQ_DASHBOARD_TOKEN,
})

const app = Fastify()
await app.register(async (scope) => {
  scope.removeAllContentTypeParsers()
  scope.addContentTypeParser('*', (_req, _payload, done) => done(null, undefined))
  const mount = (request: FastifyRequest, reply: FastifyReply): void => {
    reply.hijack()
    dashboard(request.raw, reply.raw)
  }
  scope.all('/admin/embedq', mount)
  scope.all('/admin/embedq/*', mount)
})
app.get('/', async () => 'your app; the dashboard is at /admin/embedq/\n')

const address = await app.listen({ port: Number(process.env.PORT ?? 3000), host: '127.0.0.1' })
console.log(`dashboard: ${address}/admin/embedq/`)

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void app.close().then(close)
  })
}
