import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The chaos suite runs on its own: `npm run test:chaos` (test/chaos/vitest.config.ts).
    exclude: ['test/chaos/**', 'node_modules/**'],
    globalSetup: ['test/helpers/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Suites spawn their own redis-server processes; two cores, so keep parallelism modest.
    maxWorkers: 2,
    fileParallelism: true,
  },
})
