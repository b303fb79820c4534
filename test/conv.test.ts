/**
 * Convolution and pooling (src/ops/defs/conv.ts, assembly/conv.ts, assembly/pool.ts,
 * src/backends/webgpu/conv.ts). The shared op table (test/op-specs.ts, convSpecs) already puts
 * every primitive through the JVP/VJP finite-difference check, wasm parity, vmap and WebGPU
 * parity on small random shapes; this file adds:
 * - values TF.js gives on hand-checked cases ('same' pads more after, average pooling counts
 *   only in-bounds positions, transposed convolution, groups, dilations, conv1d);
 * - wasm against the float32 reference on shapes that reach the kernels' blocking: rows past
 *   one MC block and off the MR grid, depth past KC, channel counts off the NR grid, grouped and
 *   depthwise, strided and dilated, every padding mode, batch 1 and 0 — value and both
 *   gradients, with no host fallback;
 * - Hessian-vector products (forward over reverse) against finite differences of the gradient
 *   in float64, for convolutions, pooling and a small CNN, and on wasm against the reference;
 * - typed errors naming the op and shapes;
 * - WebGPU (Dawn on this machine's adapter) against the reference on the larger shapes.
 *
 * Tolerances (|got - want| <= atol + rtol · max|want|): wasm and WebGPU against the float32
 * reference 3e-5 (sums of up to a few hundred float32 products, in another order: the reference
 * rounds only each op's result); finite differences in float64 1e-6 as in op-derivatives.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { create, globals } from 'webgpu';
import type { WasmBackend } from '../src/backends/wasm/backend';
import type { Kernels } from '../src/backends/wasm/kernels';
import { loadKernels } from '../src/backends/wasm/loader';
import { buildPlan } from '../src/backends/wasm/plan';
import { WebGPUBackend } from '../src/backends/webgpu/backend';
import { tensor } from '../src/creation';
import { DTypeError, ShapeError, ValueError } from '../src/errors';
import { memoryStats } from '../src/index';
import * as o from '../src/ops/api';
import { convGeoOf, poolGeometry } from '../src/ops/conv-geometry';
import { apply, getOp } from '../src/ops/registry';
import { init } from '../src/runtime/init';
import { trace } from '../src/runtime/jit';
import { activeBackend, setBackend } from '../src/runtime/realize';
import type { Attrs, Tensor } from '../src/tensor';
import { grad, jvp, vjp } from '../src/transforms/transforms';
import { vmap } from '../src/transforms/vmap';
import {
  centralDifference,
  expectClose,
  randomTensor,
  rng,
  values,
  withFloat64,
  withReference,
} from './helpers';

type Fn = (...xs: Tensor[]) => Tensor;
const f32 = (data: number[], shape: number[]) => tensor(Float32Array.from(data), { shape });
const iota = (shape: number[]) =>
  f32(
    Array.from({ length: shape.reduce((a, d) => a * d, 1) }, (_, i) => i),
    shape,
  );

beforeAll(async () => {
  await init({ backend: 'wasm', threads: 1 });
});

describe('values as TensorFlow.js computes them', () => {
  const x = iota([1, 4, 4, 1]);
  const ones = f32(new Array(9).fill(1), [3, 3, 1, 1]);

  it("conv2d: 'valid', 'same' with strides (the extra pad goes after), explicit pads", () => {
    expect(Array.from(o.conv2d(x, ones).dataSync())).toEqual([45, 54, 81, 90]);
    const same = o.conv2d(x, ones, { strides: 2, padding: 'same' });
    expect(same.shape).toEqual([1, 2, 2, 1]);
    expect(Array.from(same.dataSync())).toEqual([45, 39, 66, 50]);
    const explicit = o.conv2d(x, ones, {
      padding: [
        [1, 0],
        [0, 0],
      ],
    });
    expect(explicit.shape).toEqual([1, 3, 2, 1]);
    expect(Array.from(explicit.dataSync())).toEqual([18, 24, 45, 54, 81, 90]);
    // an unbatched image [H, W, C] gives an unbatched result
    expect(o.conv2d(o.reshape(x, [4, 4, 1]), ones).shape).toEqual([2, 2, 1]);
  });

  it('groups, dilations and conv1d', () => {
    // two groups of two input channels, one output channel each: w[0, 0, ci, co]
    const y = o.conv2d(f32([1, 2, 3, 4], [1, 1, 1, 4]), f32([1, 10, 100, 1000], [1, 1, 2, 2]), { groups: 2 });
    expect(Array.from(y.dataSync())).toEqual([1 + 2 * 100, 3 * 10 + 4 * 1000]);
    const d = o.conv2d(f32([1, 2, 3, 4, 5], [1, 1, 5, 1]), f32([1, 1], [1, 2, 1, 1]), { dilations: [1, 2] });
    expect(Array.from(d.dataSync())).toEqual([4, 6, 8]);
    const c1 = o.conv1d(f32([1, 2, 3, 4, 5], [1, 5, 1]), f32([1, -1], [2, 1, 1]));
    expect(c1.shape).toEqual([1, 4, 1]);
    expect(Array.from(c1.dataSync())).toEqual([-1, -1, -1, -1]);
    expect(
      o.conv1d(f32([1, 2, 3, 4, 5], [5, 1]), f32([1, -1], [2, 1, 1]), { padding: 'same', strides: 2 }).shape,
    ).toEqual([3, 1]);
  });

  it('convTranspose2d: each input spreads over the window; outputShape defaults as TF.js', () => {
    const y = o.convTranspose2d(f32([1, 2, 3, 4], [1, 2, 2, 1]), f32([1, 1, 1, 1], [2, 2, 1, 1]), {
      strides: 2,
    });
    expect(y.shape).toEqual([1, 4, 4, 1]);
    expect(Array.from(y.dataSync())).toEqual([1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4]);
    const s = o.convTranspose2d(randomTensor([2, 3, 5, 4], rng(1)), randomTensor([3, 3, 6, 4], rng(2)), {
      strides: 2,
      padding: 'same',
    });
    expect(s.shape).toEqual([2, 6, 10, 6]);
    // it is the gradient of conv2d with respect to its input
    const w = randomTensor([3, 3, 6, 4], rng(3));
    const dy = randomTensor([2, 3, 5, 4], rng(4));
    const [, pull] = vjp(
      (u: Tensor) => o.conv2d(u, w, { strides: 2, padding: 'same' }),
      randomTensor([2, 6, 10, 6], rng(5)),
    );
    expectClose(
      o.convTranspose2d(dy, w, { strides: 2, padding: 'same', outputShape: [2, 6, 10, 6] }),
      pull(dy)[0],
      {
        rtol: 1e-6,
        atol: 1e-6,
      },
    );
  });

  it('pooling: max ignores padding, the average counts only in-bounds positions; strides default to the window', () => {
    expect(Array.from(o.maxPool2d(x, 2).dataSync())).toEqual([5, 7, 13, 15]);
    const avg = o.avgPool2d(x, 3, { strides: 2, padding: 'same' });
    expect(Array.from(avg.dataSync())).toEqual([5, 6.5, 11, 12.5]);
    const mx = o.maxPool2d(x.neg(), 3, { strides: 2, padding: 'same' });
    expect(Array.from(mx.dataSync())).toEqual([-0, -2, -8, -10]);
    // NaN wins the max; its gradient goes to the NaN's position
    const nan = f32([1, Number.NaN, 3, 2], [1, 2, 2, 1]);
    expect(Number.isNaN(o.maxPool2d(nan, 2).dataSync()[0])).toBe(true);
    const g = grad((t: Tensor) => o.sum(o.maxPool2d(t, 2)))(f32([1, 5, 5, 2], [1, 2, 2, 1])) as Tensor;
    expect(Array.from(g.dataSync())).toEqual([0, 1, 0, 0]); // ties: the first position
  });

  it('chainable methods', () => {
    const y = x.conv2d(ones, { padding: 'same' }).maxPool2d(2).avgPool2d([1, 2]);
    expect(y.shape).toEqual([1, 2, 1, 1]);
    expect(x.reshape([1, 16, 1]).conv1d(f32([1, 1], [2, 1, 1])).shape).toEqual([1, 15, 1]);
    expect(x.convTranspose2d(f32([1], [1, 1, 1, 1]), { strides: 2 }).shape).toEqual([1, 7, 7, 1]);
  });
});

// ---------------------------------------------------------------- wasm against the reference

/** Values and input gradients (cotangent from seed) of f at xs on the current backend. */
function evaluate(f: Fn, xs: Tensor[], seed: number): Float32Array[] {
  const [y, pullback] = vjp(f, ...xs);
  const gs = pullback(randomTensor(y.shape, rng(seed))) as Tensor[];
  return [y, ...gs].map((t) => Float32Array.from(t.dataSync()));
}

