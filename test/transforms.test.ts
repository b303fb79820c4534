/** Transform identities on random composites, higher-order derivatives, pytrees, jit and trace. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ones, tensor } from '../src/creation';
import * as o from '../src/ops/api';
import { jit, trace } from '../src/runtime/jit';
import type { Tensor } from '../src/tensor';
import { grad, hessian, jacfwd, jacrev, jvp, valueAndGrad, vjp } from '../src/transforms/transforms';
import { centralDifference, dot, expectClose, randomTensor, rng, values, withFloat64 } from './helpers';

/** A random smooth program R^n -> R^m: a pool of values grown by unary and binary ops, then mixed down. */
type Step = { op: number; a: number; b: number };
const unaries = [o.sin, o.cos, o.tanh, o.sigmoid, o.softplus, (x: Tensor) => o.mul(x, 0.7), o.exp, o.square];
const binaries = [o.add, o.sub, o.mul, (x: Tensor, y: Tensor) => o.div(x, o.add(o.square(y), 1))];

function program(steps: Step[], m: number) {
  return (x: Tensor): Tensor => {
    const pool: Tensor[] = [x];
    for (const s of steps) {
      const a = pool[s.a % pool.length];
      const b = pool[s.b % pool.length];
      pool.push(s.op % 2 === 0 ? unaries[s.op % unaries.length](a) : binaries[s.op % binaries.length](a, b));
    }
    // Mix everything into m outputs through a fixed matrix, so every path is used.
    const last = o.add(pool[pool.length - 1], o.tanh(pool[Math.floor(pool.length / 2)]));
    const w = tensor(
      Float64Array.from({ length: m * x.shape[0] }, (_, i) => Math.sin(i + 1)),
      { shape: [m, x.shape[0]] },
    );
    return o.matmul(w, last);
  };
}

const programArb = fc.record({
  steps: fc.array(fc.record({ op: fc.nat(15), a: fc.nat(20), b: fc.nat(20) }), {
    minLength: 1,
    maxLength: 8,
  }),
  n: fc.integer({ min: 1, max: 4 }),
  m: fc.integer({ min: 1, max: 3 }),
  seed: fc.nat(),
});

describe('transform identities on random composites f: R^n -> R^m', () => {
  it('<v, J u> from jvp equals <v^T J, u> from vjp, and both match finite differences', () => {
    fc.assert(
      fc.property(programArb, ({ steps, n, m, seed }) =>
        withFloat64(() => {
          const r = rng(seed);
          const f = program(steps, m);
          const x = randomTensor([n], r, 'unit');
          const u = randomTensor([n], r);
          const v = randomTensor([m], r);
          const [, ju] = jvp(f, [x], [u]);
          const [, pb] = vjp(f, x);
          const [vj] = pb(v) as Tensor[];
          const lhs = dot(values(v), values(ju));
          const rhs = dot(values(vj), values(u));
          expectClose(lhs, rhs, { rtol: 1e-9, atol: 1e-9 });
          expectClose(values(ju), centralDifference(f, [x], [u]), {
            rtol: 1e-6,
            atol: 1e-6 * 1e-3,
            scale: 'max',
          });
        }),
      ),
      { numRuns: 30, seed: 7 },
    );
  });

  it('jacfwd equals jacrev', () => {
    fc.assert(
      fc.property(programArb, ({ steps, n, m, seed }) =>
        withFloat64(() => {
          const f = program(steps, m);
          const x = randomTensor([n], rng(seed), 'unit');
          const jf = jacfwd(f)(x);
          const jr = jacrev(f)(x);
          expect(jf.shape).toEqual([m, n]);
          expectClose(values(jf), values(jr), { rtol: 1e-12, atol: 1e-12 * 1e-3, scale: 'max' });
        }),
      ),
      { numRuns: 20, seed: 8 },
    );
  });

  it('the hessian is symmetric and matches finite differences of grad', () => {
    fc.assert(
      fc.property(programArb, ({ steps, n, seed }) =>
        withFloat64(() => {
          const f = (x: Tensor) => o.sum(program(steps, 1)(x));
          const r = rng(seed);
          const x = randomTensor([n], r, 'unit');
          const h = values(hessian(f)(x));
          for (let i = 0; i < n; i++)
            for (let j = 0; j < n; j++) expectClose(h[i * n + j], h[j * n + i], { rtol: 1e-9, atol: 1e-9 });
          const u = randomTensor([n], r);
          const hu = new Float64Array(n).map((_, i) => dot(h.subarray(i * n, i * n + n), values(u)));
          expectClose(hu, centralDifference(grad(f), [x], [u]), {
            rtol: 1e-6,
            atol: 1e-6 * 1e-3,
            scale: 'max',
          });
        }),
      ),
      { numRuns: 20, seed: 9 },
    );
  });
});

