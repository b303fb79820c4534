/** Bad input raises a typed error at the call that made it, and leaves existing tensors intact. */
import { describe, expect, it } from 'vitest';
import { arange, tensor } from '../src/creation';
import {
  AxisError,
  ConcretizationError,
  DisposedError,
  DTypeError,
  grad,
  jit,
  PytreeError,
  ShapeError,
  TransformError,
  ValueError,
} from '../src/index';
import * as o from '../src/ops/api';
import { apply } from '../src/ops/registry';
import { trace } from '../src/runtime/jit';
import type { Tensor } from '../src/tensor';

describe('typed errors', () => {
  it('shape mismatch names the op and both shapes', () => {
    const a = tensor([[1, 2, 3]]);
    const b = tensor([
      [1, 2],
      [3, 4],
    ]);
    expect(() => o.add(a, b)).toThrow(ShapeError);
    expect(() => o.add(a, b)).toThrow(/add: shapes \[1, 3\] and \[2, 2\] cannot be broadcast/);
    expect(() => o.matmul(a, b)).toThrow(
      /matmul: inner dimensions differ \(3 vs 2\) for shapes \[1, 3\] and \[2, 2\]/,
    );
    expect(() => o.reshape(a, [2, 2])).toThrow(/reshape: cannot reshape \[1, 3\]/);
    expect(() => o.concat([a, b], 0)).toThrow(/concat: shapes \[1, 3\] and \[2, 2\] differ outside axis 0/);
    expect(() => o.slice(a, [0, 2], [1, 2])).toThrow(ShapeError);
  });

  it("softmax's masks: the last axis, no more rows than columns, an int32 [K, cols] keep with K dividing the rows", () => {
    const x = o.reshape(arange(24), [2, 3, 4]);
    const keep = (data: number[], shape: number[]) =>
      tensor(Int32Array.from(data), { shape, dtype: 'int32' });
    const sm = (inputs: Tensor[], attrs: Record<string, unknown>) => apply('softmax', inputs, attrs);
    expect(() => sm([x], { axis: 1, causal: true })).toThrow(
      /softmax: a mask needs the last axis, got axis 1 of \[2, 3, 4\]/,
    );
    expect(() => sm([o.reshape(x, [2, 4, 3])], { axis: 2, causal: true })).toThrow(
      /softmax: a causal mask needs at least as many columns as rows, got \[2, 4, 3\]/,
    );
    const k5 = keep([1, 0, 1, 1, 1], [5, 1]);
    for (const [k, what] of [
      [keep([1, 0, 1], [1, 3]), 'int32 [1, 3]'],
      [k5, 'int32 [5, 1]'],
      [keep([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], [5, 4]), 'int32 [5, 4]'],
      [o.cast(keep([1, 1, 1, 1], [1, 4]), 'float32'), 'float32 [1, 4]'],
    ] as const) {
      expect(() => sm([x, k], { axis: 2 })).toThrow(ShapeError);
      expect(() => sm([x, k], { axis: 2 })).toThrow(
        `softmax: keep must be int32 [K, 4] with K dividing the 6 rows of x [2, 3, 4], got ${what}`,
      );
    }
    // K = 2 and 3 divide the 6 rows
    expect(sm([x, keep([1, 1, 0, 1, 0, 1, 1, 1], [2, 4])], { axis: 2 }).shape).toEqual([2, 3, 4]);
    expect(sm([x, keep(new Array(12).fill(1), [3, 4])], { axis: 2, causal: true }).shape).toEqual([2, 3, 4]);
  });

  it('axis out of range', () => {
    const a = tensor([[1, 2, 3]]);
    expect(() => o.sum(a, 2)).toThrow(AxisError);
    expect(() => o.sum(a, 2)).toThrow(
      /sum: axis 2 is out of range for a tensor of rank 2 \(valid: -2\.\.1\)/,
    );
    expect(() => o.softmax(a, -3)).toThrow(AxisError);
    expect(() => o.concat([a, a], 5)).toThrow(AxisError);
    expect(() => o.gather(a, [0], 3)).toThrow(AxisError);
    expect(() => o.sum(a, [1, -1])).toThrow(/repeated axis/);
  });

  it('grad of a non-scalar', () => {
    expect(() => grad((x: Tensor) => o.mul(x, 2))(tensor([1, 2]))).toThrow(TransformError);
    expect(() => grad((x: Tensor) => o.mul(x, 2))(tensor([1, 2]))).toThrow(
      /must return a scalar \(shape \[\]\), got shape \[2\]/,
    );
    expect(() => grad(() => 3)(tensor([1]))).toThrow(/must return a scalar Tensor, got number/);
  });

  it('grad with respect to an int32 input', () => {
    const i = tensor([1, 2], { dtype: 'int32' });
    expect(() => grad((x: Tensor) => o.sum(x))(i)).toThrow(DTypeError);
    expect(() => grad((x: Tensor) => o.sum(x))(i)).toThrow(/argument 0 is int32; derivatives need float32/);
  });

  it('a pytree leaf that is not a tensor', () => {
    const f = (p: { w: Tensor; b: unknown }) => o.sum(p.w);
    expect(() => grad(f)({ w: tensor([1]), b: 'bias' })).toThrow(PytreeError);
    expect(() => grad(f)({ w: tensor([1]), b: 'bias' })).toThrow(/leaf 'b' is a string, not a Tensor/);
    expect(() => grad(f)({ w: tensor([1]), b: [new Date()] })).toThrow(/leaf 'b\[0\]' is a Date/);
  });

  it('bad argnums, bad creation arguments, gather index out of range', () => {
    expect(() => grad((x: Tensor) => o.sum(x), 3)(tensor([1]))).toThrow(/argnums 3 is out of range/);
    expect(() => tensor([[1, 2], [3]])).toThrow(ValueError);
    expect(() => tensor([1, 2, 3], { shape: [2, 2] })).toThrow(/3 values do not fill shape \[2, 2\]/);
    const g = o.gather(tensor([1, 2, 3]), tensor([5], { dtype: 'int32' }));
    expect(() => g.dataSync()).toThrow(/gather: index 5 is out of range for an axis of size 3/);
  });

  it('reading a traced value inside jit/trace is a ConcretizationError', () => {
    expect(() =>
      trace(
        (x: Tensor) => {
          x.dataSync();
          return x;
        },
        tensor([1]),
      ),
    ).toThrow(ConcretizationError);
    expect(() => jit((x: Tensor) => o.mul(x, x.dataSync()[0]))(tensor([1]))).toThrow(ConcretizationError);
  });

  it('using a disposed tensor', () => {
    const a = tensor([1, 2]);
    a.dispose();
    expect(() => o.add(a, 1)).toThrow(DisposedError);
    expect(() => a.dataSync()).toThrow(DisposedError);
  });

  it('a failed call leaves existing tensors intact', async () => {
    const w = tensor([1, 2, 3]);
    const lazy = o.mul(w, 2);
    expect(() => o.add(w, tensor([1, 2]))).toThrow(ShapeError);
    expect(() => grad((x: Tensor) => o.mul(x, w))(tensor([1, 2, 3]))).toThrow(TransformError);
    const bad = o.gather(w, tensor([9], { dtype: 'int32' }));
    expect(() => o.add(lazy, o.sum(bad)).dataSync()).toThrow(ValueError);
    expect(lazy.isRealized).toBe(false);
    expect([...(await lazy.data())]).toEqual([2, 4, 6]);
    expect([...(await w.data())]).toEqual([1, 2, 3]);
  });
});
