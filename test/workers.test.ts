/**
 * The worker pool: every task kind, split across threads, gives the same bits at 1, 2 and 3
 * threads; independent subgraphs share a level; small kernels stay on the main thread; a worker
 * that dies or throws during a job of any kind is survived; the single-thread fallback without
 * SharedArrayBuffer; and a Node process exits on its own.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { build } from 'esbuild';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFinished, vi } from 'vitest';
import WebWorker from 'web-worker';
import { WasmBackend } from '../src/backends/wasm/backend';
import { buildPlan } from '../src/backends/wasm/plan';
import * as C from '../src/backends/wasm/scheduler/control';
import { loadSharedKernels } from '../src/backends/wasm/scheduler/module';
import { splitPolicy } from '../src/backends/wasm/scheduler/partition';
import { WorkerError, WorkerPool } from '../src/backends/wasm/scheduler/pool';
import {
  avgPool2d,
  conv2d,
  full,
  grad,
  init,
  jit,
  matmul,
  maxPool2d,
  memoryStats,
  nn,
  random,
  type Tensor,
  tensor,
  trace,
  valueAndGrad,
} from '../src/index';
import { apply } from '../src/ops/registry';
import { activeBackend, setBackend } from '../src/runtime/realize';
import * as P from '../workers/protocol.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/**
 * How long a job may make no progress before its worker is declared dead. Silent deaths are
 * only noticed this way, so the fault tests wait this long for each one; it is generous so a
 * live worker starved of CPU (other test files share the two cores) is never mistaken for a
 * dead one, which would make the fault counts below flaky.
 */
const STALL_MS = 2000;

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

/**
 * Sets the split policy to its defaults (ADJOINT_DISPATCH_MIN_NS / ADJOINT_CHUNK_MIN_NS may
 * change them for stress runs), so tests that assert what gets split do not depend on the
 * environment. Returns the function that restores it.
 */
function pinSplitPolicy(): () => void {
  const saved = { ...splitPolicy };
  Object.assign(splitPolicy, { dispatchMinNs: 50_000, chunkMinNs: 20_000 });
  return () => {
    Object.assign(splitPolicy, saved);
  };
}

type Kind = keyof typeof C.TaskKind;
/** A job as recordJobs saw it: each task's kind and chunk count. */
type JobRecord = { kind: Kind | undefined; chunks: number }[];
const kindOf = new Map<number, Kind>(Object.entries(C.TaskKind).map(([name, code]) => [code, name as Kind]));

/**
 * Records the jobs the pool runs from now on (until the test ends): for each, its tasks' kinds,
 * read from the task records in wasm memory (what the workers execute), and chunk counts. This
 * is what shows a case really ran split: one that fused into another kind, or stayed on the
 * main thread, would compare a single-thread run with itself.
 */
function recordJobs(pool: WorkerPool): JobRecord[] {
  const jobs: JobRecord[] = [];
  const runJob = pool.runJob.bind(pool);
  const spy = vi.spyOn(pool, 'runJob').mockImplementation((job, ...rest) => {
    jobs.push(job.tasks.map((t) => ({ kind: kindOf.get(pool.kernels.i32(t.rec, 1)[0]), chunks: t.chunks })));
    runJob(job, ...rest);
  });
  onTestFinished(() => spy.mockRestore());
  return jobs;
}

/** Kinds of the tasks cut into two chunks or more. */
const splitKinds = (jobs: JobRecord[]): Kind[] => [
  ...new Set(jobs.flatMap((j) => j.filter((t) => t.chunks >= 2).map((t) => t.kind!))),
];

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

/**
 * An int32 mask that is already data (a constant leaf): a `where` on it has no elementwise
 * input to fuse with, so it runs as its own `where` (or, broadcasting, `strided`) task.
 */
function mask(shape: number[]): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tensor(
    Int32Array.from({ length: n }, (_, i) => ((i * 7919) % 3 === 0 ? 1 : 0)),
    { shape, dtype: 'int32' },
  );
}

