import { defineConfig } from 'tsup'

// p-limit (and its yocto-queue) is ESM-only: it is bundled so the CommonJS build can require()
// the package, and is therefore a devDependency, not a runtime one.
const bundled = ['p-limit', 'yocto-queue']

export default defineConfig([
  {
    // ESM: the library and the `embedq` bin in one build with code splitting, so dist/cli.js
    // imports the library's code from shared chunks instead of carrying a second copy of it.
    entry: { index: 'src/index.ts', cli: 'src/cli/index.ts' },
    format: ['esm'],
    splitting: true,
    dts: { entry: { index: 'src/index.ts' } },
    // No source maps in the package: they doubled its size, and the published JavaScript is
    // readable unminified ES2022 already (docs/architecture.md, "What the package ships").
    sourcemap: false,
    target: 'node20',
    noExternal: bundled,
    // The bin's shebang is the first line of src/cli/index.ts: esbuild keeps an entry's
    // hashbang, so only dist/cli.js gets one (and tsup marks it executable).
  },
  {
    entry: { index: 'src/index.ts' },
    format: ['cjs'],
    dts: { entry: { index: 'src/index.ts' } },
    sourcemap: false,
    target: 'node20',
    noExternal: bundled,
  },
])
