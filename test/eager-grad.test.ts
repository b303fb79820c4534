/**
 * Eager valueAndGrad compiled by structure (src/runtime/eager-grad.ts): the first call with a
 * forward structure stays lazy, the second compiles value and gradients together, later ones run
 * that program without building the backward graph. Each call must still use its own values
 * (arguments, closed-over tensors, weak scalars), its own variables, and custom rules as they
 * are at that call.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import '../src/index';
import { tensor } from '../src/creation';
import { nn } from '../src/index';
import * as o from '../src/ops/api';
import { customVjp } from '../src/ops/custom';
import { init } from '../src/runtime/init';
import { nextTensorId, type Tensor } from '../src/tensor';
import { valueAndGrad } from '../src/transforms/transforms';
import { expectClose, randomTensor, rng } from './helpers';

beforeAll(async () => {
  await init({ backend: 'wasm', threads: 1 });
});

/** Tensors made by one call: the backward graph's nodes count here, so a cached run makes far fewer. */
function made<T>(body: () => T): [T, number] {
  const first = nextTensorId();
  const out = body();
  return [out, nextTensorId() - first];
}

describe('eager valueAndGrad by structure', () => {
  it('later calls run the cached program, each on its own arguments and closed-over tensors', () => {
    const r = rng(11);
    let w = randomTensor([5, 1], r);
    const f = (x: Tensor, s: number) => o.sum(o.mul(o.sin(o.mul(x, w)), s));
    const vg = valueAndGrad(f);
    const counts: number[] = [];
    for (let i = 0; i < 5; i++) {
      const x = randomTensor([5, 3], r);
      w = randomTensor([5, 1], r); // a new closed-over value each call, same structure
      const s = 0.5;
      const [[v, g], n] = made(() => vg(x, s));
      counts.push(n);
      expect(g.isRealized, `call ${i}`).toBe(i >= 1);
      const xw = o.mul(x, w);
      expectClose(v, o.sum(o.mul(o.sin(xw), s)), { rtol: 1e-5 });
      expectClose(g, o.mul(o.mul(o.cos(xw), w), s), { rtol: 1e-5, atol: 1e-6 });
    }
    // the cached runs build the forward only: f's nodes, the variable and the gradient's tensor
    const x0 = randomTensor([5, 3], r);
    const [, forward] = made(() => f(x0, 0.5));
    expect(counts.slice(2)).toEqual([forward + 2, forward + 2, forward + 2]);
    expect(counts[0]).toBeGreaterThan(forward + 2);
    // a scalar is a fill node whose value is part of the structure: another value, another program
    const x = randomTensor([5, 3], r);
    for (const s of [2, 3, 2, 3, 2, 3])
      expectClose(vg(x, s)[1], o.mul(o.mul(o.cos(o.mul(x, w)), w), s), { rtol: 1e-5 });
  });

  it('variables are part of the key: the same graph with the variables swapped gets its own program', () => {
    // sum(a·b²) and sum(b·a²) have the same forward graph; only which node is variable 0 differs
    const f1 = valueAndGrad((a: Tensor, b: Tensor) => o.sum(o.mul(a, o.square(b))), [0, 1]);
    const f2 = valueAndGrad((a: Tensor, b: Tensor) => o.sum(o.mul(b, o.square(a))), [0, 1]);
    const a = tensor([1, 2, 3]);
    const b = tensor([-0.5, 0.25, 2]);
    for (let i = 0; i < 4; i++) {
      const [, [ga1, gb1]] = f1(a, b) as [Tensor, Tensor[]];
      const [, [ga2, gb2]] = f2(a, b) as [Tensor, Tensor[]];
      expectClose(ga1, o.square(b), { rtol: 1e-6 });
      expectClose(gb1, o.mul(o.mul(a, b), 2), { rtol: 1e-6 });
      expectClose(ga2, o.mul(o.mul(a, b), 2), { rtol: 1e-6 });
      expectClose(gb2, o.square(a), { rtol: 1e-6 });
    }
  });

  it('a value read inside f keeps its history and is differentiated through, call after call', () => {
    // dataSync inside f realizes sin(a) but keeps its history (a transform is tracing): the
    // backward reaches x behind it, which the forward's walk from the output does not
    const f = (x: Tensor) => {
      const b = o.sin(o.mul(x, 2));
      b.dataSync();
      return o.sum(o.mul(b, 3));
    };
    const vg = valueAndGrad(f);
    for (let i = 0; i < 4; i++) {
      const x = tensor([0.1 * i, -0.3, 0.7 + i]);
      expectClose(vg(x)[1], o.mul(o.cos(o.mul(x, 2)), 6), { rtol: 1e-6, atol: 1e-7 });
    }
  });

  it("the library's own rules (nn.batchNorm's, logsumexp's) depend only on structure: cached like the registry's", () => {
    const r = rng(12);
    const { params, state } = nn.batchNorm.init(3);
    const w = randomTensor([4, 2, 3], r);
    const f = (p: typeof params, x: Tensor) =>
      o.add(o.sum(o.mul(nn.batchNorm.apply(p, state, x)[0], w)), o.logsumexp(x));
    const vg = valueAndGrad(f, [0, 1]);
    const counts: number[] = [];
    for (let i = 0; i < 4; i++) {
      const x = randomTensor([4, 2, 3], r);
      const [[, [gp, gx]], n] = made(() => vg(params, x) as [Tensor, [typeof params, Tensor]]);
      counts.push(n);
      expect(gx.isRealized, `call ${i}`).toBe(i >= 1);
      // against the lazy path (a transform inside a transform is never cached)
      const [, [wantP, wantX]] = valueAndGrad((q: typeof params, t: Tensor) => o.mul(f(q, t), 1), [0, 1])(
        params,
        x,
      ) as [Tensor, [typeof params, Tensor]];
      expectClose(gx, wantX, { rtol: 1e-5, atol: 1e-6 });
      expectClose(gp.gamma, wantP.gamma, { rtol: 1e-5, atol: 1e-6 });
    }
    // the cached runs build the forward only (no backward graph): the same count each time, fewer than the first call
    expect(counts[3]).toBe(counts[2]);
    expect(counts[2]).toBeLessThan(counts[0]);
  });

  it('a function with custom rules is not cached: the rule runs on every call, with what it closes over then', () => {
    let k = 1;
    const scaled = customVjp(
      function scaled(x: Tensor) {
        return o.square(x);
      },
      (x: Tensor) => [o.square(x), x],
      (x: Tensor, ct: Tensor) => [o.mul(ct, o.mul(x, k))],
    );
    const vg = valueAndGrad((x: Tensor) => o.sum(scaled(x)));
    const x = tensor([0.5, -1, 2]);
    for (k = 1; k <= 4; k++) expectClose(vg(x)[1], o.mul(x, k), { rtol: 1e-6 });
  });
});
