import { execFileSync } from 'node:child_process'

/** Generates src/generated/ (Lua scripts, dashboard assets) so `vitest` works without a prior build. */
export default function setup(): void {
  execFileSync(process.execPath, ['scripts/build-lua.mjs'], { stdio: 'inherit' })
  execFileSync(process.execPath, ['scripts/build-dashboard.mjs'], { stdio: 'inherit' })
}
