import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vitest/config'

/** `npm run test:chaos`: the long, bounded chaos suite, kept out of the default `npm test`. */
export default defineConfig({
  test: {
    root: fileURLToPath(new URL('../..', import.meta.url)),
    include: ['test/chaos/**/*.test.ts'],
    globalSetup: ['test/helpers/global-setup.ts'],
    // The suite bounds itself (HARD_LIMIT_MS); these only catch a hang in setup or teardown.
    testTimeout: 180_000,
    hookTimeout: 60_000,
    teardownTimeout: 30_000,
    // One chaos run at a time: it owns the machine's two cores while it runs.
    fileParallelism: false,
    maxWorkers: 1,
  },
})
