/** The op table shared by the derivative and backend-parity tests: shapes and functions per op. */
import fc from 'fast-check';
import { tensor } from '../src/creation';
import * as o from '../src/ops/api';
import { apply } from '../src/ops/registry';
import type { Tensor } from '../src/tensor';
import { type Domain, randomTensor } from './helpers';

export type Fn = (...xs: Tensor[]) => Tensor;

export interface Spec {
  name: string;
  domains: Domain[];
  shapes: fc.Arbitrary<number[][]>;
  /** Builds the function under test for these shapes; r draws any fixed auxiliary data. */
  make: (shapes: number[][], r: () => number) => Fn;
}

const dim = fc.oneof(
  { weight: 1, arbitrary: fc.constant(0) },
  { weight: 9, arbitrary: fc.integer({ min: 1, max: 3 }) },
);
const nonEmptyDim = fc.integer({ min: 1, max: 3 });
const shape = (maxRank = 3, d = dim) => fc.array(d, { minLength: 0, maxLength: maxRank });
const unaryShape = shape().map((s) => [s]);

/** Two shapes that broadcast: the second drops leading dims and turns some dims into 1, maybe swapped. */
const broadcastPair = fc
  .tuple(
    shape(),
    fc.integer({ min: 0, max: 3 }),
    fc.array(fc.boolean(), { minLength: 3, maxLength: 3 }),
    fc.boolean(),
  )
  .map(([s, drop, ones, swap]) => {
    const t = s.slice(Math.min(drop, s.length)).map((d, i) => (ones[i] ? 1 : d));
    return swap ? [t, s] : [s, t];
  });

const broadcastTriple = fc
  .tuple(broadcastPair, fc.array(fc.boolean(), { minLength: 3, maxLength: 3 }))
  .map(([[a, b], ones]) => {
    const big = a.length >= b.length ? a : b;
    return [big.map((d, i) => (ones[i] ? 1 : d)), a, b];
  });

/** int32 class ids for logits of shape s (classes on the last axis). */
const randomLabels = (s: readonly number[], r: () => number): Tensor => {
  const c = s[s.length - 1];
  const n = s.slice(0, -1).reduce((a, d) => a * d, 1);
  return tensor(
    Int32Array.from({ length: n }, () => Math.floor(r() * c)),
    { shape: s.slice(0, -1), dtype: 'int32' },
  );
};

const pick = <T>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
const randomAxes = (r: () => number, rank: number): number[] | undefined => {
  if (r() < 0.25) return undefined;
  const axes = Array.from({ length: rank }, (_, i) => i).filter(() => r() < 0.5);
  return axes.map((a) => (r() < 0.5 ? a - rank : a));
};

const unary = (name: string, f: (x: Tensor) => Tensor, domain: Domain = 'real'): Spec => ({
  name,
  domains: [domain],
  shapes: unaryShape,
  make: () => f,
});
const binary = (
  name: string,
  f: (a: Tensor, b: Tensor) => Tensor,
  domains: Domain[] = ['real', 'real'],
): Spec => ({
  name,
  domains,
  shapes: broadcastPair,
  make: () => f,
});

// ---------------------------------------------------------------- convolution and pooling

/**
 * A random convolution: [x shape, filter shape, [sh, sw, dh, dw, groups, padMode, pt, pb, pl, pr]]
 * (padMode 0 'valid', 1 'same', 2 explicit), odd sizes, batch 0 sometimes, every padding mode,
 * strides, dilations and groups; the window always fits the padded input.
 */
const convCase = fc
  .record({
    n: fc.oneof(
      { weight: 1, arbitrary: fc.constant(0) },
      { weight: 6, arbitrary: fc.integer({ min: 1, max: 2 }) },
    ),
    h: fc.integer({ min: 1, max: 6 }),
    w: fc.integer({ min: 1, max: 6 }),
    groups: fc.integer({ min: 1, max: 2 }),
    cinG: fc.integer({ min: 1, max: 2 }),
    coutG: fc.integer({ min: 1, max: 3 }),
    kh: fc.integer({ min: 1, max: 3 }),
    kw: fc.integer({ min: 1, max: 3 }),
    st: fc.array(fc.integer({ min: 1, max: 2 }), { minLength: 2, maxLength: 2 }),
    dil: fc.array(fc.integer({ min: 1, max: 2 }), { minLength: 2, maxLength: 2 }),
    mode: fc.integer({ min: 0, max: 2 }),
    pads: fc.array(fc.nat(2), { minLength: 4, maxLength: 4 }),
  })
  .map((c) => ({ ...c, pads: c.mode === 2 ? c.pads : [0, 0, 0, 0] }))
  .filter(
    (c) =>
      c.mode === 1 ||
      (c.h + c.pads[0] + c.pads[1] >= (c.kh - 1) * c.dil[0] + 1 &&
        c.w + c.pads[2] + c.pads[3] >= (c.kw - 1) * c.dil[1] + 1),
  )
  .map((c) => [
    [c.n, c.h, c.w, c.groups * c.cinG],
    [c.kh, c.kw, c.cinG, c.groups * c.coutG],
    [...c.st, ...c.dil, c.groups, c.mode, ...c.pads],
  ]);

