/**
 * Helpers for the batching rules of vmap (each op's `batch` in the registry). A batched value is
 * a tensor plus the axis that holds the batch (null: the same value for every example). Rules
 * move batch axes only where an op needs it; moves of size-1 axes are reshapes, not copies.
 */
import { arange } from '../creation';
import { sizeOf } from '../shape';
import type { Attrs, Tensor } from '../tensor';
import * as o from './api';
import { apply, type BatchDim, type BatchRule } from './registry';

/** x with its axes permuted; a reshape (no copy) when only size-1 axes change places. */
export function permute(x: Tensor, perm: readonly number[]): Tensor {
  if (perm.every((p, i) => p === i)) return x;
  const moved = perm.filter((p) => x.shape[p] !== 1);
  if (moved.every((p, i) => i === 0 || p > moved[i - 1]))
    return o.reshape(
      x,
      perm.map((p) => x.shape[p]),
    );
  return o.transpose(x, perm);
}

/**
 * Moves the batch axis of x from `from` to `to`. An unbatched x (from = null) is broadcast:
 * the batch axis is inserted at `to` with the batch size.
 */
export function moveBatch(x: Tensor, from: BatchDim, to: number, size: number): Tensor {
  if (from === null) {
    const s = [...x.shape];
    s.splice(to, 0, 1);
    const e = o.reshape(x, s);
    s[to] = size;
    return o.broadcastTo(e, s);
  }
  if (from === to) return x;
  const perm = x.shape.map((_, i) => i).filter((i) => i !== from);
  perm.splice(to, 0, from);
  return permute(x, perm);
}

/** Inserts `v` at position `at` of a list (attribute arrays gain an entry for the batch axis). */
export function insertAt<T>(xs: readonly T[], at: number, v: T): T[] {
  const out = [...xs];
  out.splice(at, 0, v);
  return out;
}

/** The batched position of per-example axis `a` when the batch axis sits at `b`. */
export const shifted = (a: number, b: number): number => (a < b ? a : a + 1);

/**
 * The batched x (batch at `d`, per-example rank x.ndim - 1) as rank r + 1 with the batch at axis
 * 0 and the per-example axes right-aligned (leading 1s), so it broadcasts like the per-example
 * value did against rank-r operands.
 */
export function batchFirst(x: Tensor, d: BatchDim, r: number, size: number): Tensor {
  const z = moveBatch(x, d, 0, size);
  const pad = r - (z.ndim - 1);
  if (pad <= 0) return z;
  return o.reshape(z, [size, ...new Array<number>(pad).fill(1), ...z.shape.slice(1)]);
}

/**
 * Broadcasting n-ary elementwise ops (and where): the batch stays where the first full-rank
 * batched operand has it; other operands are aligned to it (unbatched ones by a reshape only
 * when the numpy alignment would otherwise put their axes against the batch axis).
 */
export function elementwiseRule(name: string): BatchRule {
  return (xs, dims, attrs, y, size) => {
    const r = y.ndim;
    let t = 0;
    for (let i = 0; i < xs.length; i++)
      if (dims[i] !== null && xs[i].ndim - 1 === r) {
        t = dims[i]!;
        break;
      }
    const args = xs.map((x, i) => {
      const d = dims[i];
      if (d === null) {
        if (t <= r - x.ndim) return x;
        const s = [...new Array<number>(r - x.ndim).fill(1), ...x.shape];
        s.splice(t, 0, 1);
        return o.reshape(x, s);
      }
      if (x.ndim - 1 === r && d === t) return x;
      return moveBatch(batchFirst(x, d, r, size), 0, t, size);
    });
    return [apply(name, args, attrs), t];
  };
}

/** Ops that map each element independently with one input (unary math, cast, identity...). */
export function unaryRule(name: string): BatchRule {
  return ([x], [d], attrs) => [apply(name, [x], attrs), d];
}

/** Ops with an `axis` attribute that keep the shape (softmax, logSoftmax). */
export function axisRule(name: string): BatchRule {
  return ([x], [d], attrs) => [apply(name, [x], { ...attrs, axis: shifted(attrs.axis as number, d!) }), d];
}

/** Reductions over attrs.axes with attrs.keepdims. */
export function reduceRule(name: string): BatchRule {
  return ([x], [d], attrs) => {
    const b = d!;
    const axes = attrs.axes as number[];
    const out = attrs.keepdims ? b : b - axes.filter((a) => a < b).length;
    return [apply(name, [x], { ...attrs, axes: axes.map((a) => shifted(a, b)) }), out];
  };
}

/** Sources have no inputs, so they are never batched: the rule returns the node unchanged. */
export const sourceRule: BatchRule = (_xs, _dims, _attrs, y) => [y, null];

/**
 * Flat indices into a [size * len, ...] view of per-example data: example b's index k becomes
 * b·len + k. Indices out of [0, len) become -1, so the kernels' bounds checks still catch them
 * instead of reading another example's row.
 */
export function flatIndices(idx: Tensor, size: number, len: number): Tensor {
  const offsets = o.reshape(o.mul(arange(0, size), len), [size, ...new Array<number>(idx.ndim - 1).fill(1)]);
  const inRange = o.mul(o.greater(idx, -1), o.less(idx, len));
  return o.where(inRange, o.add(idx, offsets), -1);
}

export type { Attrs, BatchDim, BatchRule, Tensor };
export { sizeOf };
