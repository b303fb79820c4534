/**
 * The WebGPU backend (src/backends/webgpu) on Dawn (npm 'webgpu') over this machine's adapter
 * (Mesa's lavapipe here and in CI): every op the backend core owns against the float32
 * reference interpreter, value and gradient, on random shapes (test/op-specs.ts: zero-size dims,
 * broadcasting, batch dims) and on targeted cases (odd sizes, every reduction schedule, special
 * values, int32 semantics, 2D dispatch grids), plus the plan/pool/device behaviour: one submit
 * per run, fusion into one dispatch, pipelines shared across shapes, buffers freed by liveness,
 * typed errors for a missing adapter, a lost device, rejected work and tensors past one binding.
 * The kernels of matmul.ts, softmax.ts and gather.ts are run through the backend too (their own
 * tests own their numerics). Without an adapter every test fails with the reason.
 *
 * Tolerances (|got - want| <= atol + rtol * scale, test/helpers.ts expectClose):
 * - random-shape parity, value and gradient: 2e-5 relative to the largest magnitude, as the wasm
 *   parity test; GPU transcendentals stay within it on these domains (measured on lavapipe: exp
 *   3 ulp for |x| <= 4, log 2e-7 relative, tanh/log1p/sigmoid/softplus 3e-7, sin/cos 6e-8
 *   absolute on [-4, 4]; WGSL itself only promises e.g. 2^-11 absolute for sin/cos).
 * - special values: NaN positions and infinities exact; finite results 4e-6 per element (exp
 *   near 88 is 3 + 2|x| ulp by the WGSL spec); subnormal results may flush to zero (WGSL allows
 *   it, lavapipe does), so anything below the smallest normal float counts as 0.
 * - long f32 sums: 2e-6 of sum(|x|) (the order differs from the reference's float64 sum).
 * - int32 ops, copies, argmax, max/min: exact. int32 square wraps like imul; the reference
 *   squares in float64 (exact only while x^2 < 2^53), so it is compared on such values.
 *
 * Time on this 2-core machine: ~32 s with a cold Mesa shader cache (122 pipelines, ~10 s of it
 * the matmul kernels), ~5-12 s warm.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { create, globals } from 'webgpu';
import { WebGPUBackend } from '../src/backends/webgpu/backend';
import {
  WebGPUDeviceLostError,
  WebGPUExecutionError,
  WebGPULimitError,
  WebGPUUnavailableError,
} from '../src/backends/webgpu/errors';
import type { GpuKernelBuilder } from '../src/backends/webgpu/kernel';
import { gpuKernels } from '../src/backends/webgpu/kernels';
import { sizeClass } from '../src/backends/webgpu/pool';
import { tensor } from '../src/creation';
import { ConcretizationError } from '../src/errors';
import { GNode, Graph } from '../src/graph/graph';
import * as o from '../src/ops/api';
import { apply } from '../src/ops/registry';
import { setBackend } from '../src/runtime/realize';
import type { Tensor } from '../src/tensor';
import { grad, vjp } from '../src/transforms/transforms';
import { expectClose, randomTensor, rng, type Tolerance, withReference } from './helpers';
import { type Fn, specs } from './op-specs';

let gpu: GPU;
let backend: WebGPUBackend;
let submits = 0;
/** Why there is no backend: every test fails with it (counted as failures, not skips). */
let unavailable: unknown = null;
const started = performance.now();

beforeAll(async () => {
  // Mesa warns without a runtime dir; any writable directory will do.
  process.env.XDG_RUNTIME_DIR ||= mkdtempSync(join(tmpdir(), 'adjoint-xdg-'));
  Object.assign(globalThis, globals);
  gpu = create([]);
  try {
    // No adapter: a WebGPUUnavailableError saying why.
    backend = await WebGPUBackend.create({ gpu });
  } catch (e) {
    unavailable = e;
    return;
  }
  const queue = backend.gpu.queue;
  const submit = queue.submit.bind(queue);
  queue.submit = (buffers: Iterable<GPUCommandBuffer>) => {
    submits++;
    submit(buffers);
  };
  setBackend(backend);
});

beforeEach(() => {
  if (unavailable) throw unavailable;
});

