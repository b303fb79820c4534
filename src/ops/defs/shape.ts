/** Data-movement primitives: reshape, transpose, broadcastTo, slice, pad, concat, gather, scatterAdd. */

import { zeros } from '../../creation';
import { DTypeError, ShapeError, ValueError } from '../../errors';
import { broadcastShapes, broadcastStrides, fmt, type Shape, shapeEq, sizeOf, stridesOf } from '../../shape';
import type { Attrs, Tensor } from '../../tensor';
import * as o from '../api';
import { batchFirst, flatIndices, insertAt, moveBatch, permute, shifted } from '../batching';
import { forEachFlat, stridedCopy } from '../reference-utils';
import { apply, type BatchDim, defineOp, type TensorInfo } from '../registry';

const num = (attrs: Attrs, k: string) => attrs[k] as number[];

defineOp({
  name: 'reshape',
  kind: 'shape',
  infer: ([x], attrs) => {
    const shape = num(attrs, 'shape');
    if (shape.some((d) => !Number.isInteger(d) || d < 0) || sizeOf(shape) !== sizeOf(x.shape))
      throw new ShapeError(
        `reshape: cannot reshape ${fmt(x.shape)} (${sizeOf(x.shape)} elements) to ${fmt(shape)}`,
      );
    return { shape, dtype: x.dtype };
  },
  reference: ([x]) => x.data.slice(),
  jvp: ([t], _x, _y, attrs) => (t ? o.reshape(t, num(attrs, 'shape')) : null),
  vjp: (ct, [x]) => [o.reshape(ct, x.shape)],
  batch: ([x], [d], attrs, _y, size) => [
    o.reshape(moveBatch(x, d, 0, size), [size, ...num(attrs, 'shape')]),
    0,
  ],
});

defineOp({
  name: 'transpose',
  kind: 'shape',
  infer: ([x], attrs) => {
    const perm = num(attrs, 'perm');
    const ok = perm.length === x.shape.length && [...perm].sort((a, b) => a - b).every((p, i) => p === i);
    if (!ok)
      throw new ShapeError(
        `transpose: perm ${fmt(perm)} is not a permutation of the axes of ${fmt(x.shape)}`,
      );
    return { shape: perm.map((p) => x.shape[p]), dtype: x.dtype };
  },
  reference: ([x], attrs, out) => {
    const st = stridesOf(x.shape);
    return stridedCopy(
      x.data,
      out.shape,
      num(attrs, 'perm').map((p) => st[p]),
    );
  },
  jvp: ([t], _x, _y, attrs) => (t ? o.transpose(t, num(attrs, 'perm')) : null),
  vjp: (ct, _x, _y, attrs) => {
    const perm = num(attrs, 'perm');
    const inv = perm.map((_, i) => perm.indexOf(i));
    return [o.transpose(ct, inv)];
  },
  // The batch goes first: [d, ...perm with the axes at or after d shifted by one].
  batch: ([x], [d], attrs) => [permute(x, [d!, ...num(attrs, 'perm').map((p) => shifted(p, d!))]), 0],
});

defineOp({
  name: 'broadcastTo',
  kind: 'shape',
  infer: ([x], attrs) => {
    const shape = num(attrs, 'shape');
    let ok = shape.length >= x.shape.length;
    if (ok) {
      try {
        ok = shapeEq(broadcastShapes('broadcastTo', x.shape, shape), shape);
      } catch {
        ok = false;
      }
    }
    if (!ok) throw new ShapeError(`broadcastTo: cannot broadcast ${fmt(x.shape)} to ${fmt(shape)}`);
    return { shape, dtype: x.dtype };
  },
  reference: ([x], _attrs, out) => stridedCopy(x.data, out.shape, broadcastStrides(x.shape, out.shape)),
  jvp: ([t], _x, y) => (t ? o.broadcastTo(t, y.shape) : null),
  vjp: (ct, [x]) => [o.sumTo(ct, x.shape)],
  batch: ([x], [d], attrs, _y, size) => {
    const target = num(attrs, 'shape');
    return [o.broadcastTo(batchFirst(x, d, target.length, size), [size, ...target]), 0];
  },
});