type ConvParams = {
  strides: [number, number];
  dilations: [number, number];
  groups: number;
  padding: o.Padding;
};
function convParams(p: number[]): ConvParams {
  const [sh, sw, dh, dw, groups, mode, pt, pb, pl, pr] = p;
  const padding: o.Padding =
    mode === 0
      ? 'valid'
      : mode === 1
        ? 'same'
        : [
            [pt, pb],
            [pl, pr],
          ];
  return { strides: [sh, sw], dilations: [dh, dw], groups, padding };
}

/** The primitives' attributes and output shape of a convCase (the public conv2d resolves the padding). */
function convPrim(x: number[], w: number[], p: number[]) {
  const c = convParams(p);
  const y = o.conv2d(
    tensor(new Float32Array(x.reduce((a, d) => a * d, 1)), { shape: x }),
    tensor(new Float32Array(w.reduce((a, d) => a * d, 1)), { shape: w }),
    c,
  );
  return { attrs: y.attrs, y: [...y.shape] };
}

/**
 * A random pooling: [x shape, [kh, kw, sh, sw, padMode, pt, pb, pl, pr]] (pads below the window).
 */
const poolCase = fc
  .record({
    n: fc.oneof(
      { weight: 1, arbitrary: fc.constant(0) },
      { weight: 6, arbitrary: fc.integer({ min: 1, max: 2 }) },
    ),
    h: fc.integer({ min: 1, max: 6 }),
    w: fc.integer({ min: 1, max: 6 }),
    c: fc.integer({ min: 1, max: 5 }),
    kh: fc.integer({ min: 1, max: 3 }),
    kw: fc.integer({ min: 1, max: 3 }),
    st: fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 2, maxLength: 2 }),
    mode: fc.integer({ min: 0, max: 2 }),
    pads: fc.array(fc.nat(2), { minLength: 4, maxLength: 4 }),
  })
  .map((c) => ({
    ...c,
    pads:
      c.mode === 2 ? [c.pads[0] % c.kh, c.pads[1] % c.kh, c.pads[2] % c.kw, c.pads[3] % c.kw] : [0, 0, 0, 0],
  }))
  .filter((c) => c.mode === 1 || (c.h + c.pads[0] + c.pads[1] >= c.kh && c.w + c.pads[2] + c.pads[3] >= c.kw))
  .map((c) => [
    [c.n, c.h, c.w, c.c],
    [c.kh, c.kw, ...c.st, c.mode, ...c.pads],
  ]);

function poolParams(p: number[]): { window: [number, number]; opts: o.Pool2dOptions } {
  const [kh, kw, sh, sw, mode, pt, pb, pl, pr] = p;
  return {
    window: [kh, kw],
    opts: {
      strides: [sh, sw],
      padding:
        mode === 0
          ? 'valid'
          : mode === 1
            ? 'same'
            : [
                [pt, pb],
                [pl, pr],
              ],
    },
  };
}

function poolPrim(x: number[], p: number[]) {
  const { window, opts } = poolParams(p);
  const y = o.maxPool2d(tensor(new Float32Array(x.reduce((a, d) => a * d, 1)), { shape: x }), window, opts);
  return { attrs: y.attrs, y: [...y.shape] };
}