afterAll(() => {
  setBackend(null);
  if (backend) {
    const s = backend.stats();
    console.log(
      `webgpu test: ${((performance.now() - started) / 1000).toFixed(1)} s, adapter ` +
        `'${backend.adapter.description || backend.adapter.vendor}' (fallback ${backend.adapter.isFallbackAdapter}), ` +
        `matmul tuning ${backend.tuning.matmul}, ${s.pipelines} pipelines, ${s.planBuilds} plans, ` +
        `${s.runs} runs, ${s.dispatches} dispatches, ${s.buffersCreated} buffers created`,
    );
    if (process.env.ADJOINT_WEBGPU_PIPELINES) {
      const kinds = new Map<string, number>();
      for (const k of (backend as unknown as { pipelines: Map<string, unknown> }).pipelines.keys()) {
        const kind =
          /var<storage, read> in\d/.test(k) || /out0/.test(k) ? 'elementwise' : k.split('\n')[1].slice(0, 50);
        kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
      }
      console.log(kinds);
    }
    backend.dispose();
  }
  void gpu; // keep the GPU object alive to the end
});

/** Values of `ts` read from the GPU, checking that those computed were computed there. */
async function readAll(ts: readonly Tensor[]): Promise<Float64Array[]> {
  const out: Float64Array[] = [];
  for (const t of ts) {
    const lazy = !t.isRealized;
    const v = await t.data();
    if (lazy) expect(t.device).toBe('webgpu');
    out.push(Float64Array.from(v));
  }
  return out;
}

/**
 * Fresh host tensors with the values of `xs`: each side of a comparison gets its own, so a value
 * the runtime moved to the GPU after its second use there never reaches the reference.
 */
async function fresh(xs: readonly Tensor[]): Promise<Tensor[]> {
  const out: Tensor[] = [];
  for (const x of xs) out.push(tensor(await x.data(), { shape: [...x.shape], dtype: x.dtype }));
  return out;
}

type Cot = (shape: readonly number[]) => Tensor;

/** Value and input gradients of f at xs, cotangent v(shape). */
function valueAndGrads(f: Fn, xs: Tensor[], v: Cot): Tensor[] {
  const [y, pullback] = vjp(f, ...xs);
  return [y, ...(pullback(v(y.shape)) as Tensor[])];
}

/** f's value and gradients on the GPU against the reference interpreter. */
async function compare(f: Fn, xs: Tensor[], seed: number, tol: Tolerance = {}): Promise<void> {
  const cot: Cot = (shape) => randomTensor(shape, rng(seed + 1));
  const refIn = await fresh(xs);
  const want = withReference(() => valueAndGrads(f, refIn, cot).map((t) => Float64Array.from(t.dataSync())));
  const got = await readAll(valueAndGrads(f, await fresh(xs), cot));
  got.forEach((g, i) => {
    expectClose(g, want[i], {
      rtol: 2e-5,
      atol: 2e-5,
      scale: 'max',
      ...tol,
      what: i === 0 ? 'value' : `gradient ${i - 1}`,
    });
  });
}

/** f(...xs)'s value on the GPU against the reference, exactly unless tol says otherwise. */
async function compareValue(
  xs: Tensor[],
  f: (...xs: Tensor[]) => Tensor,
  tol: Tolerance = { rtol: 0, atol: 0 },
): Promise<void> {
  const refIn = await fresh(xs);
  const want = withReference(() => Float64Array.from(f(...refIn).dataSync()));
  const [got] = await readAll([f(...(await fresh(xs)))]);
  expectClose(got, want, tol);
}

const int = (data: number[], shape?: number[]) => tensor(Int32Array.from(data), { dtype: 'int32', shape });
const f32 = (data: number[], shape?: number[]) => tensor(Float32Array.from(data), { shape });

// ---------------------------------------------------------------- parity on random shapes

/** Specs whose graphs use only kernels of this backend's core (the others are wired below). */
const WIRED = new Set([
  'matmul',
  'matmulT',
  'softmaxCrossEntropy',
  'softmaxCrossEntropyGrad',
  'softmax',
  'logSoftmax',
  'softmaxGrad',
  'logSoftmaxGrad',
  'layerNorm',
  'rmsNorm',
  'layerNormGrad',
  'rmsNormGrad',
  'gather',
  'scatterAdd',
]);