/**
 * Cases big enough to be split across threads, each with the task kinds it must be split into.
 * Sizes are not multiples of the chunk grain (64 elements, 512-element fused tiles), so the last
 * chunk is a partial one; rows of 301 start off SIMD alignment, and the middle-axis reduction
 * takes the column kernel rather than the row kernel.
 */
function cases(): { name: string; kinds: Kind[]; run: () => Tensor[] }[] {
  const a = random.normal([300, 200], { seed: 1 });
  const b = random.normal([200, 250], { seed: 2 });
  const big = random.normal([600, 500], { seed: 3 });
  const big2 = random.normal([600, 500], { seed: 4 });
  const row = random.normal([500], { seed: 5 });
  const batched = random.normal([4, 96, 64], { seed: 6 });
  const w = random.normal([64, 80], { seed: 7 });
  const wide = random.normal([2000, 301], { seed: 8 });
  const cube = random.normal([40, 300, 50], { seed: 9 });
  const m = mask([600, 500]);
  const img = random.normal([4, 19, 17, 12], { seed: 10 });
  const filt = random.normal([3, 3, 12, 20], { seed: 11 });
  const dwFilt = random.normal([2, 3, 1, 12], { seed: 12 });
  const img2 = random.normal([8, 33, 31, 12], { seed: 13 });
  const loss = (x: Tensor, y: Tensor) => matmul(x, y).tanh().sum();
  return [
    { name: 'matmul', kinds: ['matmul'], run: () => [matmul(a, b)] },
    {
      name: 'matmul adjoints (transposed operands)',
      kinds: ['matmul'],
      run: () => valueAndGrad(loss, [0, 1])(a, b).flat() as Tensor[],
    },
    { name: 'batched matmul with broadcasting', kinds: ['matmul'], run: () => [matmul(batched, w)] },
    { name: 'unary', kinds: ['unary'], run: () => [big.exp(), big.sin()] },
    {
      name: 'binary and broadcasting',
      kinds: ['binary', 'strided'],
      run: () => [big.add(big2), big.mul(row), big.sub(row.reshape([1, 500]))],
    },
    {
      name: 'where, unfused',
      kinds: ['where', 'strided'],
      run: () => [m.where(big, big2), m.where(big, row)],
    },
    { name: 'fill', kinds: ['fill'], run: () => [full([1000, 999], 2.5)] },
    {
      name: 'fused chains, with where, comparisons and immediates',
      kinds: ['fused'],
      run: () => [
        big.mul(big2).add(row).relu().tanh(),
        big.square().add(big2.abs()).sqrt(),
        big.greater(big2).where(big, big2),
        big.less(0).where(big, row),
        big.mul(0).add(2.5),
      ],
    },
    {
      name: 'transpose and slice',
      kinds: ['strided'],
      run: () => [big.transpose(), big.slice([10, 20], [500, 400])],
    },
    {
      name: 'reductions',
      kinds: ['reduce'],
      run: () => [wide.sum(1), wide.max(-1), wide.mean(1), wide.min(1)],
    },
    { name: 'reduction over a middle axis', kinds: ['reduce'], run: () => [cube.sum(1)] },
    {
      name: 'softmax, logSoftmax and their gradients',
      kinds: ['softmax'],
      run: () => {
        const weights = wide.cos();
        const loss = (t: Tensor) => t.softmax(-1).mul(weights).sum().add(t.logSoftmax(-1).mul(weights).sum());
        // causal rows: each worker's chunk starts mid-block, so it must know its first row's index
        const causal = apply('softmax', [wide.reshape([125, 16, 301])], { axis: 2, causal: true });
        // a keep row per 16 rows (one in three keys masked): chunks start mid-group too
        const keep = wide.slice([0, 0], [125, 301]).greater(-0.4).cast('int32');
        const masked = apply('softmax', [wide.reshape([125, 16, 301]), keep], { axis: 2 });
        return [wide.softmax(-1), wide.logSoftmax(-1), grad(loss)(wide), causal, masked];
      },
    },
    {
      name: 'layer and RMS normalization and their gradients',
      kinds: ['norm'],
      run: () => {
        const ln = nn.layerNorm.init(301);
        const scaled = { gamma: row.slice([0], [301]), beta: wide.slice([7, 0], [1, 301]).reshape([301]) };
        const weights = wide.sin();
        const loss = (x: Tensor) =>
          nn.layerNorm
            .apply(scaled, x)
            .mul(weights)
            .sum()
            .add(nn.rmsNorm.apply(scaled, x).mul(weights).sum());
        return [
          nn.layerNorm.apply(scaled, wide),
          nn.layerNorm.apply(ln, wide, { eps: 0.5 }),
          nn.rmsNorm.apply(scaled, wide),
          grad(loss)(wide),
        ];
      },
    },
    {
      name: 'convolution and both gradients; depthwise, strided and dilated',
      kinds: ['conv'],
      run: () => {
        const f = (u: Tensor, k: Tensor, d: Tensor) =>
          conv2d(u, k, { padding: 'same' })
            .tanh()
            .sum()
            .add(
              conv2d(u, d, {
                strides: 2,
                dilations: [1, 2],
                groups: 12,
                padding: [
                  [1, 2],
                  [0, 1],
                ],
              })
                .square()
                .sum(),
            );
        return valueAndGrad(f, [0, 1, 2])(img, filt, dwFilt).flat() as Tensor[];
      },
    },
    {
      name: 'pooling and its gradients',
      kinds: ['pool'],
      run: () => {
        const f = (u: Tensor) =>
          maxPool2d(u, 3, { strides: 2, padding: 'same' })
            .square()
            .sum()
            .add(avgPool2d(u, [2, 3]).tanh().sum());
        return valueAndGrad(f)(img2).flat() as Tensor[];
      },
    },
  ];
}