const TOL = { rtol: 3e-5, atol: 3e-5, scale: 'max' as const };

function compareWasm(f: Fn, xs: Tensor[], seed: number): void {
  const want = withReference(() => evaluate(f, xs, seed));
  const got = evaluate(f, xs, seed);
  expect(activeBackend()?.name).toBe('wasm');
  got.forEach((g, i) => {
    expectClose(g, want[i], { ...TOL, what: i === 0 ? 'value' : `gradient ${i - 1}` });
  });
  // every node ran a kernel (no host fallback)
  const ct = randomTensor(f(...xs).shape, rng(seed));
  const g = trace(
    (...a: Tensor[]) => {
      const [y, pullback] = vjp(f, ...a);
      return [y, ...(pullback(ct) as Tensor[])];
    },
    ...xs,
  );
  expect(buildPlan(g, (activeBackend() as WasmBackend).kernels).fallbacks).toBe(0);
}

interface ConvCase {
  x: number[];
  w: number[];
  opts: o.Conv2dOptions;
}

const convCases: ConvCase[] = [
  // rows past one MC block (240) and off the MR grid, Cout off the NR grid, depth 3·3·7
  { x: [2, 13, 11, 7], w: [3, 3, 7, 13], opts: { padding: 'same' } },
  // depth past KC (256): 3·3·31 = 279; strided, dilated
  { x: [1, 9, 10, 31], w: [3, 3, 31, 9], opts: { strides: [2, 1], dilations: [1, 2], padding: 'same' } },
  // explicit asymmetric pads, stride 3 (the input gradient's scatter skips positions)
  {
    x: [3, 8, 9, 5],
    w: [2, 3, 5, 17],
    opts: {
      strides: 3,
      padding: [
        [2, 0],
        [1, 3],
      ],
    },
  },
  // groups (3 groups of 4 → 6), and depthwise (groups = channels), with a multiplier too
  { x: [2, 7, 8, 12], w: [3, 2, 4, 18], opts: { groups: 3, strides: 2, padding: 'valid' } },
  { x: [2, 9, 7, 10], w: [3, 3, 1, 10], opts: { groups: 10, padding: 'same', dilations: 2 } },
  { x: [1, 6, 6, 5], w: [2, 2, 1, 10], opts: { groups: 5, strides: 2, padding: 'same' } },
  // 1×1, batch 0, a window as large as the input
  { x: [4, 5, 3, 9], w: [1, 1, 9, 11], opts: {} },
  { x: [0, 6, 5, 3], w: [3, 3, 3, 4], opts: { padding: 'same' } },
  { x: [2, 4, 5, 3], w: [4, 5, 3, 2], opts: { padding: 'valid' } },
  // a filter gradient with few rows (taps × 1 channel) splits by panels of output channels
  { x: [2, 6, 5, 2], w: [3, 3, 1, 20], opts: { groups: 2, padding: 'same' } },
  // input gradient with more than KC output channels per group
  { x: [1, 4, 4, 3], w: [3, 3, 3, 260], opts: { padding: 'same' } },
];

