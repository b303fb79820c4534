/**
 * Every op's JVP and VJP against central finite differences, in float64 on the reference
 * interpreter, over random shapes with broadcasting, size-1 and zero-size dimensions.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Tensor } from '../src/tensor';
import { jvp, vjp } from '../src/transforms/transforms';
import { centralDifference, dot, expectClose, randomTensor, rng, values, withFloat64 } from './helpers';
import { type Spec, specs } from './op-specs';

/** The differentiated inputs are the first `domains.length` shapes; extra shapes only parametrize. */
function checkCase(spec: Spec, shapes: number[][], seed: number): void {
  withFloat64(() => {
    const r = rng(seed);
    const f = spec.make(shapes, r);
    const xs = spec.domains.map((d, i) => randomTensor(shapes[i], r, d));
    const us = xs.map((x) => randomTensor(x.shape, r));
    const y = f(...xs);
    const fd = centralDifference(f, xs, us);

    // Forward mode against finite differences.
    const [y1, t] = jvp(f, xs, us);
    expect(values(y1)).toEqual(values(y));
    expect(t.shape).toEqual(y.shape);
    const tv = values(t);
    expectClose(tv, fd, { rtol: 1e-6, atol: 1e-6 * 1e-3, scale: 'max' });

    // Reverse mode: <v, J u> from the pullback against finite differences.
    const v = randomTensor(y.shape, r);
    const [, pullback] = vjp(f, ...xs);
    const grads = pullback(v) as Tensor[];
    grads.forEach((g, i) => {
      expect(g.shape).toEqual(xs[i].shape);
    });
    const lhs = grads.reduce((acc, g, i) => acc + dot(values(g), values(us[i])), 0);
    const rhs = dot(values(v), fd);
    expectClose(lhs, rhs, { rtol: 1e-6, atol: 1e-6 });
  });
}

describe('JVP and VJP of every op agree with finite differences (float64 reference)', () => {
  for (const spec of specs) {
    it(spec.name, () => {
      fc.assert(
        fc.property(spec.shapes, fc.integer({ min: 1, max: 2 ** 30 }), (shapes, seed) =>
          checkCase(spec, shapes, seed),
        ),
        { numRuns: 25, seed: 42 },
      );
    });
  }
});
