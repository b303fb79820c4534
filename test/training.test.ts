/** End to end: small models train, and a checkpoint resumes training exactly where it stopped. */
import { describe, expect, it } from 'vitest';
import { io, jit, nn, optim, random, type Tensor, tensor, valueAndGrad } from '../src/index';
import { expectClose } from './helpers';

const scalar = (t: Tensor) => t.dataSync()[0];

/** Two interleaved half-moons-like classes in 2-D that no line separates (XOR of the signs). */
function xorData(n: number, seed: number) {
  const pts = random.uniform([n, 2], { seed, low: -1, high: 1 }).dataSync();
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) labels[i] = pts[2 * i] * pts[2 * i + 1] > 0 ? 1 : 0;
  return { x: tensor(pts, { shape: [n, 2] }), y: tensor(labels) };
}

describe('training lowers the loss', () => {
  it('linear regression with SGD + momentum recovers the weights', () => {
    const x = random.normal([64, 3], { seed: 1 });
    const trueW = tensor([[2], [-1], [0.5]]);
    const y = x.matmul(trueW).add(0.25);
    let params = nn.linear.init(3, 1, { seed: 2 });
    const opt = optim.sgd({ lr: 0.1, momentum: 0.9 });
    let state = opt.init(params);
    const loss = (p: typeof params) => nn.mse(nn.linear.apply(p, x), y);
    const first = scalar(loss(params));
    for (let k = 0; k < 100; k++) {
      const [, g] = valueAndGrad(loss)(params);
      [params, state] = opt.update(g, state, params);
    }
    expect(scalar(loss(params))).toBeLessThan(first * 1e-3);
    const w = Array.from(params.w.dataSync());
    [2, -1, 0.5].forEach((v, i) => {
      expectClose(w[i], v, { rtol: 0, atol: 5e-3 });
    });
    expectClose(scalar(params.b), 0.25, { rtol: 0, atol: 5e-3 });
  });

  it('an MLP learns XOR with a jitted Adam step (one plan for every step)', () => {
    const { x, y } = xorData(128, 3);
    let params = nn.mlp.init([2, 16, 2], { seed: 4 });
    const opt = optim.adam({ lr: 0.05 });
    let state = opt.init(params);
    const lossFn = (p: typeof params, x: Tensor, y: Tensor) => nn.softmaxCrossEntropy(nn.mlp.apply(p, x), y);
    const step = jit((p: typeof params, s: optim.AdamState, x: Tensor, y: Tensor) => {
      const [loss, grads] = valueAndGrad(lossFn)(p, x, y);
      const [newParams, newState] = opt.update(grads, s, p);
      return { loss, params: newParams, state: newState };
    });
    const losses: number[] = [];
    for (let k = 0; k < 150; k++) {
      const out = step(params, state, x, y);
      params = out.params;
      state = out.state;
      losses.push(scalar(out.loss));
    }
    expect(step.cacheSize).toBe(1);
    expect(losses[0]).toBeGreaterThan(0.5);
    expect(losses[149]).toBeLessThan(losses[0] * 0.4);
    const test = xorData(256, 5);
    expect(scalar(nn.accuracy(nn.mlp.apply(params, test.x), test.y))).toBeGreaterThan(0.85);
  });
});

describe('checkpoints resume training exactly', () => {
  it('train 5 steps, save, load, train 5 more == train 10 steps', () => {
    const { x, y } = xorData(32, 6);
    const lossFn = (p: nn.MlpParams, x: Tensor, y: Tensor) => nn.softmaxCrossEntropy(nn.mlp.apply(p, x), y);
    const opt = optim.adamw({ lr: 0.02, clipNorm: 1 });
    const step = jit((p: nn.MlpParams, s: optim.AdamState, x: Tensor, y: Tensor) => {
      const [loss, grads] = valueAndGrad(lossFn)(p, x, y);
      const [np, ns] = opt.update(grads, s, p);
      return { loss, params: np, state: ns };
    });
    const train = (p: nn.MlpParams, s: optim.AdamState, n: number) => {
      for (let k = 0; k < n; k++) ({ params: p, state: s } = step(p, s, x, y));
      return { params: p, state: s };
    };
    const init = () => {
      const params = nn.mlp.init([2, 8, 2], { seed: 9 });
      return { params, state: opt.init(params) };
    };

    const a0 = init();
    const straight = train(a0.params, a0.state, 10);

    const b0 = init();
    const half = train(b0.params, b0.state, 5);
    const bytes = io.saveSafetensors(half);
    const restored = io.loadSafetensors(bytes, { like: half });
    expect(restored.state.step.dataSync()[0]).toBe(5);
    const resumed = train(restored.params, restored.state, 5);

    expect(step.cacheSize).toBe(1);
    expect(io.saveSafetensors(resumed)).toEqual(io.saveSafetensors(straight));
  });
});
