/**
 * The compiler passes, one by one: what each removes or keeps in the traced graph, and that the
 * numbers are still right afterwards (on the wasm kernels, against the float64 reference).
 */
import { describe, expect, it } from 'vitest';
import { full, grad, init, ones, type Tensor, tensor, trace } from '../src/index';
import * as o from '../src/ops/api';
import { getOp } from '../src/ops/registry';
import { realizeSync } from '../src/runtime/realize';
import { expectClose, randomTensor, rng, withReference } from './helpers';

const ops = (f: (...xs: Tensor[]) => Tensor, ...xs: Tensor[]) => trace(f, ...xs).nodes.map((n) => n.op);
const count = (names: string[], op: string) => names.filter((n) => n === op).length;

/** f on the wasm backend (optimized) against the reference interpreter. */
function agrees(f: () => Tensor, tol = 1e-6): void {
  const want = withReference(() => f().dataSync());
  expectClose(f().dataSync(), want, { rtol: tol, atol: tol });
}

describe('constant folding', () => {
  it('a sum of a fill is the fill times the count it sums', async () => {
    await init({ threads: 1 });
    expect(ops(() => o.sum(full([2, 3], 1.5)))).toEqual(['fill']);
    expect([...(await o.sum(full([2, 3], 1.5)).data())]).toEqual([9]);
    expect([...(await o.sum(full([2, 3], 1.5), 1).data())]).toEqual([4.5, 4.5]);
    expect([...(await o.sum(o.mul(ones([4, 5], 'int32'), 3), [0, 1]).data())]).toEqual([60]);
  });

  it('the gradient of a broadcast scalar counts every element it reached', async () => {
    const x = tensor([1, 2, 3]);
    const g = grad((b: Tensor) => o.sum(o.add(x, b)))(tensor(2));
    expect([...(await g.data())]).toEqual([3]);
    const g2 = grad((b: Tensor) => o.sum(o.mul(o.broadcastTo(b, [4, 3]), x)))(tensor(1));
    expect([...(await g2.data())]).toEqual([24]);
  });

  it('elementwise ops and data movement of fills fold; realized tensors never do', async () => {
    expect(ops(() => o.exp(o.transpose(o.add(full([2, 3], 1), 1))))).toEqual(['fill']);
    expect(await o.exp(o.transpose(o.add(full([2, 3], 1), 1))).data()).toEqual(
      new Float32Array(6).fill(Math.fround(Math.exp(2))),
    );
    const x = tensor([1, 2]);
    expect(ops((v: Tensor) => o.add(v, 1), x)).toContain('add');
  });
});

describe('common subexpressions', () => {
  it('merges identical nodes, keeps nodes with other attributes apart', async () => {
    const x = randomTensor([4, 3], rng(1));
    const same = ops((v: Tensor) => o.add(o.exp(o.sin(v)), o.exp(o.sin(v))), x);
    expect(count(same, 'exp')).toBe(1);
    expect(count(same, 'sin')).toBe(1);
    const f = (v: Tensor) => o.sub(o.slice(v, [0, 0], [2, 3]), o.slice(v, [2, 0], [2, 3]));
    expect(count(ops(f, x), 'slice')).toBe(2);
    agrees(() => f(x));
    const g = (v: Tensor) => o.add(o.sum(v, 0, true), o.max(v, 0, true));
    agrees(() => g(x));
  });
});

describe('dead code', () => {
  it('drops what no output needs', () => {
    const x = randomTensor([5], rng(2));
    const f = (v: Tensor) => {
      o.exp(o.cos(v)); // computed and dropped
      return o.sin(v);
    };
    const names = ops(f, x);
    expect(names).not.toContain('exp');
    expect(names).not.toContain('cos');
    expect(names).toContain('sin');
  });
});

