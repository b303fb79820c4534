/**
 * TensorFlow.js kernels written with adjoint ops. Each entry maps a TF.js kernel name to a
 * function of (backend, inputs, attrs) that records adjoint ops on the inputs' tensors and
 * returns new data ids. Gradient kernels (Conv2DBackpropFilter, MaxPoolGrad, ...) are the VJPs
 * of adjoint's forward ops, so they run on the same primitives adjoint's own autodiff uses.
 */
import type * as tfc from '@tensorflow/tfjs-core';
import type { Tensor } from '../index';
import * as aj from '../index';
import { matmulT } from '../ops/api';
import type { AdjointBackend, TF } from './backend';
import { TfjsBackendError } from './errors';

type Info = tfc.TensorInfo;
type TfDType = tfc.DataType;
/** TF.js passes attributes as a loosely typed record. */
type Attrs = any;
type Inputs = Record<string, Info | undefined> | Info[];
export type KernelImpl = (b: AdjointBackend, inputs: Inputs, attrs: Attrs, tf: TF) => Info | Info[];

const one = (inputs: Inputs, name: string): Info => {
  const x = (inputs as Record<string, Info | undefined>)[name];
  if (!x) throw new TfjsBackendError(`adjoint backend: kernel input '${name}' is missing`);
  return x;
};
const list = (inputs: Inputs): Info[] => (Array.isArray(inputs) ? inputs : Object.values(inputs)) as Info[];

const sizeOf = (s: readonly number[]) => s.reduce((a, d) => a * d, 1);
const axesOf = (axis: number | number[] | undefined | null, rank: number): number[] => {
  if (axis === undefined || axis === null) return [...Array(rank).keys()];
  const a = Array.isArray(axis) ? axis : [axis];
  return a.map((v) => (v < 0 ? v + rank : v));
};

/** Result dtype of an arithmetic kernel on TF dtypes: bool inputs compute as int32. */
const arithDtype = (b: AdjointBackend, a: Info, c: Info): TfDType =>
  b.dtypeOf(a) === 'float32' || b.dtypeOf(c) === 'float32' ? 'float32' : 'int32';

/** Both operands in one adjoint dtype (float32 wins). */
function pair(b: AdjointBackend, inputs: Inputs): [Tensor, Tensor, TfDType] {
  const ia = one(inputs, 'a');
  const ib = one(inputs, 'b');
  let x = b.input(ia);
  let y = b.input(ib);
  if (x.dtype !== y.dtype) {
    x = x.cast('float32');
    y = y.cast('float32');
  }
  return [x, y, arithDtype(b, ia, ib)];
}

const binary =
  (f: (x: Tensor, y: Tensor) => Tensor, out?: TfDType): KernelImpl =>
  (b, inputs) => {
    const [x, y, d] = pair(b, inputs);
    return b.output(f(x, y), out ?? d);
  };

/** Integer results of float math (pow, floor division) are rounded back to int32. */
const intResult = (t: Tensor, d: TfDType) => (d === 'float32' ? t : aj.round(t).cast('int32'));

const unaryF =
  (f: (x: Tensor) => Tensor): KernelImpl =>
  (b, inputs) =>
    b.output(f(b.input(one(inputs, 'x')).cast('float32')), 'float32');

/** Unary kernels that keep the input's dtype (int32 stays int32). */
const unarySame =
  (f: (x: Tensor) => Tensor): KernelImpl =>
  (b, inputs) => {
    const x = one(inputs, 'x');
    const d = b.dtypeOf(x) === 'bool' ? 'int32' : b.dtypeOf(x);
    return b.output(f(b.input(x)), d);
  };

/** Kernels that move data: the result keeps the input's TF dtype (bool stays bool). */
const keep = (b: AdjointBackend, x: Info, t: Tensor) => b.output(t, b.dtypeOf(x));

function reduce(
  f: (t: Tensor, axes: number[], keep: boolean) => Tensor,
  outDtype?: (d: TfDType) => TfDType,
  axisAttr = 'axis',
): KernelImpl {
  return (b, inputs, attrs) => {
    const x = one(inputs, 'x');
    const t = b.input(x);
    const axes = axesOf(attrs[axisAttr], t.ndim);
    const d = b.dtypeOf(x);
    const out = outDtype ? outDtype(d) : d;
    if (axes.length === 0) return b.output(t, out);
    return b.output(f(t, axes, !!attrs.keepDims), out);
  };
}

/** Applies a fused kernel's activation (as tfjs-core's fused ops name them). */
function activate(b: AdjointBackend, t: Tensor, attrs: Attrs, prelu: Info | undefined): Tensor {
  switch (attrs.activation ?? 'linear') {
    case 'linear':
      return t;
    case 'relu':
      return aj.relu(t);
    case 'relu6':
      return aj.minimum(aj.relu(t), 6);
    case 'elu':
      return aj.elu(t);
    case 'sigmoid':
      return aj.sigmoid(t);
    case 'leakyrelu':
      return aj.leakyRelu(t, attrs.leakyreluAlpha ?? 0.2);
    case 'prelu': {
      if (!prelu) throw new TfjsBackendError('adjoint backend: prelu activation without weights');
      return preluOf(t, b.input(prelu));
    }
    default:
      throw new TfjsBackendError(`adjoint backend: fused activation '${attrs.activation}' is not supported`);
  }
}

/** TF.js's argmax, argmin and max pooling skip NaNs: they become a value that never wins. */
function dropNaN(t: Tensor, fill: number): Tensor {
  if (t.dtype === 'int32') return t;
  return aj.where(aj.notEqual(t, t), fill, t);
}

const preluOf = (x: Tensor, a: Tensor) => aj.where(aj.greater(x, 0), x, aj.mul(x, a));

function matmulOf(b: AdjointBackend, inputs: Inputs, attrs: Attrs): Tensor {
  const x = b.input(one(inputs, 'a')).cast('float32');
  const y = b.input(one(inputs, 'b')).cast('float32');
  if (x.ndim < 2 || y.ndim < 2)
    throw new TfjsBackendError(
      `adjoint backend BatchMatMul: operands must have rank >= 2, got [${x.shape}] and [${y.shape}]`,
    );
  // The transposes are flags of adjoint's matmul primitive: no transposed copies.
  return matmulT(x, y, !!attrs.transposeA, !!attrs.transposeB);
}

// ------------------------------------------------------------------ convolution geometry

interface ConvGeom {
  strides: [number, number];
  dilations: [number, number];
  padding: [[number, number], [number, number]];
  out: number[];
}

