import { defineConfig } from 'vitest/config';

// The files that drive Dawn on lavapipe (CPU-heavy shader compiles and dispatches) run last and one
// at a time. Their crashes and hangs now and then in InstanceBase::ProcessEvents came from the
// backend dropping the GPU object a test passed inline, which dawn.node frees its instance with;
// the backend holds it now (src/backends/webgpu/device.ts, AcquiredDevice.instance).
const DAWN = ['test/conv.test.ts', 'test/webgpu.test.ts', 'test/webgpu-kernels.test.ts', 'test/webgpu-runtime.test.ts'];

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Two cores here; forks keep workers isolated (wasm memory, worker pools).
    pool: 'forks',
    // .ci/run asks for a JSON report to print its own passed/failed line.
    reporters: process.env.ADJOINT_VITEST_JSON ? ['default', 'json'] : ['default'],
    outputFile: process.env.ADJOINT_VITEST_JSON ? { json: process.env.ADJOINT_VITEST_JSON } : undefined,
    projects: [
      { extends: true, test: { name: 'cpu', include: ['test/**/*.test.ts'], exclude: DAWN } },
      {
        extends: true,
        test: { name: 'dawn', include: DAWN, fileParallelism: false, sequence: { groupOrder: 1 } },
      },
    ],
  },
});
