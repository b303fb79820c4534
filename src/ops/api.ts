/**
 * The public ops. Each is a thin wrapper that normalizes arguments (numbers, negative axes,
 * dtype promotion) and records one primitive with `apply`, or composes primitives.
 */
import { arange, full, type TensorData, tensor } from '../creation';
import { AxisError, DTypeError, ShapeError, ValueError } from '../errors';
import { broadcastShapes, fmt, normalizeAxes, normalizeAxis, shapeEq, sizeOf } from '../shape';
import { type DType, Tensor } from '../tensor';
import { libraryVjp } from './custom';
import { apply } from './registry';

export type TensorLike = Tensor | TensorData;

export function asTensor(x: TensorLike, dtype?: DType): Tensor {
  if (x instanceof Tensor) return dtype && x.dtype !== dtype ? cast(x, dtype) : x;
  if (typeof x === 'number') return full([], x, dtype ?? 'float32');
  return tensor(x as TensorData, dtype ? { dtype } : {});
}

/** Numbers are weakly typed (as in JAX): they take the dtype of the tensor operand. */
function weak(x: TensorLike, like: DType): Tensor {
  if (typeof x === 'number') return full([], x, like === 'int32' && !Number.isInteger(x) ? 'float32' : like);
  return asTensor(x);
}

function promote(a: TensorLike, b: TensorLike, forceFloat = false): [Tensor, Tensor] {
  if (a instanceof Tensor && b instanceof Tensor && a.dtype === b.dtype && !forceFloat) return [a, b];
  let x: Tensor;
  let y: Tensor;
  if (a instanceof Tensor) {
    x = a;
    y = weak(b, a.dtype);
  } else if (b instanceof Tensor) {
    y = b;
    x = weak(a, b.dtype);
  } else {
    x = asTensor(a);
    y = asTensor(b);
  }
  if (forceFloat || x.dtype !== y.dtype) {
    x = cast(x, 'float32');
    y = cast(y, 'float32');
  }
  return [x, y];
}

const binary =
  (name: string, forceFloat = false) =>
  (a: TensorLike, b: TensorLike): Tensor =>
    apply(name, promote(a, b, forceFloat));

export const add = binary('add');
export const sub = binary('sub');
export const mul = binary('mul');
export const div = binary('div', true);
export const pow = binary('pow', true);
export const maximum = binary('maximum');
export const minimum = binary('minimum');
/** Comparisons return int32 masks (1 where true). */
export const greater = binary('greater');
export const greaterEqual = binary('greaterEqual');
export const lessEqual = binary('lessEqual');
export const notEqual = binary('notEqual');
export const less = binary('less');
export const equal = binary('equal');

export function where(cond: TensorLike, a: TensorLike, b: TensorLike): Tensor {
  const c = asTensor(cond);
  const [x, y] = promote(a, b);
  return apply('where', [c, x, y]);
}

export function cast(x: TensorLike, dtype: DType): Tensor {
  const t = asTensor(x);
  if (dtype !== 'float32' && dtype !== 'int32') throw new DTypeError(`cast: unknown dtype ${String(dtype)}`);
  return t.dtype === dtype ? t : apply('cast', [t], { dtype });
}

const unaryFloat =
  (name: string) =>
  (x: TensorLike): Tensor =>
    apply(name, [cast(asTensor(x), 'float32')]);
const unaryAny =
  (name: string) =>
  (x: TensorLike): Tensor =>
    apply(name, [asTensor(x)]);

export const neg = unaryAny('neg');
export const abs = unaryAny('abs');
export const sign = unaryAny('sign');
export const square = unaryAny('square');
export const exp = unaryFloat('exp');
export const log = unaryFloat('log');
export const log1p = unaryFloat('log1p');
export const sqrt = unaryFloat('sqrt');
export const reciprocal = unaryFloat('reciprocal');
export const sin = unaryFloat('sin');
export const cos = unaryFloat('cos');
export const tanh = unaryFloat('tanh');
export const sigmoid = unaryFloat('sigmoid');
export const relu = unaryFloat('relu');
export const softplus = unaryFloat('softplus');
export const rsqrt = unaryFloat('rsqrt');
/** The error function, 2/√π ∫₀ˣ exp(−t²) dt. */
export const erf = unaryFloat('erf');
/** floor, ceil and round (half to even) have zero derivative. */
export const floor = unaryFloat('floor');
export const ceil = unaryFloat('ceil');
export const round = unaryFloat('round');

