/** Reductions over a set of axes (attrs.axes sorted, attrs.keepdims). */
import { DTypeError, ShapeError } from '../../errors';
import { fmt, type Shape } from '../../shape';
import type { Attrs, Tensor } from '../../tensor';
import * as o from '../api';
import { reduceRule, shifted } from '../batching';
import { reduceAxes } from '../reference-utils';
import { apply, defineOp, type TensorInfo } from '../registry';

const axesOf = (attrs: Attrs) => attrs.axes as number[];
const keptShape = (shape: Shape, axes: readonly number[]) => shape.map((d, i) => (axes.includes(i) ? 1 : d));

function reducedInfo(name: string) {
  return ([x]: readonly TensorInfo[], attrs: Attrs): TensorInfo => {
    const axes = axesOf(attrs);
    const shape = attrs.keepdims ? keptShape(x.shape, axes) : x.shape.filter((_, i) => !axes.includes(i));
    if (name !== 'sum' && name !== 'prod' && axes.some((a) => x.shape[a] === 0))
      throw new ShapeError(
        `${name}: cannot reduce over an empty axis of shape ${fmt(x.shape)} (no identity)`,
      );
    return { shape, dtype: x.dtype };
  };
}

/** The cotangent or result of a reduction reshaped so it broadcasts against the input. */
const kept = (y: Tensor, x: Tensor, attrs: Attrs) => o.reshape(y, keptShape(x.shape, axesOf(attrs)));

defineOp({
  name: 'sum',
  kind: 'reduce',
  infer: reducedInfo('sum'),
  reference: ([x], attrs) => reduceAxes(x, axesOf(attrs), 0, (a, v) => a + v),
  jvp: ([t], _x, y, attrs) =>
    t && y.dtype === 'float32' ? o.sum(t, axesOf(attrs), attrs.keepdims as boolean) : null,
  vjp: (ct, [x], _y, attrs) => [x.dtype === 'float32' ? o.broadcastTo(kept(ct, x, attrs), x.shape) : null],
  batch: reduceRule('sum'),
});

/** max/min: the derivative goes to the extreme elements, split evenly between ties. */
function extremum(name: string, init: number, pick: (a: number, b: number) => number) {
  const share = (x: Tensor, y: Tensor, attrs: Attrs) => {
    const mask = o.cast(o.equal(x, kept(y, x, attrs)), 'float32');
    return o.div(mask, o.sum(mask, axesOf(attrs), true));
  };
  defineOp({
    name,
    kind: 'reduce',
    infer: reducedInfo(name),
    reference: ([x], attrs) =>
      reduceAxes(x, axesOf(attrs), init, (a, v) =>
        Number.isNaN(a) || Number.isNaN(v) ? Number.NaN : pick(a, v),
      ),
    jvp: ([t], [x], y, attrs) =>
      t && y.dtype === 'float32'
        ? o.sum(o.mul(t, share(x, y, attrs)), axesOf(attrs), attrs.keepdims as boolean)
        : null,
    vjp: (ct, [x], y, attrs) => [
      x.dtype === 'float32' ? o.mul(kept(ct, x, attrs), share(x, y, attrs)) : null,
    ],
    batch: reduceRule(name),
  });
}
extremum('max', Number.NEGATIVE_INFINITY, Math.max);
extremum('min', Number.POSITIVE_INFINITY, Math.min);

/**
 * prod: the derivative with respect to x_i is the product of the other elements, computed
 * without dividing by zero: with no zero in the slice it is prod/x_i; with one zero it is the
 * product of the nonzero elements at the zero and 0 elsewhere; with two or more zeros it is 0.
 */
function prodPartials(x: Tensor, attrs: Attrs): Tensor {
  const axes = axesOf(attrs);
  const isZero = o.equal(x, 0);
  const nz = o.where(isZero, 1, x);
  const pnz = o.prod(nz, axes, true);
  const zeros = o.sum(o.cast(isZero, 'float32'), axes, true);
  return o.where(isZero, o.where(o.equal(zeros, 1), pnz, 0), o.where(o.equal(zeros, 0), o.div(pnz, nz), 0));
}

