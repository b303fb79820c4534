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
    if (name !== 'sum' && axes.some((a) => x.shape[a] === 0))
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

defineOp({
  name: 'argmax',
  kind: 'reduce',
  infer: ([x], attrs) => {
    const axis = attrs.axis as number;
    if (x.shape[axis] === 0) throw new ShapeError(`argmax: axis ${axis} of shape ${fmt(x.shape)} is empty`);
    if (x.dtype !== 'float32' && x.dtype !== 'int32')
      throw new DTypeError(`argmax: unsupported dtype ${x.dtype}`);
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
          if (v > bv || Number.isNaN(v)) {
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
    return [apply('argmax', [x], { ...attrs, axis: shifted(a, b) }), a < b ? b - 1 : b];
  },
});
