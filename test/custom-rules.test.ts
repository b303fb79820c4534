/**
 * customVjp and customJvp: the rules are what grad/vjp (resp. jvp) use, under jit, vmap and
 * nested transforms; JAX's semantics for higher order (differentiating bwd's computation);
 * trees of arguments, outputs and residuals; typed errors naming the function; the library's
 * use in logsumexp.
 */
import { describe, expect, it } from 'vitest';
import { ones, tensor } from '../src/creation';
import { TransformError } from '../src/errors';
import * as o from '../src/ops/api';
import { customJvp, customVjp } from '../src/ops/custom';
import { jit, trace } from '../src/runtime/jit';
import type { Tensor } from '../src/tensor';
import { grad, jacfwd, jacrev, jvp, valueAndGrad, vjp } from '../src/transforms/transforms';
import { vmap } from '../src/transforms/vmap';
import { expectClose, randomTensor, rng, withFloat64 } from './helpers';

/** sin with a deliberately different gradient (2·cos), so a test can tell which one ran. */
const twiceSin = customVjp(
  function twiceSin(x: Tensor) {
    return o.sin(x);
  },
  (x: Tensor) => [o.sin(x), { x }],
  (res: { x: Tensor }, ct: Tensor) => [o.mul(ct, o.mul(o.cos(res.x), 2))],
);

/** exp with a deliberately different tangent (3·exp·t). */
const tripleExp = customJvp(
  function tripleExp(x: Tensor) {
    return o.exp(x);
  },
  ([x]: Tensor[], [t]: Tensor[]) => [o.exp(x), o.mul(o.mul(o.exp(x), t), 3)],
);

