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

  it('dist/tfjs.js shares one adjoint runtime with dist/index.js', async () => {
    expect(existsSync('dist/tfjs.js'), 'dist/tfjs.js is missing: run `npm run build` (npm test does)').toBe(
      true,
    );
    const script = `
      import * as tf from '@tensorflow/tfjs-core';
      import * as aj from './dist/index.js';
      import { registerTfjsBackend } from './dist/tfjs.js';
      await registerTfjsBackend(tf, { init: { threads: 1 } });
      await tf.setBackend('adjoint');
      const before = aj.memoryStats().liveBytes;
      const t = tf.add(tf.ones([1000, 1000]), 1);
      t.dataSync();
      const held = tf.engine().backend.entries.get(t.dataId).t;
      console.log(JSON.stringify({ backend: aj.memoryStats().backend, grew: aj.memoryStats().liveBytes - before, same: held instanceof aj.Tensor }));
    `;
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    const r = JSON.parse(stdout.trim().split('\n').pop()!);
    expect(r.backend).toBe('wasm');
    expect(r.same).toBe(true);
    expect(r.grew).toBeGreaterThanOrEqual(4_000_000);
  }, 90_000);

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