describe('every op of the core agrees with the reference interpreter (value and gradient)', () => {
  for (const spec of specs.filter((s) => !WIRED.has(s.name))) {
    it(spec.name, async () => {
      await fc.assert(
        fc.asyncProperty(spec.shapes, fc.integer({ min: 1, max: 2 ** 30 }), async (shapes, seed) => {
          const r = rng(seed);
          const f = spec.make(shapes, r);
          const xs = spec.domains.map((d, i) => randomTensor(shapes[i], r, d));
          await compare(f, xs, seed);
        }),
        { numRuns: 8, seed: 11 },
      );
    });
  }
});

describe('kernels from matmul.ts, softmax.ts, norm.ts and gather.ts run through this backend', () => {
  for (const spec of specs.filter((s) => WIRED.has(s.name))) {
    it(spec.name, async () => {
      await fc.assert(
        fc.asyncProperty(spec.shapes, fc.integer({ min: 1, max: 2 ** 30 }), async (shapes, seed) => {
          const r = rng(seed);
          const f = spec.make(shapes, r);
          const xs = spec.domains.map((d, i) => randomTensor(shapes[i], r, d));
          await compare(f, xs, seed);
        }),
        { numRuns: 4, seed: 11 },
      );
    });
  }
});

// ---------------------------------------------------------------- targeted shapes

