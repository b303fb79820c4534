/** Regressions found in review: each case once returned a wrong number or the wrong error. */
import { describe, expect, it } from 'vitest';
import {
  AdjointError,
  DisposedError,
  full,
  grad,
  io,
  jit,
  nn,
  ones,
  shutdown,
  type Tensor,
  tensor,
  trace,
  valueAndGrad,
  where,
} from '../src/index';
import * as o from '../src/ops/api';
import { expectClose } from './helpers';

describe('cache keys tell non-finite numbers and -0 apart', () => {
  it('eager fills', async () => {
    const x = tensor([1, 2, 3]);
    expect([...(await x.add(Number.NEGATIVE_INFINITY).data())]).toEqual([-Infinity, -Infinity, -Infinity]);
    expect([...(await x.add(Number.POSITIVE_INFINITY).data())]).toEqual([Infinity, Infinity, Infinity]);
    expect([...(await x.add(Number.NaN).data())].every(Number.isNaN)).toBe(true);
  });

  it('CSE keeps +Infinity and -Infinity fills apart', async () => {
    const m = tensor([1, 0, 1], { dtype: 'int32' });
    const y = where(m, full([3], Number.POSITIVE_INFINITY), full([3], Number.NEGATIVE_INFINITY));
    expect([...(await y.data())]).toEqual([Infinity, -Infinity, Infinity]);
    const g = trace((c: Tensor) => where(c, full([3], Infinity), full([3], -Infinity)), m);
    expect(g.nodes.filter((n) => n.op === 'fill')).toHaveLength(2);
  });

  it('jit static arguments and plans', () => {
    const x = tensor([1, 2]);
    const f = jit((t: Tensor, k: number) => t.add(k));
    expect([...f(x, Number.POSITIVE_INFINITY).dataSync()]).toEqual([Infinity, Infinity]);
    expect([...f(x, Number.NEGATIVE_INFINITY).dataSync()]).toEqual([-Infinity, -Infinity]);
    const negZero = jit((t: Tensor) => t.mul(-0))(tensor([1]));
    const zero = jit((t: Tensor) => t.mul(0))(tensor([1]));
    expect(Object.is(negZero.dataSync()[0], -0)).toBe(true);
    expect(Object.is(zero.dataSync()[0], 0)).toBe(true);
  });
});

describe('compiled programs are cached by structure', () => {
  it('the same ops wired differently get programs of their own', async () => {
    const a = tensor([0.5, 1, 2]);
    // a walk meets a, sin(a), then the sub in both; only the sub's inputs are swapped
    const ahead = [...(await o.sub(o.sin(a), a).data())];
    const behind = [...(await o.sub(a, o.sin(a)).data())];
    expectClose(
      ahead,
      [0.5, 1, 2].map((v) => Math.sin(v) - v),
      { rtol: 1e-6 },
    );
    expectClose(
      behind,
      [0.5, 1, 2].map((v) => v - Math.sin(v)),
      { rtol: 1e-6 },
    );
    // and a value and its gradient computed together, then each alone
    const f = (x: Tensor) => o.sum(o.mul(o.sin(x), x));
    const [v, g] = valueAndGrad(f)(a) as [Tensor, Tensor];
    expectClose(await v.data(), [0.5 * Math.sin(0.5) + Math.sin(1) + 2 * Math.sin(2)], { rtol: 1e-6 });
    expectClose(
      await g.data(),
      [0.5, 1, 2].map((v) => Math.sin(v) + v * Math.cos(v)),
      { rtol: 1e-5 },
    );
  });
});

describe('jit', () => {
  it('unused tensor arguments do not shift the others', async () => {
    expect([...(await jit((_a: Tensor, b: Tensor) => b.add(1))(tensor([1]), tensor([2])).data())]).toEqual([
      3,
    ]);
    const [p] = jit((_a: Tensor, b: Tensor, c: Tensor) => [b.add(1), c.sum()])(
      tensor([9]),
      tensor([5, 6], { dtype: 'int32' }),
      ones([20]).add(0),
    );
    expect([...(await p.data())]).toEqual([6, 7]);
  });

  it('a disposed tensor the function closed over is a DisposedError', () => {
    const w = ones([4]).add(0);
    w.dataSync();
    const f = jit((x: Tensor) => x.mul(w));
    f(ones([4]));
    w.dispose();
    expect(() => f(ones([4]))).toThrow(DisposedError);
  });
});

describe('values', () => {
  it('data() returns a copy: mutating it does not change the tensor', async () => {
    const t = ones([32]).add(1);
    const d = await t.data();
    d[0] = 100;
    expect((await t.data())[0]).toBe(2);
    expect((await t.mul(1).data())[0]).toBe(2);
  });

  it('float -> int32 casts saturate the same way on every path', () => {
    const folded = full([3], 3e9).cast('int32').dataSync();
    const computed = tensor([3e9, -3e9, Number.NaN]).cast('int32').dataSync();
    expect([...folded]).toEqual([2147483647, 2147483647, 2147483647]);
    expect([...computed]).toEqual([2147483647, -2147483648, 0]);
  });

  it('softmax cross-entropy with a -Infinity logit on a non-target class', () => {
    const l = nn.softmaxCrossEntropy(
      tensor([[0, Number.NEGATIVE_INFINITY]]),
      tensor([0], { dtype: 'int32' }),
    );
    expect(l.dataSync()[0]).toBe(0);
  });

  it('softmax cross-entropy with an out-of-range class id is NaN, not a silent 0', () => {
    const l = nn.softmaxCrossEntropy(
      tensor([
        [1, 2],
        [3, 4],
      ]),
      tensor([0, 5], { dtype: 'int32' }),
    );
    expect(Number.isNaN(l.dataSync()[0])).toBe(true);
    const ok = nn.softmaxCrossEntropy(
      tensor([
        [1, 2],
        [3, 4],
      ]),
      tensor([0, 1], { dtype: 'int32' }),
    );
    expect(Number.isFinite(ok.dataSync()[0])).toBe(true);
  });

  it('transpose accepts negative axes', () => {
    expect(o.transpose(tensor([[1, 2, 3]]), [-1, 0]).shape).toEqual([3, 1]);
  });

  it('d/da a^0 at a = 0 is 0, as in JAX', () => {
    expect([...grad((a: Tensor) => o.pow(a, 0).sum())(tensor([0, 2])).dataSync()]).toEqual([0, 0]);
  });
});

describe('errors and siblings', () => {
  it('reading a gradient does not fail because of a disposed tensor only the loss read', async () => {
    const w = tensor([1, 2]);
    const d = tensor([5]);
    const [, g] = valueAndGrad((a: Tensor, b: Tensor) => o.sum(a.mul(2)).add(o.sum(b)), [0, 1])(w, d);
    d.dispose();
    expect([...(await (g as Tensor[])[0].data())]).toEqual([2, 2]);
  });

  it('shutdown is exported, and overlapping init calls leave one pool', async () => {
    expect(typeof shutdown).toBe('function');
    const { init, memoryStats } = await import('../src/index');
    await Promise.all([init({ threads: 2 }), init({ threads: 2 })]);
    expect(memoryStats().backend).toBe('wasm');
    expect([...(await tensor([1, 2]).add(1).data())]).toEqual([2, 3]);
  });

  it('CheckpointError is an AdjointError', () => {
    expect(() => io.loadSafetensors(new Uint8Array(3))).toThrow(AdjointError);
  });
});