export const convSpecs: Spec[] = [
  {
    name: 'conv2d',
    domains: ['real', 'real'],
    shapes: convCase,
    make:
      ([, , p]) =>
      (x, w) =>
        o.conv2d(x, w, convParams(p)),
  },
  {
    name: 'conv2dBackpropInput',
    domains: ['real', 'real'],
    // [dy, filter, x, params]: dy has the forward convolution's output shape
    shapes: convCase.map(([x, w, p]) => [convPrim(x, w, p).y, w, x, p]),
    make: ([, w, x, p]) => {
      const { attrs } = convPrim(x, w, p);
      return (dy, f) => apply('conv2dBackpropInput', [dy, f], { ...attrs, inputShape: [x[1], x[2]] });
    },
  },
  {
    name: 'conv2dBackpropFilter',
    domains: ['real', 'real'],
    shapes: convCase.map(([x, w, p]) => [x, convPrim(x, w, p).y, w, p]),
    make: ([x, , w, p]) => {
      const { attrs } = convPrim(x, w, p);
      return (xx, dy) => apply('conv2dBackpropFilter', [xx, dy], { ...attrs, filterShape: [w[0], w[1]] });
    },
  },
  {
    name: 'conv1d',
    domains: ['real', 'real'],
    shapes: convCase.map(([x, w, p]) => [[x[0], x[2], x[3]], [w[1], w[2], w[3]], p]),
    make: ([, , p]) => {
      const c = convParams(p);
      const padding = typeof c.padding === 'string' ? c.padding : c.padding[1];
      return (x, w) =>
        o.conv1d(x, w, { strides: c.strides[1], dilations: c.dilations[1], groups: c.groups, padding });
    },
  },
  {
    name: 'convTranspose2d',
    domains: ['real', 'real'],
    // x [N, H, W, Cin] -> [N, OH, OW, Cout] with a filter [KH, KW, Cout, Cin]; the forward
    // convolution maps [N, OH, OW, Cout] to x's size (groups and dilations 1 here)
    shapes: convCase.map(([x, w, p]) => {
      const q = [p[0], p[1], 1, 1, 1, ...p.slice(5)];
      const f = [w[0], w[1], w[2], w[3] / p[4]];
      const out = [x[0], x[1], x[2], w[2]];
      try {
        return [convPrim(out, f, q).y, [f[0], f[1], f[2], f[3]], out, q];
      } catch {
        return [[x[0], x[1], x[2], w[2]], [1, 1, w[2], w[2]], out, [1, 1, 1, 1, 1, 0, 0, 0, 0, 0]];
      }
    }),
    make: ([, , out, p]) => {
      const c = convParams(p);
      return (x, w) => o.convTranspose2d(x, w, { strides: c.strides, padding: c.padding, outputShape: out });
    },
  },
  {
    name: 'maxPool2d',
    domains: ['real'],
    shapes: poolCase,
    make: ([, p]) => {
      const { window, opts } = poolParams(p);
      return (x) => o.maxPool2d(x, window, opts);
    },
  },
  {
    name: 'avgPool2d',
    domains: ['real'],
    shapes: poolCase,
    make: ([, p]) => {
      const { window, opts } = poolParams(p);
      return (x) => o.avgPool2d(x, window, opts);
    },
  },
  {
    name: 'maxPool2dGather',
    domains: ['real', 'real'],
    shapes: poolCase.map(([x, p]) => [x, x, p]),
    make: ([x, , p]) => {
      const { attrs } = poolPrim(x, p);
      return (xx, g) => apply('maxPool2dGather', [xx, g], attrs);
    },
  },
  {
    name: 'maxPool2dGrad',
    domains: ['real', 'real'],
    shapes: poolCase.map(([x, p]) => [x, poolPrim(x, p).y, p]),
    make: ([x, , p]) => {
      const { attrs } = poolPrim(x, p);
      return (xx, ct) => apply('maxPool2dGrad', [xx, ct], attrs);
    },
  },
  {
    name: 'avgPool2dGrad',
    domains: ['real'],
    shapes: poolCase.map(([x, p]) => [poolPrim(x, p).y, x, p]),
    make: ([, x, p]) => {
      const { attrs } = poolPrim(x, p);
      return (ct) => apply('avgPool2dGrad', [ct], { ...attrs, inputShape: [x[1], x[2]] });
    },
  },
];