/** x where x > 0, exp(x) − 1 elsewhere. */
export function elu(x: TensorLike): Tensor {
  const t = cast(asTensor(x), 'float32');
  // exp of min(x, 0): the unselected branch must not overflow (0·inf would poison the gradient).
  return where(greater(t, 0), t, sub(exp(minimum(t, 0)), 1));
}

/** x where x > 0, alpha·x elsewhere (alpha defaults to 0.2, as in TensorFlow.js). */
export function leakyRelu(x: TensorLike, alpha = 0.2): Tensor {
  const t = cast(asTensor(x), 'float32');
  return where(greater(t, 0), t, mul(t, alpha));
}

/** x·sigmoid(x) (swish). */
export function silu(x: TensorLike): Tensor {
  const t = cast(asTensor(x), 'float32');
  return mul(t, sigmoid(t));
}

/** Clamps to [lo, hi]; the derivative is 1 inside (bounds included), 0 outside, as in TensorFlow.js. */
export function clip(x: TensorLike, lo: TensorLike, hi: TensorLike): Tensor {
  const t = asTensor(x);
  return where(less(t, lo), lo, where(greater(t, hi), hi, t));
}

export interface GeluOptions {
  /** Use the tanh approximation (the default, as in JAX); false computes x·Φ(x) with erf. */
  approximate?: boolean;
}

/** Gaussian error linear unit: x·Φ(x), or its tanh approximation. */
export function gelu(x: TensorLike, opts: GeluOptions = {}): Tensor {
  const t = cast(asTensor(x), 'float32');
  if (opts.approximate === false) return mul(mul(t, 0.5), add(erf(mul(t, Math.SQRT1_2)), 1));
  const inner = mul(add(t, mul(mul(t, square(t)), 0.044715)), Math.sqrt(2 / Math.PI));
  return mul(mul(t, 0.5), add(tanh(inner), 1));
}

/** Identity whose derivative is zero: the value is treated as a constant by every transform. */
export function stopGradient(x: TensorLike): Tensor {
  return apply('stopGradient', [asTensor(x)]);
}

// ---------------------------------------------------------------- reductions

export type Axis = number | readonly number[] | null | undefined;

function reduction(name: string, x: Tensor, axis: Axis, keepdims: boolean): Tensor {
  const axes = normalizeAxes(name, axis, x.ndim);
  return apply(name, [x], { axes, keepdims });
}

export function sum(x: TensorLike, axis?: Axis, keepdims = false): Tensor {
  return reduction('sum', asTensor(x), axis, keepdims);
}

export function mean(x: TensorLike, axis?: Axis, keepdims = false): Tensor {
  const t = cast(asTensor(x), 'float32');
  const axes = normalizeAxes('mean', axis, t.ndim);
  const n = axes.reduce((acc, a) => acc * t.shape[a], 1);
  return mul(reduction('sum', t, axes, keepdims), 1 / n);
}

export function max(x: TensorLike, axis?: Axis, keepdims = false): Tensor {
  return reduction('max', asTensor(x), axis, keepdims);
}

export function min(x: TensorLike, axis?: Axis, keepdims = false): Tensor {
  return reduction('min', asTensor(x), axis, keepdims);
}

/** Product of the elements over `axis` (float32; the product of an empty axis is 1). */
export function prod(x: TensorLike, axis?: Axis, keepdims = false): Tensor {
  return reduction('prod', cast(asTensor(x), 'float32'), axis, keepdims);
}

