/** Optimizers against hand-computed updates, clipping, schedules, state handling and jit. */
import { describe, expect, it } from 'vitest';
import {
  DisposedError,
  DTypeError,
  jit,
  optim,
  PytreeError,
  ShapeError,
  type Tensor,
  tensor,
  ValueError,
  valueAndGrad,
} from '../src/index';
import { tracing } from '../src/transforms/transforms';
import { expectClose } from './helpers';

type P = { w: Tensor; b: Tensor };

const vals = (t: Tensor) => Array.from(t.dataSync());

/** Three steps of fixed gradients: g1, g2, g3 for w (2 elements) and b (1 element). */
const G = [
  { w: [0.5, -1], b: [2] },
  { w: [0.25, 0.5], b: [-1] },
  { w: [-0.5, 1], b: [0.5] },
];
const P0 = { w: [1, 2], b: [-0.5] };

function run<S>(opt: optim.Optimizer<S>, steps = 3): { params: P; state: S; history: P[] } {
  let params: P = { w: tensor(P0.w), b: tensor(P0.b) };
  let state = opt.init(params);
  const history: P[] = [];
  for (let k = 0; k < steps; k++) {
    const grads = { w: tensor(G[k].w), b: tensor(G[k].b) };
    [params, state] = opt.update(grads, state, params);
    history.push(params);
  }
  return { params, state, history };
}

describe('optim.sgd', () => {
  it('plain: p -= lr * g', () => {
    const { history, state } = run(optim.sgd({ lr: 0.1 }));
    expectClose(history[0].w, [1 - 0.05, 2 + 0.1]);
    expectClose(history[0].b, [-0.5 - 0.2]);
    expectClose(history[2].w, [1 - 0.1 * (0.5 + 0.25 - 0.5), 2 - 0.1 * (-1 + 0.5 + 1)]);
    expectClose(history[2].b, [-0.5 - 0.1 * (2 - 1 + 0.5)]);
    expect(state.step.dtype).toBe('int32');
    expect(vals(state.step)).toEqual([3]);
    expect(state.momentum).toBeUndefined();
  });

  it('momentum (torch convention): buf = m*buf + g; p -= lr*buf', () => {
    const { history, state } = run(optim.sgd({ lr: 0.1, momentum: 0.9 }));
    // w[0]: buf1 = 0.5, buf2 = 0.45 + 0.25 = 0.7, buf3 = 0.63 - 0.5 = 0.13
    expectClose(history[0].w.slice([0], [1]), [1 - 0.05]);
    expectClose(history[1].w.slice([0], [1]), [1 - 0.05 - 0.07]);
    expectClose(history[2].w.slice([0], [1]), [1 - 0.05 - 0.07 - 0.013]);
    // b: buf = 2, 0.8, 1.22
    expectClose(history[2].b, [-0.5 - 0.1 * (2 + 0.8 + 1.22)]);
    expectClose((state.momentum as P).b, [1.22]);
  });

  it('nesterov: p -= lr*(g + m*buf)', () => {
    const { history } = run(optim.sgd({ lr: 0.1, momentum: 0.9, nesterov: true }));
    // b: buf1 = 2 -> step 2 + 1.8 = 3.8; buf2 = 0.8 -> step -1 + 0.72 = -0.28; buf3 = 1.22 -> 0.5 + 1.098 = 1.598
    expectClose(history[0].b, [-0.5 - 0.38]);
    expectClose(history[1].b, [-0.5 - 0.38 + 0.028]);
    expectClose(history[2].b, [-0.5 - 0.38 + 0.028 - 0.1598]);
  });

  it('weight decay adds wd*p to the gradient', () => {
    const { history } = run(optim.sgd({ lr: 0.1, weightDecay: 0.5 }), 1);
    expectClose(history[0].w, [1 - 0.1 * (0.5 + 0.5), 2 - 0.1 * (-1 + 1)]);
  });
});

/** Adam by hand on one scalar (float64), for comparison. */
function adamRef(
  p: number,
  gs: number[],
  {
    lr,
    b1 = 0.9,
    b2 = 0.999,
    eps = 1e-8,
    wd = 0,
    decoupled = false,
  }: { lr: number; b1?: number; b2?: number; eps?: number; wd?: number; decoupled?: boolean },
): number[] {
  let m = 0;
  let v = 0;
  const out: number[] = [];
  gs.forEach((g0, i) => {
    const t = i + 1;
    const g = decoupled ? g0 : g0 + wd * p;
    m = b1 * m + (1 - b1) * g;
    v = b2 * v + (1 - b2) * g * g;
    const mh = m / (1 - b1 ** t);
    const vh = v / (1 - b2 ** t);
    p = p - lr * (mh / (Math.sqrt(vh) + eps) + (decoupled ? wd * p : 0));
    out.push(p);
  });
  return out;
}

