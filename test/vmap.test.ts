/**
 * vmap against a loop over the batch: every op in the registry (the shared op table plus cases
 * with batched integer operands), random inAxes (null and negative included) and outAxes, pytree
 * axis specs, nesting, composition with grad, jvp and jit, and the typed errors.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { tensor, zeros } from '../src/creation';
import { AxisError, ConcretizationError, PytreeError, TransformError } from '../src/errors';
import { postOrder } from '../src/graph/graph';
import { mlp } from '../src/nn/layers';
import { softmaxCrossEntropy } from '../src/nn/losses';
import * as o from '../src/ops/api';
import { customVjp } from '../src/ops/custom';
import { allOps, apply, getOp } from '../src/ops/registry';
import { sgd } from '../src/optim/optimizers';
import * as random from '../src/random';
import { jit } from '../src/runtime/jit';
import type { Tensor } from '../src/tensor';
import { checkpoint } from '../src/transforms/checkpoint';
import { grad, jvp, tracing, valueAndGrad } from '../src/transforms/transforms';
import { vmap } from '../src/transforms/vmap';
import { type Domain, expectClose, randomTensor, rng, withFloat64 } from './helpers';
import { specs } from './op-specs';

/** Ops seen in the per-example graphs the cases below batch. */
const exercised = new Set<string>();
function noteOps(ys: Tensor[]): void {
  postOrder(ys, 'test', (t) => {
    exercised.add(t.op);
  });
}

/** x[b] along `axis`. */
function takeAt(x: Tensor, axis: number, b: number): Tensor {
  const begin = x.shape.map((_, k) => (k === axis ? b : 0));
  const size = x.shape.map((n, k) => (k === axis ? 1 : n));
  return o.reshape(
    o.slice(x, begin, size),
    x.shape.filter((_, k) => k !== axis),
  );
}

/** The reference: f applied example by example, stacked along outAxis. */
function loop(
  f: (...xs: Tensor[]) => Tensor,
  xs: Tensor[],
  axes: (number | null)[],
  outAxis: number,
  size: number,
): Tensor {
  const rows: Tensor[] = [];
  for (let b = 0; b < size; b++)
    rows.push(f(...xs.map((x, i) => (axes[i] === null ? x : takeAt(x, norm(axes[i]!, x.ndim), b)))));
  return o.stack(rows, outAxis);
}

const norm = (a: number, rank: number) => (a < 0 ? a + rank : a);

/** A batched input: the per-example shape with the batch inserted at `axis` (which may be negative). */
function insertBatch(shape: readonly number[], axis: number, size: number): number[] {
  const s = [...shape];
  s.splice(norm(axis, shape.length + 1), 0, size);
  return s;
}

interface Case {
  /** Per-example inputs: float with a domain, or int32 indices in [0, max). */
  inputs: ({ shape: number[]; domain: Domain } | { shape: number[]; max: number })[];
  f: (...xs: Tensor[]) => Tensor;
}

function makeInput(spec: Case['inputs'][number], shape: readonly number[], r: () => number): Tensor {
  if ('max' in spec) {
    const n = shape.reduce((a, d) => a * d, 1);
    return tensor(
      Int32Array.from({ length: n }, () => Math.floor(r() * spec.max)),
      { shape: [...shape], dtype: 'int32' },
    );
  }
  return randomTensor(shape, r, spec.domain);
}

/** Checks vmap(f) against the loop for random axes and batch size (float64 reference). */
function checkCase(c: Case, seed: number): void {
  withFloat64(() => {
    const r = rng(seed);
    const size = 1 + Math.floor(r() * 3);
    const ranks = c.inputs.map((s) => s.shape.length);
    const axes = ranks.map((k): number | null => {
      if (r() < 0.3) return null;
      const a = Math.floor(r() * (k + 1));
      return r() < 0.5 ? a - (k + 1) : a;
    });
    if (!axes.some((a) => a !== null)) axes[0] = 0;
    const xs = c.inputs.map((s, i) =>
      makeInput(s, axes[i] === null ? s.shape : insertBatch(s.shape, axes[i]!, size), r),
    );
    // traced as vmap traces it (custom-rule calls record their wrappers)
    const example = tracing(() => c.f(...c.inputs.map((s) => makeInput(s, s.shape, r))));
    noteOps([example]);
    const outRank = example.ndim + 1;
    const outAxis = Math.floor(r() * outRank) - (r() < 0.5 ? outRank : 0);
    const got = vmap(c.f, axes, outAxis)(...xs) as Tensor;
    const want = loop(c.f, xs, axes, norm(outAxis, outRank), size);
    expect(got.shape).toEqual(want.shape);
    expect(got.dtype).toEqual(want.dtype);
    expectClose(got, want, { rtol: 1e-9, atol: 1e-12, what: `axes ${JSON.stringify(axes)} out ${outAxis}` });
  });
}

