/** nn: layer shapes and initialization, MLP structure, losses against hand computation. */
import { describe, expect, it } from 'vitest';
import { DTypeError, grad, nn, ShapeError, type Tensor, tensor, ValueError } from '../src/index';
import { expectClose } from './helpers';

const vals = (t: Tensor) => Array.from(t.dataSync());

describe('nn.linear', () => {
  it('init: w [in, out] Glorot-uniform from the seed, b [out] zeros', () => {
    const p = nn.linear.init(30, 20, { seed: 3 });
    expect(p.w.shape).toEqual([30, 20]);
    expect(p.b.shape).toEqual([20]);
    expect(p.w.dtype).toBe('float32');
    expect(vals(p.b).every((v) => v === 0)).toBe(true);
    const limit = Math.sqrt(6 / 50);
    const w = vals(p.w);
    expect(Math.max(...w.map(Math.abs))).toBeLessThanOrEqual(limit);
    // Uniform on [-l, l] has variance l^2 / 3; 600 samples land near it.
    const variance = w.reduce((a, v) => a + v * v, 0) / w.length;
    expect(variance).toBeGreaterThan((limit * limit) / 3 / 1.5);
    expect(variance).toBeLessThan(((limit * limit) / 3) * 1.5);
  });

  it('is deterministic per seed, and seeds differ', () => {
    expect(vals(nn.linear.init(4, 3, { seed: 1 }).w)).toEqual(vals(nn.linear.init(4, 3, { seed: 1 }).w));
    expect(vals(nn.linear.init(4, 3, { seed: 1 }).w)).not.toEqual(vals(nn.linear.init(4, 3, { seed: 2 }).w));
  });

  it('apply: x·w + b on a batch and on a single vector', () => {
    const p = {
      w: tensor([
        [1, 2],
        [3, 4],
        [5, 6],
      ]),
      b: tensor([0.5, -0.5]),
    };
    const y = nn.linear.apply(
      p,
      tensor([
        [1, 0, -1],
        [0, 1, 0],
      ]),
    );
    expect(y.shape).toEqual([2, 2]);
    expect(vals(y)).toEqual([1 - 5 + 0.5, 2 - 6 - 0.5, 3.5, 3.5]);
    expect(nn.linear.apply(p, tensor([1, 1, 1])).shape).toEqual([2]);
    expect(() => nn.linear.apply(p, tensor([[1, 2]]))).toThrow(ShapeError);
  });

  it('rejects bad sizes and seeds', () => {
    expect(() => nn.linear.init(0, 3)).toThrow(ValueError);
    expect(() => nn.linear.init(2.5, 3)).toThrow(ValueError);
    expect(() => nn.linear.init(2, 3, { seed: Number.NaN })).toThrow(ValueError);
  });
});

describe('nn.mlp', () => {
  it('init: one {w, b} per layer with the right shapes', () => {
    const p = nn.mlp.init([784, 128, 10], { seed: 0 });
    expect(Array.isArray(p)).toBe(true);
    expect(p.map((l) => [l.w.shape, l.b.shape])).toEqual([
      [[784, 128], [128]],
      [[128, 10], [10]],
    ]);
    const y = nn.mlp.apply(p, tensor(new Float32Array(5 * 784), { shape: [5, 784] }));
    expect(y.shape).toEqual([5, 10]);
  });

  it('layers get distinct seeds derived from the model seed', () => {
    const a = nn.mlp.init([6, 6, 6, 6], { seed: 7 });
    const b = nn.mlp.init([6, 6, 6, 6], { seed: 7 });
    const ws = a.map((l) => vals(l.w).join());
    expect(new Set(ws).size).toBe(3);
    expect(b.map((l) => vals(l.w).join())).toEqual(ws);
    expect(vals(nn.mlp.init([6, 6, 6, 6], { seed: 8 })[0].w)).not.toEqual(vals(a[0].w));
  });

  it('applies ReLU between layers but not after the last', () => {
    const p = [
      { w: tensor([[1, -1]]), b: tensor([0, 0]) }, // [x, -x]
      { w: tensor([[1], [1]]), b: tensor([0]) }, // relu(x) + relu(-x) = |x|
      { w: tensor([[-1]]), b: tensor([0]) }, // -|x|: negative output survives
    ];
    expect(vals(nn.mlp.apply(p, tensor([[3], [-2]])))).toEqual([-3, -2]);
    expect(() => nn.mlp.init([5])).toThrow(ValueError);
    expect(() => nn.mlp.apply([], tensor([1]))).toThrow(ValueError);
  });
});

