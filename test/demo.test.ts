/** The README's main job: `npm run demo` (run here as `node examples/demo.mjs` on the built dist/). */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const DEMO_TIMEOUT_MS = 240_000;

describe('the demo', () => {
  it(
    'trains to >= 95% held-out accuracy, checkpoints bit-exactly, fine-tuning lowers the loss, draws digits',
    async () => {
      expect(existsSync('dist/index.js'), 'dist/ is missing: run `npm run build` (npm test does)').toBe(true);
      const { stdout } = await promisify(execFile)(process.execPath, ['examples/demo.mjs'], {
        encoding: 'utf8',
        timeout: DEMO_TIMEOUT_MS,
        maxBuffer: 16 << 20,
        env: { ...process.env, ADJOINT_THREADS: '1' },
      });
      const tail = stdout.slice(-3000);
      const acc = stdout.match(/test accuracy (\d+\.\d+)% after training, (\d+\.\d+)% after fine-tuning/);
      expect(acc, tail).not.toBeNull();
      expect(Number(acc![1])).toBeGreaterThanOrEqual(95);
      expect(Number(acc![2])).toBeGreaterThanOrEqual(95);
      // every tensor of the checkpoint comes back bit for bit
      const saved = stdout.match(/(\d+)\/(\d+) tensors bit-identical/);
      expect(saved, tail).not.toBeNull();
      expect(Number(saved![2])).toBeGreaterThan(0);
      expect(Number(saved![1])).toBe(Number(saved![2]));
      // fine-tuning on digits the first run never saw lowers the loss on them
      const loss = stdout.match(/loss on the fine-tuning digits: (\d+\.\d+) -> (\d+\.\d+)/);
      expect(loss, tail).not.toBeNull();
      expect(Number(loss![2])).toBeLessThan(Number(loss![1]));
      expect(stdout.match(/predicted: \d/g)?.length ?? 0).toBeGreaterThanOrEqual(6);
    },
    DEMO_TIMEOUT_MS + 30_000,
  );

  it(
    '--cnn (quick mode: a small CNN on a subset) trains, checkpoints bit-exactly and fine-tunes',
    async () => {
      const { stdout } = await promisify(execFile)(process.execPath, ['examples/demo.mjs', '--cnn'], {
        encoding: 'utf8',
        timeout: DEMO_TIMEOUT_MS,
        maxBuffer: 16 << 20,
        env: { ...process.env, ADJOINT_THREADS: '1', ADJOINT_DEMO_QUICK: '1' },
      });
      expect(stdout).toMatch(/model: CNN 28×28×1/);
      const saved = stdout.match(/(\d+)\/(\d+) tensors bit-identical/);
      expect(saved, stdout.slice(-2000)).not.toBeNull();
      expect(Number(saved![1])).toBe(Number(saved![2]));
      const acc = stdout.match(/test accuracy (\d+\.\d+)% after training/);
      expect(Number(acc![1])).toBeGreaterThan(20); // 10 classes: better than chance after one small epoch
    },
    DEMO_TIMEOUT_MS + 30_000,
  );
});
