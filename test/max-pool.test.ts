/**
 * Max pooling's fast paths, beside the general kernels that test/conv.test.ts checks against the
 * reference: maxPool2d of a lazy relu(z + b) is built as relu(maxPool2d(z) + b) (src/ops/conv-api.ts),
 * and 2×2 windows inside the image take a path of their own in assembly/pool.ts. Wasm only.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { arange, tensor } from '../src/creation';
import * as o from '../src/ops/api';
import { init } from '../src/runtime/init';
import type { Tensor } from '../src/tensor';
import { grad } from '../src/transforms/transforms';
import { expectClose, randomTensor, rng } from './helpers';

type Fn = (...xs: Tensor[]) => Tensor;
const f32 = (data: number[], shape: number[]) => tensor(Float32Array.from(data), { shape });

beforeAll(async () => {
  await init({ backend: 'wasm', threads: 1 });
});

describe('max pooling fast paths', () => {
  it('maxPool2d(relu(z + b)) is built as relu(maxPool2d(z) + b): the same values and gradients', () => {
    const r = rng(11);
    const z = randomTensor([2, 5, 6, 3], r);
    const opts: o.Pool2dOptions = { padding: 'same' };
    const pooled = (zz: Tensor, bb: Tensor) => o.maxPool2d(o.relu(o.add(zz, bb)), 2, opts);
    // neg∘neg on top keeps the pooling where it was written
    const asWritten = (zz: Tensor, bb: Tensor) => o.maxPool2d(o.neg(o.neg(o.relu(o.add(zz, bb)))), 2, opts);
    const cases: [number[], boolean][] = [
      [[3], true],
      [[1, 1, 3], true],
      [[2, 1, 1, 3], true],
      [[6, 3], false], // varies along W, so the add stays below the pooling (the ReLU still moves)
      [[5, 1, 3], false], // varies along H
    ];
    // nothing else moves: neg is not monotone (nor are most ops)
    const barrier = asWritten(z, randomTensor([3], r));
    expect([barrier.op, barrier.inputs[0].op]).toEqual(['maxPool2d', 'neg']);
    for (const [shape, moved] of cases) {
      const b = randomTensor(shape, r);
      const y = pooled(z, b);
      const chain = [y.op, y.inputs[0].op, y.inputs[0].inputs[0].op];
      expect([shape, chain]).toEqual([
        shape,
        ['relu', ...(moved ? ['add', 'maxPool2d'] : ['maxPool2d', 'add'])],
      ]);
      // a realized input is pooled as it is
      const h = tensor(o.relu(o.add(z, b)).dataSync(), { shape: [...z.shape] });
      expect(Array.from(y.dataSync())).toEqual(Array.from(o.maxPool2d(h, 2, opts).dataSync()));
      const loss = (f: Fn) => (zz: Tensor, bb: Tensor) =>
        o.sum(o.mul(f(zz, bb), o.reshape(arange(y.size), y.shape)));
      const got = grad(loss(pooled), [0, 1])(z, b) as Tensor[];
      const want = grad(loss(asWritten), [0, 1])(z, b) as Tensor[];
      expectClose(got[0], want[0], { what: `dz, b ${shape}` });
      expectClose(got[1], want[1], { what: `db, b ${shape}` });
    }
  });

  it('2×2 windows over whole channel vectors: the first largest wins, NaN wins, the gradient goes there', () => {
    // 4 channels: ties, a NaN, a last max, -0 before +0
    const w4 = f32([2, 1, 0, -0, 2, 5, 1, 0, 2, Number.NaN, 3, -1, 2, 7, 4, -0], [1, 2, 2, 4]);
    expect(Array.from(o.maxPool2d(w4, 2).dataSync())).toEqual([2, Number.NaN, 4, -0]);
    const g4 = grad((t: Tensor) => o.sum(o.mul(o.maxPool2d(t, 2), f32([1, 2, 3, 4], [1, 1, 1, 4]))))(
      w4,
    ) as Tensor;
    expect(Array.from(g4.dataSync())).toEqual([1, 0, 0, 4, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 3, 0]);
  });
});