const cases = (spec: (typeof specs)[number]) =>
  fc.tuple(spec.shapes, fc.integer({ min: 1, max: 2 ** 30 })).map(([shapes, seed]): [Case, number] => {
    const f = spec.make(shapes, rng(seed + 1));
    return [{ inputs: spec.domains.map((d, i) => ({ shape: shapes[i], domain: d })), f }, seed];
  });

describe('vmap equals a loop over the batch, for every op', () => {
  for (const spec of specs) {
    it(spec.name, () => {
      fc.assert(
        fc.property(cases(spec), ([c, seed]) => checkCase(c, seed)),
        { numRuns: 30, seed: 11 },
      );
    });
  }

  // Cases the shared table does not reach: batched integer operands and the remaining primitives.
  const extra: { name: string; cases: fc.Arbitrary<Case> }[] = [
    {
      name: 'gather with batched indices (and data)',
      cases: fc
        .tuple(fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 1, maxLength: 3 }), fc.nat(5), fc.nat(2))
        .map(([s, ax, k]) => {
          const axis = ax % s.length;
          return {
            inputs: [
              { shape: s, domain: 'real' as Domain },
              { shape: [2, 1, 2].slice(0, k), max: s[axis] },
            ],
            f: (x: Tensor, i: Tensor) => o.gather(x, i, axis),
          };
        }),
    },
    {
      name: 'scatterAdd with batched indices (and updates)',
      cases: fc
        .tuple(fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 0, maxLength: 2 }), fc.nat(3), fc.nat(2))
        .map(([s, ax, k]) => {
          const axis = ax % (s.length + 1);
          const idx = [3, 2].slice(0, k);
          const u = [...s.slice(0, axis), ...idx, ...s.slice(axis)];
          return {
            inputs: [
              { shape: u, domain: 'real' as Domain },
              { shape: idx, max: 4 },
            ],
            f: (x: Tensor, i: Tensor) => o.scatterAdd(x, i, axis, 4),
          };
        }),
    },
    {
      name: 'softmaxCrossEntropy and its gradient with batched labels',
      cases: fc
        .tuple(
          fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 0, maxLength: 2 }),
          fc.integer({ min: 1, max: 4 }),
        )
        .map(([lead, c]) => ({
          inputs: [
            { shape: [...lead, c], domain: 'real' as Domain },
            { shape: lead, max: c },
            { shape: lead, domain: 'real' as Domain },
          ],
          f: (x: Tensor, y: Tensor, g: Tensor) =>
            o.add(
              apply('softmaxCrossEntropyGrad', [x, y, g]),
              o.expandDims(o.softmaxCrossEntropyRows(x, y), -1),
            ),
        })),
    },
    {
      name: 'where with a batched condition, argmax, argmin, comparisons, cast both ways, stopGradient, identity',
      cases: fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 1, maxLength: 3 }).map((s) => ({
        inputs: [
          { shape: s, domain: 'real' as Domain },
          { shape: s, max: 2 },
        ],
        f: (x: Tensor, c: Tensor) => {
          const w = o.where(c, apply('identity', [x]), o.stopGradient(o.neg(x)));
          const am = o.add(o.cast(o.argmax(w, -1), 'float32'), o.mul(o.cast(o.argmin(w, -1), 'float32'), 10));
          const lt = o.add(
            o.cast(o.less(x, 0.3), 'float32'),
            o.cast(o.add(o.add(o.greaterEqual(x, 0.1), o.lessEqual(x, -0.2)), o.notEqual(w, x)), 'float32'),
          );
          return o.add(o.add(o.cast(o.cast(o.mul(w, 3), 'int32'), 'float32'), o.expandDims(am, -1)), lt);
        },
      })),
    },
    {
      name: 'keyed random draws and splits with batched keys',
      cases: fc
        .tuple(fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 0, maxLength: 2 }), fc.boolean())
        .map(([s, normal]) => ({
          inputs: [{ shape: [2], max: 1 << 30 }],
          f: (key: Tensor) => {
            const [, k] = random.split(key, 2);
            return normal ? random.normal(s, { key: k, std: 2 }) : random.uniform(s, { key: k, low: -1 });
          },
        })),
    },
    {
      name: 'softmax with a keep mask (batched or not) and maybe causal',
      cases: fc
        .tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 }), fc.boolean())
        .map(([k, q, causal]) => ({
          inputs: [
            { shape: [k, 2, q, q + 1], domain: 'real' as Domain },
            { shape: [k, q + 1], max: 2 },
          ],
          f: (x: Tensor, keep: Tensor) =>
            apply('softmax', [x, keep], causal ? { axis: 3, causal } : { axis: 3 }),
        })),
    },
    {
      name: 'matmul with batch dims on both sides and transposes',
      cases: fc
        .tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 }), fc.boolean(), fc.boolean())
        .map(([m, k, ta, tb]) => ({
          inputs: [
            { shape: [2, ...(ta ? [k, m] : [m, k])], domain: 'real' as Domain },
            { shape: tb ? [3, k] : [k, 3], domain: 'real' as Domain },
          ],
          f: (a: Tensor, b: Tensor) => o.matmulT(a, b, ta, tb),
        })),
    },
  ];
  for (const e of extra) {
    it(e.name, () => {
      fc.assert(
        fc.property(e.cases, fc.integer({ min: 1, max: 2 ** 30 }), (c, seed) => checkCase(c, seed)),
        { numRuns: 20, seed: 5 },
      );
    });
  }

  it('custom-rule calls and checkpoint barriers are batched with their rules', () => {
    withFloat64(() => {
      const r = rng(3);
      const cube = customVjp(
        (x: Tensor) => o.mul(o.square(x), x),
        (x: Tensor) => [o.mul(o.square(x), x), x],
        (x: Tensor, ct: Tensor) => [o.mul(ct, o.mul(o.square(x), 3))],
      );
      const f = checkpoint((x: Tensor) => o.sum(cube(o.sin(x))));
      const xs = randomTensor([3, 4], r);
      // grad inside vmap: the rules run per example, then the graph is batched
      const g1 = vmap(grad(f))(xs) as Tensor;
      // grad of vmap: the batched calls keep their rules
      const g2 = grad((x: Tensor) => o.sum(vmap(f)(x) as Tensor))(xs) as Tensor;
      const want = loop(grad(f), [xs], [0], 0, 3);
      expectClose(g1, want, { rtol: 1e-12 });
      expectClose(g2, want, { rtol: 1e-12 });
      // the per-example graphs hold the wrappers and (after the sweep) the barriers
      noteOps(tracing(() => valueAndGrad(f)(randomTensor([4], r)) as Tensor[]));
    });
  });

  it('every primitive in the registry has a batching rule, and the cases above exercise each', () => {
    const missing = allOps().filter((d) => !d.batch);
    expect(missing.map((d) => d.name)).toEqual([]);
    // sources are never batched (no inputs); transfer is inserted only after optimization
    const y = zeros([2]);
    for (const s of ['fill', 'const', 'input']) expect(getOp(s).batch!([], [], {}, y, 3)).toEqual([y, null]);
    const x = randomTensor([3, 2], rng(1));
    const [t, d] = getOp('transfer').batch!([x], [0], { to: 'wasm' }, y, 3);
    expect([t.op, t.shape, d]).toEqual(['transfer', [3, 2], 0]);
    const untested = allOps()
      .map((d) => d.name)
      .filter((n) => !exercised.has(n) && !['fill', 'const', 'input', 'transfer'].includes(n));
    expect(untested).toEqual([]);
  });
});