describe('customVjp', () => {
  const x = tensor([0.3, -1.2, 2.5]);

  it('grad, vjp and valueAndGrad use bwd; the value is f', () =>
    withFloat64(() => {
      const f = (v: Tensor) => o.sum(twiceSin(v));
      const [val, g] = valueAndGrad(f)(x);
      expectClose(val, o.sum(o.sin(x)), { rtol: 1e-12 });
      expectClose(g, o.mul(o.cos(x), 2), { rtol: 1e-12 });
      const [y, pb] = vjp(twiceSin, x);
      expectClose(y, o.sin(x), { rtol: 1e-12 });
      const [gx] = pb(tensor([1, 2, 3])) as Tensor[];
      expectClose(gx, o.mul(o.mul(o.cos(x), 2), tensor([1, 2, 3])), { rtol: 1e-12 });
      // outside every transform the plain function runs: no wrapper in the graph
      expect(twiceSin(x).op).toBe('sin');
    }));

  it('is used under jit (both orders) and the compiled graph has no wrapper left', () => {
    const f = (v: Tensor) => o.sum(twiceSin(v));
    const want = o.mul(o.cos(x), 2);
    expectClose(jit(grad(f))(x) as Tensor, want, { rtol: 1e-5 });
    expectClose(grad(jit(f))(x) as Tensor, want, { rtol: 1e-5 });
    const g = trace(grad(f), x);
    expect(g.nodes.some((n) => n.op === 'customCall')).toBe(false);
  });

  it('nested: grad of grad differentiates the bwd computation (as in JAX)', () =>
    withFloat64(() => {
      const f = (v: Tensor) => o.sum(twiceSin(v));
      // d/dx [2·cos x] = -2·sin x
      const h = grad((v: Tensor) => o.sum(grad(f)(v) as Tensor))(x);
      expectClose(h, o.mul(o.sin(x), -2), { rtol: 1e-12 });
      // the hessian by forward-over-reverse agrees (forward mode goes through f itself)
      const hm = jacfwd(grad(f))(x);
      expectClose(
        hm,
        o.mul(
          o.mul(o.sin(x), -2),
          tensor([
            [1, 0, 0],
            [0, 1, 0],
            [0, 0, 1],
          ]),
        ),
        {
          rtol: 1e-12,
          atol: 1e-15,
        },
      );
    }));

  it('forward mode differentiates f itself', () =>
    withFloat64(() => {
      const [, t] = jvp(twiceSin, [x], [tensor([1, 1, 1])]);
      expectClose(t, o.cos(x), { rtol: 1e-12 });
    }));

  it('trees of arguments, outputs and residuals with static leaves; several outputs', () =>
    withFloat64(() => {
      // f({a, b}, k) = [a·b·k, a + b]; bwd scales the true cotangents by 10
      const f = customVjp(
        function pair(p: { a: Tensor; b: Tensor }, k: number) {
          return [o.mul(o.mul(p.a, p.b), k), o.add(p.a, p.b)];
        },
        (p: { a: Tensor; b: Tensor }, k: number) => [pair0(p, k), [p, k, 'tag']],
        ([p, k, tag]: [{ a: Tensor; b: Tensor }, number, string], [c0, c1]: Tensor[]) => {
          expect(tag).toBe('tag');
          return [
            {
              a: o.mul(o.add(o.mul(c0, o.mul(p.b, k)), c1), 10),
              b: o.mul(o.add(o.mul(c0, o.mul(p.a, k)), c1), 10),
            },
            null,
          ];
        },
      );
      function pair0(p: { a: Tensor; b: Tensor }, k: number) {
        return [o.mul(o.mul(p.a, p.b), k), o.add(p.a, p.b)];
      }
      const a = tensor([1, 2]);
      const b = tensor([3, -1]);
      const g = grad((p: { a: Tensor; b: Tensor }) => {
        const [u, v] = f(p, 2);
        return o.add(o.sum(u), o.sum(o.mul(v, 5)));
      })({ a, b }) as { a: Tensor; b: Tensor };
      expectClose(g.a, o.mul(o.add(o.mul(b, 2), 5), 10), { rtol: 1e-12 });
      expectClose(g.b, o.mul(o.add(o.mul(a, 2), 5), 10), { rtol: 1e-12 });
      // only the second output reaches the loss: the first output's cotangent is zero
      const g2 = grad((p: { a: Tensor; b: Tensor }) => o.sum(f(p, 2)[1]))({ a, b }) as { a: Tensor };
      expectClose(g2.a, [10, 10]);
    }));

  it('under vmap both ways, with a shared (unbatched) argument summed over the batch', () =>
    withFloat64(() => {
      const r = rng(2);
      // f(w, x) = sum(w·x) with a bwd that doubles the gradient of w
      const f = customVjp(
        function dot(w: Tensor, v: Tensor) {
          return o.sum(o.mul(w, v));
        },
        (w: Tensor, v: Tensor) => [o.sum(o.mul(w, v)), [w, v]],
        ([w, v]: Tensor[], ct: Tensor) => [o.mul(o.mul(v, ct), 2), o.mul(w, ct)],
      );
      const w = randomTensor([3], r);
      const xs = randomTensor([4, 3], r);
      const perExample = vmap(grad(f), [null, 0])(w, xs) as Tensor;
      expectClose(perExample, o.mul(xs, 2), { rtol: 1e-12 });
      const total = grad((ww: Tensor) => o.sum(vmap(f, [null, 0])(ww, xs) as Tensor))(w);
      expectClose(total, o.mul(o.sum(xs, 0), 2), { rtol: 1e-12 });
      const gx = grad((v: Tensor) => o.sum(vmap(f, [null, 0])(w, v) as Tensor))(xs);
      expectClose(gx, o.broadcastTo(w, [4, 3]), { rtol: 1e-12 });
    }));

  it('typed errors name the function (or anonymous); tensors stay intact', () => {
    const y = tensor([1, 2]);
    const wrongCount = customVjp(
      function scale(v: Tensor) {
        return o.mul(v, 2);
      },
      (v: Tensor) => [o.mul(v, 2), null],
      (_r: unknown, ct: Tensor) => [ct, ct],
    );
    const run = (f: (v: Tensor) => Tensor) => () => grad((v: Tensor) => o.sum(f(v)))(y);
    expect(run(wrongCount)).toThrow(TransformError);
    expect(run(wrongCount)).toThrow(/customVjp\(scale\): bwd returned 2 cotangents for 1 argument/);
    const wrongShape = customVjp(
      (v: Tensor) => o.mul(v, 2),
      (v: Tensor) => [o.mul(v, 2), null],
      (_r: unknown, ct: Tensor) => [o.sum(ct)],
    );
    expect(run(wrongShape)).toThrow(
      /customVjp\(anonymous\): bwd's cotangent for argument 0 is float32 of shape \[\], expected float32 of shape \[2\]/,
    );
    const badFwd = customVjp(
      function badFwd(v: Tensor) {
        return o.mul(v, 2);
      },
      (v: Tensor) => o.mul(v, 2) as any,
      (_r: unknown, ct: Tensor) => [ct],
    );
    expect(run(badFwd)).toThrow(/customVjp\(badFwd\): fwd must return \[output, residuals\]/);
    const fwdShape = customVjp(
      function fwdShape(v: Tensor) {
        return o.mul(v, 2);
      },
      (v: Tensor) => [o.sum(v), null],
      (_r: unknown, ct: Tensor) => [ct],
    );
    expect(run(fwdShape)).toThrow(
      /customVjp\(fwdShape\): fwd's output is float32 of shape \[\], expected float32 of shape \[2\]/,
    );
    const w = tensor([3, 4]);
    const closes = customVjp(
      function closes(v: Tensor) {
        return o.mul(v, w);
      },
      (v: Tensor) => [o.mul(v, w), null],
      (_r: unknown, ct: Tensor) => [ct],
    );
    expect(() => grad((ww: Tensor) => o.sum(closes(o.mul(y, ww))))(w)).not.toThrow();
    expect(() =>
      grad((ww: Tensor) => {
        const g = customVjp(
          function closesOverVar(v: Tensor) {
            return o.mul(v, ww);
          },
          (v: Tensor) => [o.mul(v, ww), null],
          (_r: unknown, ct: Tensor) => [ct],
        );
        return o.sum(g(y));
      })(w),
    ).toThrow(
      /customVjp\(closesOverVar\): the function closes over a float32\[2\] tensor that is being differentiated/,
    );
    expect(Array.from(y.dataSync())).toEqual([1, 2]);
    expect(Array.from(w.dataSync())).toEqual([3, 4]);
  });
});