describe('wasm kernels against the reference on blocking-sized shapes', () => {
  it.each(convCases.map((c, i) => [i, c] as const))(
    'conv2d case %i: value, input and filter gradients',
    (i, c) => {
      const r = rng(100 + i);
      compareWasm((x, w) => o.conv2d(x, w, c.opts), [randomTensor(c.x, r), randomTensor(c.w, r)], i);
    },
  );

  it('pooling: max and average, overlapping and tiling windows, every padding mode, batch 1 and 0', () => {
    const r = rng(7);
    const cases: [number[], number | [number, number], o.Pool2dOptions][] = [
      [[2, 13, 11, 7], 3, { strides: 2, padding: 'same' }],
      [[1, 12, 10, 9], 2, {}],
      [
        [3, 7, 9, 4],
        [3, 2],
        {
          strides: [1, 3],
          padding: [
            [2, 1],
            [0, 1],
          ],
        },
      ],
      [[0, 5, 5, 3], 2, { padding: 'same' }],
      [[2, 5, 6, 1], [5, 6], {}],
    ];
    for (const [shape, window, opts] of cases) {
      const x = randomTensor(shape, r);
      compareWasm((t) => o.maxPool2d(t, window, opts), [x], 1);
      compareWasm((t) => o.avgPool2d(t, window, opts), [x], 2);
    }
  });

  it('per-example gradients of a small CNN with vmap(grad) equal a loop (filters batched into groups)', () => {
    const r = rng(9);
    const w = randomTensor([3, 3, 2, 4], r);
    const xs = randomTensor([5, 1, 6, 7, 2], r); // 5 examples of one image each
    const loss = (f: Tensor, x: Tensor) =>
      o.sum(
        o.tanh(o.maxPool2d(o.conv2d(x, f, { padding: 'same', strides: [1, 2] }), 2, { padding: 'same' })),
      );
    const got = vmap(grad(loss), [null, 0])(w, xs) as Tensor;
    expect(got.shape).toEqual([5, 3, 3, 2, 4]);
    const want = o.stack(
      Array.from(
        { length: 5 },
        (_, b) => grad(loss)(w, o.reshape(o.slice(xs, [b], [1]), [1, 6, 7, 2])) as Tensor,
      ),
    );
    expectClose(got, want, TOL);
  });

  it('Hessian-vector products (jvp of grad) of a small CNN match the reference', () => {
    const r = rng(8);
    const f = (x: Tensor, w: Tensor) =>
      o.sum(
        o.tanh(
          o.avgPool2d(o.maxPool2d(o.tanh(o.conv2d(x, w, { padding: 'same', strides: [1, 2] })), 2), 2, {
            padding: 'same',
          }),
        ),
      );
    const xs = [randomTensor([2, 9, 12, 3], r), randomTensor([3, 3, 3, 5], r)];
    const us = xs.map((t) => randomTensor(t.shape, r));
    const hvp = () => {
      const [, t] = jvp(
        (a: Tensor, b: Tensor) =>
          o.concat((grad(f, [0, 1])(a, b) as Tensor[]).map((g) => o.reshape(g, [-1]))),
        xs,
        us,
      );
      return Float32Array.from(t.dataSync());
    };
    expectClose(hvp(), withReference(hvp), { rtol: 1e-4, atol: 1e-4, scale: 'max' });
  });
});

