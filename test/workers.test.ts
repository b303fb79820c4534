/**
 * The worker pool: 1 vs 2 threads give the same numbers, independent subgraphs share a level,
 * small kernels stay on the main thread, a worker killed mid-computation is survived, the
 * single-thread fallback without SharedArrayBuffer, and a Node process exits on its own.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { build } from 'esbuild';
import { afterAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import WebWorker from 'web-worker';
import { WasmBackend } from '../src/backends/wasm/backend';
import { buildPlan } from '../src/backends/wasm/plan';
import {
  init,
  jit,
  matmul,
  memoryStats,
  nn,
  random,
  type Tensor,
  tensor,
  trace,
  valueAndGrad,
} from '../src/index';
import { activeBackend, setBackend } from '../src/runtime/realize';
import * as C from '../src/scheduler/control';
import { loadSharedKernels } from '../src/scheduler/module';
import { splitPolicy } from '../src/scheduler/partition';
import { WorkerError, WorkerPool } from '../src/scheduler/pool';
import * as P from '../workers/protocol.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function poolBackend(): WasmBackend {
  const b = activeBackend();
  if (!(b instanceof WasmBackend) || !b.pool) throw new Error('expected a wasm backend with a worker pool');
  return b;
}

async function threads(n: number): Promise<void> {
  await init({ threads: n });
  expect(memoryStats().threads).toBe(n);
}

const host = async (t: Tensor): Promise<Float32Array> => Float32Array.from(await t.data());

/** Bitwise equality of two float arrays (vitest's toEqual is slow on large arrays). */
function expectSame(got: Float32Array, want: Float32Array, what = ''): void {
  expect(got.length, `${what} length`).toBe(want.length);
  const a = new Uint32Array(got.buffer, got.byteOffset, got.length);
  const b = new Uint32Array(want.buffer, want.byteOffset, want.length);
  let first = -1;
  for (let i = 0; i < a.length && first < 0; i++) if (a[i] !== b[i]) first = i;
  expect(first < 0 ? 'identical' : `differs at ${first}: ${got[first]} vs ${want[first]}`, what).toBe(
    'identical',
  );
}

afterAll(async () => {
  await init({ threads: 1 });
});

describe('control block layout', () => {
  it('the worker script and the scheduler agree on every word', () => {
    for (const [k, v] of Object.entries(P.CTL)) expect(C.CTL[k as keyof typeof C.CTL], k).toBe(v);
    expect(Object.keys(C.CTL).sort()).toEqual(Object.keys(P.CTL).sort());
    expect(C.COMMAND).toEqual({ ...P.COMMAND });
    expect(C.STATE).toEqual({ ...P.STATE });
    expect([C.KILL_EXIT, C.KILL_THROW, C.MAX_CHUNKS]).toEqual([P.KILL_EXIT, P.KILL_THROW, P.MAX_CHUNKS]);
  });
});

/** Cases big enough to be split across threads; each returns its outputs. */
function cases(): [string, () => Tensor[]][] {
  const a = random.normal([300, 200], { seed: 1 });
  const b = random.normal([200, 250], { seed: 2 });
  const big = random.normal([600, 500], { seed: 3 });
  const big2 = random.normal([600, 500], { seed: 4 });
  const row = random.normal([500], { seed: 5 });
  const batched = random.normal([4, 96, 64], { seed: 6 });
  const w = random.normal([64, 80], { seed: 7 });
  const wide = random.normal([2000, 300], { seed: 8 });
  const loss = (x: Tensor, y: Tensor) => matmul(x, y).tanh().sum();
  return [
    ['matmul', () => [matmul(a, b)]],
    ['matmul adjoints (transposed operands)', () => valueAndGrad(loss, [0, 1])(a, b).flat() as Tensor[]],
    ['batched matmul with broadcasting', () => [matmul(batched, w)]],
    ['unary', () => [big.exp(), big.sin()]],
    ['binary and broadcasting', () => [big.add(big2), big.mul(row), big.sub(row.reshape([1, 500]))]],
    ['where and comparisons', () => [big.greater(big2).where(big, big2), big.less(0).where(big, row)]],
    ['fused chains', () => [big.mul(big2).add(row).relu().tanh(), big.square().add(big2.abs()).sqrt()]],
    ['fill', () => [big.mul(0).add(2.5)]],
    ['transpose and slice', () => [big.transpose(), big.slice([10, 20], [500, 400])]],
    ['reductions', () => [wide.sum(1), wide.max(-1), wide.mean(1), wide.min(1)]],
    ['softmax', () => [wide.softmax(-1), wide.logSoftmax(-1)]],
  ];
}