defineOp({
  name: 'slice',
  kind: 'shape',
  infer: ([x], attrs) => {
    const begin = num(attrs, 'begin');
    const size = num(attrs, 'size');
    const bad =
      begin.length !== x.shape.length ||
      size.length !== x.shape.length ||
      begin.some(
        (b, i) =>
          !Number.isInteger(b) ||
          !Number.isInteger(size[i]) ||
          b < 0 ||
          size[i] < 0 ||
          b + size[i] > x.shape[i],
      );
    if (bad)
      throw new ShapeError(
        `slice: begin ${fmt(begin)} size ${fmt(size)} out of bounds for shape ${fmt(x.shape)}`,
      );
    return { shape: size, dtype: x.dtype };
  },
  reference: ([x], attrs, out) => {
    const st = stridesOf(x.shape);
    const base = num(attrs, 'begin').reduce((a, b, i) => a + b * st[i], 0);
    return stridedCopy(x.data, out.shape, st, base);
  },
  jvp: ([t], _x, _y, attrs) => (t ? o.slice(t, num(attrs, 'begin'), num(attrs, 'size')) : null),
  vjp: (ct, [x], _y, attrs) => {
    const begin = num(attrs, 'begin');
    const size = num(attrs, 'size');
    return [
      o.pad(
        ct,
        x.shape.map((d, i) => [begin[i], d - begin[i] - size[i]] as [number, number]),
      ),
    ];
  },
  batch: ([x], [d], attrs, _y, n) => [
    apply('slice', [x], {
      begin: insertAt(num(attrs, 'begin'), d!, 0),
      size: insertAt(num(attrs, 'size'), d!, n),
    }),
    d,
  ],
});

defineOp({
  name: 'pad',
  kind: 'shape',
  infer: ([x], attrs) => {
    const pads = attrs.pads as [number, number][];
    if (
      pads.length !== x.shape.length ||
      pads.some(([a, b]) => !Number.isInteger(a) || !Number.isInteger(b) || a < 0 || b < 0)
    )
      throw new ShapeError(`pad: paddings ${JSON.stringify(pads)} do not fit shape ${fmt(x.shape)}`);
    return { shape: x.shape.map((d, i) => d + pads[i][0] + pads[i][1]), dtype: x.dtype };
  },
  reference: ([x], attrs, out) => {
    const pads = attrs.pads as [number, number][];
    const res = new Float64Array(sizeOf(out.shape));
    const ost = stridesOf(out.shape);
    const base = pads.reduce((a, p, i) => a + p[0] * ost[i], 0);
    forEachFlat(x.shape, ost, (i, off) => {
      res[base + off] = x.data[i];
    });
    return res;
  },
  jvp: ([t], _x, _y, attrs) => (t ? o.pad(t, attrs.pads as [number, number][]) : null),
  vjp: (ct, [x], _y, attrs) => [
    o.slice(
      ct,
      (attrs.pads as [number, number][]).map((p) => p[0]),
      [...x.shape],
    ),
  ],
  batch: ([x], [d], attrs) => [
    apply('pad', [x], { pads: insertAt(attrs.pads as [number, number][], d!, [0, 0]) }),
    d,
  ],
});

defineOp({
  name: 'concat',
  kind: 'shape',
  infer: (inputs, attrs) => {
    const axis = attrs.axis as number;
    const first = inputs[0];
    for (const t of inputs) {
      if (t.dtype !== first.dtype)
        throw new DTypeError(`concat: dtypes ${first.dtype} and ${t.dtype} differ`);
      if (t.shape.length !== first.shape.length || t.shape.some((d, i) => i !== axis && d !== first.shape[i]))
        throw new ShapeError(
          `concat: shapes ${fmt(first.shape)} and ${fmt(t.shape)} differ outside axis ${axis}`,
        );
    }
    const shape = [...first.shape];
    shape[axis] = inputs.reduce((a, t) => a + t.shape[axis], 0);
    return { shape, dtype: first.dtype };
  },
  reference: (inputs, attrs, out) => {
    const axis = attrs.axis as number;
    const res = new Float64Array(sizeOf(out.shape));
    const ost = stridesOf(out.shape);
    let at = 0;
    for (const x of inputs) {
      forEachFlat(x.shape, ost, (i, off) => {
        res[at * ost[axis] + off] = x.data[i];
      });
      at += x.shape[axis];
    }
    return res;
  },
  jvp: (ts, xs, y, attrs) => {
    if (y.dtype !== 'float32' || ts.every((t) => !t)) return null;
    return o.concat(
      ts.map((t, i) => t ?? zeros(xs[i].shape)),
      attrs.axis as number,
    );
  },
  vjp: (ct, xs, y, attrs) => {
    if (y.dtype !== 'float32') return xs.map(() => null);
    const axis = attrs.axis as number;
    let at = 0;
    return xs.map((x) => {
      const begin = x.shape.map((_, i) => (i === axis ? at : 0));
      at += x.shape[axis];
      return o.slice(ct, begin, [...x.shape]);
    });
  },
  // The batch stays where the first batched input has it; the others are moved (or broadcast) there.
  batch: (xs, dims, attrs, _y, size) => {
    const t = dims.find((d) => d !== null)!;
    const args = xs.map((x, i) => moveBatch(x, dims[i], t, size));
    return [apply('concat', args, { axis: shifted(attrs.axis as number, t) }), t];
  },
});

