/** Elementwise primitives: unary math, broadcasting binary arithmetic, comparisons, where, cast. */
import { DTypeError } from '../../errors';
import { broadcastShapes } from '../../shape';
import type { Attrs, DType, Tensor } from '../../tensor';
import * as o from '../api';
import { elementwiseRule, unaryRule } from '../batching';
import { mapBroadcast, mapUnary } from '../reference-utils';
import { defineOp, type TensorInfo } from '../registry';

function sameInfo(inputs: readonly TensorInfo[]): TensorInfo {
  return { shape: inputs[0].shape, dtype: inputs[0].dtype };
}

/**
 * A unary op whose derivative is `dfdx(x, y)` (y = f(x)): JVP is t·f'(x), VJP is ct·f'(x).
 * `floatOnly` ops reject int32 (the public wrapper casts first, so this guards internal misuse).
 */
function unary(
  name: string,
  f: (v: number) => number,
  dfdx: ((x: Tensor, y: Tensor) => Tensor) | null,
  floatOnly = true,
) {
  defineOp({
    name,
    kind: 'elementwise',
    infer(inputs) {
      if (floatOnly && inputs[0].dtype !== 'float32')
        throw new DTypeError(`${name}: expects float32, got ${inputs[0].dtype}`);
      return sameInfo(inputs);
    },
    reference: ([x]) => mapUnary(x, f),
    batch: unaryRule(name),
    ...(dfdx && {
      jvp: ([t], [x], y) => (t ? o.mul(t, dfdx(x, y)) : null),
      vjp: (ct, [x], y) => [o.mul(ct, dfdx(x, y))],
    }),
  });
}

const sigmoid = (v: number) => (v >= 0 ? 1 / (1 + Math.exp(-v)) : Math.exp(v) / (1 + Math.exp(v)));
const softplus = (v: number) => Math.max(v, 0) + Math.log1p(Math.exp(-Math.abs(v)));

// neg and square keep int32; their rules are written directly.
defineOp({
  name: 'neg',
  kind: 'elementwise',
  infer: sameInfo,
  reference: ([x]) => mapUnary(x, (v) => -v),
  jvp: ([t]) => (t ? o.neg(t) : null),
  vjp: (ct) => [o.neg(ct)],
  batch: unaryRule('neg'),
});
unary('abs', Math.abs, (x) => o.cast(o.sign(x), 'float32'), false);
unary('sign', Math.sign, null, false);
unary(
  'square',
  (v) => v * v,
  (x) => o.mul(x, 2),
  false,
);
unary('exp', Math.exp, (_x, y) => y);
unary('log', Math.log, (x) => o.reciprocal(x));
unary('log1p', Math.log1p, (x) => o.reciprocal(o.add(x, 1)));
unary('sqrt', Math.sqrt, (_x, y) => o.div(0.5, y));
unary(
  'reciprocal',
  (v) => 1 / v,
  (_x, y) => o.neg(o.square(y)),
);
unary('sin', Math.sin, (x) => o.cos(x));
unary('cos', Math.cos, (x) => o.neg(o.sin(x)));
unary('tanh', Math.tanh, (_x, y) => o.sub(1, o.square(y)));
unary('sigmoid', sigmoid, (_x, y) => o.mul(y, o.sub(1, y)));
unary(
  'relu',
  (v) => Math.max(v, 0),
  (x) => o.cast(o.greater(x, 0), 'float32'),
);
unary('softplus', softplus, (x) => o.sigmoid(x));
/**
 * erf in float64 to about full precision: for |x| < 3 the series
 * erf(x) = 2/√π·exp(−x²)·Σ 2ⁿx²ⁿ⁺¹/(1·3···(2n+1)) (positive terms, no cancellation); above,
 * 1 − erfc(x) with erfc's continued fraction exp(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …)))).
 */