function convGeom(
  tf: TF,
  xShape: number[],
  wShape: number[],
  attrs: Attrs,
  depthwise: boolean,
  kernel: string,
): ConvGeom {
  if (attrs.dataFormat === 'NCHW' || attrs.dataFormat === 'channelsFirst')
    throw new TfjsBackendError(`adjoint backend ${kernel}: dataFormat NCHW is not supported (NHWC is)`);
  const info = tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    wShape as [number, number, number, number],
    attrs.strides,
    attrs.dilations ?? 1,
    attrs.pad,
    attrs.dimRoundingMode,
    depthwise,
  );
  const p = info.padInfo;
  return {
    strides: [info.strideHeight, info.strideWidth],
    dilations: [info.dilationHeight, info.dilationWidth],
    padding: [
      [p.top, p.bottom],
      [p.left, p.right],
    ],
    out: info.outShape,
  };
}

function poolGeom(
  tf: TF,
  xShape: number[],
  attrs: Attrs,
  kernel: string,
): ConvGeom & { window: [number, number] } {
  const info = tf.backend_util.computePool2DInfo(
    xShape as [number, number, number, number],
    attrs.filterSize,
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
  );
  if (info.dilationHeight !== 1 || info.dilationWidth !== 1)
    throw new TfjsBackendError(`adjoint backend ${kernel}: dilated pooling is not supported`);
  const p = info.padInfo;
  return {
    window: [info.filterHeight, info.filterWidth],
    strides: [info.strideHeight, info.strideWidth],
    dilations: [1, 1],
    padding: [
      [p.top, p.bottom],
      [p.left, p.right],
    ],
    out: info.outShape,
  };
}

function checkShape(kernel: string, t: Tensor, want: readonly number[]): Tensor {
  if (t.shape.length !== want.length || t.shape.some((d, i) => d !== want[i]))
    throw new TfjsBackendError(
      `adjoint backend ${kernel}: computed shape [${t.shape}] but TF.js expects [${want}] (rounding mode not supported)`,
    );
  return t;
}

/** Depthwise filter [KH, KW, C, M] as a grouped convolution's [KH, KW, 1, C·M]. */
const depthwiseFilter = (w: Tensor) => aj.reshape(w, [w.shape[0], w.shape[1], 1, w.shape[2] * w.shape[3]]);

function conv(x: Tensor, w: Tensor, g: ConvGeom, groups = 1): Tensor {
  return aj.conv2d(x, w, { strides: g.strides, padding: g.padding, dilations: g.dilations, groups });
}

// ------------------------------------------------------------------ strided slice

function stridedSlice(b: AdjointBackend, x: Info, attrs: Attrs, tf: TF): Info {
  const t = b.input(x);
  const s = tf.slice_util.sliceInfo(
    [...t.shape],
    attrs.begin,
    attrs.end,
    attrs.strides,
    attrs.beginMask,
    attrs.endMask,
    attrs.ellipsisMask,
    attrs.newAxisMask,
    attrs.shrinkAxisMask,
  );
  if (s.isIdentity) return keep(b, x, aj.reshape(t, s.finalShape));
  const sizes = tf.slice_util.computeOutShape(s.begin, s.end, s.strides);
  if (sizeOf(s.finalShape) === 0 || sizes.some((n) => n <= 0))
    return keep(b, x, aj.zeros(s.finalShape, t.dtype));
  let r = t;
  for (let i = 0; i < sizes.length; i++) {
    const n = sizes[i];
    const st = s.strides[i] ?? 1;
    const start = s.begin[i] ?? 0;
    if (st === 1) {
      if (start !== 0 || n !== r.shape[i]) {
        const begin = r.shape.map((_, j) => (j === i ? start : 0));
        const size = r.shape.map((d, j) => (j === i ? n : d));
        r = aj.slice(r, begin, size);
      }
    } else {
      const idx = new Int32Array(n);
      for (let k = 0; k < n; k++) idx[k] = start + k * st;
      r = aj.gather(r, aj.tensor(idx, { dtype: 'int32' }), i);
    }
  }
  return keep(b, x, aj.reshape(r, s.finalShape));
}

// ------------------------------------------------------------------ helpers for movement kernels

/**
 * x[begin : begin + size]. The offset along the first axis is given as gather indices (data)
 * rather than a slice attribute: model.fit cuts its batches with Slice at a new offset every
 * step, and an attribute would make every step's graph a new structure to compile.
 */
function sliceOf(t: Tensor, begin: number[], size: number[]): Tensor {
  let r = t;
  let b = begin;
  if (t.ndim > 0 && begin[0] !== 0) {
    const idx = new Int32Array(size[0]);
    for (let i = 0; i < idx.length; i++) idx[i] = begin[0] + i;
    r = aj.gather(t, aj.tensor(idx, { dtype: 'int32' }), 0);
    b = [0, ...begin.slice(1)];
  }
  if (b.every((v) => v === 0) && size.every((n, i) => n === r.shape[i])) return r;
  return aj.slice(r, b, size);
}

function tile(t: Tensor, reps: number[]): Tensor {
  const mid: number[] = [];
  const big: number[] = [];
  const fin: number[] = [];
  t.shape.forEach((d, i) => {
    mid.push(1, d);
    big.push(reps[i], d);
    fin.push(reps[i] * d);
  });
  return aj.reshape(aj.broadcastTo(aj.reshape(t, mid), big), fin);
}

function reverse(t: Tensor, axes: number[]): Tensor {
  let r = t;
  for (const a of axes) {
    const n = r.shape[a];
    if (n <= 1) continue;
    const idx = new Int32Array(n);
    for (let k = 0; k < n; k++) idx[k] = n - 1 - k;
    r = aj.gather(r, aj.tensor(idx, { dtype: 'int32' }), a);
  }
  return r;
}

/** Zero-size tensors dropped (TF.js concatenates them as nothing). */
function concatOf(ts: Tensor[], axis: number, shape: number[], dtype: 'float32' | 'int32'): Tensor {
  const parts = ts.filter((t) => t.size > 0);
  if (parts.length === 0) return aj.zeros(shape, dtype);
  if (parts.length === 1) return parts[0];
  return aj.concat(parts, axis);
}

function padOf(t: Tensor, paddings: [number, number][], value: number): Tensor {
  const p = aj.pad(t, paddings);
  if (value === 0) return p;
  const mask = aj.pad(aj.ones(t.shape, 'int32'), paddings);
  return aj.where(mask, p, aj.full(p.shape, value, t.dtype));
}

function cumsumOf(t: Tensor, axis: number, exclusive: boolean, reverseIt: boolean): Tensor {
  if (!exclusive) return aj.cumsum(t, axis, { reverse: reverseIt });
  const n = t.shape[axis];
  if (n === 0) return t;
  const begin = t.shape.map((_, i) => (i === axis && reverseIt ? 1 : 0));
  const size = t.shape.map((d, i) => (i === axis ? n - 1 : d));
  const pads = t.shape.map((_, i) => (i === axis ? (reverseIt ? [0, 1] : [1, 0]) : [0, 0])) as [
    number,
    number,
  ][];
  return aj.cumsum(aj.pad(aj.slice(t, begin, size), pads), axis, { reverse: reverseIt });
}

