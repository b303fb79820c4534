/**
 * The wasm backend (kernels, fusion, memory plan) against the float32 reference interpreter:
 * every op's value and gradient on random shapes, plus larger shapes that exercise SIMD tails,
 * tiles, transposes and batch broadcasting.
 */
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import * as o from '../src/ops/api';
import { init } from '../src/runtime/init';
import { activeBackend } from '../src/runtime/realize';
import type { Tensor } from '../src/tensor';
import { grad, vjp } from '../src/transforms/transforms';
import { expectClose, randomTensor, rng, withReference } from './helpers';
import { type Fn, specs } from './op-specs';

beforeAll(async () => {
  await init({ backend: 'wasm' });
});

/** Values and input gradients of f at xs (cotangent v), read on the current backend. */
function evaluate(f: Fn, xs: Tensor[], v: (shape: readonly number[]) => Tensor): Float32Array[] {
  const [y, pullback] = vjp(f, ...xs);
  const gs = pullback(v(y.shape)) as Tensor[];
  return [y, ...gs].map((t) => Float32Array.from(t.dataSync()));
}

function compare(f: Fn, xs: Tensor[], seed: number, tol = 2e-5): void {
  const cot = (shape: readonly number[]) => randomTensor(shape, rng(seed + 1));
  const ref = withReference(() => evaluate(f, xs, cot));
  const got = evaluate(f, xs, cot);
  expect(activeBackend()?.name).toBe('wasm');
  got.forEach((g, i) => {
    expectClose(g, ref[i], {
      rtol: tol,
      atol: tol,
      scale: 'max',
      what: i === 0 ? 'value' : `gradient ${i - 1}`,
    });
  });
}

describe('wasm kernels agree with the reference interpreter (value and gradient of every op)', () => {
  for (const spec of specs) {
    it(spec.name, () => {
      fc.assert(
        fc.property(spec.shapes, fc.integer({ min: 1, max: 2 ** 30 }), (shapes, seed) => {
          const r = rng(seed);
          const f = spec.make(shapes, r);
          const xs = spec.domains.map((d, i) => randomTensor(shapes[i], r, d));
          compare(f, xs, seed);
        }),
        { numRuns: 15, seed: 11 },
      );
    });
  }
});

describe('larger shapes: SIMD tails, tiles, transposes, batches', () => {
  const r = rng(99);
  it('matmul with odd sizes, both transposes and broadcast batches', () => {
    for (const [m, k, n] of [
      [37, 53, 29],
      [1, 130, 7],
      [64, 64, 64],
      [129, 3, 65],
    ]) {
      for (const ta of [false, true])
        for (const tb of [false, true]) {
          const a = randomTensor([2, 1, ...(ta ? [k, m] : [m, k])], r);
          const b = randomTensor([3, ...(tb ? [n, k] : [k, n])], r);
          compare((x, y) => o.matmulT(x, y, ta, tb), [a, b], m * k + n, 1e-5);
        }
    }
  });

  it('fused elementwise chains over several tiles with broadcasting', () => {
    const x = randomTensor([33, 77], r);
    const b = randomTensor([77], r);
    const c = randomTensor([33, 1], r, 'positive');
    const f = (x: Tensor, b: Tensor, c: Tensor) =>
      o.tanh(o.add(o.mul(o.sigmoid(o.add(x, b)), o.log(c)), o.relu(o.sub(o.square(x), 0.5))));
    compare(f, [x, b, c], 5);
  });

  it('reductions over contiguous and non-contiguous axes, softmax rows', () => {
    const x = randomTensor([5, 67, 9], r);
    for (const axes of [[0], [1], [2], [0, 2], [1, 2], [0, 1, 2]])
      compare((t) => o.add(o.sum(t, axes), o.max(t, axes)), [x], axes.length);
    compare((t) => o.logSoftmax(o.softmax(t, -1), 1), [x], 3);
  });

  it('gather, concat, slice, pad and transpose on larger tensors', () => {
    const x = randomTensor([40, 23], r);
    const idx = [3, 0, 39, 3, 17];
    compare((t) => o.concat([o.gather(t, idx, 0), o.slice(t, [2, 1], [5, 20])], 1).transpose(), [x], 1);
    compare(
      (t) =>
        o.pad(t, [
          [1, 2],
          [0, 3],
        ]),
      [x],
      2,
    );
  });

  it('second derivatives run on the kernels too', () => {
    const x = randomTensor([50], r);
    const f = (t: Tensor) => o.sum(o.mul(o.sin(t), o.exp(o.mul(t, 0.1))));
    compare((t) => grad(f)(t), [x], 4, 1e-4);
  });
});