describe('optim.adam / optim.adamw', () => {
  it('adam, first step by hand: p -= lr * sign(g) (bias-corrected m/sqrt(v) = g/|g|)', () => {
    const { history } = run(optim.adam({ lr: 0.01 }), 1);
    expectClose(history[0].w, [1 - 0.01, 2 + 0.01]);
    expectClose(history[0].b, [-0.5 - 0.01]);
  });

  it('adam matches the update rule over three steps', () => {
    const { history, state } = run(optim.adam({ lr: 0.01, beta1: 0.8, beta2: 0.99, eps: 1e-3 }));
    const cfg = { lr: 0.01, b1: 0.8, b2: 0.99, eps: 1e-3 };
    const w0 = adamRef(1, [0.5, 0.25, -0.5], cfg);
    const w1 = adamRef(2, [-1, 0.5, 1], cfg);
    const b = adamRef(-0.5, [2, -1, 0.5], cfg);
    history.forEach((h, k) => {
      expectClose(h.w, [w0[k], w1[k]]);
      expectClose(h.b, [b[k]]);
    });
    // m for b after 3 steps: 0.8*(0.8*0.4 - 0.2) + 0.1
    expectClose((state.mu as P).b, [0.8 * (0.8 * 0.4 - 0.2) + 0.1]);
    expect(vals(state.step)).toEqual([3]);
  });

  it('adam weightDecay is L2 added to the gradient', () => {
    const { history } = run(optim.adam({ lr: 0.01, weightDecay: 0.1 }));
    const b = adamRef(-0.5, [2, -1, 0.5], { lr: 0.01, wd: 0.1 });
    history.forEach((h, k) => {
      expectClose(h.b, [b[k]]);
    });
  });

  it('adamw decays decoupled from the moments', () => {
    const { history } = run(optim.adamw({ lr: 0.01, weightDecay: 0.1 }));
    const b = adamRef(-0.5, [2, -1, 0.5], { lr: 0.01, wd: 0.1, decoupled: true });
    const w0 = adamRef(1, [0.5, 0.25, -0.5], { lr: 0.01, wd: 0.1, decoupled: true });
    history.forEach((h, k) => {
      expectClose(h.b, [b[k]]);
      expectClose(h.w.slice([0], [1]), [w0[k]]);
    });
    // first step by hand: 1 - 0.01 * (1 + 0.1 * 1)
    expectClose(history[0].w.slice([0], [1]), [1 - 0.011]);
  });

  it('adamw defaults to weightDecay 0.01, adam to 0', () => {
    const a = run(optim.adam({ lr: 0.01 }), 1).history[0].b;
    const aw = run(optim.adamw({ lr: 0.01 }), 1).history[0].b;
    expectClose(a, [-0.51]);
    expectClose(aw, [-0.5 - 0.01 * (1 - 0.01 * 0.5)]);
  });
});

describe('gradient clipping', () => {
  it('clipByGlobalNorm rescales to maxNorm only when the norm exceeds it', () => {
    const g = { a: tensor([3]), b: [tensor([[4]])] };
    expectClose(optim.globalNorm(g), [5]);
    const c = optim.clipByGlobalNorm(g, 1);
    expectClose(c.a, [0.6]);
    expectClose(c.b[0], [0.8]);
    expect(c.b[0].shape).toEqual([1, 1]);
    const same = optim.clipByGlobalNorm(g, 10);
    expectClose(same.a, [3]);
    expectClose(same.b[0], [4]);
    const zero = optim.clipByGlobalNorm({ z: tensor([0, 0]) }, 1);
    expectClose(zero.z, [0, 0]);
  });

  it('clipNorm on an optimizer clips before the update', () => {
    const opt = optim.sgd({ lr: 1, clipNorm: 1 });
    const p = { w: tensor([0, 0]) };
    const [p1] = opt.update({ w: tensor([3, 4]) }, opt.init(p), p);
    expectClose(p1.w, [-0.6, -0.8]);
    // Adam's first step is invariant to scale, but the moments see clipped values
    const adam = optim.adam({ lr: 0.1, clipNorm: 0.5 });
    const [, s] = adam.update({ w: tensor([3, 4]) }, adam.init(p), p);
    expectClose((s.mu as { w: Tensor }).w, [0.1 * 0.3, 0.1 * 0.4]);
  });

  it('rejects a non-positive maxNorm', () => {
    expect(() => optim.clipByGlobalNorm({ a: tensor([1]) }, 0)).toThrow(ValueError);
    expect(() => optim.sgd({ lr: 1, clipNorm: -1 })).toThrow(ValueError);
  });
});