/** Row-major flat indices of the int32 index rows [n, k] into `dims`, and the number of slots. */
function flatIndex(idx: Tensor, dims: number[]): [Tensor, number] {
  const k = dims.length;
  const strides = new Int32Array(k);
  let st = 1;
  for (let j = k - 1; j >= 0; j--) {
    strides[j] = st;
    st *= dims[j];
  }
  return [aj.sum(aj.mul(idx, aj.tensor(strides, { dtype: 'int32' })), -1), st];
}

/** Counts (or sums of weights) per value in [0, size), along the last axis; out-of-range values count nowhere. */
function binCount(b: AdjointBackend, inputs: Inputs, size: number, binary: boolean, flat: boolean): Info {
  const xi = one(inputs, 'x');
  const wi = one(inputs, 'weights');
  // Bincount counts over all of x (any rank); DenseBincount per row of a 2-D x.
  const x = flat ? aj.reshape(b.input(xi).cast('int32'), [-1]) : b.input(xi).cast('int32');
  const oh = aj.oneHot(x, size);
  const weighted = wi.shape.reduce((a, d) => a * d, 1) > 0 && !binary;
  const terms = weighted ? aj.mul(oh, aj.reshape(b.input(wi).cast('float32'), [...x.shape, 1])) : oh;
  let out = aj.sum(terms, x.ndim - 1);
  if (binary) out = aj.greater(out, 0).cast('float32');
  const d = b.dtypeOf(wi) === 'float32' ? 'float32' : 'int32';
  return b.output(d === 'float32' ? out : aj.round(out).cast('int32'), d);
}

// ------------------------------------------------------------------ the table