describe('odd sizes, broadcasting, batch and zero-size dims', () => {
  const r = rng(99);

  it('a fused chain over many workgroups with row and column broadcasting', async () => {
    const x = randomTensor([333, 301], r);
    const b = randomTensor([301], r);
    const c = randomTensor([333, 1], r, 'positive');
    const f = (x: Tensor, b: Tensor, c: Tensor) =>
      o.tanh(o.add(o.mul(o.sigmoid(o.add(x, b)), o.log(c)), o.relu(o.sub(o.square(x), 0.5))));
    await compare(f, [x, b, c], 5);
  });

  it('layer and RMS normalization and their x-cotangent: short rows (one invocation each) and long rows (one workgroup each)', async () => {
    for (const shape of [
      [37, 5],
      [3, 2, 700],
    ]) {
      const x = randomTensor(shape, r);
      const d = shape[shape.length - 1];
      const [g, b, ct] = [randomTensor([d], r), randomTensor([d], r), randomTensor(shape, r)];
      for (const rms of [false, true]) {
        await compare((x, g, b) => apply('layerNorm', [x, g, b], { eps: 1e-5, rms }), [x, g, b], 7);
        await compare((x, g, ct) => apply('layerNormGrad', [x, g, ct], { eps: 1e-5, rms }), [x, g, ct], 8);
      }
    }
  });

  it('convolutions with channels in multiples of 4 (the blocked kernels, the filter gradient in slices)', async () => {
    const cases: [number[], number[], o.Conv2dOptions][] = [
      // 9 output columns: a partial block of pixels
      [[2, 7, 9, 8], [3, 3, 8, 12], { padding: 'same' }],
      [
        [3, 9, 8, 8],
        [2, 3, 4, 8],
        {
          strides: 2,
          dilations: [1, 2],
          groups: 2,
          padding: [
            [1, 0],
            [2, 1],
          ],
        },
      ],
      // one 4x4 block of filter gradient over 1024 positions: 16 slices, then their sum
      [[4, 16, 16, 4], [1, 1, 4, 4], { padding: 'valid' }],
    ];
    let seed = 20;
    for (const [xs, ws, opts] of cases) {
      const [x, w] = [randomTensor(xs, r), randomTensor(ws, r)];
      await compare((x, w) => o.conv2d(x, w, opts), [x, w], seed++, { rtol: 1e-4, atol: 1e-4 });
    }
  });

  it('unary math on [-4, 4] and pow on positive bases', async () => {
    const x = randomTensor([4097], r);
    const xx = o.mul(x, 2);
    const p = randomTensor([4097], r, 'positive');
    for (const op of [o.exp, o.sin, o.cos, o.tanh, o.sigmoid, o.softplus, o.neg, o.abs, o.square, o.relu])
      await compare((t) => op(t), [xx], 1);
    for (const op of [o.log, o.log1p, o.sqrt, o.reciprocal]) await compare((t) => op(t), [p], 2);
    await compare((a, b) => o.pow(a, b), [p, x], 3);
  });

  it('reductions: serial, wide and split schedules, contiguous and strided axes', async () => {
    const x = randomTensor([5, 67, 9], r);
    for (const axes of [[0], [1], [2], [0, 2], [1, 2], [0, 1, 2]])
      await compare((t) => o.add(o.sum(t, axes), o.max(t, axes)), [x], axes.length);
    // wide rows (one workgroup each), keepdims
    const w = randomTensor([3, 1000], r);
    await compare((t) => o.min(t, 1, true), [w], 4);
    // split: few rows of >= 16384 elements, reduced axis contiguous and strided
    for (const [shape, axes] of [
      [[40000], [0]],
      [[2, 20000], [1]],
      [[20000, 3], [0]],
    ] as [number[], number[]][]) {
      const t = randomTensor(shape, r);
      const abs = withReference(() => o.sum(o.abs(t), axes).dataSync());
      const atol = 2e-6 * Math.max(...abs);
      await compare((v) => o.sum(v, axes), [t], 6, { rtol: 0, atol, scale: 'element' });
      await compareValue([t], (v) => o.max(v, axes));
      await compareValue([t], (v) => o.argmax(v, axes[0]));
    }
  });

  it('argmax: ties go to the first index, NaN wins, across chunks too', async () => {
    const ties = f32(
      [1, 3, 3, 2, NaN, 1, NaN, 5, -Infinity, -Infinity, -Infinity, -Infinity, 0, -0, 0, 0],
      [4, 4],
    );
    await compareValue([ties], (t) => o.argmax(t, 1));
    await compareValue([ties], (t) => o.argmax(t, 0));
    const long = new Float32Array(50000).fill(1);
    long[30000] = 7;
    long[45000] = 7;
    await compareValue([f32([...long])], (t) => o.argmax(t, 0));
    long[40000] = Number.NaN;
    long[45001] = Number.NaN;
    await compareValue([f32([...long])], (t) => o.argmax(t, 0));
    await compareValue([f32([...long])], (t) => o.max(t, 0));
    await compareValue([int([4, 9, 9, -3, 9], [5])], (t) => o.argmax(t, 0));
  });

  it('transpose, slice, pad, concat and broadcastTo on larger and int32 tensors', async () => {
    const x = randomTensor([40, 23, 3], r);
    await compare((t) => o.transpose(t, [2, 0, 1]), [x], 1);
    await compare((t) => o.slice(t, [2, 1, 1], [30, 20, 2]), [x], 2);
    await compare(
      (t) =>
        o.pad(t, [
          [1, 2],
          [0, 3],
          [2, 0],
        ]),
      [x],
      3,
    );
    await compare((t) => o.concat([t, o.mul(t, 2), o.slice(t, [0, 0, 0], [40, 23, 1])], 2), [x], 4);
    await compare((t) => o.broadcastTo(o.slice(t, [0, 0, 0], [1, 23, 3]), [7, 40, 23, 3]), [x], 5);
    const i = int(
      Array.from({ length: 60 }, (_, k) => k * 7 - 200),
      [3, 4, 5],
    );
    await compareValue([i], (t) => o.transpose(t, [1, 2, 0]));
    await compareValue([i], (t) =>
      o.pad(t, [
        [0, 1],
        [2, 0],
        [1, 1],
      ]),
    );
    await compareValue([i], (t) => o.concat([t, o.neg(t)], 1));
  });

  it('zero-size dims: empty reductions, concat with an empty part, pads and reshapes of empties', async () => {
    const e = randomTensor([3, 0, 2], r);
    await compareValue([e], (t) => o.sum(t, 1), {});
    await compareValue([e], (t) => o.sum(t), {});
    await compareValue([e], (t) => o.max(t, 2), {});
    await compareValue([randomTensor([3, 2, 2], rng(1)), e], (a, t) => o.concat([a, t], 1), {});
    await compareValue(
      [e],
      (t) =>
        o.pad(t, [
          [0, 0],
          [1, 1],
          [0, 0],
        ]),
      {},
    );
    await compareValue([e], (t) => o.reshape(o.exp(t), [0, 6]), {});
    const y = o.exp(e);
    expect((await y.data()).length).toBe(0);
  });

  it('second derivatives run on the GPU', async () => {
    const x = randomTensor([50], r);
    const f = (t: Tensor) => o.sum(o.mul(o.sin(t), o.exp(o.mul(t, 0.1))));
    await compare((t) => grad(f)(t), [x], 4, { rtol: 1e-4, atol: 1e-4 });
  });
});