describe('any thread count gives the same bits', () => {
  it('every task kind, split, at 1, 2 and 3 threads, with and without the main thread taking chunks', async () => {
    onTestFinished(pinSplitPolicy());
    await threads(1);
    const want = new Map<string, Float32Array[]>();
    for (const c of cases()) want.set(c.name, await Promise.all(c.run().map(host)));
    const covered = new Set<Kind>();
    // Chunk boundaries depend on the thread count (2 and 3 threads cut differently). With
    // mainClaims true the main thread shares the chunks; with false the workers run them all.
    for (const n of [2, 3]) {
      await threads(n);
      const pool = poolBackend().pool!;
      expect(pool.serving).toBe(n - 1);
      const jobs = recordJobs(pool);
      for (const mainClaims of [true, false]) {
        pool.testing.mainClaims = mainClaims;
        for (const c of cases()) {
          jobs.length = 0;
          const got = await Promise.all(c.run().map(host));
          const split = splitKinds(jobs);
          for (const k of c.kinds)
            expect(split, `${c.name}, ${n} threads: a ${k} task in 2+ chunks`).toContain(k);
          for (const k of split) covered.add(k);
          got.forEach((g, i) => {
            expectSame(
              g,
              want.get(c.name)![i],
              `${c.name} output ${i}, ${n} threads, mainClaims ${mainClaims}`,
            );
          });
        }
      }
      pool.testing.mainClaims = true;
      expect(poolBackend().workerFaults).toBe(0);
    }
    // a task kind added to the scheduler needs a case here
    expect([...covered].sort()).toEqual(Object.keys(C.TaskKind).sort());
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
    for (const n of [2, 3]) {
      await threads(n);
      const jobs = poolBackend().pool!.stats.jobs;
      const got = await train();
      expect(poolBackend().pool!.stats.jobs, `${n} threads: split`).toBeGreaterThan(jobs);
      expect(got.losses, `${n} threads`).toEqual(one.losses);
      expectSame(got.w, one.w, `${n} threads`);
    }
  });
});

