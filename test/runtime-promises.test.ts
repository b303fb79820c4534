/**
 * Promises the README makes that no other suite exercises: the host fallback for ops without a
 * wasm kernel, init({ wasmModule }) for runtimes that cannot compile wasm from bytes, and a
 * dist/ that loads with nothing but itself (no bare imports to resolve).
 */
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { WasmBackend } from '../src/backends/wasm/backend';
import { buildPlan } from '../src/backends/wasm/plan';
import { arange, init, memoryStats, type Tensor, tensor, trace } from '../src/index';
import * as o from '../src/ops/api';
import { activeBackend } from '../src/runtime/realize';
import { withReference } from './helpers';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function wasmBackend(): WasmBackend {
  const b = activeBackend();
  if (!(b instanceof WasmBackend)) throw new Error('expected the wasm backend');
  return b;
}

afterAll(async () => {
  await init({ threads: 1 });
});

describe('host fallback for ops without a wasm kernel', () => {
  const ints = tensor(Int32Array.from([-7, 0, 3, -1, 12, 5, -3, 9, 0, -12, 4, 1]), {
    shape: [3, 4],
    dtype: 'int32',
  });
  const cases: [string, () => Tensor][] = [
    ['int32 sign', () => o.sign(ints)],
    ['int32 square', () => o.square(ints)],
    ['int32 argmax', () => o.argmax(ints, 1)],
    ['int32 argmax over axis 0', () => o.argmax(ints, 0)],
    ['int32 matmul', () => o.matmul(ints, o.transpose(ints))],
    // the fallback's output feeds kernels, and kernels' outputs feed the fallback
    ['a chain through the fallback', () => o.add(o.sign(o.mul(ints, 3)), o.square(o.sub(ints, 1)))],
  ];
  for (const [name, f] of cases) {
    it(name, async () => {
      await init({ threads: 1 });
      const plan = buildPlan(trace(f), wasmBackend().kernels);
      expect(plan.fallbacks, 'the plan runs the op on the host').toBeGreaterThan(0);
      const got = f().dataSync();
      const want = withReference(() => f().dataSync());
      expect(got).toBeInstanceOf(Int32Array);
      expect(Array.from(got)).toEqual(Array.from(want));
    });
  }
});

describe('init({ wasmModule })', () => {
  const compiled = (name: string) =>
    new WebAssembly.Module(readFileSync(path.join(root, 'src', 'wasm', name)));
  const sum = async () => (await o.sum(o.mul(arange(0, 100), 2)).data())[0];

  it('runs on the module it is given (here the plain SIMD build where relaxed SIMD would be picked)', async () => {
    await init({ threads: 1 });
    expect(wasmBackend().kernels.relaxed, 'this Node picks the relaxed build by itself').toBe(true);
    await init({ threads: 1, wasmModule: compiled('kernels.wasm') });
    expect(wasmBackend().kernels.relaxed).toBe(false);
    expect(await sum()).toBe(9900);
  });

  it('a shared-memory module serves a worker pool', async () => {
    await init({ threads: 2, wasmModule: compiled('kernels-shared.wasm') });
    expect(wasmBackend().kernels.relaxed).toBe(false);
    expect(memoryStats().threads).toBe(2);
    expect(memoryStats().workers).toBe(1);
    expect(await sum()).toBe(9900);
  });

  it('a module for unshared memory with threads > 1: one thread and a notice, no failure', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    try {
      await init({ threads: 2, wasmModule: compiled('kernels.wasm') });
      expect(memoryStats().threads).toBe(1);
      expect(wasmBackend().kernels.relaxed).toBe(false);
      expect(String(warn.mock.calls[0]?.[0])).toMatch(/wasmModule cannot use shared memory/);
      expect(await sum()).toBe(9900);
    } finally {
      warn.mockRestore();
    }
  });
});

describe('dist/', () => {
  const dist = path.join(root, 'dist');

  it('imports nothing by a bare specifier (only relative paths and node: built-ins)', () => {
    const files = readdirSync(dist).filter((f) => f.endsWith('.js'));
    expect(files).toEqual(expect.arrayContaining(['index.js', 'kernel-worker.js']));
    for (const f of files) {
      const code = readFileSync(path.join(dist, f), 'utf8');
      const specifiers = [
        ...code.matchAll(/^\s*(?:import|export)\b[^;'"]*?\bfrom\s*["']([^"']+)["']/gm),
        ...code.matchAll(/^\s*import\s*["']([^"']+)["']/gm),
        ...code.matchAll(/\bimport\s*\(\s*["']([^"']+)["']\s*\)/g),
        ...code.matchAll(/\brequire\s*\(\s*["']([^"']+)["']\s*\)/g),
      ].map((m) => m[1]);
      // the entries import their chunks, comlink or node: built-ins; a chunk may import nothing
      if (f === 'index.js' || f === 'kernel-worker.js')
        expect(specifiers.length, `${f}: the scan finds its imports`).toBeGreaterThan(0);
      for (const s of specifiers) expect(s, `${f} imports '${s}'`).toMatch(/^(\.\.?\/|node:)/);
    }
  });

  it('runs from a folder with no node_modules anywhere above it, with workers', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'adjoint-dist-'));
    try {
      cpSync(dist, path.join(dir, 'dist'), { recursive: true });
      writeFileSync(
        path.join(dir, 'main.mjs'),
        `import { init, matmul, random, grad, memoryStats } from './dist/index.js';
         await init({ threads: 2 });
         const a = random.normal([200, 200], { seed: 1 });
         const g = grad((x) => matmul(x, x).tanh().sum())(a);
         const d = await g.data();
         console.log(JSON.stringify({ n: d.length, finite: d.every(Number.isFinite), workers: memoryStats().workers }));`,
      );
      const { stdout } = await promisify(execFile)(process.execPath, ['main.mjs'], {
        cwd: dir,
        timeout: 60_000,
      });
      expect(JSON.parse(stdout.trim())).toEqual({ n: 40_000, finite: true, workers: 1 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);
});