describe('vmap axes, trees and nesting', () => {
  it('inAxes and outAxes as trees (null, negative, per-subtree numbers)', () =>
    withFloat64(() => {
      const r = rng(9);
      const p = { w: randomTensor([3, 4], r), b: randomTensor([4], r) };
      const xs = randomTensor([3, 5], r); // batch on the last axis
      const f = (params: { w: Tensor; b: Tensor }, x: Tensor) => ({
        y: o.add(o.matmul(x, params.w), params.b),
        s: o.sum(x),
        c: o.sum(params.w),
      });
      const out = vmap(f, [null, -1], { y: 1, s: 0, c: null })(p, xs) as Record<string, Tensor>;
      expect(out.y.shape).toEqual([4, 5]);
      expect(out.s.shape).toEqual([5]);
      expect(out.c.shape).toEqual([]);
      const ys = loop((x) => f(p, x).y, [xs], [-1], 1, 5);
      expectClose(out.y, ys, { rtol: 1e-12 });
      expectClose(out.s, o.sum(xs, 0), { rtol: 1e-12 });
      expectClose(out.c, o.sum(p.w), { rtol: 1e-12 });
      // one axis per dict entry; an unbatched output with an axis is broadcast along the batch
      const g = vmap(
        (t: { a: Tensor; b: Tensor }) => [o.mul(t.a, t.b), o.sum(t.b)],
        [{ a: 0, b: null }],
      )({
        a: randomTensor([2, 3], r),
        b: randomTensor([3], r),
      }) as Tensor[];
      expect(g[0].shape).toEqual([2, 3]);
      expect(g[1].shape).toEqual([2]);
      expectClose(o.sub(o.slice(g[1], [0], [1]), o.slice(g[1], [1], [1])), [0]);
    }));

  it('nested vmap equals a double loop', () =>
    withFloat64(() => {
      const r = rng(4);
      const a = randomTensor([2, 3, 4], r);
      const b = randomTensor([4, 3], r);
      const f = (x: Tensor, y: Tensor) => o.softmax(o.mul(x, o.sum(y)), -1);
      // outer over axis 1 of a and axis 1 of b, inner over axis 0 of the remaining a
      const got = vmap(vmap(f, [0, null]), [1, 1])(a, b) as Tensor;
      expect(got.shape).toEqual([3, 2, 4]);
      const rows: Tensor[] = [];
      for (let i = 0; i < 3; i++) {
        const ai = takeAt(a, 1, i);
        const bi = takeAt(b, 1, i);
        const inner: Tensor[] = [];
        for (let j = 0; j < 2; j++) inner.push(f(takeAt(ai, 0, j), bi));
        rows.push(o.stack(inner, 0));
      }
      expectClose(got, o.stack(rows, 0), { rtol: 1e-12 });
    }));

  it('a batch of size 0 and static arguments', () =>
    withFloat64(() => {
      const f = (x: Tensor, k: number) => o.mul(o.sum(x, -1), k);
      const y = vmap(f, [0, null])(zeros([0, 3]), 2) as Tensor;
      expect(y.shape).toEqual([0]);
      const z = vmap(f, [1, null])(
        tensor([
          [1, 2],
          [3, 4],
        ]),
        3,
      ) as Tensor;
      expectClose(z, [12, 18]);
    }));
});