export const specs: Spec[] = [
  unary('neg', o.neg),
  unary('abs', o.abs, 'nonzero'),
  unary('sign', o.sign, 'nonzero'),
  unary('exp', o.exp),
  unary('log', o.log, 'positive'),
  unary('log1p', o.log1p, 'positive'),
  unary('sqrt', o.sqrt, 'positive'),
  unary('square', o.square),
  unary('reciprocal', o.reciprocal, 'nonzero'),
  unary('sin', o.sin),
  unary('cos', o.cos),
  unary('tanh', o.tanh),
  unary('sigmoid', o.sigmoid),
  unary('relu', o.relu, 'nonzero'),
  unary('softplus', o.softplus),
  unary('rsqrt', o.rsqrt, 'positive'),
  unary('floor', o.floor),
  unary('ceil', o.ceil),
  unary('round', o.round),
  unary('erf', o.erf),
  unary('elu', o.elu, 'nonzero'),
  unary('leakyRelu', (x) => o.leakyRelu(x, 0.3), 'nonzero'),
  unary('silu', o.silu),
  unary('gelu', o.gelu),
  unary('geluExact', (x) => o.gelu(x, { approximate: false })),
  unary('clip', (x) => o.clip(x, -1, 1.5)),
  binary('add', o.add),
  binary('sub', o.sub),
  binary('mul', o.mul),
  binary('div', o.div, ['real', 'nonzero']),
  binary('pow', o.pow, ['positive', 'real']),
  binary('maximum', o.maximum),
  binary('minimum', o.minimum),
  {
    name: 'where',
    domains: ['real', 'real'],
    shapes: broadcastTriple.map(([c, a, b]) => [a, b, c]),
    make: ([, , c], r) => {
      const cond = o.greater(randomTensor(c, r), 0);
      return (a, b) => o.where(cond, a, b);
    },
  },
  {
    name: 'cumsum',
    domains: ['real'],
    shapes: shape(3)
      .filter((s) => s.length > 0)
      .map((s) => [s]),
    make: ([s], r) => {
      const axis = Math.floor(r() * s.length) - (r() < 0.5 ? s.length : 0);
      const reverse = r() < 0.5;
      return (x) => o.cumsum(x, axis, { reverse });
    },
  },
  ...(['prod', 'variance'] as const).map(
    (name): Spec => ({
      name,
      domains: ['real'],
      // prod of an empty axis is 1; variance's is nan, so its shapes are non-empty.
      shapes: (name === 'prod' ? shape() : shape(3, nonEmptyDim)).map((s) => [s]),
      make: ([s], r) => {
        const axes = randomAxes(r, s.length);
        const keep = r() < 0.5;
        const reduce = name === 'prod' ? o.prod : o.variance;
        return (x) => reduce(x, axes, keep);
      },
    }),
  ),
  ...(['sum', 'mean', 'max', 'min', 'logsumexp'] as const).map(
    (name): Spec => ({
      name,
      domains: ['real'],
      // Only sum has a value over an empty axis (mean's is nan); keep the others' shapes non-empty.
      shapes: (name === 'sum' ? shape() : shape(3, nonEmptyDim)).map((s) => [s]),
      make: ([s], r) => {
        const axes = randomAxes(r, s.length);
        const keep = r() < 0.5;
        const reduce = { sum: o.sum, mean: o.mean, max: o.max, min: o.min, logsumexp: o.logsumexp }[name];
        return (x) => reduce(x, axes, keep);
      },
    }),
  ),
  {
    name: 'reshape',
    domains: ['real'],
    shapes: unaryShape,
    make: ([s], r) => {
      const n = s.reduce((a, d) => a * d, 1);
      const target = pick(r, [[n], [...s].reverse(), [1, ...s, 1]]);
      return (x) => o.reshape(x, target);
    },
  },
  {
    name: 'transpose',
    domains: ['real'],
    shapes: unaryShape,
    make: ([s], r) => {
      const perm = s.map((_, i) => i).sort(() => r() - 0.5);
      return (x) => o.transpose(x, perm);
    },
  },
  {
    name: 'broadcastTo',
    domains: ['real'],
    shapes: broadcastPair.filter(([a, b]) => {
      try {
        return o.broadcastShapes('t', a, b).join() === b.join() && b.length >= a.length;
      } catch {
        return false;
      }
    }),
    make:
      ([, b]) =>
      (x) =>
        o.broadcastTo(x, b),
  },
  {
    name: 'expandDims∘squeeze',
    domains: ['real'],
    shapes: unaryShape,
    make: ([s], r) => {
      const axis = Math.floor(r() * (s.length + 1));
      return (x) => o.mul(o.squeeze(o.expandDims(x, axis)), 2);
    },
  },
  {
    name: 'slice',
    domains: ['real'],
    shapes: unaryShape,
    make: ([s], r) => {
      const begin = s.map((d) => Math.floor(r() * (d + 1)));
      const size = s.map((d, i) => (r() < 0.3 ? -1 : Math.floor(r() * (d - begin[i] + 1))));
      return (x) => o.slice(x, begin, size);
    },
  },
  {
    name: 'pad',
    domains: ['real'],
    shapes: unaryShape,
    make: ([s], r) => {
      const pads = s.map(() => [Math.floor(r() * 3), Math.floor(r() * 3)] as [number, number]);
      return (x) => o.pad(x, pads);
    },
  },
  {
    name: 'concat',
    domains: ['real', 'real', 'real'],
    shapes: fc
      .tuple(
        shape(3, dim).filter((s) => s.length > 0),
        fc.nat(2),
        fc.array(dim, { minLength: 3, maxLength: 3 }),
      )
      .map(([s, ax, ds]) => {
        const a = ax % s.length;
        return ds.map((d) => s.map((v, i) => (i === a ? d : v)));
      }),
    make: (shapes) => {
      const first = shapes[0];
      const axis = first.findIndex((_, i) => shapes.some((q) => q[i] !== first[i]));
      return (a, b, c) => o.concat([a, b, c], Math.max(axis, 0));
    },
  },
  {
    name: 'stack',
    domains: ['real', 'real'],
    shapes: shape().map((s) => [s, s]),
    make: ([s], r) => {
      const axis = Math.floor(r() * (s.length + 1));
      return (a, b) => o.stack([a, b], axis);
    },
  },
  {
    name: 'gather',
    domains: ['real'],
    shapes: shape(3, dim)
      .filter((s) => s.length > 0)
      .map((s) => [s]),
    make: ([s], r) => {
      const axis = Math.floor(r() * s.length);
      const idxShape = pick(r, [[], [2], [2, 2]]);
      const n = idxShape.reduce((a, d) => a * d, 1);
      const len = s[axis];
      // With an empty axis only an empty index list is valid.
      const idx =
        len === 0
          ? tensor(new Int32Array(0), { shape: [0], dtype: 'int32' })
          : tensor(
              Int32Array.from({ length: n }, () => Math.floor(r() * len)),
              { shape: idxShape, dtype: 'int32' },
            );
      return (x) => o.gather(x, idx, axis - (r() < 0.5 ? s.length : 0));
    },
  },
  {
    name: 'scatterAdd',
    domains: ['real'],
    shapes: fc.tuple(shape(2, dim), nonEmptyDim).map(([s, d]) => [[...s, 3], [d]]),
    make: ([s], r) => {
      const idx = tensor(
        Int32Array.from({ length: 3 }, () => Math.floor(r() * 2)),
        { dtype: 'int32' },
      );
      return (u) => o.scatterAdd(u, idx, s.length - 1, 2);
    },
  },
  {
    name: 'matmul',
    domains: ['real', 'real'],
    shapes: fc
      .tuple(
        broadcastPair.filter(([a, b]) => a.length <= 2 && b.length <= 2),
        dim,
        dim,
        dim,
        fc.nat(3),
      )
      .map(([[ba, bb], m, k, n, vec]) => {
        if (vec === 1) return [[k], [...bb, k, n]];
        if (vec === 2) return [[...ba, m, k], [k]];
        return [
          [...ba, m, k],
          [...bb, k, n],
        ];
      }),
    make: () => o.matmul,
  },
  {
    name: 'matmulT',
    domains: ['real', 'real'],
    shapes: fc
      .tuple(dim, dim, dim, fc.boolean(), fc.boolean(), fc.boolean())
      .map(([m, k, n, ta, tb, batch]) => {
        const b = batch ? [2] : [];
        return [[...b, ...(ta ? [k, m] : [m, k])], [...(tb ? [n, k] : [k, n])], [ta ? 1 : 0, tb ? 1 : 0]];
      }),
    make:
      ([, , [ta, tb]]) =>
      (a, b) =>
        o.matmulT(a, b, ta === 1, tb === 1),
  },
  {
    name: 'softmaxCrossEntropy',
    domains: ['real'],
    shapes: fc
      .tuple(fc.array(dim, { minLength: 0, maxLength: 2 }), nonEmptyDim)
      .map(([lead, c]) => [[...lead, c]]),
    make: ([s], r) => {
      const labels = randomLabels(s, r);
      return (x) => o.softmaxCrossEntropyRows(x, labels);
    },
  },
  {
    name: 'softmaxCrossEntropyGrad',
    domains: ['real', 'real'],
    shapes: fc
      .tuple(fc.array(dim, { minLength: 0, maxLength: 2 }), nonEmptyDim)
      .map(([lead, c]) => [[...lead, c], lead]),
    make: ([s], r) => {
      const labels = randomLabels(s, r);
      return (x, g) => apply('softmaxCrossEntropyGrad', [x, labels, g]);
    },
  },
  {
    name: 'softmax',
    domains: ['real'],
    shapes: shape(3, dim)
      .filter((s) => s.length > 0)
      .map((s) => [s]),
    make: ([s], r) => {
      const axis = Math.floor(r() * s.length);
      return (x) => o.softmax(x, axis);
    },
  },
  {
    // causally masked softmax (attention): rows of [q, cols] blocks, cols >= q, maybe leading batch dims
    name: 'causalSoftmax',
    domains: ['real'],
    shapes: fc
      .tuple(fc.array(dim, { minLength: 0, maxLength: 2 }), dim, fc.integer({ min: 0, max: 2 }))
      .map(([lead, q, extra]) => [[...lead, q, q + extra]]),
    make: () => (x) => apply('softmax', [x], { axis: x.ndim - 1, causal: true }),
  },
  {
    // softmax with a keep mask (attention's padding mask): int32 [K, cols], row r of x masked by
    // keep row r / (rows / K); about one position in three masked, so some rows keep nothing.
    // K is x's first axis, or 1; maybe causal too.
    name: 'maskedSoftmax',
    domains: ['real'],
    shapes: fc
      .tuple(fc.array(dim, { minLength: 0, maxLength: 2 }), dim, fc.integer({ min: 0, max: 2 }))
      .map(([lead, q, extra]) => [[...lead, q, q + extra]]),
    make: ([s], r) => {
      const cols = s[s.length - 1];
      const K = s.length > 2 && r() < 0.5 ? s[0] : 1;
      const keep = tensor(
        Int32Array.from({ length: K * cols }, () => (r() < 0.35 ? 0 : 1)),
        { shape: [K, cols], dtype: 'int32' },
      );
      const attrs = r() < 0.5 ? { axis: s.length - 1, causal: true } : { axis: s.length - 1 };
      return (x) => apply('softmax', [x, keep], attrs);
    },
  },
  {
    name: 'logSoftmax',
    domains: ['real'],
    shapes: shape(3, dim)
      .filter((s) => s.length > 0)
      .map((s) => [s]),
    make: ([s], r) => {
      const axis = Math.floor(r() * s.length) - s.length;
      return (x) => o.logSoftmax(x, axis);
    },
  },
  // softmax's and logSoftmax's backward from (y, g), along any axis
  ...(['softmaxGrad', 'logSoftmaxGrad'] as const).map(
    (name): Spec => ({
      name,
      domains: ['real', 'real'],
      shapes: shape(3, dim)
        .filter((s) => s.length > 0)
        .map((s) => [s, s]),
      make: ([s], r) => {
        const attrs = { axis: Math.floor(r() * s.length), log: name === 'logSoftmaxGrad' };
        return (y, g) => apply('softmaxGrad', [y, g], attrs);
      },
    }),
  ),
  {
    // batch normalization's statistics: each channel's mean and variance over all other axes
    name: 'moments',
    domains: ['real'],
    // at least one row (no rows: NaN statistics, checked in transformer.test.ts)
    shapes: fc
      .tuple(fc.array(nonEmptyDim, { minLength: 0, maxLength: 2 }), nonEmptyDim)
      .map(([lead, c]) => [[...lead, c]]),
    make: () => (x) => apply('moments', [x]),
  },
  // layer and RMS normalization and their x-cotangent primitive: x [..., d], gamma [d], and beta [d] or ct [..., d]
  ...(['layerNorm', 'rmsNorm', 'layerNormGrad', 'rmsNormGrad'] as const).map(
    (name): Spec => ({
      name,
      domains: ['real', 'real', 'real'],
      shapes: shape(3, dim)
        .filter((s) => s.length > 0)
        .map((s) => [s, [s[s.length - 1]], name.endsWith('Grad') ? s : [s[s.length - 1]]]),
      // eps keeps rows of near-equal values well conditioned for the finite differences
      make: (_shapes, r) => {
        const attrs = { eps: 0.05 + 0.5 * r(), rms: name.startsWith('rms') };
        const op = name.endsWith('Grad') ? 'layerNormGrad' : 'layerNorm';
        return (x, g, t) => apply(op, [x, g, t], attrs);
      },
    }),
  ),
  ...convSpecs,
];