describe('customJvp', () => {
  const x = tensor([0.5, -0.25]);

  it('jvp and jacfwd use the rule; the value is f', () =>
    withFloat64(() => {
      const [y, t] = jvp(tripleExp, [x], [tensor([1, 2])]);
      expectClose(y, o.exp(x), { rtol: 1e-12 });
      expectClose(t, o.mul(o.mul(o.exp(x), tensor([1, 2])), 3), { rtol: 1e-12 });
      const j = jacfwd(tripleExp)(x);
      expectClose(
        j,
        o.mul(
          o.mul(o.exp(x), 3),
          tensor([
            [1, 0],
            [0, 1],
          ]),
        ),
        { rtol: 1e-12, atol: 1e-15 },
      );
    }));

  it('reverse mode transposes the rule: grad, vjp and jacrev', () =>
    withFloat64(() => {
      const g = grad((v: Tensor) => o.sum(tripleExp(v)))(x);
      expectClose(g, o.mul(o.exp(x), 3), { rtol: 1e-12 });
      const jr = jacrev(tripleExp)(x);
      expectClose(jr, jacfwd(tripleExp)(x), { rtol: 1e-12, atol: 1e-15 });
      // a rule mixing two arguments: t = b·ta + a·tb, transposed to (ct·b, ct·a)
      const prod = customJvp(
        function prod(a: Tensor, b: Tensor) {
          return o.mul(a, b);
        },
        ([a, b]: Tensor[], [ta, tb]: Tensor[]) => [o.mul(a, b), o.add(o.mul(b, ta), o.mul(a, tb))],
      );
      const [, pb] = vjp(prod, x, tensor([3, 4]));
      const [ga, gb] = pb(tensor([1, 10])) as Tensor[];
      expectClose(ga, [3, 40]);
      expectClose(gb, o.mul(x, tensor([1, 10])), { rtol: 1e-12 });
    }));

  it('nested and under jit and vmap', () => {
    withFloat64(() => {
      // grad of grad: d/dx (3·exp x) = 3·exp x (the transposed rule is differentiated normally)
      const h = grad((v: Tensor) => o.sum(grad((u: Tensor) => o.sum(tripleExp(u)))(v) as Tensor))(x);
      expectClose(h, o.mul(o.exp(x), 3), { rtol: 1e-12 });
      // jvp of grad
      const [, hv] = jvp(
        grad((u: Tensor) => o.sum(tripleExp(u))),
        [x],
        [tensor([1, 1])],
      );
      expectClose(hv, o.mul(o.exp(x), 3), { rtol: 1e-12 });
      const xs = randomTensor([3, 2], rng(4));
      const [, tb] = jvp(vmap(tripleExp), [xs], [ones(xs.shape)]);
      expectClose(tb, o.mul(o.exp(xs), 3), { rtol: 1e-12 });
      const per = vmap(grad((u: Tensor) => o.sum(tripleExp(u))))(xs) as Tensor;
      expectClose(per, o.mul(o.exp(xs), 3), { rtol: 1e-12 });
      const gv = grad((u: Tensor) => o.sum(vmap(tripleExp)(u) as Tensor))(xs);
      expectClose(gv, o.mul(o.exp(xs), 3), { rtol: 1e-12 });
    });
    const g = jit(grad((v: Tensor) => o.sum(tripleExp(v))))(x) as Tensor;
    expectClose(g, o.mul(o.exp(x), 3), { rtol: 1e-5 });
  });

  it('a rule with wrong shapes is a typed error naming the function', () => {
    const bad = customJvp(
      function badRule(v: Tensor) {
        return o.exp(v);
      },
      ([v]: Tensor[], [t]: Tensor[]) => [o.exp(v), o.sum(t)],
    );
    expect(() => jvp(bad, [x], [x])).toThrow(TransformError);
    expect(() => jvp(bad, [x], [x])).toThrow(
      /customJvp\(badRule\): the rule's tangent output is float32 of shape \[\], expected float32 of shape \[2\]/,
    );
    expect(() => grad((v: Tensor) => o.sum(bad(v)))(x)).toThrow(/customJvp\(badRule\)/);
    const notPair = customJvp(
      (v: Tensor) => o.exp(v),
      () => [] as unknown as [Tensor, Tensor],
    );
    expect(() => jvp(notPair, [x], [x])).toThrow(
      /customJvp\(anonymous\): the rule must return \[output, tangentOut\]/,
    );
    expect(Array.from(x.dataSync())).toEqual([0.5, -0.25]);
  });
});