export const kernels: Record<string, KernelImpl> = {
  // elementwise binary
  Add: binary((x, y) => aj.add(x, y)),
  Sub: binary((x, y) => aj.sub(x, y)),
  Multiply: binary((x, y) => aj.mul(x, y)),
  RealDiv: (b, inputs) => {
    const [x, y] = pair(b, inputs);
    return b.output(aj.div(x, y), 'float32');
  },
  FloorDiv: (b, inputs) => {
    const [x, y, d] = pair(b, inputs);
    return b.output(intResult(aj.floor(aj.div(x, y)), d), d);
  },
  Mod: (b, inputs) => {
    const [x, y, d] = pair(b, inputs);
    const xf = x.cast('float32');
    const yf = y.cast('float32');
    const r = aj.sub(xf, aj.mul(aj.floor(aj.div(xf, yf)), yf));
    return b.output(intResult(r, d), d);
  },
  Pow: (b, inputs) => {
    const [x, y, d] = pair(b, inputs);
    return b.output(intResult(aj.pow(x, y), d), d);
  },
  Maximum: binary((x, y) => aj.maximum(x, y)),
  Minimum: binary((x, y) => aj.minimum(x, y)),
  SquaredDifference: binary((x, y) => aj.square(aj.sub(x, y))),
  Greater: binary((x, y) => aj.greater(x, y), 'bool'),
  GreaterEqual: binary((x, y) => aj.greaterEqual(x, y), 'bool'),
  Less: binary((x, y) => aj.less(x, y), 'bool'),
  LessEqual: binary((x, y) => aj.lessEqual(x, y), 'bool'),
  Equal: binary((x, y) => aj.equal(x, y), 'bool'),
  NotEqual: binary((x, y) => aj.notEqual(x, y), 'bool'),
  LogicalAnd: binary((x, y) => aj.mul(aj.notEqual(x, 0), aj.notEqual(y, 0)), 'bool'),
  LogicalOr: binary((x, y) => aj.maximum(aj.notEqual(x, 0), aj.notEqual(y, 0)), 'bool'),
  LogicalXor: binary((x, y) => aj.notEqual(aj.notEqual(x, 0), aj.notEqual(y, 0)), 'bool'),
  LogicalNot: (b, inputs) => b.output(aj.equal(b.input(one(inputs, 'x')), 0), 'bool'),
  Select: (b, inputs) => {
    const c = b.input(one(inputs, 'condition'));
    const ti = one(inputs, 't');
    const ei = one(inputs, 'e');
    let x = b.input(ti);
    let y = b.input(ei);
    if (x.dtype !== y.dtype) {
      x = x.cast('float32');
      y = y.cast('float32');
    }
    const d = b.dtypeOf(ti) === b.dtypeOf(ei) ? b.dtypeOf(ti) : 'float32';
    return b.output(aj.where(c, x, y), d);
  },
  AddN: (b, inputs) => {
    const xs = list(inputs);
    let acc = b.input(xs[0]);
    for (let i = 1; i < xs.length; i++) acc = aj.add(acc, b.input(xs[i]));
    return b.output(acc, b.dtypeOf(xs[0]) === 'bool' ? 'int32' : b.dtypeOf(xs[0]));
  },

  // elementwise unary
  Neg: unarySame((x) => aj.neg(x)),
  Abs: unarySame((x) => aj.abs(x)),
  Square: unarySame((x) => aj.square(x)),
  // TF.js: sign(NaN) = 0.
  Sign: unarySame((x) => (x.dtype === 'int32' ? aj.sign(x) : aj.where(aj.notEqual(x, x), 0, aj.sign(x)))),
  Sqrt: unaryF((x) => aj.sqrt(x)),
  Rsqrt: unaryF((x) => aj.rsqrt(x)),
  Exp: unaryF((x) => aj.exp(x)),
  Expm1: unaryF((x) => aj.sub(aj.exp(x), 1)),
  Log: unaryF((x) => aj.log(x)),
  Log1p: unaryF((x) => aj.log1p(x)),
  Sin: unaryF((x) => aj.sin(x)),
  Cos: unaryF((x) => aj.cos(x)),
  Floor: unaryF((x) => aj.floor(x)),
  Ceil: unaryF((x) => aj.ceil(x)),
  Round: unarySame((x) => (x.dtype === 'int32' ? x : aj.round(x))),
  Reciprocal: unaryF((x) => aj.reciprocal(x)),
  Relu: unarySame((x) => (x.dtype === 'int32' ? aj.maximum(x, 0) : aj.relu(x))),
  Relu6: unarySame((x) => aj.minimum(aj.maximum(x, 0), 6)),
  Sigmoid: unaryF((x) => aj.sigmoid(x)),
  Tanh: unaryF((x) => aj.tanh(x)),
  Softplus: unaryF((x) => aj.softplus(x)),
  Erf: unaryF((x) => aj.erf(x)),
  Elu: unaryF((x) => aj.elu(x)),
  EluGrad: (b, inputs) => {
    const dy = b.input(one(inputs, 'dy'));
    const y = b.input(one(inputs, 'y'));
    return b.output(aj.where(aj.greater(y, 0), dy, aj.mul(dy, aj.add(y, 1))), 'float32');
  },
  Selu: unaryF((x) =>
    aj.mul(
      aj.where(aj.greater(x, 0), x, aj.mul(aj.sub(aj.exp(aj.minimum(x, 0)), 1), 1.6732632423543772)),
      1.0507009873554805,
    ),
  ),
  Tan: unaryF((x) => aj.div(aj.sin(x), aj.cos(x))),
  Sinh: unaryF((x) => aj.mul(aj.sub(aj.exp(x), aj.exp(aj.neg(x))), 0.5)),
  Cosh: unaryF((x) => aj.mul(aj.add(aj.exp(x), aj.exp(aj.neg(x))), 0.5)),
  Asinh: unaryF((x) => aj.log(aj.add(x, aj.sqrt(aj.add(aj.square(x), 1))))),
  Acosh: unaryF((x) => aj.log(aj.add(x, aj.sqrt(aj.sub(aj.square(x), 1))))),
  Atanh: unaryF((x) => aj.mul(aj.sub(aj.log1p(x), aj.log1p(aj.neg(x))), 0.5)),
  IsInf: (b, inputs) => {
    const x = b.input(one(inputs, 'x')).cast('float32');
    return b.output(aj.equal(aj.abs(x), Infinity), 'bool');
  },
  IsFinite: (b, inputs) => {
    const x = b.input(one(inputs, 'x')).cast('float32');
    return b.output(aj.less(aj.abs(x), Infinity), 'bool');
  },
  LeakyRelu: (b, inputs, attrs) => {
    const x = b.input(one(inputs, 'x')).cast('float32');
    return b.output(aj.where(aj.greater(x, 0), x, aj.mul(x, attrs.alpha)), 'float32');
  },
  Prelu: (b, inputs) => {
    const x = b.input(one(inputs, 'x')).cast('float32');
    return b.output(preluOf(x, b.input(one(inputs, 'alpha')).cast('float32')), 'float32');
  },
  Step: (b, inputs, attrs) => {
    const xi = one(inputs, 'x');
    const x = b.input(xi).cast('float32');
    const s = aj.where(aj.greater(x, 0), 1, attrs.alpha ?? 0);
    const y = aj.where(aj.notEqual(x, x), x, s);
    return b.dtypeOf(xi) === 'int32' ? b.output(y.cast('int32'), 'int32') : b.output(y, 'float32');
  },
  ClipByValue: (b, inputs, attrs) => {
    const xi = one(inputs, 'x');
    const x = b.input(xi);
    const lo = attrs.clipValueMin;
    const hi = attrs.clipValueMax;
    const r = aj.where(aj.less(x, lo), lo, aj.where(aj.greater(x, hi), hi, x));
    return b.output(r, b.dtypeOf(xi) === 'bool' ? 'int32' : b.dtypeOf(xi));
  },
  IsNan: (b, inputs) => {
    const x = b.input(one(inputs, 'x'));
    return b.output(aj.notEqual(x, x), 'bool');
  },
  Cast: (b, inputs, attrs) => {
    const xi = one(inputs, 'x');
    const x = b.input(xi);
    const to: TfDType = attrs.dtype;
    if (to === 'bool') return b.output(aj.notEqual(x, 0), 'bool');
    if (to === 'float32') return b.output(x.cast('float32'), 'float32');
    if (to === 'int32') return b.output(x.cast('int32'), 'int32');
    throw new TfjsBackendError(`adjoint backend Cast: dtype '${to}' is not supported`);
  },

  // softmax family
  Softmax: (b, inputs, attrs) => {
    const x = b.input(one(inputs, 'logits')).cast('float32');
    return b.output(aj.softmax(x, attrs.dim ?? -1), 'float32');
  },
  LogSoftmax: (b, inputs, attrs) => {
    const x = b.input(one(inputs, 'logits')).cast('float32');
    return b.output(aj.logSoftmax(x, attrs.axis ?? -1), 'float32');
  },

  // linear algebra
  BatchMatMul: (b, inputs, attrs) => {
    const y = matmulOf(b, inputs, attrs);
    const int = b.dtypeOf(one(inputs, 'a')) === 'int32' && b.dtypeOf(one(inputs, 'b')) === 'int32';
    return int ? b.output(aj.round(y).cast('int32'), 'int32') : b.output(y, 'float32');
  },
  _FusedMatMul: (b, inputs, attrs) => {
    let y = matmulOf(b, inputs, attrs);
    const bias = (inputs as Record<string, Info | undefined>).bias;
    if (bias) y = aj.add(y, b.input(bias).cast('float32'));
    y = activate(b, y, attrs, (inputs as Record<string, Info | undefined>).preluActivationWeights);
    return b.output(y, 'float32');
  },

  // reductions
  Sum: reduce(
    (t, a, k) => aj.sum(t, a, k),
    (d) => (d === 'bool' ? 'int32' : d),
  ),
  Prod: reduce(
    (t, a, k) => aj.prod(t, a, k),
    (d) => (d === 'bool' ? 'int32' : d),
  ),
  Max: reduce((t, a, k) => aj.max(t, a, k), undefined, 'reductionIndices'),
  Min: reduce((t, a, k) => aj.min(t, a, k)),
  All: reduce((t, a, k) => aj.min(aj.notEqual(t, 0), a, k)),
  Any: reduce((t, a, k) => aj.max(aj.notEqual(t, 0), a, k)),
  Mean: (b, inputs, attrs) => {
    const x = one(inputs, 'x');
    const t = b.input(x);
    const axes = axesOf(attrs.axis, t.ndim);
    if (axes.length === 0) return b.output(t.cast('float32'), 'float32');
    return b.output(aj.mean(t.cast('float32'), axes, !!attrs.keepDims), 'float32');
  },
  ArgMax: (b, inputs, attrs) => {
    const t = b.input(one(inputs, 'x'));
    const a = axesOf(attrs.axis, t.ndim)[0] ?? 0;
    return b.output(aj.argmax(dropNaN(t, -Infinity), a), 'int32');
  },
  ArgMin: (b, inputs, attrs) => {
    const t = b.input(one(inputs, 'x'));
    const a = axesOf(attrs.axis, t.ndim)[0] ?? 0;
    return b.output(aj.argmin(dropNaN(t, Infinity), a), 'int32');
  },
  Cumsum: (b, inputs, attrs) => {
    const x = one(inputs, 'x');
    const t = b.input(x);
    const axis = attrs.axis < 0 ? attrs.axis + t.ndim : attrs.axis;
    return b.output(
      cumsumOf(t, axis, !!attrs.exclusive, !!attrs.reverse),
      b.dtypeOf(x) === 'bool' ? 'int32' : b.dtypeOf(x),
    );
  },

  // data movement
  Identity: (b, inputs) => {
    const x = one(inputs, 'x');
    b.incRef(x.dataId);
    return { dataId: x.dataId, shape: [...x.shape], dtype: x.dtype };
  },
  Reshape: (b, inputs, attrs) => {
    const x = one(inputs, 'x');
    const shape = tfShape(sizeOf(x.shape), attrs.shape);
    b.incRef(x.dataId);
    return { dataId: x.dataId, shape, dtype: x.dtype };
  },
  ExpandDims: (b, inputs, attrs) => {
    const x = one(inputs, 'input');
    const s = [...x.shape];
    let dim = attrs.dim;
    if (dim < -(s.length + 1) || dim > s.length)
      throw new TfjsBackendError(`adjoint backend ExpandDims: axis ${dim} out of range for rank ${s.length}`);
    if (dim < 0) dim += s.length + 1;
    s.splice(dim, 0, 1);
    b.incRef(x.dataId);
    return { dataId: x.dataId, shape: s, dtype: x.dtype };
  },
  Squeeze: (b, inputs, attrs) => {
    const x = one(inputs, 'x');
    const axes = attrs.axis == null || attrs.axis.length === 0 ? null : axesOf(attrs.axis, x.shape.length);
    const s = x.shape.filter((d, i) => (axes ? !axes.includes(i) : d !== 1));
    b.incRef(x.dataId);
    return { dataId: x.dataId, shape: s, dtype: x.dtype };
  },
  Transpose: (b, inputs, attrs) => {
    const x = one(inputs, 'x');
    return keep(b, x, aj.transpose(b.input(x), attrs.perm));
  },
  BroadcastTo: (b, inputs, attrs) => {
    const x = one(inputs, 'x');
    let t = b.input(x);
    const shape: number[] = attrs.shape;
    if (t.ndim < shape.length) t = aj.reshape(t, [...Array(shape.length - t.ndim).fill(1), ...t.shape]);
    return keep(b, x, aj.broadcastTo(t, shape));
  },
  Slice: (b, inputs, attrs, tf) => {
    const x = one(inputs, 'x');
    const t = b.input(x);
    const [begin, size] = tf.slice_util.parseSliceParams(
      t as unknown as tfc.TensorInfo as tfc.Tensor,
      attrs.begin,
      attrs.size,
    );
    if (sizeOf(size) === 0) return keep(b, x, aj.zeros(size, t.dtype));
    return keep(b, x, sliceOf(t, begin, size));
  },
  StridedSlice: (b, inputs, attrs, tf) => stridedSlice(b, one(inputs, 'x'), attrs, tf),
  Concat: (b, inputs, attrs, tf) => {
    const xs = list(inputs);
    const shapes = xs.map((x) => x.shape);
    const axis = tf.util.parseAxisParam(attrs.axis, xs[0].shape)[0];
    tf.backend_util.assertParamsConsistent(shapes, axis);
    const outShape = tf.backend_util.computeOutShape(shapes, axis);
    const dts = xs.map((x) => b.dtypeOf(x));
    const allSame = dts.every((d) => d === dts[0]);
    const d: TfDType = allSame ? dts[0] : dts.includes('float32') ? 'float32' : 'int32';
    const ts = xs.map((x) => (d === 'float32' ? b.input(x).cast('float32') : b.input(x)));
    return b.output(concatOf(ts, axis, outShape, d === 'float32' ? 'float32' : 'int32'), d);
  },
  Pack: (b, inputs, attrs) => {
    const xs = list(inputs);
    const d = b.dtypeOf(xs[0]);
    if (xs.some((x) => b.dtypeOf(x) !== d))
      throw new TfjsBackendError(
        `adjoint backend Pack: dtypes differ (${xs.map((x) => b.dtypeOf(x)).join(', ')})`,
      );
    const r = xs[0].shape.length;
    const axis = attrs.axis < 0 ? attrs.axis + r + 1 : attrs.axis;
    const ts = xs.map((x) => {
      const t = b.input(x);
      const s = [...t.shape];
      s.splice(axis, 0, 1);
      return aj.reshape(d === 'float32' ? t.cast('float32') : t, s);
    });
    const shape = [...xs[0].shape];
    shape.splice(axis, 0, xs.length);
    return b.output(concatOf(ts, axis, shape, d === 'float32' ? 'float32' : 'int32'), d);
  },
  Unpack: (b, inputs, attrs) => {
    const x = one(inputs, 'value');
    const t = b.input(x);
    const axis = attrs.axis < 0 ? attrs.axis + t.ndim : attrs.axis;
    const n = t.shape[axis];
    const outShape = t.shape.filter((_, i) => i !== axis);
    const res: Info[] = [];
    for (let k = 0; k < n; k++) {
      const begin = t.shape.map((_, i) => (i === axis ? k : 0));
      const size = t.shape.map((d, i) => (i === axis ? 1 : d));
      res.push(keep(b, x, aj.reshape(aj.slice(t, begin, size), outShape)));
    }
    return res;
  },
  SplitV: (b, inputs, attrs, tf) => {
    const x = one(inputs, 'x');
    const t = b.input(x);
    const axis = tf.util.parseAxisParam(attrs.axis, [...t.shape])[0];
    const sizes = tf.backend_util.prepareSplitSize(t as unknown as tfc.Tensor, attrs.numOrSizeSplits, axis);
    const res: Info[] = [];
    let at = 0;
    for (const n of sizes) {
      const begin = t.shape.map((_, i) => (i === axis ? at : 0));
      const size = t.shape.map((d, i) => (i === axis ? n : d));
      res.push(keep(b, x, n === 0 ? aj.zeros(size, t.dtype) : aj.slice(t, begin, size)));
      at += n;
    }
    return res;
  },
  Tile: (b, inputs, attrs) => {
    const x = one(inputs, 'x');
    const t = b.input(x);
    const reps: number[] = attrs.reps;
    const shape = t.shape.map((d, i) => d * reps[i]);
    if (sizeOf(shape) === 0) return keep(b, x, aj.zeros(shape, t.dtype));
    return keep(b, x, tile(t, reps));
  },
  Reverse: (b, inputs, attrs) => {
    const x = one(inputs, 'x');
    const t = b.input(x);
    const axes = axesOf(attrs.dims, t.ndim);
    if (axes.some((a) => a < 0 || a >= t.ndim))
      throw new TfjsBackendError(
        `adjoint backend Reverse: axes [${attrs.dims}] out of range for rank ${t.ndim}`,
      );
    return keep(b, x, reverse(t, axes));
  },
  PadV2: (b, inputs, attrs) => {
    const x = one(inputs, 'x');
    const t = b.input(x);
    return keep(b, x, padOf(t, attrs.paddings, attrs.constantValue ?? 0));
  },
  GatherV2: (b, inputs, attrs, tf) => {
    const x = one(inputs, 'x');
    const ii = one(inputs, 'indices');
    const t = b.input(x);
    const axis = tf.util.parseAxisParam(attrs.axis, [...t.shape])[0];
    if ((attrs.batchDims ?? 0) !== 0)
      throw new TfjsBackendError(
        `adjoint backend GatherV2: batchDims ${attrs.batchDims} is not supported (0 is)`,
      );
    const idx = b.input(ii).cast('int32');
    return keep(b, x, aj.gather(t, idx, axis));
  },
  UnsortedSegmentSum: (b, inputs, attrs) => {
    // out[s] = sum of the rows whose id is s: oneHot(ids)ᵀ · rows (ids out of range add nothing).
    const xi = one(inputs, 'x');
    const t = b.input(xi);
    const ids = b.input(one(inputs, 'segmentIds')).cast('int32');
    const n = attrs.numSegments;
    const k = ids.size;
    const inner = t.shape.slice(ids.ndim);
    const rows = aj.reshape(t.cast('float32'), [k, sizeOf(inner)]);
    const oh = aj.oneHot(aj.reshape(ids, [k]), n);
    const out = aj.reshape(aj.matmul(aj.transpose(oh), rows), [n, ...inner]);
    const d = b.dtypeOf(xi) === 'float32' ? 'float32' : 'int32';
    return b.output(d === 'int32' ? aj.round(out).cast('int32') : out, d);
  },
  GatherNd: (b, inputs) => {
    const pi = one(inputs, 'params');
    const t = b.input(pi);
    const idx = b.input(one(inputs, 'indices')).cast('int32');
    const k = idx.shape[idx.ndim - 1];
    const lead = idx.shape.slice(0, -1);
    const rest = t.shape.slice(k);
    const strides = new Int32Array(k);
    let st = 1;
    for (let j = k - 1; j >= 0; j--) {
      strides[j] = st;
      st *= t.shape[j];
    }
    const flat = aj.sum(
      aj.mul(aj.reshape(idx, [sizeOf(lead), k]), aj.tensor(strides, { dtype: 'int32' })),
      -1,
    );
    const table = aj.reshape(t, [st, ...rest]);
    return keep(b, pi, aj.reshape(aj.gather(table, flat, 0), [...lead, ...rest]));
  },
  ScatterNd: (b, inputs, attrs, tf) => {
    // Duplicate indices add up, as in TF.js: oneHot(flat index)ᵀ · updates.
    const ui = one(inputs, 'updates');
    const ii = one(inputs, 'indices');
    const u = b.input(ui);
    const idx = b.input(ii).cast('int32');
    const shape: number[] = attrs.shape;
    const geo = tf.backend_util.calculateShapes(ui as tfc.Tensor, ii as tfc.Tensor, shape);
    const k = geo.sliceRank;
    const m = geo.numUpdates;
    const slots = sizeOf(shape.slice(0, k));
    const inner = geo.sliceSize;
    const strides = new Int32Array(k);
    let st = 1;
    for (let j = k - 1; j >= 0; j--) {
      strides[j] = st;
      st *= shape[j];
    }
    const flat = aj.sum(aj.mul(aj.reshape(idx, [m, k]), aj.tensor(strides, { dtype: 'int32' })), -1);
    const rows = aj.reshape(u.cast('float32'), [m, inner]);
    const out = aj.reshape(aj.matmul(aj.transpose(aj.oneHot(flat, slots)), rows), shape);
    const d = b.dtypeOf(ui) === 'float32' ? 'float32' : 'int32';
    return b.output(d === 'int32' ? aj.round(out).cast('int32') : out, b.dtypeOf(ui) === 'bool' ? 'bool' : d);
  },
  Bincount: (b, inputs, attrs) => binCount(b, inputs, attrs.size, false, true),
  DenseBincount: (b, inputs, attrs) => binCount(b, inputs, attrs.size, !!attrs.binaryOutput, false),
  SparseToDense: (b, inputs, attrs) => {
    const vi = one(inputs, 'sparseValues');
    const shape: number[] = attrs.outputShape;
    const idx = b.input(one(inputs, 'sparseIndices')).cast('int32');
    const k = idx.ndim < 2 ? 1 : idx.shape[1];
    const n = idx.ndim === 0 ? 1 : idx.shape[0];
    const [flat, slots] = flatIndex(aj.reshape(idx, [n, k]), shape.slice(0, k));
    const oh = aj.oneHot(flat, slots);
    const vals = aj.broadcastTo(aj.reshape(b.input(vi).cast('float32'), [1, -1]), [1, n]);
    const scattered = aj.reshape(aj.matmul(vals, oh), [slots]);
    const hit = aj.greater(aj.sum(oh, 0), 0);
    const dflt = b.input(one(inputs, 'defaultValue')).cast('float32');
    const out = aj.reshape(aj.where(hit, scattered, aj.reshape(dflt, [])), shape);
    const d = b.dtypeOf(vi);
    return b.output(d === 'float32' ? out : aj.round(out).cast('int32'), d);
  },
  SpaceToBatchND: (b, inputs, attrs) => {
    const x = one(inputs, 'x');
    let t = b.input(x);
    const block: number[] = attrs.blockShape;
    const m = block.length;
    const pads = t.shape.map((_, i) => (i >= 1 && i <= m ? attrs.paddings[i - 1] : [0, 0])) as [
      number,
      number,
    ][];
    if (pads.some(([lo, hi]) => lo || hi)) t = aj.pad(t, pads);
    const [n, ...dims] = t.shape;
    const split: number[] = [n];
    for (let i = 0; i < m; i++) split.push(dims[i] / block[i], block[i]);
    const rest = dims.slice(m);
    t = aj.reshape(t, [...split, ...rest]);
    const perm = [...block.map((_, i) => 2 + 2 * i), 0, ...block.map((_, i) => 1 + 2 * i)];
    for (let i = 0; i < rest.length; i++) perm.push(1 + 2 * m + i);
    t = aj.transpose(t, perm);
    return keep(b, x, aj.reshape(t, [n * sizeOf(block), ...block.map((bs, i) => dims[i] / bs), ...rest]));
  },
  BatchToSpaceND: (b, inputs, attrs) => {
    const x = one(inputs, 'x');
    let t = b.input(x);
    const block: number[] = attrs.blockShape;
    const m = block.length;
    const [bn, ...dims] = t.shape;
    const n = bn / sizeOf(block);
    const rest = dims.slice(m);
    t = aj.reshape(t, [...block, n, ...dims]);
    const perm = [m];
    for (let i = 0; i < m; i++) perm.push(m + 1 + i, i);
    for (let i = 0; i < rest.length; i++) perm.push(2 * m + 1 + i);
    t = aj.transpose(t, perm);
    const full = [n, ...block.map((bs, i) => dims[i] * bs), ...rest];
    t = aj.reshape(t, full);
    const crops: [number, number][] = attrs.crops;
    const begin = full.map((_, i) => (i >= 1 && i <= m ? crops[i - 1][0] : 0));
    const size = full.map((d, i) => (i >= 1 && i <= m ? d - crops[i - 1][0] - crops[i - 1][1] : d));
    if (sizeOf(size) === 0) return keep(b, x, aj.zeros(size, t.dtype));
    return keep(b, x, begin.some((v, i) => v !== 0 || size[i] !== full[i]) ? aj.slice(t, begin, size) : t);
  },
  DepthToSpace: (b, inputs, attrs) => {
    const x = one(inputs, 'x');
    if (attrs.dataFormat === 'NCHW')
      throw new TfjsBackendError('adjoint backend DepthToSpace: dataFormat NCHW is not supported (NHWC is)');
    const t = b.input(x);
    const bs: number = attrs.blockSize;
    const [n, h, w, c] = t.shape;
    const c2 = c / (bs * bs);
    const r = aj.transpose(aj.reshape(t, [n, h, w, bs, bs, c2]), [0, 1, 3, 2, 4, 5]);
    return keep(b, x, aj.reshape(r, [n, h * bs, w * bs, c2]));
  },
  MirrorPad: (b, inputs, attrs) => {
    const x = one(inputs, 'x');
    let t = b.input(x);
    const off = attrs.mode === 'reflect' ? 1 : 0;
    (attrs.paddings as [number, number][]).forEach(([lo, hi], a) => {
      const n = t.shape[a];
      const idx: number[] = [];
      for (let i = lo; i > 0; i--) idx.push(i - 1 + off);
      for (let i = 0; i < n; i++) idx.push(i);
      for (let i = 0; i < hi; i++) idx.push(n - 1 - i - off);
      t = aj.gather(t, aj.tensor(Int32Array.from(idx), { dtype: 'int32' }), a);
    });
    return keep(b, x, t);
  },
  Diag: (b, inputs) => {
    const x = one(inputs, 'x');
    const t = b.input(x);
    const n = t.size;
    const flat = aj.reshape(t, [n]);
    const d = aj.mul(aj.reshape(flat, [n, 1]), aj.eye(n, t.dtype));
    return keep(b, x, aj.reshape(d, [...t.shape, ...t.shape]));
  },
  BroadcastArgs: (b, inputs, _attrs, tf) => {
    // Shapes are values here: read them (this runs what is pending).
    const s0 = Array.from(b.readSync(one(inputs, 's0').dataId) as Int32Array);
    const s1 = Array.from(b.readSync(one(inputs, 's1').dataId) as Int32Array);
    const out = tf.backend_util.assertAndGetBroadcastShape(s0, s1);
    return b.output(aj.tensor(Int32Array.from(out), { dtype: 'int32' }), 'int32');
  },
  LinSpace: (b, _inputs, attrs) => {
    const { start, stop, num } = attrs;
    const v = new Float32Array(num);
    const step = num > 1 ? (stop - start) / (num - 1) : 0;
    for (let i = 0; i < num; i++) v[i] = start + i * step;
    return b.output(aj.tensor(v, { dtype: 'float32' }), 'float32');
  },
  OneHot: (b, inputs, attrs) => {
    const idx = b.input(one(inputs, 'indices')).cast('int32');
    const d: TfDType = attrs.dtype ?? 'int32';
    const mask = aj.equal(aj.reshape(idx, [...idx.shape, 1]), aj.arange(0, attrs.depth).cast('int32'));
    const k = d === 'float32' ? 'float32' : 'int32';
    return b.output(
      aj.where(mask, aj.full([], attrs.onValue ?? 1, k), aj.full([], attrs.offValue ?? 0, k)),
      d,
    );
  },

  // sources
  Fill: (b, _inputs, attrs) => {
    const d: TfDType = attrs.dtype ?? 'float32';
    if (d === 'string') throw new TfjsBackendError("adjoint backend Fill: dtype 'string' is not supported");
    return b.output(aj.full(attrs.shape, Number(attrs.value), d === 'float32' ? 'float32' : 'int32'), d);
  },
  ZerosLike: (b, inputs) => {
    const x = one(inputs, 'x');
    return b.output(aj.zeros(x.shape, b.input(x).dtype), b.dtypeOf(x));
  },
  OnesLike: (b, inputs) => {
    const x = one(inputs, 'x');
    return b.output(aj.ones(x.shape, b.input(x).dtype), b.dtypeOf(x));
  },
  Range: (b, _inputs, attrs) => {
    const { start, stop } = attrs;
    let step: number = attrs.step;
    const d: TfDType = attrs.dtype ?? 'float32';
    const empty = start === stop || (start < stop && step < 0) || (stop < start && step > 1);
    if (stop < start && step === 1) step = -1;
    const n = empty ? 0 : Math.abs(Math.ceil((stop - start) / step));
    const v = d === 'int32' ? new Int32Array(n) : new Float32Array(n);
    for (let i = 0; i < n; i++) v[i] = start + i * step;
    return b.output(aj.tensor(v, { dtype: d === 'int32' ? 'int32' : 'float32' }), d);
  },

  // convolution and pooling (NHWC)
  Conv2D: (b, inputs, attrs, tf) => {
    const x = b.input(one(inputs, 'x')).cast('float32');
    const w = b.input(one(inputs, 'filter')).cast('float32');
    const g = convGeom(tf, [...x.shape], [...w.shape], attrs, false, 'Conv2D');
    return b.output(checkShape('Conv2D', conv(x, w, g), g.out), 'float32');
  },
  FusedConv2D: (b, inputs, attrs, tf) => {
    const x = b.input(one(inputs, 'x')).cast('float32');
    const w = b.input(one(inputs, 'filter')).cast('float32');
    const g = convGeom(tf, [...x.shape], [...w.shape], attrs, false, 'FusedConv2D');
    let y = checkShape('FusedConv2D', conv(x, w, g), g.out);
    const bias = (inputs as Record<string, Info | undefined>).bias;
    if (bias) y = aj.add(y, b.input(bias).cast('float32'));
    y = activate(b, y, attrs, (inputs as Record<string, Info | undefined>).preluActivationWeights);
    return b.output(y, 'float32');
  },
  Conv2DBackpropInput: (b, inputs, attrs, tf) => {
    const dy = b.input(one(inputs, 'dy')).cast('float32');
    const w = b.input(one(inputs, 'filter')).cast('float32');
    const xShape: number[] = attrs.inputShape;
    const g = convGeom(tf, xShape, [...w.shape], attrs, false, 'Conv2DBackpropInput');
    const [, pull] = aj.vjp((x: Tensor) => conv(x, w, g), aj.zeros(xShape));
    return b.output(pull(dy)[0], 'float32');
  },
  Conv2DBackpropFilter: (b, inputs, attrs, tf) => {
    const x = b.input(one(inputs, 'x')).cast('float32');
    const dy = b.input(one(inputs, 'dy')).cast('float32');
    const wShape: number[] = attrs.filterShape;
    const g = convGeom(tf, [...x.shape], wShape, attrs, false, 'Conv2DBackpropFilter');
    const [, pull] = aj.vjp((w: Tensor) => conv(x, w, g), aj.zeros(wShape));
    return b.output(pull(dy)[0], 'float32');
  },
  DepthwiseConv2dNative: (b, inputs, attrs, tf) => {
    const x = b.input(one(inputs, 'x')).cast('float32');
    const w = b.input(one(inputs, 'filter')).cast('float32');
    const g = convGeom(tf, [...x.shape], [...w.shape], attrs, true, 'DepthwiseConv2dNative');
    return b.output(
      checkShape('DepthwiseConv2dNative', conv(x, depthwiseFilter(w), g, x.shape[3]), g.out),
      'float32',
    );
  },
  FusedDepthwiseConv2D: (b, inputs, attrs, tf) => {
    const x = b.input(one(inputs, 'x')).cast('float32');
    const w = b.input(one(inputs, 'filter')).cast('float32');
    const g = convGeom(tf, [...x.shape], [...w.shape], attrs, true, 'FusedDepthwiseConv2D');
    let y = checkShape('FusedDepthwiseConv2D', conv(x, depthwiseFilter(w), g, x.shape[3]), g.out);
    const bias = (inputs as Record<string, Info | undefined>).bias;
    if (bias) y = aj.add(y, b.input(bias).cast('float32'));
    y = activate(b, y, attrs, (inputs as Record<string, Info | undefined>).preluActivationWeights);
    return b.output(y, 'float32');
  },
  DepthwiseConv2dNativeBackpropInput: (b, inputs, attrs, tf) => {
    const dy = b.input(one(inputs, 'dy')).cast('float32');
    const w = b.input(one(inputs, 'filter')).cast('float32');
    const xShape: number[] = attrs.inputShape;
    const g = convGeom(tf, xShape, [...w.shape], attrs, true, 'DepthwiseConv2dNativeBackpropInput');
    const wf = depthwiseFilter(w);
    const [, pull] = aj.vjp((x: Tensor) => conv(x, wf, g, xShape[3]), aj.zeros(xShape));
    return b.output(pull(dy)[0], 'float32');
  },
  DepthwiseConv2dNativeBackpropFilter: (b, inputs, attrs, tf) => {
    const x = b.input(one(inputs, 'x')).cast('float32');
    const dy = b.input(one(inputs, 'dy')).cast('float32');
    const wShape: number[] = attrs.filterShape;
    const g = convGeom(tf, [...x.shape], wShape, attrs, true, 'DepthwiseConv2dNativeBackpropFilter');
    const [, pull] = aj.vjp((w: Tensor) => conv(x, depthwiseFilter(w), g, x.shape[3]), aj.zeros(wShape));
    return b.output(pull(dy)[0], 'float32');
  },
  MaxPool: (b, inputs, attrs, tf) => {
    const x = dropNaN(b.input(one(inputs, 'x')).cast('float32'), -Infinity);
    const g = poolGeom(tf, [...x.shape], attrs, 'MaxPool');
    const y = aj.maxPool2d(x, g.window, { strides: g.strides, padding: g.padding });
    return b.output(checkShape('MaxPool', y, g.out), 'float32');
  },
  AvgPool: (b, inputs, attrs, tf) => {
    const x = b.input(one(inputs, 'x')).cast('float32');
    const g = poolGeom(tf, [...x.shape], attrs, 'AvgPool');
    const y = aj.avgPool2d(x, g.window, { strides: g.strides, padding: g.padding });
    return b.output(checkShape('AvgPool', y, g.out), 'float32');
  },
  MaxPoolGrad: (b, inputs, attrs, tf) => {
    const dy = b.input(one(inputs, 'dy')).cast('float32');
    const x = dropNaN(b.input(one(inputs, 'input')).cast('float32'), -Infinity);
    const g = poolGeom(tf, [...x.shape], attrs, 'MaxPoolGrad');
    const [, pull] = aj.vjp(
      (t: Tensor) => aj.maxPool2d(t, g.window, { strides: g.strides, padding: g.padding }),
      x,
    );
    return b.output(pull(dy)[0], 'float32');
  },
  AvgPoolGrad: (b, inputs, attrs, tf) => {
    const dy = b.input(one(inputs, 'dy')).cast('float32');
    const xi = one(inputs, 'input');
    const g = poolGeom(tf, [...xi.shape], attrs, 'AvgPoolGrad');
    const pool = (t: Tensor) => aj.avgPool2d(t, g.window, { strides: g.strides, padding: g.padding });
    const [, pull] = aj.vjp(pool, aj.zeros(xi.shape));
    // TF.js's gradient divides by the whole window even where the forward averaged fewer
    // (padded) positions: scale by (in-bounds count) / (window area) to give the same numbers.
    const [[pt, pb], [pl, pr]] = g.padding;
    if (pt + pb + pl + pr === 0) return b.output(pull(dy)[0], 'float32');
    const [, H, W] = xi.shape;
    const count = conv(aj.ones([1, H, W, 1]), aj.ones([g.window[0], g.window[1], 1, 1]), g);
    return b.output(pull(aj.mul(dy, aj.div(count, g.window[0] * g.window[1])))[0], 'float32');
  },
  FusedBatchNorm: (b, inputs, attrs) => {
    const r = inputs as Record<string, Info | undefined>;
    const x = b.input(one(inputs, 'x')).cast('float32');
    const f = (i: Info | undefined) => (i ? b.input(i).cast('float32') : null);
    const mean = f(r.mean);
    const variance = f(r.variance);
    const offset = f(r.offset);
    const scale = f(r.scale);
    let y = mean ? aj.sub(x, mean) : x;
    y = aj.mul(y, aj.rsqrt(aj.add(variance ?? aj.ones([]), attrs.varianceEpsilon ?? 0.001)));
    if (scale) y = aj.mul(y, scale);
    if (offset) y = aj.add(y, offset);
    return b.output(y, 'float32');
  },
};

/** TF.js reshape target with one -1 resolved. */
function tfShape(size: number, shape: number[]): number[] {
  const s = [...shape];
  const k = s.indexOf(-1);
  if (k >= 0) {
    const rest = s.reduce((a, d, i) => (i === k ? a : a * d), 1);
    s[k] = rest === 0 ? 0 : size / rest;
  }
  return s;
}
