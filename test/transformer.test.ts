/** A two-layer transformer learns to reverse digit strings; plus unit tests of its pieces. */
import { afterAll, describe, expect, it } from 'vitest';
import {
  add,
  conv2d,
  grad,
  init,
  jit,
  jvp,
  memoryStats,
  mul,
  nn,
  optim,
  random,
  ShapeError,
  stack,
  sum,
  type Tensor,
  tensor,
  ValueError,
  valueAndGrad,
  vmap,
} from '../src/index';
import { batchNormTrain } from '../src/nn/transformer';
import { apply } from '../src/ops/registry';
import {
  centralDifference,
  dot,
  expectClose,
  randomTensor,
  rng,
  values,
  withFloat64,
  withReference,
} from './helpers';

const vals = (t: Tensor) => Array.from(t.dataSync());

const VOCAB = 11; // digits 0-9 and the pad token 10
const PAD = 10;
const SEQ = 8;

/** Digit strings of length minLen..SEQ, right-padded with PAD; target: the string reversed, PAD after. */
function reverseData(n: number, r: () => number, minLen: number) {
  const x = new Int32Array(n * SEQ).fill(PAD);
  const y = new Int32Array(n * SEQ).fill(PAD);
  const lens = new Int32Array(n);
  for (let b = 0; b < n; b++) {
    const len = minLen + Math.floor(r() * (SEQ - minLen + 1));
    lens[b] = len;
    for (let i = 0; i < len; i++) x[b * SEQ + i] = Math.floor(r() * 10);
    for (let i = 0; i < len; i++) y[b * SEQ + i] = x[b * SEQ + len - 1 - i];
  }
  return { x: tensor(x, { shape: [n, SEQ] }), y: tensor(y, { shape: [n, SEQ] }), lens };
}

type Model = {
  tok: nn.EmbeddingParams;
  pos: nn.EmbeddingParams;
  blocks: nn.TransformerBlockParams[];
  ln: nn.LayerNormParams;
  head: nn.LinearParams;
};

const D = 32;
const HEADS = 4;

function initModel(seed: number): Model {
  return {
    tok: nn.embedding.init(VOCAB, D, { seed: nn.layerSeed(seed, 0), std: 0.5 }),
    pos: nn.embedding.init(SEQ, D, { seed: nn.layerSeed(seed, 1), std: 0.5 }),
    blocks: [0, 1].map((i) =>
      nn.transformerBlock.init(D, HEADS, { seed: nn.layerSeed(seed, 2 + i), hidden: 64 }),
    ),
    ln: nn.layerNorm.init(D),
    head: nn.linear.init(D, VOCAB, { seed: nn.layerSeed(seed, 9) }),
  };
}

const positions = tensor(Int32Array.from({ length: SEQ }, (_, i) => i));

function forward(p: Model, x: Tensor): Tensor {
  let h = nn.embedding.apply(p.tok, x).add(nn.embedding.apply(p.pos, positions));
  for (const b of p.blocks) h = nn.transformerBlock.apply(b, h, { heads: HEADS });
  return nn.linear.apply(p.head, nn.layerNorm.apply(p.ln, h));
}

