#!/usr/bin/env node
// The CNN training step of issue 10 on wasm, 1 and 2 threads (or --threads a,b,...):
// batch 64, 28×28×1 → conv 3×3×32 'same' + bias + ReLU → max-pool 2 → conv 3×3×64 'same' + bias
// + ReLU → max-pool 2 → dense 10, softmax cross-entropy, SGD (lr 0.01), loss read back each step;
// jit(valueAndGrad + optim.sgd update). ≈ 1.45 GFLOP a step. Prints the median and min of
// --reps steps after --warmup steps, with the load average (the machine may be shared).
//
//   npm run build && node bench/cnn-step.mjs [--reps 20] [--warmup 3] [--threads 1,2] [--relaxed]
import { loadavg } from 'node:os';
import { arg } from './lib/args.mjs';

const reps = Number(arg('reps', 20));
const warmup = Number(arg('warmup', 3));
const threadList = String(arg('threads', '1,2')).split(',').map(Number);

const A = await import('../dist/index.js');
const B = 64;

function params(seed) {
  const he = (shape, fanIn) => A.random.normal(shape, { seed: seed++ }).mul(Math.sqrt(2 / fanIn));
  return {
    w1: he([3, 3, 1, 32], 9),
    b1: A.zeros([32]),
    w2: he([3, 3, 32, 64], 288),
    b2: A.zeros([64]),
    w3: he([7 * 7 * 64, 10], 3136),
    b3: A.zeros([10]),
  };
}

function logits(p, x) {
  let h = A.conv2d(x, p.w1, { padding: 'same' }).add(p.b1).relu();
  h = A.maxPool2d(h, 2);
  h = A.conv2d(h, p.w2, { padding: 'same' }).add(p.b2).relu();
  h = A.maxPool2d(h, 2);
  return h
    .reshape([B, 7 * 7 * 64])
    .matmul(p.w3)
    .add(p.b3);
}

const flops = (() => {
  const conv = (n, hw, kk, cin, cout) => 2 * n * hw * kk * cin * cout;
  const c1 = conv(B, 28 * 28, 9, 1, 32);
  const c2 = conv(B, 14 * 14, 9, 32, 64);
  const d = 2 * B * 3136 * 10;
  // forward c1, c2, dense; backward: filter gradients of both convs, input gradient of c2, dense x2
  return c1 + c2 + d + c1 + 2 * c2 + 2 * d;
})();

async function run(threads) {
  await A.init({ backend: 'wasm', threads });
  const x = A.random.normal([B, 28, 28, 1], { seed: 1 });
  const labels = A.tensor(
    Int32Array.from({ length: B }, (_, i) => (i * 7) % 10),
    { dtype: 'int32' },
  );
  const opt = A.optim.sgd({ lr: 0.01 });
  let p = params(10);
  let s = opt.init(p);
  const step = A.jit((pp, ss, xx, yy) => {
    const [loss, g] = A.valueAndGrad((q) => A.nn.softmaxCrossEntropy(logits(q, xx), yy))(pp);
    const [p2, s2] = opt.update(g, ss, pp);
    return [loss, p2, s2];
  });
  const times = [];
  let first;
  let last;
  for (let i = 0; i < warmup + reps; i++) {
    const t0 = performance.now();
    const [loss, p2, s2] = step(p, s, x, labels);
    const l = await loss.item();
    const t = performance.now() - t0;
    p = p2;
    s = s2;
    if (i === 0) first = l;
    last = l;
    if (i >= warmup) times.push(t);
  }
  times.sort((a, b) => a - b);
  const med = times[Math.floor(times.length / 2)];
  console.log(
    `threads ${threads}: median ${med.toFixed(1)} ms, min ${times[0].toFixed(1)} ms ` +
      `(${(flops / med / 1e6).toFixed(1)} GFLOP/s at the median; loss ${first.toFixed(4)} → ${last.toFixed(4)}; ` +
      `load ${loadavg()
        .map((v) => v.toFixed(2))
        .join(' ')})`,
  );
}

console.log(`CNN step, batch ${B}, ${(flops / 1e9).toFixed(3)} GFLOP, ${reps} reps after ${warmup} warm-up`);
for (const t of threadList) await run(t);
A.shutdown();