describe('partitioning', () => {
  it('puts independent branches in one level and splits them; keeps small kernels on the main thread', async () => {
    onTestFinished(pinSplitPolicy());
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
  const sq = random.normal([256, 256], { seed: 31 });
  const sq2 = random.normal([256, 256], { seed: 32 });
  const x = random.normal([600, 500], { seed: 33 });
  const y = random.normal([600, 500], { seed: 34 });
  const m = mask([600, 500]);
  const img = random.normal([8, 32, 32, 16], { seed: 35 });
  const filt = random.normal([3, 3, 16, 32], { seed: 36 });
  const pimg = random.normal([8, 64, 64, 16], { seed: 37 });
  /**
   * One computation per task kind whose first job starts with a task of that kind: with
   * mainClaims false the doomed worker claims chunk 0 of the first job, so it dies in that kind.
   */
  const faultCases: Record<Kind, { inputs: Tensor[]; run: () => Tensor }> = {
    matmul: { inputs: [sq, sq2], run: () => matmul(sq, sq2).relu() },
    fused: { inputs: [x, y], run: () => x.mul(y).add(1).tanh() },
    unary: { inputs: [x], run: () => x.exp() },
    binary: { inputs: [x, y], run: () => x.add(y) },
    where: { inputs: [m, x, y], run: () => m.where(x, y) },
    fill: { inputs: [], run: () => full([1000, 999], 2.5) },
    reduce: { inputs: [x], run: () => x.sum(1) },
    softmax: { inputs: [x], run: () => x.softmax(-1) },
    norm: { inputs: [x], run: () => nn.layerNorm.apply(nn.layerNorm.init(500), x) },
    strided: { inputs: [x], run: () => x.transpose() },
    conv: { inputs: [img, filt], run: () => conv2d(img, filt, { padding: 'same' }) },
    pool: { inputs: [pimg], run: () => maxPool2d(pimg, 2) },
  };
  const kinds = Object.keys(faultCases) as Kind[];
  const want = new Map<Kind, Float32Array>();
  let backend: WasmBackend;
  let pool: WorkerPool;

  beforeAll(async () => {
    const restore = pinSplitPolicy();
    await threads(1);
    for (const k of kinds) want.set(k, await host(faultCases[k].run()));
    await threads(2);
    backend = poolBackend();
    pool = backend.pool!;
    pool.stallMs = STALL_MS;
    // One run each on the pool first: inputs this backend has seen before stay in wasm memory
    // for the run that loses a worker (a stray write would show), instead of temporary copies.
    for (const k of kinds) expectSame(await host(faultCases[k].run()), want.get(k)!, `${k} on the pool`);
    // the pool reports its first fault once per process; keep the test output quiet
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    return () => {
      warn.mockRestore();
      restore();
    };
  });

  /** Waits until the pool's worker serves (a replacement starts in the background). */
  const workerServing = () =>
    vi.waitFor(() => expect(pool.serving).toBe(1), { timeout: 20_000, interval: 20 });

  // Every test starts with a serving worker to kill, even after one that failed before the
  // replacement was up.
  beforeEach(workerServing);

  /**
   * Arms the test hook: worker 1 dies ('exit': at once, without a word, as a crash would) or
   * throws from its task when it claims its next chunk. Returns the record of the jobs run.
   */
  function killWorkerInNextJob(mode: 'exit' | 'throw') {
    const jobs = recordJobs(pool);
    pool.testing.mainClaims = false; // the worker must take the chunks, and die with one
    onTestFinished(() => {
      pool.testing.mainClaims = true;
    });
    pool.killDuringNextJob(1, mode);
    return jobs;
  }

  /** The pool has replaced the dead worker, and the replacement works. */
  async function expectRecovered(kind: Kind, respawns: number): Promise<void> {
    await workerServing();
    expect(pool.stats.respawns).toBe(respawns + 1);
    const jobs = pool.stats.jobs;
    expectSame(await host(faultCases[kind].run()), want.get(kind)!, 'after the respawn');
    expect(pool.stats.jobs).toBeGreaterThan(jobs);
  }

  // A silent death ('exit') is only noticed by the stall timeout (STALL_MS each), so it is run
  // for the kinds whose tasks differ in how they report progress (matmul ticks a progress word,
  // the others only count chunks done) and in how they are cut; 'throw' is cheap: every kind.
  const exits: Kind[] = ['matmul', 'fused', 'reduce', 'softmax', 'strided'];
  for (const [mode, list] of [
    ['exit', exits],
    ['throw', kinds],
  ] as const) {
    for (const kind of list) {
      it(`a worker that ${mode === 'exit' ? 'dies silently' : 'throws'} during a ${kind} job: retried on the main thread, inputs intact, the pool recovers`, async () => {
        const { inputs } = faultCases[kind];
        const before = await Promise.all(inputs.map(host));
        const faults = backend.workerFaults;
        const respawns = pool.stats.respawns;
        const jobs = killWorkerInNextJob(mode);
        expectSame(await host(faultCases[kind].run()), want.get(kind)!, 'the retried run');
        expect(jobs[0]?.[0]?.kind, 'the task the worker died in').toBe(kind);
        expect(backend.workerFaults).toBe(faults + 1);
        for (const [i, t] of inputs.entries()) expectSame(await host(t), before[i], `input ${i}`);
        await expectRecovered(kind, respawns);
        expect(backend.workerFaults).toBe(faults + 1);
      });
    }
  }

  it('a task that throws in a worker is rejected with a typed error when asked to', async () => {
    backend.onWorkerFault = 'reject';
    onTestFinished(() => {
      backend.onWorkerFault = 'retry';
    });
    const wData = await host(sq2);
    const respawns = pool.stats.respawns;
    const before = memoryStats().liveBuffers;
    const jobs = killWorkerInNextJob('throw');
    await expect(host(faultCases.matmul.run())).rejects.toThrow(WorkerError);
    expect(jobs[0]?.[0]?.kind, 'the task the worker died in').toBe('matmul');
    expect(memoryStats().liveBuffers).toBeLessThanOrEqual(before + 8); // quarantined blocks only
    expectSame(await host(sq2), wData);
    backend.onWorkerFault = 'retry';
    await expectRecovered('matmul', respawns);
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

  const EXIT_MS = 20_000;
  it(
    'a Node process with a pool (and a killed worker) exits on its own',
    async () => {
      const outfile = path.join(root, 'build', 'worker-exit', 'main.mjs');
      await build({
        stdin: {
          contents: `
          import { init, matmul, random, memoryStats } from '../src/index';
          import { activeBackend } from '../src/runtime/realize';
          await init({ threads: 2 });
          const a = random.normal([256, 256], { seed: 1 });
          const pool = activeBackend().pool;
          pool.stallMs = ${STALL_MS};
          pool.testing.mainClaims = false;
          const mode = process.argv[2];
          if (mode !== 'none') pool.killDuringNextJob(1, mode === 'kill' ? 'exit' : 'throw');
          console.warn = () => {};
          const r = await matmul(a, a).data();
          const faults = activeBackend().workerFaults;
          console.log(JSON.stringify({ n: r.length, threads: memoryStats().threads, faults }));
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
      // A process that does not exit on its own is killed at EXIT_MS and the test fails; the
      // test's own timeout covers the build and all three runs, so it never preempts that message.
      const run = promisify(execFile);
      for (const [mode, faults] of [
        ['none', 0],
        ['kill', 1],
        ['throw', 1],
      ] as const) {
        const { stdout } = await run(process.execPath, [outfile, mode], {
          cwd: root,
          timeout: EXIT_MS,
        }).catch((e: { killed?: boolean }) => {
          throw e.killed ? new Error(`${mode}: the process did not exit on its own within ${EXIT_MS} ms`) : e;
        });
        expect(JSON.parse(stdout.trim()), mode).toEqual({ n: 256 * 256, threads: 2, faults });
      }
    },
    3 * EXIT_MS + 30_000,
  );
});