// ---------------------------------------------------------------- semantics at the edges

/** Subnormal results may flush to zero (WGSL allows it; lavapipe does): below the smallest normal f32 is 0. */
const FTZ = 1.18e-38;
const SPECIAL = [
  Number.NaN,
  Infinity,
  -Infinity,
  0,
  -0,
  1e-30,
  -1e-30,
  1e-5,
  -1e-5,
  0.5,
  -0.5,
  1,
  -1,
  2,
  3,
  88,
  -88,
  100,
];

describe('special values follow the reference (NaN, infinities, signed zeros)', () => {
  const unary = [
    o.neg,
    o.abs,
    o.sign,
    o.exp,
    o.log,
    o.log1p,
    o.sqrt,
    o.square,
    o.reciprocal,
    o.tanh,
    o.sigmoid,
    o.relu,
    o.softplus,
    (t: Tensor) => o.cast(t, 'int32'),
  ];
  const tol: Tolerance = { rtol: 4e-6, atol: FTZ };

  it('unary ops', async () => {
    for (const op of unary) await compareValue([f32(SPECIAL)], op, tol);
    // sin/cos away from huge arguments (GPU range reduction is only good for moderate |x|)
    const moderate = SPECIAL.filter((v) => !(Math.abs(v) > 50));
    for (const op of [o.sin, o.cos]) await compareValue([f32(moderate)], op, { rtol: 1e-6, atol: 1e-7 });
  });

  it('binary ops, comparisons and where, on every pair', async () => {
    const a = SPECIAL.flatMap((v) => SPECIAL.map(() => v));
    const b = SPECIAL.flatMap(() => SPECIAL);
    for (const op of [
      o.add,
      o.sub,
      o.mul,
      o.div,
      o.pow,
      o.maximum,
      o.minimum,
      o.greater,
      o.less,
      o.equal,
      o.greaterEqual,
      o.lessEqual,
      o.notEqual,
    ])
      await compareValue([f32(a), f32(b)], op, tol);
    await compareValue([f32(a), f32(b)], (x, y) => o.where(x, y, x), tol);
    await compareValue([f32([3e9, -3e9, 2147483520, 2.7, -2.7, NaN])], (t) => o.cast(t, 'int32'));
  });

  it('max and min propagate NaN', async () => {
    const x = f32([1, NaN, 3, -Infinity, 2, 2], [3, 2]);
    await compareValue([x], (t) => o.max(t, 1));
    await compareValue([x], (t) => o.min(t, 0));
    await compareValue([x], (t) => o.min(t, 1));
  });
});

describe('int32 ops wrap and truncate as the reference does', () => {
  const base = [2147483647, -2147483648, 0, 1, -1, 7, -7, 46341, -3, 100000];
  const a = int(base.flatMap((v) => base.map(() => v)));
  const b = int(base.flatMap(() => base));

  it('binary arithmetic, division, pow, extrema and comparisons', async () => {
    for (const op of [
      'add',
      'sub',
      'mul',
      'div',
      'maximum',
      'minimum',
      'greater',
      'less',
      'equal',
      'greaterEqual',
      'lessEqual',
      'notEqual',
    ])
      await compareValue([a, b], (x, y) => apply(op, [x, y]));
    const small = [-5, -2, -1, 0, 1, 2, 3, 5];
    const pa = int(small.flatMap((v) => small.map(() => v)));
    const pb = int(small.flatMap(() => [-3, -1, 0, 1, 2, 3, 4, 7]));
    await compareValue([pa, pb], (x, y) => apply('pow', [x, y]));
  });

  it('unary ops, casts, where and reductions', async () => {
    for (const op of [o.neg, o.abs, o.sign]) await compareValue([a], op);
    // square wraps like imul; the reference squares in float64, exact only while x^2 < 2^53
    await compareValue([int([94906265, -94906265, 46341, -46341, 65536, 3, -7, 0])], o.square);
    await compareValue([a], (x) => o.cast(x, 'float32'));
    await compareValue([a, b], (x, y) => o.where(o.greater(x, y), x, y));
    const m = int(
      Array.from({ length: 24 }, (_, k) => (k * 1_000_000_007) | 0),
      [4, 6],
    );
    for (const axes of [[0], [1], [0, 1]]) {
      await compareValue([m], (x) => o.sum(x, axes));
      await compareValue([m], (x) => o.max(x, axes));
      await compareValue([m], (x) => o.min(x, axes));
    }
    await compareValue([m], (x) => o.argmax(x, 1));
  });
});

