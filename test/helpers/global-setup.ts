import { execFileSync } from 'node:child_process'

/** Generates src/generated/lua.ts from lua/*.lua so `vitest` works without a prior build. */
export default function setup(): void {
  execFileSync(process.execPath, ['scripts/build-lua.mjs'], { stdio: 'inherit' })
}