// ---------------------------------------------------------------- raw kernels, both builds

/**
 * The kernels themselves on each build (plain SIMD: 5-row micro-kernel panels; relaxed: 6), each
 * op run whole and in three unit ranges (as worker chunks would): the same bits either way, and
 * the float64 reference within tolerance.
 */
describe.each([false, true])('raw kernels (relaxed SIMD %s)', (relaxed) => {
  let k: Kernels;
  beforeAll(async () => {
    k = await loadKernels({ relaxed });
    expect(k.relaxed).toBe(relaxed);
  });

  function run(op: string, inputs: Tensor[], attrs: Attrs, outShape: number[]): void {
    const conv = op.startsWith('conv');
    const datas = inputs.map((t) => Float32Array.from(t.dataSync()));
    const ptrs = datas.map((d) => k.upload(d.length ? d : new Float32Array(1)));
    const size = outShape.reduce((a, d) => a * d, 1);
    const out = k.alloc(size * 4 + 16);
    let words: number[];
    if (conv) {
      const g = convGeoOf(op, inputs, outShape, attrs);
      const mode = ['conv2d', 'conv2dBackpropInput', 'conv2dBackpropFilter'].indexOf(op);
      words = [
        mode,
        ptrs[0],
        ptrs[1],
        out,
        g.N,
        g.H,
        g.W,
        g.Cin,
        g.OH,
        g.OW,
        g.Cout,
        g.KH,
        g.KW,
        g.sh,
        g.sw,
        g.dh,
        g.dw,
        g.pt,
        g.pl,
        g.groups,
      ];
    } else {
      const mode = ['maxPool2d', 'maxPool2dGather', 'maxPool2dGrad', 'avgPool2d', 'avgPool2dGrad'].indexOf(
        op,
      );
      const g = poolGeometry(op, mode === 4 ? outShape : inputs[0].shape, attrs);
      words = [
        mode,
        ptrs[0],
        ptrs[ptrs.length - 1],
        out,
        g.N,
        g.H,
        g.W,
        g.C,
        g.OH,
        g.OW,
        g.KH,
        g.KW,
        g.sh,
        g.sw,
        g.pt,
        g.pl,
      ];
    }
    const desc = writeWords(words);
    const units = conv ? k.convUnits(words) : k.exports.poolUnits(desc);
    k.free(desc);
    const bytes = conv ? k.convScratchBytes(words) : 0;
    const scratch = k.alloc(bytes + 16);
    const exec = (u0: number, u1: number) => (conv ? k.conv(words, u0, u1, scratch) : k.pool(words, u0, u1));
    k.f32(out, size).fill(Number.NaN);
    exec(0, units);
    const whole = Float32Array.from(k.f32(out, size));
    k.f32(out, size).fill(Number.NaN);
    const a = Math.floor(units / 3);
    const b = Math.floor((2 * units) / 3);
    exec(b, units);
    exec(0, a);
    exec(a, b);
    expect(Float32Array.from(k.f32(out, size)), `${op}: split into unit ranges`).toEqual(whole);
    const want = getOp(op).reference(
      inputs.map((t, i) => ({ data: Float64Array.from(datas[i]), shape: t.shape })),
      attrs,
      { shape: outShape, dtype: 'float32' },
    );
    expectClose(whole, want, { ...TOL, what: op });
    for (const p of [...ptrs, out, scratch]) k.free(p);
  }

  /** Writes descriptor words into scratch memory and returns their address (for poolUnits). */
  function writeWords(words: number[]): number {
    const p = k.alloc(words.length * 4);
    k.i32(p, words.length).set(words);
    return p;
  }

  it.each(convCases.map((c, i) => [i, c] as const))(
    'conv case %i: forward, input and filter gradients',
    (i, c) => {
      const r = rng(300 + i);
      const x = randomTensor(c.x, r);
      const w = randomTensor(c.w, r);
      const y = o.conv2d(x, w, c.opts);
      const dy = randomTensor(y.shape, r);
      run('conv2d', [x, w], y.attrs, [...y.shape]);
      run('conv2dBackpropInput', [dy, w], { ...y.attrs, inputShape: [c.x[1], c.x[2]] }, [...x.shape]);
      run('conv2dBackpropFilter', [x, dy], { ...y.attrs, filterShape: [c.w[0], c.w[1]] }, [...w.shape]);
    },
  );

  it('pooling: all five modes, overlapping and tiling windows', () => {
    const r = rng(400);
    for (const [shape, win, opts] of [
      [[2, 9, 7, 6], 3, { strides: 2, padding: 'same' }],
      [[3, 8, 6, 5], 2, {}],
      [
        [1, 7, 8, 3],
        [2, 3],
        {
          strides: [1, 2],
          padding: [
            [1, 0],
            [2, 1],
          ],
        },
      ],
    ] as [number[], number | [number, number], o.Pool2dOptions][]) {
      const x = randomTensor(shape, r);
      const y = o.maxPool2d(x, win, opts);
      const ct = randomTensor(y.shape, r);
      run('maxPool2d', [x], y.attrs, [...y.shape]);
      run('maxPool2dGather', [x, randomTensor(shape, r)], y.attrs, [...y.shape]);
      run('maxPool2dGrad', [x, ct], y.attrs, [...x.shape]);
      run('avgPool2d', [x], y.attrs, [...y.shape]);
      run('avgPool2dGrad', [ct], { ...y.attrs, inputShape: [shape[1], shape[2]] }, [...x.shape]);
    }
  });
});