/** Population variance (divides by n) over `axis`. */
export function variance(x: TensorLike, axis?: Axis, keepdims = false): Tensor {
  const t = cast(asTensor(x), 'float32');
  const axes = normalizeAxes('variance', axis, t.ndim);
  return mean(square(sub(t, mean(t, axes, true))), axes, keepdims);
}

/** logsumexp over `axes`, keeping them: the max is subtracted first (and held constant for jvp). */
function logsumexpKept(t: Tensor, axes: readonly number[]): Tensor {
  const mRaw = stopGradient(max(t, axes, true));
  // An all -inf (or inf) slice would give inf - inf = nan; shift by 0 there instead.
  const m = where(equal(abs(mRaw), Number.POSITIVE_INFINITY), 0, mRaw);
  return add(log(sum(exp(sub(t, m)), axes, true)), m);
}

/**
 * Its gradient, ct·exp(x − logsumexp(x)) (a softmax), as a custom VJP: one fused elementwise pass
 * over the input and the (reduced) result, where differentiating the forward would keep
 * exp(x − max), a value the size of x, alive for the backward and chain the rules of log, sum,
 * exp and sub through it.
 */
const logsumexpRule = libraryVjp(
  logsumexpKept,
  (t, axes) => {
    const r = logsumexpKept(t, axes);
    return [r, [t, r]];
  },
  ([t, r]: [Tensor, Tensor], ct: Tensor) => [mul(ct, exp(sub(t, r))), null],
);

/** log(sum(exp(x))) computed stably: the max is subtracted first. */
export function logsumexp(x: TensorLike, axis?: Axis, keepdims = false): Tensor {
  const t = cast(asTensor(x), 'float32');
  const axes = normalizeAxes('logsumexp', axis, t.ndim);
  const r = logsumexpRule(t, axes);
  return keepdims ? r : squeeze(r, axes);
}

/** Index of the largest element along `axis` (of the flattened tensor if axis is omitted). */
export function argmax(x: TensorLike, axis?: number): Tensor {
  let t = asTensor(x);
  if (axis === undefined) {
    t = reshape(t, [t.size]);
    axis = 0;
  }
  return apply('argmax', [t], { axis: normalizeAxis('argmax', axis, t.ndim) });
}

/** Inclusive cumulative sum along `axis` (reverse: from the end), as tf.cumsum and numpy.cumsum. */
export function cumsum(x: TensorLike, axis = 0, opts: { reverse?: boolean } = {}): Tensor {
  const t = asTensor(x);
  return apply('cumsum', [t], {
    axis: normalizeAxis('cumsum', axis, t.ndim),
    reverse: opts.reverse ?? false,
  });
}

/** Index of the smallest element along `axis` (of the flattened tensor if axis is omitted). */
export function argmin(x: TensorLike, axis?: number): Tensor {
  let t = asTensor(x);
  if (axis === undefined) {
    t = reshape(t, [t.size]);
    axis = 0;
  }
  return apply('argmin', [t], { axis: normalizeAxis('argmin', axis, t.ndim) });
}

// ---------------------------------------------------------------- shapes

export function reshape(x: TensorLike, shape: readonly number[]): Tensor {
  const t = asTensor(x);
  const s = [...shape];
  const infer = s.indexOf(-1);
  if (infer >= 0) {
    if (s.indexOf(-1, infer + 1) >= 0)
      throw new ShapeError(`reshape: only one dimension can be -1, got ${fmt(s)}`);
    const rest = s.reduce((a, d, i) => (i === infer ? a : a * d), 1);
    if (rest === 0 || t.size % rest !== 0)
      throw new ShapeError(`reshape: cannot reshape ${fmt(t.shape)} to ${fmt(shape)}`);
    s[infer] = t.size / rest;
  }
  return apply('reshape', [t], { shape: s });
}

export function transpose(x: TensorLike, perm?: readonly number[]): Tensor {
  const t = asTensor(x);
  // Negative entries count from the end, as numpy allows.
  const p = perm ? perm.map((a) => (a < 0 ? a + t.ndim : a)) : t.shape.map((_, i) => t.ndim - 1 - i);
  return apply('transpose', [t], { perm: p });
}