describe('learning-rate schedules', () => {
  it('a schedule gets the step count before the update, starting at 0', () => {
    const seen: number[] = [];
    const opt = optim.sgd({
      lr: (count) => {
        return count.add(1).mul(0.1); // 0.1, 0.2, 0.3
      },
    });
    let p = { w: tensor([0]) };
    let s = opt.init(p);
    for (let k = 0; k < 3; k++) {
      [p, s] = opt.update({ w: tensor([1]) }, s, p);
      seen.push(vals(p.w)[0]);
    }
    expectClose(seen[0], -0.1, { rtol: 0, atol: 5e-7 });
    expectClose(seen[1], -0.3, { rtol: 0, atol: 5e-7 });
    expectClose(seen[2], -0.6, { rtol: 0, atol: 5e-7 });
  });

  it('cosineDecay follows lr * (1 + cos(pi t / n)) / 2, then stays at alpha * lr', () => {
    const f = optim.cosineDecay(0.5, 4, { alpha: 0.1 });
    const at = (t: number) => vals(f(tensor(t)) as Tensor)[0];
    const expected = (t: number) => 0.5 * (0.9 * 0.5 * (1 + Math.cos((Math.PI * Math.min(t, 4)) / 4)) + 0.1);
    for (const t of [0, 1, 2, 4, 7]) expectClose(at(t), expected(t), { rtol: 0, atol: 5e-7 });
    const shifted = optim.cosineDecay(1, 10, { offset: 100 });
    expectClose(vals(shifted(tensor(100)) as Tensor)[0], 1, { rtol: 0, atol: 5e-7 });
    expectClose(vals(shifted(tensor(50)) as Tensor)[0], 1, { rtol: 0, atol: 5e-7 });
    expectClose(vals(shifted(tensor(105)) as Tensor)[0], 0.5, { rtol: 0, atol: 5e-7 });
  });
});

describe('state, structure and errors', () => {
  it('outside transforms an update is computed at once (no lazy chain across steps); inside jit it is a graph', () => {
    const opt = optim.adam({ lr: 0.1 });
    const p = { w: tensor([1, 2]) };
    const [p1, s1] = opt.update({ w: tensor([1, 1]) }, opt.init(p), p);
    expect(p1.w.isRealized).toBe(true);
    expect((s1.mu as { w: Tensor }).w.isRealized).toBe(true);
    expect(s1.step.isRealized).toBe(true);
    const lazy = tracing(() => opt.update({ w: tensor([1, 1]) }, opt.init(p), p));
    expect(lazy[0].w.isRealized).toBe(false);
  });

  it('an eager update computes the loss it came from in the same run', () => {
    const opt = optim.sgd({ lr: 0.1 });
    const p = { w: tensor([1, 2]) };
    const [l, g] = valueAndGrad((q: typeof p) => q.w.square().sum())(p);
    opt.update(g, opt.init(p), p);
    expect(l.isRealized).toBe(true);
    expect(l.dataSync()[0]).toBe(5);
  });

  it('matches trees by key, not by order; results take the params structure', () => {
    const opt = optim.sgd({ lr: 0.5, momentum: 0.5 });
    const params = { w: tensor([1]), b: tensor([2]) };
    const state = opt.init(params);
    const grads = { b: tensor([4]), w: tensor([2]) };
    const [p1, s1] = opt.update(grads as typeof params, state, params);
    expect(Object.keys(p1)).toEqual(['w', 'b']);
    expectClose(p1.w, [0]);
    expectClose(p1.b, [0]);
    const [p2] = opt.update(grads as typeof params, s1, { b: p1.b, w: p1.w } as typeof params);
    expect(Object.keys(p2)).toEqual(['b', 'w']);
  });

  it('arrays of layers work as params', () => {
    const opt = optim.sgd({ lr: 1 });
    const params = [{ w: tensor([1, 1]) }, { w: tensor([2]) }];
    const [p1] = opt.update([{ w: tensor([1, 2]) }, { w: tensor([1]) }], opt.init(params), params);
    expectClose(p1[0].w, [0, -1]);
    expectClose(p1[1].w, [1]);
  });

  it('rejects mismatched trees with typed errors naming the path', () => {
    const opt = optim.adam({ lr: 0.1 });
    const params = { layer: { w: tensor([1, 2]) } };
    const state = opt.init(params);
    expect(() => opt.update({ layer: { w: tensor([1]) } }, state, params)).toThrow(ShapeError);
    expect(() => opt.update({ layer: { w: tensor([1]) } }, state, params)).toThrow(/layer\.w/);
    expect(() => opt.update({ layer: {} } as typeof params, state, params)).toThrow(PytreeError);
    expect(() => opt.update({ layer: { w: tensor([1, 2]), v: tensor(1) } } as never, state, params)).toThrow(
      /key 'v'/,
    );
    expect(() => opt.update(params, { mu: state.mu } as never, params)).toThrow(PytreeError);
    expect(() => opt.update({ layer: { w: tensor([1, 2], { dtype: 'int32' }) } }, state, params)).toThrow(
      DTypeError,
    );
    expect(() => opt.init({ w: tensor([1], { dtype: 'int32' }) })).toThrow(DTypeError);
  });

  it('validates hyperparameters', () => {
    expect(() => optim.sgd({ lr: -1 })).toThrow(ValueError);
    expect(() => optim.sgd({ lr: Number.NaN })).toThrow(ValueError);
    expect(() => optim.sgd({ lr: 0.1, momentum: 1 })).toThrow(ValueError);
    expect(() => optim.sgd({ lr: 0.1, nesterov: true })).toThrow(/nesterov needs momentum/);
    expect(() => optim.adam({ lr: 0.1, beta1: 1 })).toThrow(ValueError);
    expect(() => optim.adam({ lr: 0.1, beta2: -0.1 })).toThrow(ValueError);
    expect(() => optim.adamw({ lr: 0.1, weightDecay: -1 })).toThrow(ValueError);
    expect(() => optim.adam(undefined as never)).toThrow(ValueError);
  });
});