describe('vmap composes with grad, jvp and jit', () => {
  const loss = (params: ReturnType<typeof mlp.init>, x: Tensor, y: Tensor) =>
    softmaxCrossEntropy(mlp.apply(params, x), y);
  const setup = (seed: number, batch: number) => {
    const r = rng(seed);
    const params = mlp.init([5, 7, 3], { seed });
    const xs = randomTensor([batch, 5], r);
    const ys = tensor(
      Int32Array.from({ length: batch }, () => Math.floor(r() * 3)),
      { dtype: 'int32' },
    );
    return { params, xs, ys };
  };
  const stackTrees = (trees: any[]) =>
    trees[0].map((_: unknown, l: number) => ({
      w: o.stack(
        trees.map((t) => t[l].w),
        0,
      ),
      b: o.stack(
        trees.map((t) => t[l].b),
        0,
      ),
    }));

  it('vmap of grad: per-example gradients equal a loop of grad calls (wasm)', () => {
    const { params, xs, ys } = setup(1, 6);
    const per = vmap(grad(loss), [null, 0, 0])(params, xs, ys) as any[];
    const want = stackTrees(
      Array.from({ length: 6 }, (_, b) => grad(loss)(params, takeAt(xs, 0, b), takeAt(ys, 0, b))),
    );
    per.forEach((layer, l) => {
      expect(layer.w.shape).toEqual([6, ...params[l].w.shape]);
      expectClose(layer.w, want[l].w, { rtol: 1e-4, atol: 1e-6, scale: 'max' });
      expectClose(layer.b, want[l].b, { rtol: 1e-4, atol: 1e-6, scale: 'max' });
    });
  });

  it('grad of vmap equals the sum of per-example gradients; jvp of vmap equals a loop of jvps', () =>
    withFloat64(() => {
      const { params, xs, ys } = setup(2, 4);
      const total = (p: typeof params) => o.sum(vmap(loss, [null, 0, 0])(p, xs, ys) as Tensor);
      const g = grad(total)(params) as typeof params;
      let want: any = null;
      for (let b = 0; b < 4; b++) {
        const gb = grad(loss)(params, takeAt(xs, 0, b), takeAt(ys, 0, b)) as typeof params;
        want = want
          ? want.map((l: any, i: number) => ({ w: o.add(l.w, gb[i].w), b: o.add(l.b, gb[i].b) }))
          : gb;
      }
      g.forEach((l, i) => {
        expectClose(l.w, want[i].w, { rtol: 1e-10, atol: 1e-12, scale: 'max' });
        expectClose(l.b, want[i].b, { rtol: 1e-10, atol: 1e-12, scale: 'max' });
      });
      const u = randomTensor([4, 5], rng(7));
      const f = (x: Tensor) => o.tanh(o.matmul(x, params[0].w));
      const [y, t] = jvp(vmap(f), [xs], [u]);
      expectClose(y, loop(f, [xs], [0], 0, 4), { rtol: 1e-12 });
      const tl: Tensor[] = [];
      for (let b = 0; b < 4; b++) tl.push(jvp(f, [takeAt(xs, 0, b)], [takeAt(u, 0, b)])[1]);
      expectClose(t, o.stack(tl, 0), { rtol: 1e-12 });
      // vmap of jvp
      const t2 = vmap((x: Tensor, v: Tensor) => jvp(f, [x], [v])[1])(xs, u) as Tensor;
      expectClose(t2, o.stack(tl, 0), { rtol: 1e-12 });
    }));

  it('jit of vmap (and vmap of jit) equals the loop, traced once', () => {
    const { params, xs, ys } = setup(3, 5);
    const step = jit((p: typeof params, x: Tensor, y: Tensor) =>
      vmap(valueAndGrad(loss), [null, 0, 0])(p, x, y),
    );
    const [l1, g1] = step(params, xs, ys) as [Tensor, any[]];
    const [l2] = step(params, xs, ys) as [Tensor, any[]];
    expect(step.cacheSize).toBe(1);
    const lw = loop((x, y) => loss(params, x, y), [xs, ys], [0, 0], 0, 5);
    expectClose(l1, lw, { rtol: 1e-5 });
    expectClose(l2, lw, { rtol: 1e-5 });
    const gw = loop((x, y) => (grad(loss)(params, x, y) as any[])[1].w, [xs, ys], [0, 0], 0, 5);
    expectClose(g1[1].w, gw, { rtol: 1e-4, atol: 1e-6, scale: 'max' });
    const inner = jit((x: Tensor) => o.relu(o.matmul(x, params[0].w)));
    expectClose(vmap(inner)(xs) as Tensor, inner(xs), { rtol: 1e-5, atol: 1e-6 });
  });
});