// ---------------------------------------------------------------- the backend

/** A backend on the same device (shared pipelines, its own pool and plans). */
const sibling = (opts: Parameters<typeof WebGPUBackend.create>[0] = {}) =>
  WebGPUBackend.create({ gpu: backend.gpu, tuning: backend.tuning, ...opts });

/** Runs body with `b` as the active backend. */
async function on<T>(b: WebGPUBackend, body: () => Promise<T>): Promise<T> {
  setBackend(b);
  try {
    return await body();
  } finally {
    setBackend(backend);
  }
}

describe('plans, pipelines, submits and memory', () => {
  const r = rng(7);

  it('reports the adapter and raises the limits to what it offers', () => {
    const a = backend.adapter;
    expect(typeof a.isFallbackAdapter).toBe('boolean');
    if (/llvmpipe|lavapipe|swiftshader/i.test(`${a.description} ${a.architecture} ${a.vendor}`))
      expect(a.isFallbackAdapter).toBe(true);
    expect(backend.limits.maxStorageBufferBindingSize).toBeGreaterThanOrEqual(128 * 2 ** 20);
    expect(backend.limits.maxComputeWorkgroupStorageSize).toBeGreaterThanOrEqual(16384);
    expect(['register', 'tiled']).toContain(backend.tuning.matmul);
  });

  it('one submit per run; an elementwise chain is one dispatch; a reshape costs nothing', async () => {
    const [x] = await fresh([randomTensor([10, 10], r)]);
    const f = (t: Tensor) => o.reshape(o.tanh(o.add(o.sqrt(o.abs(o.mul(o.exp(o.neg(t)), 3))), 1)), [100]);
    const want = withReference(() => Float64Array.from(f(x).dataSync()));
    const s0 = backend.stats();
    const n0 = submits;
    const y = f(x);
    await y.data();
    const s1 = backend.stats();
    expect(s1.runs - s0.runs).toBe(1);
    expect(s1.dispatches - s0.dispatches).toBe(1);
    // one submit for the run, one for the read's copy
    expect(submits - n0).toBe(2);
    expectClose(await y.data(), want, { rtol: 4e-6, atol: 1e-6 });
    // reductions, copies and programs: still one submit for the run
    const n1 = submits;
    const z = o.sum(o.transpose(o.exp(randomTensor([30, 20], r)), [1, 0]), 0);
    await o.concat([z, o.max(z, 0, true)], 0).data();
    expect(submits - n1).toBe(2);
  });

  it('plans are reused by structure; other shapes and fill values reuse the pipelines', async () => {
    const f = (x: Tensor, c: number) => o.sum(o.mul(o.sigmoid(o.transpose(x)), c), 0);
    await f(randomTensor([7, 5], r), 2).data();
    const s0 = backend.stats();
    await f(randomTensor([7, 5], r), 2).data();
    const s1 = backend.stats();
    expect(s1.planBuilds).toBe(s0.planBuilds);
    await f(randomTensor([9, 3], r), 0.25).data();
    await f(randomTensor([2, 3], r), -1).data();
    const s2 = backend.stats();
    expect(s2.planBuilds).toBeGreaterThan(s1.planBuilds);
    expect(s2.pipelines).toBe(s1.pipelines);
  });

  it('values realized on the GPU are bound directly; host values are uploaded for the run', async () => {
    const y = o.exp(randomTensor([64], r));
    await y.data();
    const u0 = backend.stats().uploads;
    await o.add(y, 1).data();
    expect(backend.stats().uploads).toBe(u0);
    const h = randomTensor([64], r);
    await o.add(h, 1).data();
    expect(backend.stats().uploads).toBe(u0 + 1);
  });

  it('intermediates go back to the pool after their last use; outputs are owned by storages', async () => {
    const b = await sibling();
    await on(b, async () => {
      const x = randomTensor([37, 41], r);
      // six copies in a row: each intermediate dies at the next step
      const chain = (t: Tensor) => {
        let v = o.exp(t);
        for (let k = 0; k < 6; k++) v = o.transpose(v);
        return o.sum(v, 0);
      };
      const y = chain(x);
      await y.data();
      const s = b.stats();
      // live: only the output; the upload of x and the intermediates are pooled
      expect(s.liveBuffers).toBe(1);
      expect(s.gpuBytes).toBe(sizeClass(41 * 4));
      // at most three intermediates at once (input of a copy, its output, the upload)
      expect(s.buffersCreated).toBeLessThanOrEqual(4);
      y.dispose();
      expect(b.stats().liveBuffers).toBe(0);
      // a loop reuses the same buffers
      const created = b.stats().buffersCreated;
      for (let k = 0; k < 10; k++) {
        const z = chain(randomTensor([37, 41], rng(k)));
        await z.data();
        z.dispose();
      }
      expect(b.stats().buffersCreated).toBe(created);
      expect(b.stats().liveBuffers).toBe(0);
    });
    b.dispose();
  });

  it('upload() and supports()', async () => {
    const s = backend.upload(Float64Array.from([1.5, -2, 3]), 'float32');
    expect(Array.from(await s.read())).toEqual([1.5, -2, 3]);
    const i = backend.upload(Int32Array.from([-7, 8]), 'int32');
    expect(Array.from(await i.read())).toEqual([-7, 8]);
    const e = backend.upload(new Float32Array(0), 'float32');
    expect((await e.read()).length).toBe(0);
    for (const st of [s, i, e]) {
      st.release();
      st.release();
    }
    const x = new GNode('input', [], { index: 0, shape: [3], dtype: 'float32' }, [3], 'float32');
    expect(backend.supports(new GNode('exp', [x], {}, [3], 'float32'))).toBe(true);
    expect(backend.supports(new GNode('nosuchop', [x], {}, [3], 'float32'))).toBe(false);
    const deep = new Array(9).fill(2);
    const xd = new GNode('input', [], {}, deep, 'float32');
    const pad = deep.map(() => [1, 0]);
    expect(
      backend.supports(
        new GNode(
          'pad',
          [xd],
          { pads: pad },
          deep.map((d) => d + 1),
          'float32',
        ),
      ),
    ).toBe(false);
  });

  it('jit-style graphs bind their inputs', async () => {
    const x = new GNode('input', [], { index: 0, shape: [4], dtype: 'float32' }, [4], 'float32');
    const y = new GNode('exp', [x], {}, [4], 'float32');
    const out = backend.run(new Graph([x, y], [y, x]), [
      backend.upload(Float32Array.from([0, 1, 2, 3]), 'float32'),
    ]);
    expectClose(await out[0].read(), [1, Math.E, Math.E ** 2, Math.E ** 3], { rtol: 1e-6 });
    expect(Array.from(await out[1].read())).toEqual([0, 1, 2, 3]);
    expect(() => backend.run(new Graph([x, y], [y]), [])).toThrow(ConcretizationError);
  });

  it('dataSync names await', () => {
    const y = o.exp(randomTensor([3], r));
    expect(() => y.dataSync()).toThrow(ConcretizationError);
    expect(() => y.dataSync()).toThrow(/await/);
  });
});

