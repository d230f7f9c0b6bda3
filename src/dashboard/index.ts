export { discoverQueues } from './discover.js'
export { dashboardHandler, type MutationAuth } from './handler.js'
export type { DashboardHandler, DashboardOptions, DashboardSource } from './types.js'