describe('higher-order derivatives', () => {
  it('the hessian of x -> x^T A x is A + A^T', () => {
    withFloat64(() => {
      const r = rng(3);
      const A = randomTensor([4, 4], r);
      const h = hessian((x: Tensor) => o.sum(o.mul(x, o.matmul(A, x))))(randomTensor([4], r));
      const a = values(A);
      const expected = a.map((_, k) => a[k] + a[(k % 4) * 4 + Math.floor(k / 4)]);
      expectClose(values(h), expected, { rtol: 1e-12, atol: 1e-12 * 1e-3, scale: 'max' });
    });
  });

  it('the third derivative of sin is -cos', () => {
    withFloat64(() => {
      for (const x0 of [-2, 0, 0.3, 1.7]) {
        const d3 = grad(grad(grad(o.sin)))(tensor(x0));
        expectClose(values(d3)[0], -Math.cos(x0), { rtol: 0, atol: 5e-13 });
      }
    });
  });

  it('jvp of grad is a hessian-vector product; grad of jvp matches too', () => {
    withFloat64(() => {
      const r = rng(5);
      const f = (x: Tensor) => o.sum(o.mul(o.sin(x), o.exp(o.mul(x, 0.3))));
      const x = randomTensor([3], r);
      const u = randomTensor([3], r);
      const h = values(hessian(f)(x));
      const hu = new Float64Array(3).map((_, i) => dot(h.subarray(i * 3, i * 3 + 3), values(u)));
      const [, fwdOverRev] = jvp(grad(f), [x], [u]);
      expectClose(values(fwdOverRev), hu, { rtol: 1e-12, atol: 1e-12 * 1e-3, scale: 'max' });
      const revOverFwd = grad((y: Tensor) => jvp(f, [y], [u])[1])(x);
      expectClose(values(revOverFwd), hu, { rtol: 1e-12, atol: 1e-12 * 1e-3, scale: 'max' });
    });
  });

  it('stopGradient holds its operand constant', () => {
    withFloat64(() => {
      const g = grad((x: Tensor) => o.sum(o.mul(o.stopGradient(x), x)))(tensor([1.5, -2]));
      expect([...values(g)]).toEqual([1.5, -2]);
    });
  });

  it('a value read inside grad keeps the graph differentiable', () => {
    const g = grad((x: Tensor) => {
      const y = o.mul(x, x);
      y.dataSync();
      return o.sum(y);
    })(tensor([3]));
    expect([...g.dataSync()]).toEqual([6]);
  });
});

describe('pytrees and argnums', () => {
  it('grad over a nested parameter tree returns a tree of the same structure', () => {
    const params = {
      w: tensor([
        [1, 2],
        [3, 4],
      ]),
      layers: [{ b: tensor([0.5, -0.5]) }],
    };
    const x = tensor([1, 1]);
    const loss = (p: typeof params, x: Tensor) => o.sum(o.square(o.add(o.matmul(p.w, x), p.layers[0].b)));
    const [value, g] = valueAndGrad(loss)(params, x);
    expectClose(value.dataSync()[0], 3.5 ** 2 + 6.5 ** 2, { rtol: 0, atol: 5e-6 });
    expect(g.w.arraySync()).toEqual([
      [7, 7],
      [13, 13],
    ]);
    expect([...g.layers[0].b.dataSync()]).toEqual([7, 13]);
  });

  it('argnums picks several arguments; an unused argument gets zeros', () => {
    const [ga, gb, gc] = grad(
      (a: Tensor, b: Tensor, c: Tensor) => o.sum(o.mul(a, b)).add(o.sum(c).mul(0)),
      [0, 1, 2],
    )(tensor([1, 2]), tensor([3, 4]), tensor([5]));
    expect([...ga.dataSync()]).toEqual([3, 4]);
    expect([...gb.dataSync()]).toEqual([1, 2]);
    expect([...gc.dataSync()]).toEqual([0]);
    const [gx] = grad((x: Tensor, _y: Tensor) => o.sum(x), [0])(tensor([1]), tensor([2]));
    expect([...gx.dataSync()]).toEqual([1]);
  });

  it('vjp and jvp take and return trees', () => {
    const f = (p: { a: Tensor; b: Tensor }) => ({ s: o.add(p.a, p.b), p: o.mul(p.a, p.b) });
    const p = { a: tensor([1, 2]), b: tensor([3, 4]) };
    const [out, pb] = vjp(f, p);
    expect([...out.p.dataSync()]).toEqual([3, 8]);
    const [gp] = pb({ s: ones([2]), p: ones([2]) });
    expect([...gp.a.dataSync()]).toEqual([4, 5]);
    const [, t] = jvp(f, [p], [{ a: ones([2]), b: o.mul(ones([2]), 0) }]);
    expect([...t.p.dataSync()]).toEqual([3, 4]);
  });

  it('a pullback called after the output was realized still works', async () => {
    const [out, pb] = vjp((x: Tensor) => o.sum(o.exp(x)), tensor([0, 1]));
    await out.data();
    const [g] = pb(tensor(1));
    const gv = await g.data();
    expectClose(gv[0], 1, { rtol: 0, atol: 5e-7 });
    expectClose(gv[1], Math.E, { rtol: 0, atol: 5e-6 });
  });
});

