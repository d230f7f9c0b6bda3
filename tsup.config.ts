import { defineConfig } from 'tsup'

export default defineConfig([
  {
    entry: ['src/index.ts'],
    format: ['esm', 'cjs'],
    dts: true,
    sourcemap: true,
    target: 'node20',
    // p-limit is ESM-only; bundle it so the CommonJS build can require() the package.
    noExternal: ['p-limit', 'yocto-queue'],
  },
  {
    // The `embedq` bin: ESM only, with a shebang.
    entry: { cli: 'src/cli/index.ts' },
    format: ['esm'],
    sourcemap: true,
    target: 'node20',
    banner: { js: '#!/usr/bin/env node' },
    noExternal: ['p-limit', 'yocto-queue'],
  },
])
