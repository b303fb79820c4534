import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Two cores here; forks keep workers isolated (wasm memory, worker pools).
    pool: 'forks',
    // .ci/run asks for a JSON report to print its own passed/failed line.
    reporters: process.env.ADJOINT_VITEST_JSON ? ['default', 'json'] : ['default'],
    outputFile: process.env.ADJOINT_VITEST_JSON ? { json: process.env.ADJOINT_VITEST_JSON } : undefined,
  },
});
