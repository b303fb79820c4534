/**
 * Values of the added ops against known values (numpy / scipy / TensorFlow.js conventions), on the
 * wasm backend and the reference interpreter, plus the gradients the op specs cannot reach: prod at
 * zeros, clip at its bounds, zero derivatives of floor/ceil/round, and argmin under vmap.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { tensor } from '../src/creation';
import * as o from '../src/ops/api';
import { erfReference } from '../src/ops/defs/elementwise';
import { init } from '../src/runtime/init';
import type { Tensor } from '../src/tensor';
import { grad } from '../src/transforms/transforms';
import { vmap } from '../src/transforms/vmap';
import { expectClose, withReference } from './helpers';

beforeAll(async () => {
  await init({ backend: 'wasm' });
});

const t = (x: number[] | number[][]) => tensor(x);

/** erf at points from scipy.special.erf. */
const ERF: [number, number][] = [
  [0, 0],
  [1e-3, 0.0011283787909692363],
  [0.1, 0.1124629160182849],
  [0.4999, 0.5204119951613866],
  [0.5, 0.5204998778130465],
  [1, 0.8427007929497149],
  [-1.5, -0.9661051464753108],
  [2, 0.9953222650189527],
  [3, 0.9999779095030014],
  [4.5, 0.9999999998033839],
  [-10, -1],
];

describe.each([
  ['wasm', <T>(f: () => T) => f()],
  ['reference', withReference],
])('new ops on %s', (_name, run) => {
  it('rsqrt, floor, ceil, round (half to even)', () =>
    run(() => {
      expectClose(o.rsqrt(t([4, 0.25, 1])), [0.5, 2, 1]);
      expectClose(o.floor(t([-1.5, 1.5, 2, -0.2])), [-2, 1, 2, -1]);
      expectClose(o.ceil(t([-1.5, 1.5, 2, -0.2])), [-1, 2, 2, -0]);
      expectClose(o.round(t([0.5, 1.5, 2.5, -0.5, -1.5, 1.4, -2.6])), [0, 2, 2, -0, -2, 1, -3]);
    }));

  it('erf matches scipy to float32 precision', () =>
    run(() => {
      expectClose(
        o.erf(t(ERF.map(([x]) => x))),
        ERF.map(([, v]) => v),
        { rtol: 1e-6, atol: 2e-7 },
      );
    }));

  it('activations: elu, leakyRelu, silu, gelu (tanh and exact)', () =>
    run(() => {
      const x = t([-2, -1, 0, 1, 3]);
      expectClose(o.elu(x), [Math.exp(-2) - 1, Math.exp(-1) - 1, 0, 1, 3]);
      expectClose(o.leakyRelu(x), [-0.4, -0.2, 0, 1, 3]);
      expectClose(o.leakyRelu(x, 0.01), [-0.02, -0.01, 0, 1, 3]);
      expectClose(
        o.silu(x),
        [-0.2384058440442351, -0.2689414213699951, 0, 0.7310585786300049, 2.8577223804672998],
      );
      // torch.nn.functional.gelu(x) and gelu(x, approximate='tanh')
      expectClose(
        o.gelu(x, { approximate: false }),
        [-0.04550026389635842, -0.15865525393145707, 0, 0.8413447460685429, 2.99595030590511],
      );
      expectClose(
        o.gelu(x),
        [-0.04540230591222494, -0.15880800939172324, 0, 0.8411919906082768, 2.996362607918227],
      );
      // elu's gradient stays finite where exp would overflow in the unselected branch
      expectClose(grad((y) => o.sum(o.elu(y)))(t([100, -1])), [1, Math.exp(-1)]);
    }));

  it('clip: values, gradient 1 inside and at the bounds, 0 outside', () =>
    run(() => {
      const x = t([-2, -1, 0.5, 1, 3]);
      expectClose(o.clip(x, -1, 1), [-1, -1, 0.5, 1, 1]);
      expectClose(grad((y) => o.sum(o.clip(y, -1, 1)))(x), [0, 1, 1, 1, 0]);
    }));

  it('prod and its gradient at zeros', () =>
    run(() => {
      const x = t([
        [1, 2, 3],
        [4, 5, 6],
      ]);
      expectClose(o.prod(x, 1), [6, 120]);
      expectClose(o.prod(x), 720);
      expectClose(o.prod(x, 0, true), [4, 10, 18]);
      expectClose(o.prod(tensor(new Float32Array(0), { shape: [2, 0] }), 1), [1, 1]);
      const g = grad((y) => o.sum(o.prod(y, 1)));
      expectClose(g(t([[2, 3, 4]])), [12, 8, 6]);
      expectClose(g(t([[2, 0, 3]])), [0, 6, 0]);
      expectClose(g(t([[0, 0, 3]])), [0, 0, 0]);
      // second derivative through the zero guard: d²/dx0dx1 of x0·x1·x2 at (2, 0, 3) is x2
      const h = grad((y) => o.sum(o.mul(g(y), t([[0, 1, 0]]))));
      expectClose(h(t([[2, 0, 3]])), [3, 0, 2]);
    }));

  it('variance (population, like numpy var and tf.moments)', () =>
    run(() => {
      const x = t([
        [1, 2],
        [3, 5],
      ]);
      expectClose(o.variance(x, 1), [0.25, 1]);
      expectClose(o.variance(x), 2.1875);
      expectClose(o.variance(x, 0, true), [1, 2.25]);
      expect(o.variance(x, 0, true).shape).toEqual([1, 2]);
    }));

  it('argmin: first occurrence, nan first, int32, flattened', () =>
    run(() => {
      const x = t([
        [3, 1, 1],
        [0, 5, -2],
      ]);
      expect(Array.from(o.argmin(x, 1).dataSync())).toEqual([1, 2]);
      expect(Array.from(o.argmin(x, 0).dataSync())).toEqual([1, 0, 1]);
      expect(Array.from(o.argmin(x).dataSync())).toEqual([5]);
      expect(Array.from(o.argmin(t([2, Number.NaN, -1])).dataSync())).toEqual([1]);
      expect(Array.from(o.argmin(tensor([4, 2, 2, 9], { dtype: 'int32' })).dataSync())).toEqual([1]);
      expect(o.argmin(x, 1).dtype).toBe('int32');
    }));
});