describe('library use: logsumexp has a custom VJP', () => {
  it('its gradient is ct·exp(x − logsumexp(x)), from the input and the result', () => {
    const r = rng(8);
    const a = randomTensor([4, 6], r);
    withFloat64(() => {
      const g = grad((v: Tensor) => o.sum(o.logsumexp(v, -1)))(a);
      expectClose(g, o.softmax(a, -1), { rtol: 1e-12 });
      const w = randomTensor([4], r);
      const gw = grad((v: Tensor) => o.sum(o.mul(o.logsumexp(v, 1), w)))(a);
      expectClose(gw, o.mul(o.softmax(a, -1), o.expandDims(w, -1)), { rtol: 1e-12 });
    });
    // Differentiating the forward would go through log (a reciprocal of the sum) and reuse
    // exp(x − max) from the forward; the rule reads x and the [4, 1] result instead.
    const plain = (v: Tensor) => {
      const m = o.stopGradient(o.max(v, -1, true));
      return o.sum(o.add(o.log(o.sum(o.exp(o.sub(v, m)), -1, true)), m));
    };
    const custom = trace(
      valueAndGrad((v: Tensor) => o.sum(o.logsumexp(v, -1))),
      a,
    );
    const auto = trace(valueAndGrad(plain), a);
    expect(auto.nodes.some((n) => n.op === 'reciprocal')).toBe(true);
    expect(custom.nodes.some((n) => n.op === 'reciprocal')).toBe(false);
    const rule = custom.nodes.find(
      (n) => n.op === 'exp' && n.inputs[0].op === 'sub' && n.inputs[0].inputs[1].shape.join() === '4,1',
    );
    expect(rule?.inputs[0].inputs[0].op).toBe('input');
    expectClose(jit(grad((v: Tensor) => o.sum(o.logsumexp(v, -1))))(a) as Tensor, grad(plain)(a) as Tensor, {
      rtol: 1e-5,
      atol: 1e-7,
    });
  });
});