// ---------------------------------------------------------------- second order, float64

/** H·u of f at xs (all arguments), flattened, against central differences of the gradient. */
function checkHvp(f: Fn, shapes: number[][], seed: number): void {
  withFloat64(() => {
    const r = rng(seed);
    const xs = shapes.map((s) => randomTensor(s, r));
    const us = shapes.map((s) => randomTensor(s, r));
    const argnums = shapes.map((_, i) => i);
    const g = (...a: Tensor[]) => {
      const gs = grad(f, argnums)(...a);
      return o.concat((Array.isArray(gs) ? gs : [gs]).map((t: Tensor) => o.reshape(t, [-1])));
    };
    const [, hv] = jvp(g, xs, us);
    const fd = centralDifference(g, xs, us);
    expect(values(hv).some((v) => v !== 0)).toBe(true);
    expectClose(values(hv), fd, { rtol: 1e-6, atol: 1e-9, scale: 'max' });
  });
}

describe('Hessian-vector products against finite differences of the gradient (float64)', () => {
  it('conv2d (strided, dilated, grouped) and its transposed form', () => {
    checkHvp(
      (x, w) => o.sum(o.tanh(o.conv2d(x, w, { strides: 2, dilations: [2, 1], groups: 2, padding: 'same' }))),
      [
        [2, 7, 6, 4],
        [2, 3, 2, 6],
      ],
      1,
    );
    checkHvp(
      (x, w) => o.sum(o.sin(o.convTranspose2d(x, w, { strides: 2, padding: 'same' }))),
      [
        [1, 3, 4, 3],
        [3, 3, 2, 3],
      ],
      2,
    );
    checkHvp(
      (x, w) => o.sum(o.square(o.conv1d(x, w, { padding: 'same', dilations: 2 }))).mul(o.sum(x)),
      [
        [2, 9, 3],
        [3, 3, 2],
      ],
      3,
    );
  });

  it('max and average pooling (second derivatives through the argmax gather and scatter)', () => {
    const c = randomTensor([2, 3, 3, 3], rng(9));
    checkHvp(
      (x) => o.sum(o.mul(o.square(o.maxPool2d(x, 3, { strides: 2, padding: 'same' })), c)),
      [[2, 6, 5, 3]],
      4,
    );
    checkHvp((x) => o.sum(o.exp(o.avgPool2d(o.sin(x), [2, 3], { strides: 1 }))), [[1, 5, 6, 2]], 5);
  });

  it('a small CNN: conv → tanh → max pool → conv → avg pool → dense', () => {
    checkHvp(
      (x, w1, w2, d) => {
        const h = o.maxPool2d(o.tanh(o.conv2d(x, w1, { padding: 'same' })), 2);
        const z = o.avgPool2d(o.tanh(o.conv2d(h, w2, { padding: 'same' })), 2);
        return o.sum(o.tanh(o.matmul(o.reshape(z, [2, -1]), d)));
      },
      [
        [2, 8, 8, 2],
        [3, 3, 2, 3],
        [3, 3, 3, 4],
        [16, 3],
      ],
      6,
    );
  });
});