async function runAll(): Promise<Map<string, Float32Array[]>> {
  const out = new Map<string, Float32Array[]>();
  for (const [name, f] of cases()) out.set(name, await Promise.all(f().map(host)));
  return out;
}

describe('threads = 1 and threads = 2 agree', () => {
  it('every splittable kernel, with the main thread sharing the chunks and with workers taking them all', async () => {
    await threads(1);
    const one = await runAll();
    await threads(2);
    const pool = poolBackend().pool!;
    expect(pool.serving).toBe(1);
    for (const mainClaims of [true, false]) {
      pool.testing.mainClaims = mainClaims;
      for (const [name, f] of cases()) {
        const jobs = pool.stats.jobs;
        const got = await Promise.all(f().map(host));
        expect(pool.stats.jobs, `${name}: split across threads`).toBeGreaterThan(jobs);
        const want = one.get(name)!;
        expect(got.length).toBe(want.length);
        got.forEach((g, i) => {
          if (name === 'reductions' || name === 'softmax') {
            // float32 tolerance is what is promised (the split keeps each row's order: they match)
            let worst = 0;
            for (let j = 0; j < g.length; j++)
              worst = Math.max(worst, Math.abs(g[j] - want[i][j]) / (1 + Math.abs(want[i][j])));
            expect(worst, `${name} output ${i}`).toBeLessThanOrEqual(1e-6);
          } else expectSame(g, want[i], `${name} output ${i}`);
        });
      }
    }
    pool.testing.mainClaims = true;
    expect(poolBackend().workerFaults).toBe(0);
  });

  it('a jitted MLP training step gives the same losses and parameters', async () => {
    const sizes = [64, 256, 256, 10];
    const train = async () => {
      let params = nn.mlp.init(sizes, { seed: 11 });
      const x = random.normal([128, 64], { seed: 12 });
      const labels = tensor(
        Int32Array.from({ length: 128 }, (_, i) => (i * 7) % 10),
        { dtype: 'int32' },
      );
      const step = jit((p: typeof params) => {
        const [l, g] = valueAndGrad((q: typeof params) => nn.softmaxCrossEntropy(nn.mlp.apply(q, x), labels))(
          p,
        );
        return [
          l,
          (g as typeof params).map((L, i) => ({ w: p[i].w.sub(L.w.mul(0.1)), b: p[i].b.sub(L.b.mul(0.1)) })),
        ];
      });
      const losses: number[] = [];
      for (let i = 0; i < 3; i++) {
        const [l, p] = step(params) as [Tensor, typeof params];
        losses.push(await l.item());
        params = p;
      }
      return { losses, w: await host(params[1].w) };
    };
    await threads(1);
    const one = await train();
    await threads(2);
    const jobs = poolBackend().pool!.stats.jobs;
    const two = await train();
    expect(poolBackend().pool!.stats.jobs).toBeGreaterThan(jobs);
    expect(two.losses).toEqual(one.losses);
    expectSame(two.w, one.w);
  });
});

describe('partitioning', () => {
  it('puts independent branches in one level and splits them; keeps small kernels on the main thread', async () => {
    // the defaults (ADJOINT_DISPATCH_MIN_NS / ADJOINT_CHUNK_MIN_NS may override them for stress runs)
    const saved = { ...splitPolicy };
    Object.assign(splitPolicy, { dispatchMinNs: 50_000, chunkMinNs: 20_000 });
    onTestFinished(() => {
      Object.assign(splitPolicy, saved);
    });
    const shared = await loadSharedKernels();
    const x = random.normal([256, 256], { seed: 1 });
    const y = random.normal([256, 256], { seed: 2 });
    await Promise.all([x.data(), y.data()]);
    const branches = trace(() => matmul(x, x).add(matmul(y, y)));
    const plan = buildPlan(branches, shared.kernels, { threads: 2 });
    const jobs = plan.levels!.filter((l) => l.job).map((l) => l.job!);
    expect(jobs.length).toBeGreaterThan(0);
    expect(jobs[0].tasks.length).toBe(2);
    expect(jobs[0].chunks).toBeGreaterThanOrEqual(4);

    const small = trace((u: Tensor) => u.add(1).mul(u), tensor(new Float32Array(1000)));
    const smallPlan = buildPlan(small, shared.kernels, { threads: 2 });
    expect(smallPlan.levels!.every((l) => l.job === null)).toBe(true);
  });

  it('values of concurrently running steps never share memory (many independent branches)', async () => {
    const xs = Array.from({ length: 6 }, (_, i) => random.normal([200, 200], { seed: 20 + i }));
    const f = () =>
      xs
        .map((x, i) => (i % 2 ? matmul(x, x).relu().mul(x) : x.exp().add(x.transpose()).tanh()))
        .map((t, i) => (i % 3 === 0 ? matmul(t, xs[(i + 1) % xs.length]) : t.sin()))
        .reduce((s, t) => s.add(t));
    await threads(1);
    const want = await host(f());
    await threads(2);
    const pool = poolBackend().pool!;
    for (const mainClaims of [true, false]) {
      pool.testing.mainClaims = mainClaims;
      expectSame(await host(f()), want);
    }
    pool.testing.mainClaims = true;
  });
});