describe('transformer', () => {
  it('a two-layer transformer reverses digit strings (length 6-8) to >= 99% token accuracy', () => {
    const minLen = 6;
    const steps = 400;
    const t0 = performance.now();
    let params = initModel(1);
    const opt = optim.adam({ lr: 3e-3 });
    let state = opt.init(params);
    const lossFn = (p: Model, x: Tensor, y: Tensor) => nn.softmaxCrossEntropy(forward(p, x), y);
    const step = jit((p: Model, s: optim.AdamState, x: Tensor, y: Tensor) => {
      const [loss, grads] = valueAndGrad(lossFn)(p, x, y);
      const [np, ns] = opt.update(grads, s, p);
      return { loss, params: np, state: ns };
    });
    const r = rng(7);
    let loss = 0;
    for (let k = 0; k < steps; k++) {
      const { x, y } = reverseData(64, r, minLen);
      const out = step(params, state, x, y);
      ({ params, state } = out);
      if (k % 50 === 49 || k === steps - 1) {
        loss = out.loss.dataSync()[0];
      }
    }
    const test = reverseData(500, rng(12345), minLen);
    const pred = forward(params, test.x).argmax(-1).dataSync();
    const want = test.y.dataSync();
    let right = 0;
    let total = 0;
    for (let b = 0; b < 500; b++)
      for (let i = 0; i < test.lens[b]; i++) {
        total++;
        if (pred[b * SEQ + i] === want[b * SEQ + i]) right++;
      }
    const acc = right / total;
    console.log(
      `reverse: ${steps} steps, loss ${loss.toFixed(4)}, held-out token accuracy ${(acc * 100).toFixed(2)}%, ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
    expect(acc).toBeGreaterThanOrEqual(0.99);
  }, 120_000);
});

describe('random keys', () => {
  it('key(seed) is an int32 [2] tensor; the same key gives the same numbers', () => {
    const k = random.key(42);
    expect(k.shape).toEqual([2]);
    expect(k.dtype).toBe('int32');
    expect(vals(random.normal([100], { key: k }))).toEqual(
      vals(random.normal([100], { key: random.key(42) })),
    );
    expect(vals(random.normal([100], { key: k }))).not.toEqual(
      vals(random.normal([100], { key: random.key(43) })),
    );
    // counter-based: a prefix of a longer draw is the shorter draw
    expect(vals(random.uniform([7], { key: k }))).toEqual(vals(random.uniform([20], { key: k })).slice(0, 7));
  });

  it('split gives n distinct, deterministic keys with unrelated streams', () => {
    const k = random.key(0);
    const ks = random.split(k, 4);
    expect(ks.length).toBe(4);
    expect(random.split(k).length).toBe(2);
    expect(random.split(k, 4).map(vals)).toEqual(ks.map(vals));
    const draws = [k, ...ks].map((key) => vals(random.uniform([2000], { key })));
    for (let a = 0; a < draws.length; a++)
      for (let b = a + 1; b < draws.length; b++) {
        // independent uniforms: sample correlation near 0 (sd ≈ 1/sqrt(2000) ≈ 0.022)
        const x = draws[a];
        const y = draws[b];
        let sxy = 0;
        let sxx = 0;
        let syy = 0;
        for (let i = 0; i < x.length; i++) {
          sxy += (x[i] - 0.5) * (y[i] - 0.5);
          sxx += (x[i] - 0.5) ** 2;
          syy += (y[i] - 0.5) ** 2;
        }
        expect(Math.abs(sxy / Math.sqrt(sxx * syy))).toBeLessThan(0.1);
      }
  });

  it('normal and uniform from a key have the right moments and range', () => {
    const z = vals(random.normal([20000], { key: random.key(5), mean: 1, std: 2 }));
    const m = z.reduce((a, v) => a + v, 0) / z.length;
    const v = z.reduce((a, x) => a + (x - m) ** 2, 0) / z.length;
    expectClose(m, 1, { rtol: 0, atol: 0.05 });
    expectClose(v, 4, { rtol: 0.05, atol: 0 });
    const u = vals(random.uniform([5000], { key: random.key(6), low: -3, high: -1 }));
    expect(Math.min(...u)).toBeGreaterThanOrEqual(-3);
    expect(Math.max(...u)).toBeLessThan(-1);
    expectClose(u.reduce((a, x) => a + x, 0) / u.length, -2, { rtol: 0, atol: 0.05 });
  });

  it('the streams are pinned: these numbers were drawn before draws became graph ops', () => {
    const k = random.key(7);
    const [a, b] = random.split(k);
    expect(vals(a)).toEqual([-1866539477, -277718939]);
    expect(vals(b)).toEqual([-945046043, -403207352]);
    expect(vals(random.normal([5], { key: k, mean: 1, std: 2 }))).toEqual([
      0.49564361572265625, -0.9378964304924011, 3.3970541954040527, 3.0951130390167236, -0.051159489899873734,
    ]);
    expect(vals(random.uniform([3], { key: b, low: -1, high: 3 }))).toEqual([
      2.4767398834228516, 2.825801134109497, 2.7894864082336426,
    ]);
    expect(vals(nn.dropout(tensor([1, 2, 3, 4, 5, 6]), 0.5, { key: a }))).toEqual([2, 0, 0, 8, 0, 0]);
  });

  it('keys are traced by jit: a new key is a new argument, not a new plan', () => {
    let traces = 0;
    const draw = jit((key: Tensor, x: Tensor) => {
      traces++;
      const [k1, k2] = random.split(key);
      return nn.dropout(x, 0.25, { key: k1 }).add(random.normal([4], { key: k2 }));
    });
    const x = tensor([1, 2, 3, 4]);
    for (const seed of [3, 4, 5]) {
      const key = random.key(seed);
      const [k1, k2] = random.split(key);
      const want = vals(nn.dropout(x, 0.25, { key: k1 }).add(random.normal([4], { key: k2 })));
      expect(vals(draw(key, x) as Tensor)).toEqual(want);
    }
    expect(traces).toBe(1);
  });

  it('vmap over keys draws a stream per key, as a loop does', () => {
    const keys = random.split(random.key(11), 3);
    const f = (key: Tensor) => {
      const [k1, k2] = random.split(key, 2);
      return random.uniform([2, 3], { key: k1 }).add(random.normal([3], { key: k2 }));
    };
    const batched = vmap(f)(stack(keys)) as Tensor;
    expect(batched.shape).toEqual([3, 2, 3]);
    expect(vals(batched)).toEqual(keys.flatMap((k) => vals(f(k))));
    // batch axis 1 of the keys, output axis 1
    const byCols = vmap(f, 1, 1)(stack(keys, 1)) as Tensor;
    expect(byCols.shape).toEqual([2, 3, 3]);
    expect(vals(byCols)).toEqual(vals(stack(keys.map(f), 1)));
  });

  it('the { seed } form still works; something that is not a key is a ValueError naming the op', () => {
    expect(vals(random.normal([3], { seed: 1 }))).toEqual(vals(random.normal([3], { seed: 1 })));
    const notKey = tensor([1, 2]);
    expect(() => random.normal([3], { key: notKey })).toThrow(/random\.normal: key/);
    expect(() => random.uniform([3], { key: tensor([1, 2, 3], { dtype: 'int32' }) })).toThrow(ValueError);
    expect(() => random.split(notKey)).toThrow(/random\.split/);
    expect(() => random.split(random.key(1), 0)).toThrow(ValueError);
    expect(() => nn.dropout(tensor([1, 2]), 0.5, { key: notKey })).toThrow(ValueError);
  });
});

describe('nn.dropout', () => {
  it('zeroes about rate of the elements and scales the rest by 1/(1-rate)', () => {
    const x = random.uniform([10000], { seed: 1, low: 1, high: 2 });
    const y = vals(nn.dropout(x, 0.3, { key: random.key(2) }));
    const xs = vals(x);
    let zeros = 0;
    y.forEach((v, i) => {
      if (v === 0) zeros++;
      else expectClose(v, xs[i] / 0.7, { rtol: 1e-6 });
    });
    expectClose(zeros / y.length, 0.3, { rtol: 0, atol: 0.02 });
    const ones = vals(nn.dropout(tensor(new Float32Array(10000).fill(1)), 0.5, { key: random.key(3) }));
    expectClose(ones.reduce((a, v) => a + v, 0) / ones.length, 1, { rtol: 0, atol: 0.04 });
  });

  it('is deterministic per key, differs across keys, and rate 0 is the identity', () => {
    const x = random.normal([200], { seed: 4 });
    const k = random.key(9);
    expect(vals(nn.dropout(x, 0.5, { key: k }))).toEqual(vals(nn.dropout(x, 0.5, { key: k })));
    const [a, b] = random.split(k);
    expect(vals(nn.dropout(x, 0.5, { key: a }))).not.toEqual(vals(nn.dropout(x, 0.5, { key: b })));
    expect(vals(nn.dropout(x, 0, { key: k }))).toEqual(vals(x));
  });

  it('rejects rates outside [0, 1)', () => {
    const x = tensor([1, 2]);
    for (const rate of [-0.1, 1, 1.5, Number.NaN])
      expect(() => nn.dropout(x, rate, { key: random.key(0) })).toThrow(ValueError);
  });

  it('its gradient is the mask', () => {
    const x = random.normal([50], { seed: 2 });
    const k = random.key(1);
    const y = vals(nn.dropout(x, 0.4, { key: k }));
    const xs = vals(x);
    const g = vals(grad((t: Tensor) => nn.dropout(t, 0.4, { key: k }).sum())(x) as Tensor);
    g.forEach((v, i) => {
      expectClose(v, y[i] === 0 ? 0 : y[i] / xs[i], { rtol: 1e-5 });
    });
  });
});

describe('nn.layerNorm', () => {
  it('matches a hand computation over the last axis', () => {
    const p = nn.layerNorm.init(4);
    expect(vals(p.gamma)).toEqual([1, 1, 1, 1]);
    expect(vals(p.beta)).toEqual([0, 0, 0, 0]);
    const q = { gamma: tensor([1, 2, 0.5, -1]), beta: tensor([0, 1, 0, 2]) };
    const rows = [
      [1, 2, 3, 4],
      [-2, 0, 0, 6],
    ];
    const y = nn.layerNorm.apply(q, tensor(rows), { eps: 1e-3 });
    const want: number[] = [];
    for (const r of rows) {
      const m = r.reduce((a, v) => a + v, 0) / 4;
      const v = r.reduce((a, x) => a + (x - m) ** 2, 0) / 4;
      r.forEach((x, j) => {
        want.push(((x - m) / Math.sqrt(v + 1e-3)) * [1, 2, 0.5, -1][j] + [0, 1, 0, 2][j]);
      });
    }
    expectClose(y, want, { rtol: 1e-5, atol: 1e-6 });
    expect(() => nn.layerNorm.apply(p, tensor([1, 2, 3]))).toThrow(ShapeError);
  });
});

describe('nn.embedding and nn.conv2d', () => {
  it('embedding rows are the table rows at the ids', () => {
    const p = nn.embedding.init(5, 3, { seed: 1 });
    expect(p.table.shape).toEqual([5, 3]);
    const ids = tensor(
      [
        [4, 0],
        [2, 2],
      ],
      { dtype: 'int32' },
    );
    const y = nn.embedding.apply(p, ids);
    expect(y.shape).toEqual([2, 2, 3]);
    const t = vals(p.table);
    expect(vals(y)).toEqual([4, 0, 2, 2].flatMap((i) => t.slice(3 * i, 3 * i + 3)));
  });

  it('conv2d layer: HWIO filter, zero bias, apply is the conv2d op plus b', () => {
    const p = nn.conv2d.init(3, 3, 2, 4, { seed: 3 });
    expect(p.w.shape).toEqual([3, 3, 2, 4]);
    expect(p.b.shape).toEqual([4]);
    const q = { w: p.w, b: tensor([1, 2, 3, 4]) };
    const x = random.normal([2, 5, 5, 2], { seed: 1 });
    const y = nn.conv2d.apply(q, x, { padding: 'same' });
    expect(y.shape).toEqual([2, 5, 5, 4]);
    expectClose(y, conv2d(x, p.w, { padding: 'same' }).add(q.b), { rtol: 1e-6 });
  });
});

describe('nn.attention', () => {
  const p = nn.attention.init(8, 2, { seed: 1 });
  const x = random.normal([2, 5, 8], { key: random.key(3) });

  it('shapes: batched and unbatched', () => {
    expect(p.q.w.shape).toEqual([8, 8]);
    expect(nn.attention.apply(p, x, { heads: 2 }).shape).toEqual([2, 5, 8]);
    expect(nn.attention.weights(p, x, { heads: 2 }).shape).toEqual([2, 2, 5, 5]);
    const x0 = random.normal([5, 8], { seed: 2 });
    expect(nn.attention.apply(p, x0, { heads: 2 }).shape).toEqual([5, 8]);
    expectClose(
      nn.attention.apply(p, x0, { heads: 2 }),
      nn.attention.apply(p, x0.reshape([1, 5, 8]), { heads: 2 }),
      { rtol: 1e-6 },
    );
    expect(() => nn.attention.init(8, 3)).toThrow(ValueError);
    expect(() => nn.attention.apply(p, random.normal([2, 5, 6]))).toThrow(ShapeError);
  });

  it('causal mask: future positions get zero weight; rows sum to 1', () => {
    const w = vals(nn.attention.weights(p, x, { heads: 2, causal: true }));
    for (let r = 0; r < 2 * 2 * 5; r++) {
      const i = r % 5;
      let s = 0;
      for (let j = 0; j < 5; j++) {
        const v = w[r * 5 + j];
        if (j > i) expect(v).toBe(0);
        s += v;
      }
      expectClose(s, 1, { rtol: 1e-6 });
    }
    // the first output depends only on the first input
    const y1 = vals(nn.attention.apply(p, x, { heads: 2, causal: true }));
    const x2 = vals(x);
    for (let j = 8; j < 40; j++) x2[j] += 1;
    const y2 = vals(nn.attention.apply(p, tensor(x2, { shape: [2, 5, 8] }), { heads: 2, causal: true }));
    expectClose(y2.slice(0, 8), y1.slice(0, 8), { rtol: 1e-5, atol: 1e-6 });
  });

  it('padding mask: padded keys get zero weight and their content does not matter', () => {
    const mask = tensor([
      [1, 1, 1, 0, 0],
      [1, 1, 1, 1, 1],
    ]);
    const w = vals(nn.attention.weights(p, x, { heads: 2, mask }));
    for (let h = 0; h < 2; h++)
      for (let i = 0; i < 5; i++) for (const j of [3, 4]) expect(w[(h * 5 + i) * 5 + j]).toBe(0);
    const y1 = vals(nn.attention.apply(p, x, { heads: 2, mask }));
    const x2 = vals(x);
    for (let j = 24; j < 40; j++) x2[j] = 100; // batch 0, positions 3 and 4
    const y2 = vals(
      nn.attention.apply(p, tensor(x2, { shape: [2, 5, 8] }), { heads: 2, mask, causal: true }),
    );
    const y1c = vals(nn.attention.apply(p, x, { heads: 2, mask, causal: true }));
    expectClose(y2.slice(0, 24), y1c.slice(0, 24), { rtol: 1e-5, atol: 1e-6 });
    expect(y1.every(Number.isFinite)).toBe(true);
    // a query that can see no real token gets all-zero weights (its output is o's bias)
    const none = {
      heads: 2,
      mask: tensor([
        [0, 0, 0, 0, 0],
        [1, 1, 1, 1, 1],
      ]),
    };
    const all = vals(nn.attention.apply(p, x, none));
    expect(all.every(Number.isFinite)).toBe(true);
    expect(vals(nn.attention.weights(p, x, none)).slice(0, 50)).toEqual(new Array(50).fill(0));
    const bias = vals(p.o.b);
    for (let i = 0; i < 5; i++) expectClose(all.slice(i * 8, i * 8 + 8), bias, { rtol: 1e-6 });
    // the masks are softmax's own: no tensor of the logits' size, no where pass
    const wt = nn.attention.weights(p, x, { ...none, causal: true });
    expect([wt.op, wt.inputs.length, wt.attrs.causal]).toEqual(['softmax', 2, true]);
    expect(wt.inputs[1].shape).toEqual([2, 5]);
    expect(() => nn.attention.apply(p, x, { heads: 2, mask: tensor([[1, 1]]) })).toThrow(ShapeError);
  });

  it('gradients match finite differences (float64)', () => {
    withFloat64(() => {
      const r = rng(3);
      const q = nn.attention.init(4, 2, { seed: 5 });
      const f = (xt: Tensor, wq: Tensor, wv: Tensor) =>
        nn.attention
          .apply({ ...q, q: { w: wq, b: q.q.b }, v: { w: wv, b: q.v.b } }, xt, {
            heads: 2,
            causal: true,
            mask: tensor([
              [1, 1, 0],
              [1, 1, 1],
            ]),
          })
          .square()
          .sum();
      const xs = [randomTensor([2, 3, 4], r), randomTensor([4, 4], r), randomTensor([4, 4], r)];
      const us = xs.map((t) => randomTensor(t.shape, r));
      const g = grad(f, [0, 1, 2])(...(xs as [Tensor, Tensor, Tensor])) as Tensor[];
      const analytic = g.reduce(
        (a, gi, i) => a + values(gi).reduce((s, v, j) => s + v * values(us[i])[j], 0),
        0,
      );
      const fd = centralDifference(f, xs, us)[0];
      expect(Math.abs(fd)).toBeGreaterThan(1e-3);
      expectClose(analytic, fd, { rtol: 1e-6, atol: 1e-8 });
    });
  });
});

describe('threads', () => {
  afterAll(async () => {
    await init({ threads: 1 });
  });

  it('a transformer block and its gradient give the same numbers for threads 1 and 2', async () => {
    const run = () => {
      const p = nn.transformerBlock.init(16, 4, { seed: 2 });
      const x = random.normal([3, 6, 16], { key: random.key(1) });
      const f = (pp: nn.TransformerBlockParams) =>
        nn.transformerBlock.apply(pp, x, { heads: 4, causal: true }).square().mean();
      const [v, g] = valueAndGrad(f)(p);
      return [
        vals(v),
        vals(g.attn.q.w),
        vals(g.mlp[0].w),
        vals(random.normal([10], { key: random.split(random.key(4))[1] })),
      ];
    };
    await init({ threads: 1 });
    expect(memoryStats().threads).toBe(1);
    const a = run();
    await init({ threads: 2 });
    expect(memoryStats().threads).toBe(2);
    const b = run();
    a.forEach((ai, i) => {
      expectClose(b[i], ai, { rtol: 1e-5, atol: 1e-7, what: `output ${i}` });
    });
  });
});

describe('nn.rmsNorm and nn.batchNorm', () => {
  it('rmsNorm matches a hand computation; its gradient matches finite differences (float64)', () => {
    const q = { gamma: tensor([1, 2, -0.5]) };
    const rows = [
      [1, 2, 3],
      [-2, 0.5, 4],
    ];
    const want = rows.flatMap((r) => {
      const rms = Math.sqrt(r.reduce((a, x) => a + x * x, 0) / 3 + 1e-6);
      return r.map((x, j) => (x / rms) * [1, 2, -0.5][j]);
    });
    expectClose(nn.rmsNorm.apply(q, tensor(rows)), want, { rtol: 1e-5 });
    expect(() => nn.rmsNorm.apply(q, tensor([[1, 2]]))).toThrow(
      /rmsNorm.apply: x must end in the normalized size 3/,
    );
    withFloat64(() => {
      const r = rng(5);
      const x = randomTensor([2, 3], r);
      const u = randomTensor([2, 3], r);
      const f = (t: Tensor) =>
        nn.rmsNorm
          .apply(q, t)
          .mul(tensor([[1, -2, 3]]))
          .sum();
      const gu = values(grad(f)(x)).reduce((a, g, i) => a + g * values(u)[i], 0);
      expectClose(gu, centralDifference(f, [x], [u])[0], { rtol: 1e-6, atol: 1e-8 });
    });
  });

  it('batchNorm: batch statistics in training, running statistics in inference', async () => {
    const { params, state } = nn.batchNorm.init(2);
    const x = tensor([[[1, 10]], [[3, 20]], [[5, 60]]]); // [3, 1, 2]: statistics over the first two axes, per channel
    const [y, next] = nn.batchNorm.apply(params, state, x, { training: true, momentum: 0.9, eps: 0 });
    const col = (c: number) =>
      [1, 3, 5].map(
        (_, i) =>
          [
            [1, 10],
            [3, 20],
            [5, 60],
          ][i][c],
      );
    const want = [0, 1].map((c) => {
      const v = col(c);
      const m = v.reduce((a, b) => a + b, 0) / 3;
      const s = Math.sqrt(v.reduce((a, b) => a + (b - m) ** 2, 0) / 3);
      return { m, s2: s * s, z: v.map((b) => (b - m) / s) };
    });
    expectClose(
      y,
      [0, 1, 2].flatMap((i) => [want[0].z[i], want[1].z[i]]),
      { rtol: 1e-5, atol: 1e-6 },
    );
    expectClose(next.mean, [0.1 * want[0].m, 0.1 * want[1].m], { rtol: 1e-6 });
    expectClose(next.variance, [0.9 + 0.1 * want[0].s2, 0.9 + 0.1 * want[1].s2], { rtol: 1e-6 });
    // inference: the running statistics, unchanged
    const [yi, same] = nn.batchNorm.apply(params, next, x, { training: false, eps: 0 });
    expect(same).toBe(next);
    const m0 = (await next.mean.data())[0];
    const v0 = (await next.variance.data())[0];
    expectClose((await yi.data())[0], (1 - m0) / Math.sqrt(v0), { rtol: 1e-5 });
    expect(() => nn.batchNorm.apply(params, state, tensor([1, 2]))).toThrow(/batchNorm.apply/);
    // the running statistics carry no gradient back into the activations
    const g = grad((t: Tensor) => nn.batchNorm.apply(params, state, t)[1].mean.sum())(x);
    expect(vals(g as Tensor)).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it('batchNorm in training: its backward rule (both outputs) matches finite differences, to second order; jvp, vmap and jit agree', () => {
    withFloat64(() => {
      const r = rng(21);
      for (const shape of [
        [5, 3],
        [2, 3, 4],
        [3, 1, 2, 2],
      ]) {
        const c = shape[shape.length - 1];
        const args = [randomTensor(shape, r), randomTensor([c], r), randomTensor([c], r)];
        const w = randomTensor(shape, r);
        const w2 = randomTensor([2, c], r);
        // y enters squared (so the second derivative goes through the rule's own terms), the
        // statistics linearly (the part of the rule only a caller of both outputs reaches)
        const loss = (x: Tensor, g: Tensor, b: Tensor) => {
          const [y, stats] = batchNormTrain(x, g, b, 1e-3);
          return add(sum(mul(mul(y, y), w)), sum(mul(stats, w2)));
        };
        const us = args.map((a) => randomTensor(a.shape, r));
        const gs = grad(loss, [0, 1, 2])(...args) as Tensor[];
        const gu = gs.reduce((acc, g, i) => acc + dot(values(g), values(us[i])), 0);
        const fd = centralDifference(loss, args, us)[0];
        expectClose(gu, fd, { rtol: 1e-6, atol: 1e-8, what: `gradient·u, x [${shape}]` });
        // forward mode differentiates the function itself: the same directional derivative
        expectClose(values(jvp(loss, args, us)[1])[0], fd, { rtol: 1e-6, atol: 1e-8, what: 'jvp' });
        // Hessian-vector product along u: the gradient of (gradient·u), against differences of gradient·u
        const gradDot = (x: Tensor, g: Tensor, b: Tensor) =>
          (grad(loss, [0, 1, 2])(x, g, b) as Tensor[]).reduce(
            (acc: Tensor, t, i) => add(acc, sum(mul(t, us[i]))),
            tensor(0),
          );
        const hs = grad(gradDot, [0, 1, 2])(...args) as Tensor[];
        const v = args.map((a) => randomTensor(a.shape, r));
        const hv = hs.reduce((acc, h, i) => acc + dot(values(h), values(v[i])), 0);
        expectClose(hv, centralDifference(gradDot, args, v, 1e-5)[0], {
          rtol: 1e-5,
          atol: 1e-7,
          what: 'Hessian-vector',
        });
        // per-example gradients under vmap (each example its own statistics), and jit, against a loop
        const xs = randomTensor([3, ...shape], r);
        const gx = (x: Tensor) => grad(loss)(x, args[1], args[2]) as Tensor;
        const looped = [0, 1, 2].map((i) => values(gx(xs.slice([i], [1]).reshape(shape))));
        expectClose(
          vmap(gx)(xs),
          looped.flatMap((a) => [...a]),
          { rtol: 1e-9, atol: 1e-12, what: 'vmap(grad)' },
        );
        expectClose(
          jit(vmap(gx))(xs),
          looped.flatMap((a) => [...a]),
          { rtol: 1e-9, atol: 1e-12, what: 'jit(vmap(grad))' },
        );
      }
    });
  });

  it('batchNorm statistics are one moments node; on wasm they match the float64 reference far from 0 and over many rows', () => {
    const { params, state } = nn.batchNorm.init(5);
    const [y] = nn.batchNorm.apply(params, state, random.normal([4, 3, 5], { seed: 1 }));
    const ops = new Set<string>();
    const walk = (t: Tensor) => {
      ops.add(t.op);
      t.inputs.forEach(walk);
    };
    walk(y);
    expect([ops.has('moments'), ops.has('mean'), ops.has('sum')]).toEqual([true, false, false]);
    // 5,000 rows (past the kernel's 64-row float32 blocks) at an offset of 1,000, spread 0.01..1
    const r = rng(8);
    const data = Float32Array.from(
      { length: 5000 * 5 },
      (_, i) => 1000 + (2 * r() - 1) * 10 ** -((i % 5) % 3),
    );
    const x = tensor(data, { shape: [100, 50, 5] });
    const m = apply('moments', [x]);
    expectClose(
      m,
      withReference(() => vals(apply('moments', [x]))),
      { rtol: 2e-6, atol: 0, what: 'moments' },
    );
    // no rows: NaN statistics, as 0/0
    const none = apply('moments', [tensor(new Float32Array(0), { shape: [0, 2] })]);
    expect(vals(none).every(Number.isNaN)).toBe(true);
    expect(
      withReference(() => vals(apply('moments', [tensor(new Float32Array(0), { shape: [0, 2] })]))).every(
        Number.isNaN,
      ),
    ).toBe(true);
  });
});
