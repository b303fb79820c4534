/**
 * TensorFlow.js's own test suite (tfjs-core's dist/tests.js) against the adjoint backend, under
 * jasmine in a child process (test/tfjs/run-suite.mjs); the specs that run are those
 * test/tfjs/suite-filter.mjs selects (every spec except those needing a kernel or dtype the
 * backend does not provide, each listed with its reason). Uses the built dist/ (npm test builds).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const TIMEOUT_MS = 300_000;

async function runSuite(
  env: Record<string, string>,
): Promise<{ run: number; failed: number; line: string; tail: string }> {
  let stdout = '';
  try {
    ({ stdout } = await promisify(execFile)(process.execPath, ['test/tfjs/run-suite.mjs'], {
      encoding: 'utf8',
      timeout: TIMEOUT_MS,
      maxBuffer: 64 << 20,
      env: { ...process.env, ADJOINT_THREADS: '1', ...env },
    }));
  } catch (e) {
    // A failing spec makes the runner exit 1: its report is in stdout.
    stdout = (e as { stdout?: string }).stdout ?? String(e);
  }
  const m = stdout.match(/tfjs suite: (\d+) specs run, (\d+) failed, (\d+) skipped/);
  expect(m, stdout.slice(-6000)).not.toBeNull();
  return { run: Number(m![1]), failed: Number(m![2]), line: m![0], tail: stdout.slice(-6000) };
}

describe('TensorFlow.js test suite on the adjoint backend', () => {
  it(
    'runs at least 2,500 of tfjs-core specs with 0 failures (kernels recorded lazily, run per read)',
    async () => {
      expect(existsSync('dist/tfjs.js'), 'dist/tfjs.js is missing: run `npm run build` (npm test does)').toBe(
        true,
      );
      const r = await runSuite({});
      console.log(r.line);
      expect(r.failed, r.tail).toBe(0);
      expect(r.run).toBeGreaterThanOrEqual(2500);
    },
    TIMEOUT_MS + 30_000,
  );

  it(
    'the same specs pass with every kernel run at once (maxPending 0)',
    async () => {
      expect(existsSync('dist/tfjs.js'), 'dist/tfjs.js is missing: run `npm run build` (npm test does)').toBe(
        true,
      );
      const r = await runSuite({ ADJOINT_TFJS_MAX_PENDING: '0' });
      console.log(`${r.line} (maxPending 0)`);
      expect(r.failed, r.tail).toBe(0);
      expect(r.run).toBeGreaterThanOrEqual(2500);
    },
    TIMEOUT_MS + 30_000,
  );
});
