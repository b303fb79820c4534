#!/usr/bin/env node
// Batch normalization in training mode over every axis but the last (issue 10: fused kernels where
// they save a pass over memory): adjoint's nn.batchNorm (statistics in one pass by `moments`; its
// backward a rule of two per-channel sums and one fused pass for x's cotangent) against the same
// math as a composite of public ops (mean and variance as ops) differentiated op by op, and TF.js's
// wasm backend (tf.moments and tf.batchNorm, as tf.layers.batchNormalization does). Forward with
// the result read back, and value + gradients (x, gamma, beta) of sum(batchNorm(x) · w), every
// gradient read back. One thread each (--threads to change); median and min of --reps runs.
//
//   npm run build && node bench/batch-norm.mjs [--reps 20] [--shapes 64x28x28x32,256x512] [--threads 1]
import { createRequire } from 'node:module';
import path from 'node:path';
import { arg, shapesArg } from './lib/args.mjs';
import { uniform } from './lib/data.mjs';
import { measure, median } from './lib/measure.mjs';

const reps = Number(arg('reps', 20));
const shapes = shapesArg('shapes', '64x28x28x32,256x512');
const threads = Number(arg('threads', 1));
const EPS = 1e-5;

const A = await import('../dist/index.js');
await A.init({ backend: 'wasm', threads });
const require = createRequire(import.meta.url);
const tf = await import('@tensorflow/tfjs');
const wasm = await import('@tensorflow/tfjs-backend-wasm');
wasm.setWasmPaths(`${path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json'))}/dist/`);
wasm.setThreadsCount?.(threads);
await tf.setBackend('wasm');
await tf.ready();

/** Median and min of --reps timed runs after warm-up (at least 3 runs and 0.3 s). */
async function time(run) {
  const { times } = await measure(run, {
    warmupRuns: 3,
    warmupMs: 300,
    minReps: reps,
    maxReps: reps,
    budgetMs: 0,
    hardCapMs: Number.POSITIVE_INFINITY,
    slowMs: Number.POSITIVE_INFINITY,
    checkRuns: 0,
  });
  return { med: median(times), min: Math.min(...times) };
}

const state = (c) => ({ mean: A.zeros([c]), variance: A.ones([c]) });
const withRule = (x, g, b) =>
  A.nn.batchNorm.apply({ gamma: g, beta: b }, state(g.shape[0]), x, { eps: EPS })[0];
// the same math as public ops (mean, variance), differentiated op by op
const composite = (x, g, b) => {
  const lead = x.shape.slice(0, -1).map((_, i) => i);
  const c = A.sub(x, A.mean(x, lead, true));
  return A.add(A.mul(A.mul(c, A.rsqrt(A.add(A.mean(A.square(c), lead, true), EPS))), g), b);
};
const tfNorm = (x, g, b) => {
  const { mean, variance } = tf.moments(
    x,
    x.shape.slice(0, -1).map((_, i) => i),
  );
  return tf.batchNorm(x, mean, variance, b, g, EPS);
};

const rows = [];
for (const shape of shapes) {
  const n = shape.reduce((a, d) => a * d, 1);
  const c = shape[shape.length - 1];
  const [xs, gs, bs, ws] = [
    uniform(n, 1, -2, 2),
    uniform(c, 2, 0.5, 2),
    uniform(c, 3, -2, 2),
    uniform(n, 4, -2, 2),
  ];
  const [x, g, b, w] = [A.tensor(xs, { shape }), A.tensor(gs), A.tensor(bs), A.tensor(ws, { shape })];
  const [tx, tg, tb, tw] = [tf.tensor(xs, shape), tf.tensor1d(gs), tf.tensor1d(bs), tf.tensor(ws, shape)];
  const cases = {};
  for (const [name, f] of [
    ['adjoint nn.batchNorm', withRule],
    ['adjoint composite', composite],
  ]) {
    const fwd = A.jit(f);
    const vg = A.jit(A.valueAndGrad((x, g, b) => A.sum(A.mul(f(x, g, b), w)), [0, 1, 2]));
    cases[name] = {
      fwd: () => fwd(x, g, b).data(),
      grad: async () => {
        const [v, gr] = vg(x, g, b);
        return Promise.all([v.data(), ...gr.map((t) => t.data())]);
      },
    };
  }
  const tfVg = tf.valueAndGrads((x, g, b) => tf.sum(tf.mul(tfNorm(x, g, b), tw)));
  cases['tfjs-wasm'] = {
    fwd: async () => {
      const y = tf.tidy(() => tfNorm(tx, tg, tb));
      const out = await y.data();
      y.dispose();
      return out;
    },
    grad: async () => {
      const { value, grads } = tfVg([tx, tg, tb]);
      const out = await Promise.all([value.data(), ...grads.map((t) => t.data())]);
      tf.dispose([value, ...grads]);
      return out;
    },
  };
  // the same numbers from all three: value and every gradient
  const ref = await cases['adjoint composite'].grad();
  for (const [name, k] of Object.entries(cases)) {
    const got = await k.grad();
    got.forEach((arr, j) => {
      const scale = ref[j].reduce((m, v) => Math.max(m, Math.abs(v)), 1);
      const err = arr.reduce((m, v, i) => Math.max(m, Math.abs(v - ref[j][i])), 0) / scale;
      if (!(err < 1e-4))
        throw new Error(`${name}: output ${j} differs from the composite by ${err} (relative)`);
    });
  }
  for (const kind of ['fwd', 'grad']) {
    const base = [];
    for (const [name, k] of Object.entries(cases)) base.push([name, await time(k[kind])]);
    const ruleMed = base[0][1].med;
    for (const [name, t] of base)
      rows.push(
        `| [${shape}] | ${kind === 'fwd' ? 'forward + read' : 'value + 3 gradients + read'} | ${name} | ${t.med.toFixed(3)} ms | ${t.min.toFixed(3)} ms | ${(t.med / ruleMed).toFixed(2)}× |`,
      );
  }
}
console.log(
  `batch norm (training), ${threads} thread(s), ${reps} reps; ratio = time ÷ adjoint nn.batchNorm's time`,
);
console.log('| x | what | implementation | median | min | ratio |');
console.log('|---|---|---|---:|---:|---:|');
for (const r of rows) console.log(r);
A.shutdown();
