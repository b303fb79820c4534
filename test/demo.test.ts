/** The README's main job: `npm run demo` (run here as `node examples/demo.mjs` on the built dist/). */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

describe('the demo', () => {
  it('trains to >= 95% held-out accuracy, checkpoints, fine-tunes and draws digits', () => {
    expect(existsSync('dist/index.js'), 'dist/ is missing: run `npm run build` (npm test does)').toBe(true);
    const run = spawnSync(process.execPath, ['examples/demo.mjs'], {
      encoding: 'utf8',
      timeout: 120_000,
      env: { ...process.env, ADJOINT_THREADS: '1' },
    });
    expect(run.status, run.stderr).toBe(0);
    const m = run.stdout.match(/test accuracy (\d+\.\d+)% after training, (\d+\.\d+)% after fine-tuning/);
    expect(m, run.stdout.slice(-2000)).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThanOrEqual(95);
    expect(Number(m![2])).toBeGreaterThanOrEqual(95);
    expect(run.stdout).toMatch(/bit-identical/);
    expect(run.stdout).toMatch(/loss on the fine-tuning digits: [\d.]+ -> [\d.]+/);
    expect(run.stdout).toMatch(/predicted: \d/);
  });
});