describe('limits: 2D grids, binding counts, binding sizes', () => {
  it('dispatches past maxComputeWorkgroupsPerDimension fold into 2D grids', async () => {
    const b = await sibling({ limits: { maxComputeWorkgroupsPerDimension: 3 } });
    const r = rng(3);
    const x = randomTensor([70, 90], r);
    const y = randomTensor([90], r);
    await on(b, async () => {
      await compare((a, c) => o.add(o.mul(a, c), o.exp(a)), [x, y], 1);
      await compare((a) => o.transpose(a), [x], 2);
      await compare((a) => o.sum(a, 1), [x], 3); // serial rows
      await compare((a) => o.max(o.reshape(a, [7, 900]), 1), [x], 4); // wide rows
      await compareValue([x], (t) => o.argmax(t, 0));
    });
    b.dispose();
  });

  it('a fused group needing more storage bindings than allowed runs as single ops', async () => {
    const b = await sibling({ limits: { maxStorageBuffersPerShaderStage: 4 } });
    const r = rng(4);
    const xs = [0, 1, 2, 3, 4].map(() => randomTensor([5, 6], r));
    await on(b, () => compare((a, c, d, e, f) => o.add(o.add(o.add(o.mul(a, c), d), e), f), xs, 5));
    b.dispose();
  });

  it('a tensor larger than one binding is refused with a typed error naming it', async () => {
    const b = await sibling({ limits: { maxStorageBufferBindingSize: 1024 } });
    const big = randomTensor([300], rng(5));
    const small = randomTensor([10], rng(6));
    await on(b, async () => {
      const live = b.stats().liveBuffers;
      // an input too large to upload, and an intermediate too large to hold
      await expect(o.exp(big).data()).rejects.toThrow(WebGPULimitError);
      await expect(o.exp(big).data()).rejects.toThrow(/300 elements.*maxStorageBufferBindingSize/);
      await expect(o.sum(o.broadcastTo(small, [30, 10])).data()).rejects.toThrow(
        /broadcastTo of shape \[30, 10\].*maxStorageBufferBindingSize/,
      );
      // failed runs leave no buffer behind
      expect(b.stats().liveBuffers).toBe(live);
      await compare((t) => o.exp(t), [small], 1);
    });
    expect(() => b.upload(new Float32Array(300), 'float32')).toThrow(WebGPULimitError);
    const x = new GNode('input', [], {}, [300], 'float32');
    expect(b.supports(new GNode('exp', [x], {}, [300], 'float32'))).toBe(false);
    b.dispose();
  });
});