describe('jit and trace', () => {
  it('jit traces once per signature and re-traces on a new one', () => {
    let traces = 0;
    const f = jit((x: Tensor, y: Tensor) => {
      traces++;
      return o.add(o.mul(x, y), 1);
    });
    expect([...f(tensor([1, 2]), tensor([3, 4])).dataSync()]).toEqual([4, 9]);
    expect([...f(tensor([5, 6]), tensor([1, 1])).dataSync()]).toEqual([6, 7]);
    expect(traces).toBe(1);
    expect(f(tensor([1, 2, 3]), tensor(2)).shape).toEqual([3]);
    expect(traces).toBe(2);
    f(tensor([1, 2], { dtype: 'int32' }), tensor([3, 4], { dtype: 'int32' }));
    expect(traces).toBe(3);
    expect(f.cacheSize).toBe(3);
  });

  it('jit handles pytrees and static leaves, and is differentiable inside grad', () => {
    const step = jit((p: { w: Tensor }, scale: number) => ({ y: o.mul(p.w, scale) }));
    expect([...step({ w: tensor([1, 2]) }, 3).y.dataSync()]).toEqual([3, 6]);
    expect([...step({ w: tensor([1, 2]) }, 4).y.dataSync()]).toEqual([4, 8]);
    expect(step.cacheSize).toBe(2);
    const g = grad((w: Tensor) => o.sum(step({ w }, 3).y))(tensor([1, 2]));
    expect([...g.dataSync()]).toEqual([3, 3]);
  });

  it('distinct inputs are never merged by CSE', () => {
    const f = jit((a: Tensor, b: Tensor) => o.add(o.exp(a), o.exp(b)));
    expectClose(f(tensor([0]), tensor([1])).dataSync()[0], 1 + Math.E, { rtol: 0, atol: 5e-6 });
    const g = trace(
      (a: Tensor, b: Tensor) => o.add(o.matmul(a, b), o.matmul(b, a)),
      tensor([[1]]),
      tensor([[2]]),
    );
    expect(g.nodes.filter((n) => n.op === 'matmul')).toHaveLength(2);
  });

  it('jit of grad compiles the gradient graph', () => {
    const g = jit(grad((x: Tensor) => o.sum(o.square(x))));
    expect([...g(tensor([1, 2])).dataSync()]).toEqual([2, 4]);
  });

  it('trace shows the optimized graph with inputs, toString and toDot', () => {
    const g = trace((x: Tensor) => o.add(o.mul(o.add(x, 0), 1), o.sin(x)), tensor([1, 2]));
    expect(g.size).toBe(3);
    expect(g.toString()).toContain('sin(%0)');
    expect(g.toDot()).toMatch(/^digraph/);
    expect(g.edges.length).toBe(3);
  });

  it('constant folding turns arithmetic on fills into one fill', () => {
    const g = trace((x: Tensor) => o.mul(x, o.add(o.mul(ones([2]), 2), 3)), tensor([1, 2]));
    expect(g.size).toBe(3);
    expect(g.nodes.filter((n) => n.op === 'fill')).toHaveLength(1);
    expect(g.nodes.find((n) => n.op === 'fill')?.attrs.value).toBe(5);
  });
});