describe('vmap over a training step', () => {
  it('an ensemble of models trained at once: vmap of an optimizer update inside jit', () => {
    const k = 3;
    const r = rng(12);
    const ws = randomTensor([k, 4, 2], r);
    const x = randomTensor([5, 4], r);
    const opt = sgd({ lr: 0.1, momentum: 0.9 });
    const loss = (w: Tensor) => o.mean(o.square(o.matmul(x, w)));
    const update = (w: Tensor, s: unknown) => opt.update(grad(loss)(w), s as any, w);
    const step = jit((w: Tensor, s: unknown) => vmap(update)(w, s));
    const s0 = vmap((w: Tensor) => opt.init(w))(ws);
    const [w1] = step(ws, s0) as [Tensor, unknown];
    const want = o.stack(
      Array.from({ length: k }, (_, i) => {
        const wi = takeAt(ws, 0, i);
        return opt.update(grad(loss)(wi), opt.init(wi), wi)[0] as Tensor;
      }),
      0,
    );
    expectClose(w1, want, { rtol: 1e-5, atol: 1e-7 });
  });
});

describe('vmap errors', () => {
  const x = tensor([
    [1, 2, 3],
    [4, 5, 6],
  ]);
  it('names the function and the problem', () => {
    const f = function scale(a: Tensor, b: Tensor) {
      return o.mul(a, b);
    };
    expect(() => vmap(f)(x, tensor([1, 2, 3]))).toThrow(TransformError);
    expect(() => vmap(f)(x, tensor([1, 2, 3]))).toThrow(/vmap\(scale\): batch sizes differ: 2 .* 3/);
    expect(() => vmap(f, [2, 0])(x, x)).toThrow(AxisError);
    expect(() => vmap(f, [-3, 0])(x, x)).toThrow(AxisError);
    expect(() => vmap(f, null)(x, x)).toThrow(/no argument is batched/);
    expect(() => vmap(f, [0])(x, x)).toThrow(PytreeError);
    expect(() => vmap(f, [0, 0], null)(x, x)).toThrow(/outAxes entry is null/);
    expect(() => vmap(f, [0, 0], 2)(x, x)).toThrow(AxisError);
    expect(() => vmap((a: Tensor) => o.mul(a, a.dataSync()[0]))(x)).toThrow(ConcretizationError);
    // the tensors that existed before are intact
    expect(Array.from(x.dataSync())).toEqual([1, 2, 3, 4, 5, 6]);
  });
});