export function broadcastTo(x: TensorLike, shape: readonly number[]): Tensor {
  const t = asTensor(x);
  return apply('broadcastTo', [t], { shape: [...shape] });
}

export function expandDims(x: TensorLike, axis: number): Tensor {
  const t = asTensor(x);
  const a = normalizeAxis('expandDims', axis, t.ndim + 1);
  const s = [...t.shape];
  s.splice(a, 0, 1);
  return reshape(t, s);
}

export function squeeze(x: TensorLike, axis?: Axis): Tensor {
  const t = asTensor(x);
  let axes: number[];
  if (axis === undefined || axis === null) axes = t.shape.flatMap((d, i) => (d === 1 ? [i] : []));
  else {
    axes = normalizeAxes('squeeze', axis, t.ndim);
    for (const a of axes)
      if (t.shape[a] !== 1)
        throw new ShapeError(`squeeze: axis ${a} of shape ${fmt(t.shape)} has size ${t.shape[a]}, not 1`);
  }
  return reshape(
    t,
    t.shape.filter((_, i) => !axes.includes(i)),
  );
}

/** x[begin : begin + size] per axis; a size of -1 takes the rest of that axis. */
export function slice(
  x: TensorLike,
  begin: number | readonly number[],
  size?: number | readonly number[],
): Tensor {
  const t = asTensor(x);
  const b = typeof begin === 'number' ? [begin] : [...begin];
  const s = size === undefined ? [] : typeof size === 'number' ? [size] : [...size];
  if (b.length > t.ndim) throw new ShapeError(`slice: begin ${fmt(b)} has more entries than rank ${t.ndim}`);
  const fullBegin = t.shape.map((_, i) => b[i] ?? 0);
  const fullSize = t.shape.map((d, i) => {
    const v = s[i] ?? -1;
    return v === -1 ? d - fullBegin[i] : v;
  });
  return apply('slice', [t], { begin: fullBegin, size: fullSize });
}

/** Zero padding: `pads[i] = [before, after]` for axis i. */
export function pad(x: TensorLike, pads: readonly (readonly [number, number])[]): Tensor {
  const t = asTensor(x);
  return apply('pad', [t], { pads: pads.map((p) => [p[0], p[1]]) });
}

export function concat(xs: readonly TensorLike[], axis = 0): Tensor {
  if (!Array.isArray(xs) || xs.length === 0)
    throw new ValueError('concat: needs a non-empty array of tensors');
  let ts = xs.map((x) => asTensor(x));
  if (ts.some((t) => t.dtype !== ts[0].dtype)) ts = ts.map((t) => cast(t, 'float32'));
  const a = normalizeAxis('concat', axis, ts[0].ndim);
  if (ts.length === 1) return ts[0];
  return apply('concat', ts, { axis: a });
}

export function stack(xs: readonly TensorLike[], axis = 0): Tensor {
  if (!Array.isArray(xs) || xs.length === 0)
    throw new ValueError('stack: needs a non-empty array of tensors');
  const ts = xs.map((x) => asTensor(x));
  const a = normalizeAxis('stack', axis, ts[0].ndim + 1);
  for (const t of ts)
    if (!shapeEq(t.shape, ts[0].shape))
      throw new ShapeError(`stack: shapes ${fmt(ts[0].shape)} and ${fmt(t.shape)} differ`);
  return concat(
    ts.map((t) => expandDims(t, a)),
    a,
  );
}

/** Takes slices along `axis` at the int32 `indices`; result shape x[:axis] ++ indices ++ x[axis+1:]. */
export function gather(x: TensorLike, indices: TensorLike, axis = 0): Tensor {
  const t = asTensor(x);
  const idx = indices instanceof Tensor ? indices : asTensor(indices, 'int32');
  if (idx.dtype !== 'int32') throw new DTypeError(`gather: indices must be int32, got ${idx.dtype}`);
  return apply('gather', [t, idx], { axis: normalizeAxis('gather', axis, t.ndim) });
}