/** [outer, axisLen, inner] view of a shape around `axis`. */
function around(shape: Shape, axis: number): [number, number, number] {
  return [sizeOf(shape.slice(0, axis)), shape[axis], sizeOf(shape.slice(axis + 1))];
}

defineOp({
  name: 'gather',
  kind: 'other',
  infer: ([x, idx], attrs) => {
    const axis = attrs.axis as number;
    if (idx.dtype !== 'int32') throw new DTypeError(`gather: indices must be int32, got ${idx.dtype}`);
    return { shape: [...x.shape.slice(0, axis), ...idx.shape, ...x.shape.slice(axis + 1)], dtype: x.dtype };
  },
  reference: ([x, idx], attrs, out) => {
    const [outer, len, inner] = around(x.shape, attrs.axis as number);
    const n = idx.data.length;
    const res = new Float64Array(sizeOf(out.shape));
    for (let j = 0; j < n; j++) {
      const k = idx.data[j];
      if (k < 0 || k >= len)
        throw new ValueError(`gather: index ${k} is out of range for an axis of size ${len}`);
      for (let p = 0; p < outer; p++)
        for (let q = 0; q < inner; q++) res[(p * n + j) * inner + q] = x.data[(p * len + k) * inner + q];
    }
    return res;
  },
  jvp: ([t], [, idx], _y, attrs) => (t ? o.gather(t, idx, attrs.axis as number) : null),
  vjp: (ct, [x, idx], _y, attrs) => [
    x.dtype === 'float32' ? o.scatterAdd(ct, idx, attrs.axis as number, x.shape[attrs.axis as number]) : null,
    null,
  ],
  batch: batchGather,
});

defineOp({
  name: 'scatterAdd',
  kind: 'other',
  infer: ([u, idx], attrs) => {
    const axis = attrs.axis as number;
    const k = idx.shape.length;
    if (!shapeEq(u.shape.slice(axis, axis + k), idx.shape))
      throw new ShapeError(
        `scatterAdd: updates ${fmt(u.shape)} do not match indices ${fmt(idx.shape)} at axis ${axis}`,
      );
    return {
      shape: [...u.shape.slice(0, axis), attrs.dimSize as number, ...u.shape.slice(axis + k)],
      dtype: u.dtype,
    };
  },
  reference: ([u, idx], attrs, out) => {
    const axis = attrs.axis as number;
    const [outer, len, inner] = around(out.shape, axis);
    const n = idx.data.length;
    const res = new Float64Array(sizeOf(out.shape));
    for (let j = 0; j < n; j++) {
      const k = idx.data[j];
      if (k < 0 || k >= len)
        throw new ValueError(`scatterAdd: index ${k} is out of range for an axis of size ${len}`);
      for (let p = 0; p < outer; p++)
        for (let q = 0; q < inner; q++) res[(p * len + k) * inner + q] += u.data[(p * n + j) * inner + q];
    }
    return res;
  },
  jvp: ([t], [, idx], _y, attrs) =>
    t ? o.scatterAdd(t, idx, attrs.axis as number, attrs.dimSize as number) : null,
  vjp: (ct, [, idx], _y, attrs) => [o.gather(ct, idx, attrs.axis as number), null],
  batch: batchScatterAdd,
});