export function erfReference(x: number): number {
  if (Number.isNaN(x)) return x;
  const ax = Math.abs(x);
  if (ax >= 6) return Math.sign(x);
  if (ax < 3) {
    let term = ax;
    let sum = ax;
    for (let n = 0; n < 200 && term > sum * 1e-18; n++) {
      term *= (2 * ax * ax) / (2 * n + 3);
      sum += term;
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * Math.exp(-ax * ax) * sum;
  }
  let f = ax;
  for (let k = 100; k >= 1; k--) f = ax + k / 2 / f;
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
  return Math.sign(x) * (1 - erfc);
}
unary('erf', erfReference, (x) => o.mul(2 / Math.sqrt(Math.PI), o.exp(o.neg(o.square(x)))));
unary(
  'rsqrt',
  (v) => 1 / Math.sqrt(v),
  (_x, y) => o.mul(-0.5, o.mul(y, o.square(y))),
);

/** Round half to even, as the kernels (f32x4.nearest, WGSL round) do. */
const roundHalfEven = (v: number) => {
  const r = Math.round(v);
  return Math.abs(v - Math.trunc(v)) === 0.5 ? 2 * Math.round(v / 2) : r;
};
/** floor, ceil and round are piecewise constant: their derivative is zero (as in JAX and TF.js). */
for (const [name, f] of [
  ['floor', Math.floor],
  ['ceil', Math.ceil],
  ['round', roundHalfEven],
] as const)
  defineOp({
    name,
    kind: 'elementwise',
    infer(inputs) {
      if (inputs[0].dtype !== 'float32')
        throw new DTypeError(`${name}: expects float32, got ${inputs[0].dtype}`);
      return sameInfo(inputs);
    },
    reference: ([x]) => mapUnary(x, f),
    jvp: () => null,
    vjp: () => [null],
    batch: unaryRule(name),
  });

/** Identity in value; derivatives stop here. */
defineOp({
  name: 'stopGradient',
  kind: 'elementwise',
  infer: sameInfo,
  reference: ([x]) => x.data.slice(),
  jvp: () => null,
  vjp: () => [null],
  batch: unaryRule('stopGradient'),
});

/** Identity that transforms insert to mark the variables they differentiate with respect to. */
defineOp({
  name: 'identity',
  kind: 'elementwise',
  infer: sameInfo,
  reference: ([x]) => x.data.slice(),
  jvp: ([t]) => t,
  vjp: (ct) => [ct],
  batch: unaryRule('identity'),
});

defineOp({
  name: 'cast',
  kind: 'elementwise',
  infer: (inputs, attrs) => ({ shape: inputs[0].shape, dtype: attrs.dtype as DType }),
  // float -> int32 truncates and saturates (NaN -> 0), as the wasm kernel does.
  reference: ([x], attrs) =>
    attrs.dtype === 'int32'
      ? mapUnary(x, (v) => (Number.isNaN(v) ? 0 : Math.max(-2147483648, Math.min(2147483647, Math.trunc(v)))))
      : x.data.slice(),
  // Derivatives flow only between float dtypes.
  jvp: ([t], [x], y) => (t && x.dtype === 'float32' && y.dtype === 'float32' ? t : null),
  vjp: (ct, [x], y) => [x.dtype === 'float32' && y.dtype === 'float32' ? ct : null],
  batch: unaryRule('cast'),
});

// ---------------------------------------------------------------- binary

type Pair = [Tensor | null, Tensor | null];

function binaryInfo(name: string, outDtype?: DType) {
  return (inputs: readonly TensorInfo[]): TensorInfo => {
    const [a, b] = inputs;
    if (a.dtype !== b.dtype) throw new DTypeError(`${name}: operand dtypes ${a.dtype} and ${b.dtype} differ`);
    const shape = a.shape === b.shape ? a.shape : broadcastShapes(name, a.shape, b.shape);
    return { shape, dtype: outDtype ?? a.dtype };
  };
}

/**
 * A broadcasting binary op with partial derivatives da = ∂f/∂a and db = ∂f/∂b (as tensors of the
 * output's shape). The VJP sums each cotangent back to its operand's shape.
 */
function binary(
  name: string,
  f: (a: number, b: number) => number,
  partials: ((a: Tensor, b: Tensor, y: Tensor) => Pair) | null,
  opts: { outDtype?: DType } = {},
) {
  defineOp({
    name,
    kind: 'elementwise',
    infer: binaryInfo(name, opts.outDtype),
    reference: (inputs, _attrs: Attrs, out) => {
      const intF = name === 'mul' ? Math.imul : (a: number, b: number) => Math.trunc(f(a, b)) | 0;
      const g = out.dtype === 'int32' && !opts.outDtype ? intF : f;
      return mapBroadcast(inputs, out.shape, g);
    },
    batch: elementwiseRule(name),
    ...(partials && {
      jvp: ([ta, tb], [a, b], y) => {
        if (y.dtype !== 'float32') return null;
        const [da, db] = partials(a, b, y);
        const terms: Tensor[] = [];
        if (ta && da) terms.push(o.mul(ta, da));
        if (tb && db) terms.push(o.mul(tb, db));
        if (terms.length === 0) return null;
        const sum = terms.length === 2 ? o.add(terms[0], terms[1]) : terms[0];
        return o.broadcastTo(sum, y.shape);
      },
      vjp: (ct, [a, b], y, _attrs, needed) => {
        if (y.dtype !== 'float32') return [null, null];
        const [da, db] = partials(a, b, y);
        return [
          da && needed?.[0] !== false ? o.sumTo(o.mul(ct, da), a.shape) : null,
          db && needed?.[1] !== false ? o.sumTo(o.mul(ct, db), b.shape) : null,
        ];
      },
    }),
  });
}

// add/sub/mul/neg have direct rules: the generic form would multiply by ones.
defineOp({
  name: 'add',
  kind: 'elementwise',
  infer: binaryInfo('add'),
  reference: (inputs, _a, out) =>
    mapBroadcast(inputs, out.shape, (a, b) => (out.dtype === 'int32' ? (a + b) | 0 : a + b)),
  jvp: ([ta, tb], _inputs, y) => {
    if (y.dtype !== 'float32') return null;
    const t = ta && tb ? o.add(ta, tb) : (ta ?? tb);
    return t ? o.broadcastTo(t, y.shape) : null;
  },
  vjp: (ct, [a, b], y) =>
    y.dtype !== 'float32' ? [null, null] : [o.sumTo(ct, a.shape), o.sumTo(ct, b.shape)],
  batch: elementwiseRule('add'),
});
defineOp({
  name: 'sub',
  kind: 'elementwise',
  infer: binaryInfo('sub'),
  reference: (inputs, _a, out) =>
    mapBroadcast(inputs, out.shape, (a, b) => (out.dtype === 'int32' ? (a - b) | 0 : a - b)),
  jvp: ([ta, tb], _inputs, y) => {
    if (y.dtype !== 'float32') return null;
    const t = ta && tb ? o.sub(ta, tb) : ta ? ta : o.neg(tb!);
    return ta || tb ? o.broadcastTo(t, y.shape) : null;
  },
  vjp: (ct, [a, b], y, _attrs, needed) =>
    y.dtype !== 'float32'
      ? [null, null]
      : [o.sumTo(ct, a.shape), needed?.[1] === false ? null : o.sumTo(o.neg(ct), b.shape)],
  batch: elementwiseRule('sub'),
});
binary(
  'mul',
  (a, b) => a * b,
  (a, b) => [b, a],
);
binary(
  'div',
  (a, b) => a / b,
  (_a, b, y) => [o.reciprocal(b), o.neg(o.div(y, b))],
);
binary(
  'pow',
  (a, b) => a ** b,
  (a, b, y) => [
    // b·a^(b-1), defined as 0 where b = 0 (0·0^-1 would be NaN at a = 0), as in JAX.
    o.where(o.equal(b, 0), 0, o.mul(b, o.pow(a, o.sub(b, 1)))),
    // d/db a^b = a^b·log a; defined as 0 where a <= 0 (the value is 0 or nan there anyway).
    o.where(o.greater(a, 0), o.mul(y, o.log(o.where(o.greater(a, 0), a, 1))), 0),
  ],
);
// At ties the derivative is split evenly, as in JAX.
const tieMask = (a: Tensor, b: Tensor): Pair => {
  const gt = o.cast(o.greater(a, b), 'float32');
  const eq = o.mul(o.cast(o.equal(a, b), 'float32'), 0.5);
  const lt = o.cast(o.less(a, b), 'float32');
  return [o.add(gt, eq), o.add(lt, eq)];
};
binary('maximum', Math.max, (a, b) => tieMask(a, b));
binary('minimum', Math.min, (a, b) => tieMask(b, a));
binary('greater', (a, b) => (a > b ? 1 : 0), null, { outDtype: 'int32' });
binary('less', (a, b) => (a < b ? 1 : 0), null, { outDtype: 'int32' });
binary('equal', (a, b) => (a === b ? 1 : 0), null, { outDtype: 'int32' });
binary('greaterEqual', (a, b) => (a >= b ? 1 : 0), null, { outDtype: 'int32' });
binary('lessEqual', (a, b) => (a <= b ? 1 : 0), null, { outDtype: 'int32' });
binary('notEqual', (a, b) => (a !== b ? 1 : 0), null, { outDtype: 'int32' });

defineOp({
  name: 'where',
  kind: 'elementwise',
  infer([c, a, b]) {
    if (a.dtype !== b.dtype) throw new DTypeError(`where: branch dtypes ${a.dtype} and ${b.dtype} differ`);
    return {
      shape: broadcastShapes('where', broadcastShapes('where', c.shape, a.shape), b.shape),
      dtype: a.dtype,
    };
  },
  reference: (inputs, _a, out) => mapBroadcast(inputs, out.shape, (c, a, b) => (c !== 0 ? a : b)),
  jvp: ([, ta, tb], [c], y) => {
    if (y.dtype !== 'float32' || (!ta && !tb)) return null;
    return o.where(c, ta ? o.broadcastTo(ta, y.shape) : 0, tb ? o.broadcastTo(tb, y.shape) : 0);
  },
  vjp: (ct, [c, a, b], y) =>
    y.dtype !== 'float32'
      ? [null, null, null]
      : [null, o.sumTo(o.where(c, ct, 0), a.shape), o.sumTo(o.where(c, 0, ct), b.shape)],
  batch: elementwiseRule('where'),
});
