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
import { normCases, normRows } from './lib/norm-bench.mjs';

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
  const cases = normCases(
    A,
    tf,
    [
      ['adjoint nn.batchNorm', withRule],
      ['adjoint composite', composite],
    ],
    [x, g, b, w],
    'tfjs-wasm',
    tfNorm,
    [tx, tg, tb, tw],
  );
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
  rows.push(...(await normRows(shape, cases, reps)));
}
console.log(
  `batch norm (training), ${threads} thread(s), ${reps} reps; ratio = time ÷ adjoint nn.batchNorm's time`,
);
console.log('| x | what | implementation | median | min | ratio |');
console.log('|---|---|---|---:|---:|---:|');
for (const r of rows) console.log(r);
A.shutdown();