describe('losses', () => {
  const logits = tensor([
    [1, 2, 3],
    [0.5, -1, 0],
  ]);
  const labels = tensor([2, 0], { dtype: 'int32' });
  const byHand = (row: number[], k: number) => Math.log(row.reduce((a, v) => a + Math.exp(v), 0)) - row[k];
  const expected = (byHand([1, 2, 3], 2) + byHand([0.5, -1, 0], 0)) / 2;

  it('softmaxCrossEntropy matches a hand computation (mean over the batch)', () => {
    const l = nn.softmaxCrossEntropy(logits, labels);
    expect(l.shape).toEqual([]);
    expectClose(vals(l)[0], expected, { rtol: 0, atol: 5e-7 });
  });

  it('is finite and exact for huge logits', () => {
    const big = tensor([
      [1e4, 0, -1e4],
      [1e4, 1e4 + 1, 0],
    ]);
    const l = vals(nn.softmaxCrossEntropy(big, tensor([0, 0], { dtype: 'int32' })))[0];
    expect(Number.isFinite(l)).toBe(true);
    // row 0: log(1 + e^-1e4 + e^-2e4) ≈ 0; row 1: log(1 + e) (logits relative to 1e4 + 1: -1, 0)
    expectClose(l, Math.log(1 + Math.E) / 2, { rtol: 0, atol: 5e-5 });
    const g = grad((x: Tensor) => nn.softmaxCrossEntropy(x, tensor([2, 1], { dtype: 'int32' })))(big);
    expect(vals(g).every(Number.isFinite)).toBe(true);
  });

  it('gradient is (softmax - onehot) / batch', () => {
    const g = vals(grad((x: Tensor) => nn.softmaxCrossEntropy(x, labels))(logits));
    const sm = (row: number[]) => {
      const e = row.map(Math.exp);
      const s = e.reduce((a, b) => a + b, 0);
      return e.map((v) => v / s);
    };
    const want = [
      ...sm([1, 2, 3]).map((p, j) => (p - (j === 2 ? 1 : 0)) / 2),
      ...sm([0.5, -1, 0]).map((p, j) => (p - (j === 0 ? 1 : 0)) / 2),
    ];
    g.forEach((v, i) => {
      expectClose(v, want[i], { rtol: 0, atol: 5e-7 });
    });
  });

  it('accepts soft labels (probabilities) of the logits shape', () => {
    const soft = tensor([
      [0, 0, 1],
      [1, 0, 0],
    ]);
    expectClose(vals(nn.softmaxCrossEntropy(logits, soft))[0], expected, { rtol: 0, atol: 5e-7 });
  });

  it('a single example (1-D logits) gives its own loss', () => {
    const l = nn.softmaxCrossEntropy(tensor([1, 2, 3]), tensor(2, { dtype: 'int32' }));
    expectClose(vals(l)[0], byHand([1, 2, 3], 2), { rtol: 0, atol: 5e-7 });
  });

  it('rejects labels of the wrong shape or dtype', () => {
    expect(() => nn.softmaxCrossEntropy(logits, tensor([1, 2, 0], { dtype: 'int32' }))).toThrow(ShapeError);
    expect(() => nn.softmaxCrossEntropy(logits, tensor([2, 0]))).toThrow(DTypeError);
    expect(() => nn.softmaxCrossEntropy(logits, tensor([[1, 0]]))).toThrow(ShapeError);
  });

  it('mse is the mean squared difference', () => {
    const l = nn.mse(
      tensor([
        [1, 2],
        [3, 4],
      ]),
      tensor([
        [0, 2],
        [5, 4],
      ]),
    );
    expectClose(vals(l)[0], (1 + 0 + 4 + 0) / 4, { rtol: 0, atol: 5e-7 });
    expect(() => nn.mse(tensor([1, 2]), tensor([1, 2, 3]))).toThrow(ShapeError);
  });

  it('accuracy counts argmax hits', () => {
    expectClose(vals(nn.accuracy(logits, tensor([2, 1], { dtype: 'int32' })))[0], 0.5, {
      rtol: 0,
      atol: 5e-7,
    });
    expect(vals(nn.accuracy(logits, labels))[0]).toBe(1);
    expect(() => nn.accuracy(logits, tensor([2, 0]))).toThrow(DTypeError);
  });
});
