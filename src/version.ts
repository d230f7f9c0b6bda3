/** The embedq library version (kept equal to package.json's by test/operator/workers.test.ts). */
export const VERSION = '0.1.0'
