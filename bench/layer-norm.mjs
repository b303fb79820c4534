#!/usr/bin/env node
// Layer normalization over the last axis (issue 10: fused kernels where they save a pass over
// memory): adjoint's layerNorm primitive (one pass: each row read once, normalized in cache,
// written once) against the same math as a composite of ops (mean, subtract, square, mean,
// rsqrt, scale, shift), and TF.js's wasm backend running that composite (tf.moments and
// elementwise ops, as tf.layers.layerNormalization does). Forward with the result read back, and
// value + gradients (x, gamma, beta) of sum(layerNorm(x) · w), every gradient read back.
// One thread each; median and min of --reps runs after warm-up.
//
//   npm run build && node bench/layer-norm.mjs [--reps 20] [--shapes 2048x512,512x768]
import { createRequire } from 'node:module';
import path from 'node:path';
import { arg, shapesArg } from './lib/args.mjs';
import { uniform } from './lib/data.mjs';
import { normCases, normRows } from './lib/norm-bench.mjs';

const reps = Number(arg('reps', 20));
const shapes = shapesArg('shapes', '2048x512,512x768');
const EPS = 1e-5;

const A = await import('../dist/index.js');
await A.init({ backend: 'wasm', threads: 1 });
const require = createRequire(import.meta.url);
const tf = await import('@tensorflow/tfjs');
const wasm = await import('@tensorflow/tfjs-backend-wasm');
wasm.setWasmPaths(`${path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json'))}/dist/`);
await tf.setBackend('wasm');
await tf.ready();

const composite = (x, g, b) => {
  const c = A.sub(x, A.mean(x, -1, true));
  return A.add(A.mul(A.mul(c, A.rsqrt(A.add(A.mean(A.square(c), -1, true), EPS))), g), b);
};
const fused = (x, g, b) => A.nn.layerNorm.apply({ gamma: g, beta: b }, x, { eps: EPS });
const tfNorm = (x, g, b) => {
  const { mean, variance } = tf.moments(x, -1, true);
  return x
    .sub(mean)
    .mul(tf.rsqrt(variance.add(EPS)))
    .mul(g)
    .add(b);
};

const rows = [];
for (const [n, d] of shapes) {
  const [xs, gs, bs, ws] = [
    uniform(n * d, 1, -2, 2),
    uniform(d, 2, -2, 2),
    uniform(d, 3, -2, 2),
    uniform(n * d, 4, -2, 2),
  ];
  const [x, g, b, w] = [
    A.tensor(xs, { shape: [n, d] }),
    A.tensor(gs),
    A.tensor(bs),
    A.tensor(ws, { shape: [n, d] }),
  ];
  const [tx, tg, tb, tw] = [
    tf.tensor2d(xs, [n, d]),
    tf.tensor1d(gs),
    tf.tensor1d(bs),
    tf.tensor2d(ws, [n, d]),
  ];
  const cases = normCases(
    A,
    tf,
    [
      ['adjoint fused', fused],
      ['adjoint composite', composite],
    ],
    [x, g, b, w],
    'tfjs-wasm composite',
    tfNorm,
    [tx, tg, tb, tw],
  );
  // same numbers from all three
  const ref = await cases['adjoint composite'].fwd();
  for (const [name, c] of Object.entries(cases)) {
    const got = await c.fwd();
    const err = got.reduce((m, v, i) => Math.max(m, Math.abs(v - ref[i])), 0);
    if (!(err < 1e-4)) throw new Error(`${name}: forward differs from the composite by ${err}`);
  }
  rows.push(...(await normRows([n, d], cases, reps)));
}
console.log(`layer norm, one thread, ${reps} reps; ratio = time ÷ adjoint fused's time`);
console.log('| x | what | implementation | median | min | ratio |');
console.log('|---|---|---|---:|---:|---:|');
for (const r of rows) console.log(r);
A.shutdown();