describe('faults', () => {
  async function setup() {
    await threads(2);
    const backend = poolBackend();
    const pool = backend.pool!;
    pool.stallMs = 300;
    const w = random.normal([256, 256], { seed: 31 });
    const x = random.normal([256, 256], { seed: 32 });
    const wData = await host(w);
    const want = await host(matmul(x, w).relu());
    return { backend, pool, w, x, wData, want };
  }

  it('a worker killed mid-computation: the run is retried on the main thread, parameters intact, the pool recovers', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    try {
      const { backend, pool, w, x, wData, want } = await setup();
      pool.testing.mainClaims = false; // the worker must take the chunks, and die with one
      pool.killDuringNextJob(1, 'exit');
      const got = await host(matmul(x, w).relu());
      expectSame(got, want);
      expect(backend.workerFaults).toBe(1);
      expectSame(await host(w), wData);
      // the pool starts a replacement in the background
      await vi.waitFor(() => expect(pool.serving).toBe(1), { timeout: 20_000, interval: 20 });
      expect(pool.stats.respawns).toBe(1);
      const jobs = pool.stats.jobs;
      expectSame(await host(matmul(x, w).relu()), want);
      expect(pool.stats.jobs).toBeGreaterThan(jobs);
      expect(backend.workerFaults).toBe(1);
      pool.testing.mainClaims = true;
    } finally {
      warn.mockRestore();
    }
  });

  it('a task that throws in a worker: retried, or rejected with a typed error when asked to', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    try {
      const { backend, pool, w, x, wData, want } = await setup();
      pool.testing.mainClaims = false;
      pool.killDuringNextJob(1, 'throw');
      expectSame(await host(matmul(x, w).relu()), want);
      expect(backend.workerFaults).toBe(1);
      await vi.waitFor(() => expect(pool.serving).toBe(1), { timeout: 20_000, interval: 20 });

      backend.onWorkerFault = 'reject';
      pool.killDuringNextJob(1, 'throw');
      const before = memoryStats().liveBuffers;
      expect(() => matmul(x, w).relu().dataSync()).toThrow(WorkerError);
      expect(memoryStats().liveBuffers).toBeLessThanOrEqual(before + 8); // quarantined blocks only
      expectSame(await host(w), wData);
      await vi.waitFor(() => expect(pool.serving).toBe(1), { timeout: 20_000, interval: 20 });
      backend.onWorkerFault = 'retry';
      expectSame(await host(matmul(x, w).relu()), want);
      pool.testing.mainClaims = true;
    } finally {
      warn.mockRestore();
    }
  });
});

/** Section ids of a wasm binary. */
function sectionIds(bytes: Uint8Array): number[] {
  const ids: number[] = [];
  let at = 8;
  while (at < bytes.length) {
    const id = bytes[at++];
    let size = 0;
    let shift = 0;
    for (;;) {
      const b = bytes[at++];
      size |= (b & 0x7f) << shift;
      shift += 7;
      if (!(b & 0x80)) break;
    }
    ids.push(id);
    at += size;
  }
  return ids;
}

describe('shared-memory kernels', () => {
  it('keep no data in memory of their own: no data segments, no imported globals (no shared stack)', async () => {
    const { readFile } = await import('node:fs/promises');
    for (const name of ['kernels-shared.wasm', 'kernels-relaxed-shared.wasm']) {
      const bytes = new Uint8Array(await readFile(path.join(root, 'src', 'wasm', name)));
      expect(sectionIds(bytes), name).not.toContain(11); // data
      const m = new WebAssembly.Module(bytes);
      const imports = WebAssembly.Module.imports(m).map((x) => `${x.module}.${x.name}:${x.kind}`);
      expect(imports).toContain('env.memory:memory');
      for (const x of imports) expect(['env.memory:memory', 'env.abort:function']).toContain(x);
      expect(WebAssembly.Module.exports(m).some((e) => e.kind === 'global')).toBe(false);
    }
  });

  it('a pool whose worker script cannot start runs on the main thread', async () => {
    const shared = await loadSharedKernels();
    const pool = new WorkerPool(shared, 2, { workerUrl: new URL('./no-such-worker.js', import.meta.url) });
    await pool.ready();
    expect(pool.serving).toBe(0);
    expect(pool.stats.spawnFailures).toBe(1);
    const prev = activeBackend();
    setBackend(new WasmBackend(shared.kernels, { pool }));
    try {
      expect(await host(matmul(tensor([[1, 2]]), tensor([[3], [4]])))).toEqual(Float32Array.from([11]));
    } finally {
      setBackend(prev);
      await pool.shutdown();
    }
  });

  it('shutdown() stops the workers; later runs use the main thread', async () => {
    const { shutdown } = await import('../src/runtime/init');
    await threads(2);
    expect(memoryStats().workers).toBe(1);
    await shutdown();
    expect(memoryStats().workers).toBe(0);
    const a = random.normal([300, 300], { seed: 51 });
    const got = await host(matmul(a, a));
    await threads(1);
    expectSame(got, await host(matmul(a, a)));
  });
});