// ---------------------------------------------------------------- errors

describe('typed errors name the op and the shapes', () => {
  const x = randomTensor([1, 5, 5, 3], rng(1));
  const w = randomTensor([3, 3, 3, 4], rng(2));

  it('channel mismatch, groups, ranks, dtypes', () => {
    expect(() => o.conv2d(x, randomTensor([3, 3, 2, 4], rng(3)))).toThrow(ShapeError);
    expect(() => o.conv2d(x, randomTensor([3, 3, 2, 4], rng(3)))).toThrow(
      /conv2d: x has 3 channels but the filter takes 2 per group × 1 group \(x \[1, 5, 5, 3\], filter \[3, 3, 2, 4\]\)/,
    );
    expect(() => o.conv2d(x, randomTensor([3, 3, 1, 4], rng(3)), { groups: 2 })).toThrow(
      /conv2d: groups 2 must divide the input channels 3 and the output channels 4/,
    );
    expect(() => o.conv2d(x, w, { groups: 0 })).toThrow(ValueError);
    expect(() => o.conv2d(o.reshape(x, [5, 15]), w)).toThrow(
      /conv2d: x must be \[batch, height, width, channels\]/,
    );
    expect(() => o.conv2d(x, o.reshape(w, [9, 12]))).toThrow(/conv2d: the filter must be/);
    expect(() =>
      apply('conv2d', [x, o.cast(w, 'int32')], {
        strides: [1, 1],
        pads: [0, 0, 0, 0],
        dilations: [1, 1],
        groups: 1,
      }),
    ).toThrow(DTypeError);
    expect(() => o.conv1d(randomTensor([2, 7, 3], rng(4)), randomTensor([3, 4, 2], rng(5)))).toThrow(
      /conv2d: x has 3 channels but the filter takes 4/,
    );
    expect(() => o.convTranspose2d(x, randomTensor([3, 3, 4, 2], rng(6)))).toThrow(
      /convTranspose2d: x \[1, 5, 5, 3\] has 3 channels but the filter \[3, 3, 4, 2\] takes 2/,
    );
  });

  it("a window larger than a 'valid' input; padding at least the pooling window", () => {
    expect(() => o.conv2d(x, randomTensor([6, 3, 3, 4], rng(3)))).toThrow(
      /conv2d: the filter window 6×3 is larger than the input 5×5 padded to 5×5/,
    );
    expect(() => o.conv2d(x, w, { dilations: 3 })).toThrow(
      /window 7×7 \(dilated\) is larger than the input 5×5/,
    );
    expect(() => o.conv2d(x, randomTensor([6, 3, 3, 4], rng(3)), { padding: 'same' })).not.toThrow();
    expect(() => o.maxPool2d(x, 6)).toThrow(/maxPool2d: the window 6×6 is larger than the input 5×5/);
    expect(() =>
      o.avgPool2d(x, [2, 2], {
        padding: [
          [2, 0],
          [0, 0],
        ],
      }),
    ).toThrow(ValueError);
    expect(() =>
      o.avgPool2d(x, [2, 2], {
        padding: [
          [2, 0],
          [0, 0],
        ],
      }),
    ).toThrow(/avgPool2d: padding .* must be smaller than the window 2×2/);
  });

  it('zero, negative or fractional strides and dilations; malformed padding', () => {
    for (const strides of [0, -1, 1.5, [1, 0], [1, 2, 3]] as never[]) {
      expect(() => o.conv2d(x, w, { strides })).toThrow(ValueError);
      expect(() => o.conv2d(x, w, { strides })).toThrow(/conv2d: strides must be a positive integer/);
      expect(() => o.maxPool2d(x, 2, { strides })).toThrow(/maxPool2d: strides must be/);
    }
    expect(() => o.conv2d(x, w, { dilations: 0 })).toThrow(/conv2d: dilations must be/);
    expect(() =>
      o.conv1d(o.reshape(x, [1, 25, 3]), randomTensor([3, 3, 4], rng(7)), { strides: -2 }),
    ).toThrow(/conv1d: strides must be a positive integer/);
    expect(() => o.convTranspose2d(x, randomTensor([3, 3, 4, 3], rng(8)), { strides: 0 })).toThrow(
      ValueError,
    );
    expect(() => o.maxPool2d(x, 0)).toThrow(/maxPool2d: window must be/);
    expect(() => o.conv2d(x, w, { padding: 'full' as never })).toThrow(
      /conv2d: padding must be 'valid', 'same' or/,
    );
    expect(() =>
      o.conv2d(x, w, {
        padding: [
          [1, -1],
          [0, 0],
        ],
      }),
    ).toThrow(ValueError);
  });

  it('convTranspose2d: an outputShape the forward convolution cannot map to x', () => {
    const f = randomTensor([3, 3, 2, 3], rng(9));
    expect(() => o.convTranspose2d(x, f, { strides: 2, outputShape: [1, 4, 4, 2] })).toThrow(
      /convTranspose2d: a convolution of \[1, 4, 4, 2\] with filter \[3, 3, 2, 3\] gives 1×1, not x's 5×5/,
    );
    expect(() => o.convTranspose2d(x, f, { outputShape: [1, 7, 7, 5] })).toThrow(
      /convTranspose2d: outputShape/,
    );
  });

  it('the gradient primitives check their operands too; nothing is allocated by a failed call', async () => {
    const attrs = { strides: [1, 1], pads: [0, 0, 0, 0], dilations: [1, 1], groups: 1 };
    expect(() =>
      apply('conv2dBackpropInput', [randomTensor([1, 2, 2, 4], rng(1)), w], { ...attrs, inputShape: [5, 5] }),
    ).toThrow(
      /conv2dBackpropInput: dy \[1, 2, 2, 4\] is not the output of a convolution of \[1, 5, 5, 3\] with filter \[3, 3, 3, 4\] \(that is \[1, 3, 3, 4\]\)/,
    );
    expect(() =>
      apply('conv2dBackpropFilter', [x, randomTensor([1, 3, 3, 4], rng(1))], {
        ...attrs,
        filterShape: [2, 2],
      }),
    ).toThrow(ShapeError);
    expect(() =>
      apply('maxPool2dGrad', [x, randomTensor([1, 2, 2, 2], rng(1))], {
        window: [2, 2],
        strides: [2, 2],
        pads: [0, 0, 0, 0],
      }),
    ).toThrow(/maxPool2dGrad: cotangent \[1, 2, 2, 2\] must have shape \[1, 2, 2, 3\]/);
    const before = memoryStats().liveBuffers;
    for (let i = 0; i < 3; i++) expect(() => o.conv2d(x, w, { groups: 2 })).toThrow(ShapeError);
    expect(memoryStats().liveBuffers).toBe(before);
    // the operands are intact and usable
    expect((await o.conv2d(x, w).data()).length).toBe(36);
  });
});