/** The adjoint of gather: adds `updates` into a zero tensor of size `dimSize` along `axis`. */
export function scatterAdd(updates: Tensor, indices: Tensor, axis: number, dimSize: number): Tensor {
  return apply('scatterAdd', [updates, indices], { axis, dimSize });
}

export function oneHot(indices: TensorLike, depth: number): Tensor {
  const idx = indices instanceof Tensor ? indices : asTensor(indices, 'int32');
  if (idx.dtype !== 'int32') throw new DTypeError(`oneHot: indices must be int32, got ${idx.dtype}`);
  if (!Number.isInteger(depth) || depth < 0)
    throw new ValueError(`oneHot: depth must be a non-negative integer`);
  return cast(equal(expandDims(idx, -1), arange(0, depth)), 'float32');
}

/** Reduces a broadcast result back to `shape` (the adjoint of broadcasting). */
export function sumTo(x: Tensor, shape: readonly number[]): Tensor {
  if (shapeEq(x.shape, shape)) return x;
  const lead = x.ndim - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < x.ndim; i++) if (i < lead || (shape[i - lead] === 1 && x.shape[i] !== 1)) axes.push(i);
  const s = axes.length ? sum(x, axes, true) : x;
  return reshape(s, shape);
}

// ---------------------------------------------------------------- linear algebra

/** numpy matmul: 1-D operands are promoted and the added axis removed; leading dims broadcast. */
export function matmul(a: TensorLike, b: TensorLike): Tensor {
  let [x, y] = promote(a, b);
  if (x.ndim === 0 || y.ndim === 0)
    throw new ShapeError(`matmul: operands must have rank >= 1, got ${fmt(x.shape)} and ${fmt(y.shape)}`);
  const vecA = x.ndim === 1;
  const vecB = y.ndim === 1;
  if (vecA) x = reshape(x, [1, x.shape[0]]);
  if (vecB) y = reshape(y, [y.shape[0], 1]);
  let out = matmulT(x, y, false, false);
  if (vecA) out = squeeze(out, -2);
  if (vecB) out = squeeze(out, -1);
  return out;
}

/** op(a)·op(b) with transpose flags on the last two axes; what the VJP rules use, so no copies. */
export function matmulT(a: Tensor, b: Tensor, transA: boolean, transB: boolean): Tensor {
  return apply('matmul', [a, b], { transA, transB });
}

// ---------------------------------------------------------------- softmax family

export function softmax(x: TensorLike, axis = -1): Tensor {
  const t = cast(asTensor(x), 'float32');
  return apply('softmax', [t], { axis: normalizeAxis('softmax', axis, t.ndim) });
}

export function logSoftmax(x: TensorLike, axis = -1): Tensor {
  const t = cast(asTensor(x), 'float32');
  return apply('logSoftmax', [t], { axis: normalizeAxis('logSoftmax', axis, t.ndim) });
}

/** Per-example softmax cross-entropy of float32 logits [..., C] against int32 class ids [...]. */
export function softmaxCrossEntropyRows(logits: TensorLike, labels: TensorLike): Tensor {
  const x = cast(asTensor(logits), 'float32');
  const y = labels instanceof Tensor ? labels : asTensor(labels, 'int32');
  return apply('softmaxCrossEntropy', [x, y]);
}

export function checkAxisInRange(op: string, axis: number, ndim: number): void {
  if (axis < 0 || axis >= ndim) throw new AxisError(`${op}: axis ${axis} out of range for rank ${ndim}`);
}

export { broadcastShapes, sizeOf };

// ---------------------------------------------------------------- convolution and pooling (conv-api.ts)

export {
  avgPool2d,
  type Conv1dOptions,
  type Conv2dOptions,
  type ConvTranspose2dOptions,
  conv1d,
  conv2d,
  convTranspose2d,
  maxPool2d,
  type Padding,
  type Pool2dOptions,
} from './conv-api';