/**
 * gather(x, idx) along `axis`, per example. With only x batched the batch axis passes through;
 * with only the indices batched, their batch axis lands inside the index axes of the result.
 * With both, x becomes one [size·len, ...] table (batch and gathered axis adjacent) and the
 * indices are offset per example, so it is still one gather.
 */
function batchGather(
  [x, idx]: readonly Tensor[],
  [dx, di]: readonly BatchDim[],
  attrs: Attrs,
  _y: Tensor,
  size: number,
): [Tensor, BatchDim] {
  const axis = attrs.axis as number;
  if (di === null) {
    const b = dx!;
    const a = shifted(axis, b);
    return [apply('gather', [x, idx], { axis: a }), b < a ? b : b - 1 + idx.ndim];
  }
  if (dx === null) return [apply('gather', [x, idx], { axis }), axis + di];
  // x: [B, ...pre, len, ...post] -> [B, len, ...pre, ...post] -> [B·len, ...pre, ...post]
  const xb = moveBatch(x, dx, 0, size);
  const pre = xb.shape.slice(1, axis + 1);
  const len = xb.shape[axis + 1];
  const post = xb.shape.slice(axis + 2);
  const table = o.reshape(
    permute(xb, [0, axis + 1, ...pre.map((_, i) => i + 1), ...post.map((_, i) => i + axis + 2)]),
    [size * len, ...pre, ...post],
  );
  const ib = moveBatch(idx, di, 0, size); // [B, ...k]
  const g = apply('gather', [table, flatIndices(ib, size, len)], { axis: 0 }); // [B, ...k, ...pre, ...post]
  const k = ib.ndim - 1;
  // back to [B, ...pre, ...k, ...post]
  const perm = [
    0,
    ...pre.map((_, i) => 1 + k + i),
    ...Array.from({ length: k }, (_, i) => 1 + i),
    ...post.map((_, i) => 1 + k + pre.length + i),
  ];
  return [permute(g, perm), 0];
}

/**
 * scatterAdd(u, idx) along `axis` into dimSize slots, per example. With both batched (or only
 * the indices: the updates are then broadcast), updates go into one [size·dimSize, ...] table at
 * per-example offsets, then the batch is split off again.
 */
function batchScatterAdd(
  [u, idx]: readonly Tensor[],
  [du, di]: readonly BatchDim[],
  attrs: Attrs,
  _y: Tensor,
  size: number,
): [Tensor, BatchDim] {
  const axis = attrs.axis as number;
  const dimSize = attrs.dimSize as number;
  const k = idx.ndim - (di === null ? 0 : 1);
  if (di === null) {
    const b = du!;
    if (b <= axis) return [apply('scatterAdd', [u, idx], { axis: axis + 1, dimSize }), b];
    if (b >= axis + k) return [apply('scatterAdd', [u, idx], { axis, dimSize }), b - k + 1];
    // the batch sits among the index axes: move it first
    return [apply('scatterAdd', [moveBatch(u, b, 0, size), idx], { axis: axis + 1, dimSize }), 0];
  }
  // u: [B, ...pre, ...k, ...post] (an unbatched u is broadcast along the batch)
  const ub = moveBatch(u, du, 0, size);
  const ib = moveBatch(idx, di, 0, size);
  const pre = ub.shape.slice(1, axis + 1);
  const post = ub.shape.slice(axis + 1 + k);
  // -> [B, ...k, ...pre, ...post]
  const perm = [
    0,
    ...Array.from({ length: k }, (_, i) => axis + 1 + i),
    ...pre.map((_, i) => 1 + i),
    ...post.map((_, i) => axis + 1 + k + i),
  ];
  const s = apply('scatterAdd', [permute(ub, perm), flatIndices(ib, size, dimSize)], {
    axis: 0,
    dimSize: size * dimSize,
  }); // [B·dimSize, ...pre, ...post]
  const r = o.reshape(s, [size, dimSize, ...pre, ...post]);
  // -> [B, ...pre, dimSize, ...post]
  return [permute(r, [0, ...pre.map((_, i) => 2 + i), 1, ...post.map((_, i) => 2 + pre.length + i)]), 0];
}

export type { Tensor, TensorInfo };
