/**
 * The size budget (issue 12): what a page downloads to run adjoint on wasm must stay within
 * 80 KiB (81,920 bytes) gzipped. Counted: dist/index.js with every chunk it imports statically,
 * one kernel build (dist/wasm/kernels.wasm) and the kernel worker (dist/kernel-worker.js), each
 * file gzipped on its own (node:zlib gzipSync, level 9), as a server sends them.
 *
 * Not counted: chunks the package loads by dynamic import() only when they are needed — the
 * WebGPU backend (src/runtime/gpu-lazy.ts, when a GPU is found), the worker pool with comlink
 * (src/backends/wasm/scheduler/pool.ts, when threads > 1), comlink's worker_threads adapter
 * (imported by the worker under Node only) — and the adjoint/tfjs entry.
 * They are listed in the output, and the test checks that the first two are lazy: no static
 * import reaches them.
 *
 * Runs on the built package (`npm test` builds first; after a change, `npx rollup -c`).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';

const dist = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'dist');
const BUDGET = 80 * 1024;

const gz = (file: string): number => gzipSync(readFileSync(path.join(dist, file)), { level: 9 }).length;

/** Relative specifiers of a module's static imports and re-exports (minified or not), not import(). */
function staticImports(code: string): string[] {
  const found = [
    ...code.matchAll(/(?:^|[;}\s])import\s*(?:[\w$*{},\s]+?\s*from\s*)?["'](\.\.?\/[^"']+)["']/g),
    ...code.matchAll(/(?:^|[;}\s])export\s*(?:\*|\{[^}]*\})\s*from\s*["'](\.\.?\/[^"']+)["']/g),
  ];
  return found.map((m) => m[1]);
}

function dynamicImports(code: string): string[] {
  return [...code.matchAll(/\bimport\s*\(\s*["'](\.\.?\/[^"']+)["']\s*\)/g)].map((m) => m[1]);
}

/** The files dist/index.js loads before it runs: itself and its static imports, transitively. */
function staticClosure(entry: string): string[] {
  const seen = new Set<string>();
  const todo = [entry];
  while (todo.length) {
    const f = todo.pop() as string;
    if (seen.has(f)) continue;
    seen.add(f);
    const code = readFileSync(path.join(dist, f), 'utf8');
    for (const s of staticImports(code))
      todo.push(path.posix.normalize(path.posix.join(path.posix.dirname(f), s)));
  }
  return [...seen];
}

beforeAll(() => {
  if (!existsSync(path.join(dist, 'index.js')))
    throw new Error('dist/index.js is missing: run `npm run build` first (`npm test` does)');
});

describe('size budget', () => {
  it('the scanner finds static imports and tells them from import()', () => {
    const code = 'import{a as b}from"./x.js";import"./y.js";export*from"./z.js";const m=import("./lazy.js");';
    expect(staticImports(code)).toEqual(['./x.js', './y.js', './z.js']);
    expect(dynamicImports(code)).toEqual(['./lazy.js']);
  });

  it('dist/ is minified', () => {
    for (const f of ['index.js', 'kernel-worker.js']) {
      // license comments (kept for comlink) and the source map line aside
      const code = readFileSync(path.join(dist, f), 'utf8')
        .replace(/\/\*[\s\S]*?\*\//g, '')
        .replace(/^\/\/# sourceMappingURL=.*$/m, '')
        .trim();
      const lines = code.split('\n').length;
      expect(code.length / lines, `${f}: ${lines} lines for ${code.length} bytes`).toBeGreaterThan(1000);
    }
  });

  it('the WebGPU backend and the worker pool are chunks loaded by import() only', () => {
    const files = readdirSync(dist).filter((f) => f.endsWith('.js'));
    const eager = new Set(staticClosure('index.js'));
    const lazy = new Set(
      files.flatMap((f) =>
        dynamicImports(readFileSync(path.join(dist, f), 'utf8')).map((s) => path.posix.join(s)),
      ),
    );
    const gpu = [...lazy].filter((f) => /^chunk-gpu-lazy-/.test(f));
    const pool = [...lazy].filter((f) => /^chunk-pool-/.test(f));
    expect(gpu, 'a lazily imported WebGPU chunk').toHaveLength(1);
    expect(pool, 'a lazily imported worker pool chunk').toHaveLength(1);
    for (const f of [...gpu, ...pool]) {
      expect(existsSync(path.join(dist, f)), `${f} exists`).toBe(true);
      expect(eager.has(f), `${f} is not loaded eagerly`).toBe(false);
    }
    // The WebGPU backend's code is in its chunk, not in what the entry loads.
    for (const f of eager)
      expect(readFileSync(path.join(dist, f), 'utf8'), f).not.toMatch(/@compute|requestAdapter/);
    expect(readFileSync(path.join(dist, gpu[0]), 'utf8')).toMatch(/requestAdapter/);
  });

  it('index.js and its static imports + kernels.wasm + kernel-worker.js fit in 80 KiB gzipped', () => {
    const eager = staticClosure('index.js');
    const worker = staticClosure('kernel-worker.js');
    const counted = [...new Set([...eager, 'wasm/kernels.wasm', ...worker])];
    const sizes = Object.fromEntries(counted.map((f) => [f, gz(f)]));
    const total = Object.values(sizes).reduce((a, b) => a + b, 0);
    const lazy = readdirSync(dist).filter((f) => f.endsWith('.js') && !counted.includes(f));
    const kib = (n: number) => `${(n / 1024).toFixed(1)} KiB`;
    console.log(
      `size budget: ${counted.map((f) => `${f} ${kib(sizes[f])}`).join(', ')}; total ${kib(total)} of ${kib(BUDGET)}` +
        ` (not counted: ${lazy.map((f) => `${f} ${kib(gz(f))}`).join(', ')})`,
    );
    expect(total).toBeGreaterThan(40 * 1024); // the files were read: the runtime is not 40 KiB
    expect(total, `gzipped total ${total} bytes, budget ${BUDGET}`).toBeLessThanOrEqual(BUDGET);
  });
});