describe('runtimes', () => {
  it('the same worker script runs as a Web Worker (the web-worker package under Node)', async () => {
    const shared = await loadSharedKernels();
    const pool = new WorkerPool(shared, 2, { Worker: WebWorker as never });
    await pool.ready();
    expect(pool.serving).toBe(1);
    const backend = new WasmBackend(shared.kernels, { pool });
    const prev = activeBackend();
    await threads(1);
    const a = random.normal([300, 300], { seed: 41 });
    const want = await host(matmul(a, a).exp());
    setBackend(backend);
    pool.testing.mainClaims = false;
    try {
      expectSame(await host(matmul(a, a).exp()), want);
      expect(pool.stats.jobs).toBeGreaterThan(0);
    } finally {
      setBackend(prev);
      await pool.shutdown();
    }
  });

  it('without SharedArrayBuffer: one thread and a single notice', async () => {
    const g = globalThis as { SharedArrayBuffer?: unknown };
    const saved = g.SharedArrayBuffer;
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    try {
      delete g.SharedArrayBuffer;
      await init({ threads: 2 });
      expect(memoryStats().threads).toBe(1);
      expect(memoryStats().workers).toBe(0);
      await init({ threads: 4 });
      expect(warn).toHaveBeenCalledTimes(1);
      expect(String(warn.mock.calls[0][0])).toMatch(/SharedArrayBuffer.*Cross-Origin-Opener-Policy/);
      expect(await host(matmul(tensor([[1, 2]]), tensor([[3], [4]])))).toEqual(Float32Array.from([11]));
    } finally {
      g.SharedArrayBuffer = saved;
      warn.mockRestore();
    }
    await threads(2);
  });

  it('ADJOINT_THREADS sets the default thread count', async () => {
    const { defaultThreads } = await import('../src/runtime/init');
    const saved = process.env.ADJOINT_THREADS;
    try {
      process.env.ADJOINT_THREADS = '3';
      expect(defaultThreads()).toBe(3);
      process.env.ADJOINT_THREADS = '';
      expect(defaultThreads()).toBeGreaterThanOrEqual(1);
    } finally {
      if (saved === undefined) delete process.env.ADJOINT_THREADS;
      else process.env.ADJOINT_THREADS = saved;
    }
  });

  it('a Node process with a pool (and a killed worker) exits on its own', async () => {
    const outfile = path.join(root, 'build', 'worker-exit', 'main.mjs');
    await build({
      stdin: {
        contents: `
          import { init, matmul, random, memoryStats } from '../src/index';
          import { activeBackend } from '../src/runtime/realize';
          await init({ threads: 2 });
          const a = random.normal([256, 256], { seed: 1 });
          const pool = activeBackend().pool;
          pool.stallMs = 300;
          pool.testing.mainClaims = false;
          const mode = process.argv[2];
          if (mode !== 'none') pool.killDuringNextJob(1, mode === 'kill' ? 'exit' : 'throw');
          console.warn = () => {};
          const r = await matmul(a, a).data();
          console.log(JSON.stringify({ n: r.length, threads: memoryStats().threads }));
        `,
        resolveDir: path.join(root, 'test'),
        loader: 'ts',
      },
      bundle: true,
      format: 'esm',
      platform: 'node',
      target: 'node20',
      outfile,
      external: ['comlink', 'comlink/*'],
      // wasm-url.ts and worker-url.ts resolve files next to the sources
      define: { 'import.meta.url': JSON.stringify(pathToFileURL(path.join(root, 'src', 'index.ts')).href) },
      logLevel: 'silent',
    });
    const run = promisify(execFile);
    for (const mode of ['none', 'kill', 'throw']) {
      const t0 = Date.now();
      const { stdout } = await run(process.execPath, [outfile, mode], { cwd: root, timeout: 30_000 });
      expect(JSON.parse(stdout.trim())).toEqual({ n: 256 * 256, threads: 2 });
      expect(Date.now() - t0).toBeLessThan(30_000);
    }
  });
});