// ---------------------------------------------------------------- WebGPU (Dawn)

describe('WebGPU kernels against the reference (Dawn)', () => {
  let backend: WebGPUBackend | null = null;
  let unavailable: unknown = null;
  let previous: ReturnType<typeof activeBackend>;

  beforeAll(async () => {
    process.env.XDG_RUNTIME_DIR ||= mkdtempSync(join(tmpdir(), 'adjoint-xdg-'));
    Object.assign(globalThis, globals);
    try {
      backend = await WebGPUBackend.create({ gpu: create([]) });
    } catch (e) {
      unavailable = e;
      return;
    }
    previous = activeBackend();
    setBackend(backend);
  });

  afterAll(() => {
    if (backend) {
      setBackend(previous);
      backend.dispose();
    }
  });

  async function compareGpu(f: Fn, xs: Tensor[], seed: number): Promise<void> {
    if (!backend) throw unavailable;
    const fresh = async () =>
      Promise.all(xs.map(async (x) => tensor(await x.data(), { shape: [...x.shape] })));
    const refIn = await fresh();
    const want = withReference(() => evaluate(f, refIn, seed));
    const [y, pullback] = vjp(f, ...(await fresh()));
    const outs = [y, ...(pullback(randomTensor(y.shape, rng(seed))) as Tensor[])];
    for (const [i, t] of outs.entries()) {
      const got = await t.data();
      expect(t.device).toBe('webgpu');
      expectClose(got, want[i], { ...TOL, what: i === 0 ? 'value' : `gradient ${i - 1}` });
    }
  }

  it('convolutions: grouped, strided, dilated, depthwise, batch 0; value and both gradients', async () => {
    for (const i of [0, 2, 3, 4, 7]) {
      const c = convCases[i];
      const r = rng(200 + i);
      await compareGpu((x, w) => o.conv2d(x, w, c.opts), [randomTensor(c.x, r), randomTensor(c.w, r)], i);
    }
  });

  it('pooling: overlapping windows with padding, tiling windows', async () => {
    const r = rng(11);
    const x = randomTensor([2, 9, 8, 5], r);
    await compareGpu((t) => o.maxPool2d(t, 3, { strides: 2, padding: 'same' }), [x], 1);
    await compareGpu(
      (t) =>
        o.avgPool2d(t, [3, 2], {
          strides: [2, 1],
          padding: [
            [1, 1],
            [0, 1],
          ],
        }),
      [x],
      2,
    );
    await compareGpu((t) => o.maxPool2d(t, 2), [x], 3);
  });
});
