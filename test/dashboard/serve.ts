/**
 * Serves a dashboard handler on 127.0.0.1 (free port) for tests; builds the page assets first
 * (src/generated/dashboard-assets.ts), since vitest's global setup only generates the Lua.
 */
import { execFileSync } from 'node:child_process'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { DashboardOptions } from '../../src/dashboard/types.js'

let built = false

export async function loadDashboard(): Promise<typeof import('../../src/dashboard/index.js')> {
  if (!built) {
    execFileSync(process.execPath, ['scripts/build-dashboard.mjs'], { stdio: 'inherit' })
    built = true
  }
  return import('../../src/dashboard/index.js')
}

export interface Served {
  url: string
  server: Server
  close(): Promise<void>
}

/** The handler at `mount` ('' = the root) of a plain node:http server; other paths answer 404 "outside". */
export async function serveDashboard(opts: DashboardOptions, mount = ''): Promise<Served> {
  const { dashboardHandler } = await loadDashboard()
  const handler = dashboardHandler({ ...opts, ...(mount ? { basePath: mount } : {}) })
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    handler(req, res, () => {
      res.statusCode = 404
      res.end('outside')
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}${mount}`,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