defineOp({
  name: 'prod',
  kind: 'reduce',
  infer: ([x], attrs) => {
    if (x.dtype !== 'float32') throw new DTypeError(`prod: expects float32, got ${x.dtype}`);
    return reducedInfo('prod')([x], attrs);
  },
  reference: ([x], attrs) => reduceAxes(x, axesOf(attrs), 1, (a, v) => a * v),
  jvp: ([t], [x], _y, attrs) =>
    t ? o.sum(o.mul(t, prodPartials(x, attrs)), axesOf(attrs), attrs.keepdims as boolean) : null,
  vjp: (ct, [x], _y, attrs) => [o.mul(kept(ct, x, attrs), prodPartials(x, attrs))],
  batch: reduceRule('prod'),
});

function argExtremum(name: 'argmax' | 'argmin') {
  defineOp({
    name,
    kind: 'reduce',
    infer: ([x], attrs) => {
      const axis = attrs.axis as number;
      if (x.shape[axis] === 0)
        throw new ShapeError(`${name}: axis ${axis} of shape ${fmt(x.shape)} is empty`);
      if (x.dtype !== 'float32' && x.dtype !== 'int32')
        throw new DTypeError(`${name}: unsupported dtype ${x.dtype}`);
      return { shape: x.shape.filter((_, i) => i !== axis), dtype: 'int32' };
    },
    reference: ([x], attrs) => {
      const axis = attrs.axis as number;
      const len = x.shape[axis];
      const inner = x.shape.slice(axis + 1).reduce((a, d) => a * d, 1);
      const outer = x.shape.slice(0, axis).reduce((a, d) => a * d, 1);
      const out = new Float64Array(outer * inner);
      for (let p = 0; p < outer; p++)
        for (let q = 0; q < inner; q++) {
          let best = 0;
          let bv = x.data[p * len * inner + q];
          for (let k = 1; k < len && !Number.isNaN(bv); k++) {
            const v = x.data[(p * len + k) * inner + q];
            if ((name === 'argmax' ? v > bv : v < bv) || Number.isNaN(v)) {
              bv = v;
              best = k;
            }
          }
          out[p * inner + q] = best;
        }
      return out;
    },
    batch: ([x], [d], attrs) => {
      const a = attrs.axis as number;
      const b = d!;
      return [apply(name, [x], { ...attrs, axis: shifted(a, b) }), a < b ? b - 1 : b];
    },
  });
}
argExtremum('argmax');
argExtremum('argmin');

/**
 * Inclusive cumulative sum along attrs.axis (attrs.reverse: from the end). Its transpose is the
 * cumulative sum the other way, so the VJP is a reversed cumsum and derivatives of any order stay
 * cumsums.
 */
defineOp({
  name: 'cumsum',
  kind: 'other',
  infer: ([x], attrs) => {
    const axis = attrs.axis as number;
    if (!Number.isInteger(axis) || axis < 0 || axis >= x.shape.length)
      throw new ShapeError(`cumsum: axis ${axis} out of range for shape ${fmt(x.shape)}`);
    return { shape: x.shape, dtype: x.dtype };
  },
  reference: ([x], attrs, out) => {
    const axis = attrs.axis as number;
    const len = x.shape[axis];
    const inner = x.shape.slice(axis + 1).reduce((a, d) => a * d, 1);
    const outer = x.shape.slice(0, axis).reduce((a, d) => a * d, 1);
    const int = out.dtype === 'int32';
    const r = new Float64Array(x.data.length);
    for (let p = 0; p < outer; p++)
      for (let q = 0; q < inner; q++) {
        let acc = 0;
        for (let k = 0; k < len; k++) {
          const kk = attrs.reverse ? len - 1 - k : k;
          const at = (p * len + kk) * inner + q;
          acc = int ? (acc + x.data[at]) | 0 : acc + x.data[at];
          r[at] = acc;
        }
      }
    return r;
  },
  jvp: ([t], _x, y, attrs) => (t && y.dtype === 'float32' ? apply('cumsum', [t], attrs) : null),
  vjp: (ct, [x], _y, attrs) => [
    x.dtype === 'float32' ? apply('cumsum', [ct], { ...attrs, reverse: !attrs.reverse }) : null,
  ],
  batch: ([x], [d], attrs) => {
    const b = d!;
    return [apply('cumsum', [x], { ...attrs, axis: shifted(attrs.axis as number, b) }), b];
  },
});