describe('devices: no adapter, loss, disposal', () => {
  it('no adapter is a WebGPUUnavailableError that says why', async () => {
    const none = { requestAdapter: async () => null } as unknown as GPU;
    await expect(WebGPUBackend.create({ gpu: none })).rejects.toThrow(WebGPUUnavailableError);
    await expect(WebGPUBackend.create({ gpu: none })).rejects.toThrow(/no GPU adapter/);
  });

  it('a lost device fails later work with a typed error, never a hang', async () => {
    const b = await WebGPUBackend.create({ gpu, tuning: 'guess' });
    const kept = b.upload(Float32Array.from([1, 2, 3]), 'float32');
    const x = new GNode('input', [], { index: 0, shape: [3], dtype: 'float32' }, [3], 'float32');
    const g = new Graph([x, new GNode('exp', [x], {}, [3], 'float32')], []);
    const y = b.run(new Graph(g.nodes, [g.nodes[1]]), [kept]);
    const pending = y[0].read();
    b.gpu.destroy();
    const hang = new Promise((_, reject) => setTimeout(() => reject(new Error('hang')), 5000));
    await Promise.race([
      pending.then(
        (v) => expect(v.length).toBe(3), // it may have finished before the loss
        (e) => expect(e).toBeInstanceOf(WebGPUDeviceLostError),
      ),
      hang,
    ]);
    await Promise.race([b.health.whenLost.catch(() => {}), hang]);
    expect(() => b.run(new Graph(g.nodes, [g.nodes[1]]), [kept])).toThrow(WebGPUDeviceLostError);
    expect(() => b.upload(new Float32Array(3), 'float32')).toThrow(/lost/);
    await expect(Promise.race([kept.read(), hang])).rejects.toThrow(WebGPUDeviceLostError);
    b.dispose();
  });

  it('work the GPU rejects surfaces as a typed error when read, and the plan is dropped', async () => {
    const b = await sibling();
    const table = gpuKernels as Record<string, GpuKernelBuilder>;
    const exp = table.exp;
    table.exp = (n, ctx) => [
      { wgsl: 'this is not WGSL', buffers: [ctx.at(n.inputs[0]), ctx.at(n)], workgroups: [1, 1, 1] },
    ];
    const x = f32([1, 2, 3]);
    try {
      await on(b, () => expect(o.exp(x).data()).rejects.toThrow(WebGPUExecutionError));
    } finally {
      table.exp = exp;
    }
    await on(b, () => compareValue([x], o.exp, { rtol: 1e-6 }));
    b.dispose();
  });

  it('a disposed backend refuses work', async () => {
    const b = await sibling();
    b.dispose();
    expect(() => b.upload(new Float32Array(3), 'float32')).toThrow(WebGPUDeviceLostError);
    // the shared device lives on
    await compareValue([f32([1, 2])], (t) => o.add(t, 1));
  });
});