describe('transforms of the new ops', () => {
  it('floor, ceil and round have zero gradient', () => {
    for (const f of [o.floor, o.ceil, o.round])
      expectClose(grad((y) => o.sum(o.mul(f(y), y)))(t([0.3, 1.7])), f(t([0.3, 1.7])));
  });

  it('vmap of argmin and prod', () => {
    const x = t([
      [3, 1, 2],
      [0, 5, -2],
    ]);
    expect(Array.from(vmap((r) => o.argmin(r))(x).dataSync())).toEqual([1, 2]);
    expectClose(vmap((r) => o.prod(r))(x), [6, 0]);
  });

  it('the float64 erf reference is accurate to double precision', () => {
    for (const [x, v] of ERF)
      expect(Math.abs(erfReference(x) - v)).toBeLessThanOrEqual(
        4e-16 * Math.max(Math.abs(v), 1e-300) + 1e-300,
      );
  });
});

describe('cumsum', () => {
  it('values along an axis, reversed, int32; gradient is the reversed cumsum', () => {
    const x = t([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    expectClose(o.cumsum(x, 1), [1, 3, 6, 4, 9, 15]);
    expectClose(o.cumsum(x, 0), [1, 2, 3, 5, 7, 9]);
    expectClose(o.cumsum(x, -1, { reverse: true }), [6, 5, 3, 15, 11, 6]);
    const ints = o.cumsum(tensor([1, 2, 3], { dtype: 'int32' }));
    expect(ints.dtype).toBe('int32');
    expect(Array.from(ints.dataSync())).toEqual([1, 3, 6]);
    expectClose(grad((y) => o.sum(o.mul(o.cumsum(y), t([1, 10, 100]))))(t([1, 2, 3])), [111, 110, 100]);
    expectClose(vmap((r) => o.cumsum(r))(x), [1, 3, 6, 4, 9, 15]);
  });
});

describe('greaterEqual, lessEqual, notEqual', () => {
  it('on the wasm kernels and the reference, NaN included, as int32 masks', async () => {
    const a = tensor([1, 2, Number.NaN, -0, 3]);
    const b = tensor([1, 3, Number.NaN, 0, 2]);
    for (const run of [
      (f: () => Tensor) => f().dataSync(),
      (f: () => Tensor) => withReference(() => f().dataSync()),
    ]) {
      expect([...run(() => o.greaterEqual(a, b))]).toEqual([1, 0, 0, 1, 1]);
      expect([...run(() => o.lessEqual(a, b))]).toEqual([1, 1, 0, 1, 0]);
      expect([...run(() => o.notEqual(a, b))]).toEqual([0, 1, 1, 0, 1]);
    }
    expect(o.notEqual(a, b).dtype).toBe('int32');
    expect([...(await a.greaterEqual(2).data())]).toEqual([0, 1, 0, 0, 1]);
  });
});