describe('a jitted training step', () => {
  const loss = (p: P, x: Tensor, y: Tensor) => x.matmul(p.w).add(p.b).sub(y).square().mean();
  const data = () => ({
    x: tensor([
      [1, 0],
      [0, 1],
      [1, 1],
    ]),
    y: tensor([1, -1, 0]),
  });

  it('traces once, reuses the plan, and equals the eager updates', () => {
    const opt = optim.adam({ lr: 0.05 });
    const step = jit((p: P, s: optim.AdamState, x: Tensor, y: Tensor) => {
      const [l, g] = valueAndGrad(loss)(p, x, y);
      const [np, ns] = opt.update(g, s, p);
      return { loss: l, params: np, state: ns };
    });
    const { x, y } = data();
    let pj: P = { w: tensor([0.5, -0.5]), b: tensor(0.1) };
    let sj = opt.init(pj);
    let pe: P = { w: tensor([0.5, -0.5]), b: tensor(0.1) };
    let se = opt.init(pe);
    const losses: number[] = [];
    for (let k = 0; k < 5; k++) {
      const out = step(pj, sj, x, y);
      pj = out.params;
      sj = out.state;
      losses.push(vals(out.loss)[0]);
      const [, g] = valueAndGrad(loss)(pe, x, y);
      [pe, se] = opt.update(g, se, pe);
    }
    expect(step.cacheSize).toBe(1);
    expect(losses[4]).toBeLessThan(losses[0]);
    expect(vals(sj.step)).toEqual([5]);
    vals(pj.w).forEach((v, i) => {
      expectClose(v, vals(pe.w)[i], { rtol: 0, atol: 5e-6 });
    });
    expectClose(vals(pj.b)[0], vals(pe.b)[0], { rtol: 0, atol: 5e-6 });
  });

  it('donates the replaced params and state (unless donate: false)', () => {
    for (const donate of [true, false]) {
      const opt = optim.sgd({ lr: 0.1, momentum: 0.9, donate });
      const step = jit((p: P, s: optim.SgdState, x: Tensor, y: Tensor) => {
        const [, g] = valueAndGrad(loss)(p, x, y);
        return opt.update(g, s, p);
      });
      const { x, y } = data();
      const p0: P = { w: tensor([0.5, -0.5]), b: tensor(0.1) };
      const s0 = opt.init(p0);
      const [p1] = step(p0, s0, x, y);
      expect(p1.w.shape).toEqual([2]);
      expect(p0.w.disposed).toBe(donate);
      expect(s0.step.disposed).toBe(donate);
      expect(x.disposed).toBe(false);
      if (donate) expect(() => p0.w.dataSync()).toThrow(DisposedError);
      else expect(vals(p0.w)).toEqual([0.5, -0.5]);
    }
  });
});