describe('algebraic simplification', () => {
  it('removes x + 0, x * 1, x / 1 and double negation; never folds x * 0', async () => {
    const x = tensor([1, Number.NaN, Number.POSITIVE_INFINITY, -2]);
    const names = ops((v: Tensor) => o.neg(o.neg(o.div(o.mul(o.add(v, 0), 1), 1))), x);
    expect(names.filter((n) => n !== 'input')).toEqual([]);
    expect(ops((v: Tensor) => o.neg(v), x)).toContain('neg');
    const zeroed = await o.mul(x, 0).data();
    expect(Number.isNaN(zeroed[1]) && Number.isNaN(zeroed[2])).toBe(true);
    expect([zeroed[0], zeroed[3]]).toEqual([0, -0]);
    expect([...(await o.neg(o.neg(x)).data())]).toEqual([1, Number.NaN, Number.POSITIVE_INFINITY, -2]);
  });

  it('chained transposes become one (or none); a last-two-axes transpose becomes a matmul flag', () => {
    const r = rng(3);
    const x = randomTensor([2, 3, 4, 5], r);
    const twice = (v: Tensor) => o.transpose(o.transpose(v, [0, 2, 1, 3]), [0, 1, 3, 2]);
    const g = trace(twice, x);
    expect(g.nodes.filter((n) => n.op === 'transpose').map((n) => n.attrs.perm)).toEqual([[0, 2, 3, 1]]);
    agrees(() => twice(x));
    expect(ops((v: Tensor) => o.transpose(o.transpose(v, [1, 2, 3, 0]), [3, 0, 1, 2]), x)).toEqual(['input']);
    // op(a) [.., 6, 4] times op(transpose(b)) [.., 4, 5], both flag settings
    for (const [ta, tb] of [
      [false, false],
      [true, true],
    ]) {
      const a = randomTensor(ta ? [2, 3, 4, 6] : [2, 3, 6, 4], r);
      const b = randomTensor(tb ? [3, 4, 5] : [3, 5, 4], r);
      const twiceA = o.transpose(o.transpose(a, [0, 1, 3, 2]), [0, 1, 3, 2]);
      const f = () => o.matmulT(twiceA, o.transpose(b, [0, 2, 1]), ta, tb);
      const mm = trace(f).nodes.filter((n) => n.op !== 'input' && n.op !== 'const');
      // b's transpose is the flag; a's double transpose cancels
      expect(mm.map((n) => [n.op, n.attrs.transA, n.attrs.transB])).toEqual([['matmul', ta, !tb]]);
      agrees(f, 1e-5);
    }
  });
});

describe('outer products', () => {
  it('a matmul over a contracted dimension of 1 becomes a broadcasting multiply (large enough outputs)', () => {
    const r = rng(4);
    const cases: [number[], number[], boolean, boolean][] = [
      [[40, 1], [1, 30], false, false],
      [[1, 40], [1, 30], true, false],
      [[3, 40, 1], [30, 1], false, true],
      [[2, 1, 1, 40], [3, 1, 30], true, false],
    ];
    for (const [sa, sb, ta, tb] of cases) {
      const a = randomTensor(sa, r);
      const b = randomTensor(sb, r);
      const f = () => o.matmulT(a, b, ta, tb);
      const names = ops(() => f());
      expect(names).toContain('mul');
      expect(names).not.toContain('matmul');
      // the same numbers as the matmul's own float64 reference
      const y = f();
      const want = getOp('matmul').reference(
        [a, b].map((t) => ({ data: Float64Array.from(t.dataSync()), shape: t.shape })),
        { transA: ta, transB: tb },
        y,
      );
      expectClose(y.dataSync(), want, { rtol: 1e-6, atol: 1e-7 });
      agrees(f);
    }
    // tiny products stay matmuls
    expect(ops(() => o.matmul(tensor([[2]]), tensor([[3]])))).toContain('matmul');
  });
});

describe('fusion', () => {
  it('a fused chain whose intermediates are also outputs, or feed other kernels', async () => {
    await init({ threads: 1 });
    const r = rng(3);
    const x = randomTensor([37, 29], r);
    const b = randomTensor([29], r);
    const f = () => {
      const h = o.tanh(o.add(o.mul(x, 2), b));
      const y = o.exp(o.neg(o.square(h)));
      return o.add(o.sum(h, 1), o.sum(o.mul(y, h), 1)); // h feeds a reduction and the chain
    };
    agrees(f);
    const [h, y] = withReference(() => {
      const h = o.sigmoid(o.sub(x, b));
      return [h, o.mul(h, h)].map((t) => t.dataSync());
    });
    const hw = o.sigmoid(o.sub(x, b));
    const yw = o.mul(hw, hw);
    realizeSync([hw, yw]); // one run, one fused group with two outputs
    const both = [await hw.data(), await yw.data()];
    expectClose(both[0], h);
    expectClose(both[1], y);
  });
});
