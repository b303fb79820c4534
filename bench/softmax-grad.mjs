#!/usr/bin/env node
// Softmax's backward pass (issue 10: fused kernels where they save a pass over memory): the
// vjp of softmax at x, which runs the forward and then the softmaxGrad primitive (dx = y·(g - Σ g·y)
// in one pass over y and g), against the forward followed by the same math as a composite of ops
// (multiply, row sum, subtract, multiply: three passes); both under jit with the result read back,
// on attention-shaped rows; logSoftmax's (g - exp(y)·Σ g) likewise. One thread.
//
//   npm run build && node bench/softmax-grad.mjs [--reps 30] [--shapes 4096x128,1024x1024]
const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const reps = Number(arg('reps', 30));
const shapes = String(arg('shapes', '4096x128,1024x1024'))
  .split(',')
  .map((s) => s.split('x').map(Number));

const A = await import('../dist/index.js');
await A.init({ backend: 'wasm', threads: 1 });

async function time(run) {
  const t0 = performance.now();
  for (let i = 0; i < 3 || performance.now() - t0 < 300; i++) await run();
  const ts = [];
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    await run();
    ts.push(performance.now() - t);
  }
  ts.sort((a, b) => a - b);
  return { med: ts[Math.floor(ts.length / 2)], min: ts[0] };
}

console.log(`softmax backward, one thread, ${reps} reps; ratio = composite ÷ primitive`);
console.log(
  '| rows × cols | op | primitive | composite | ratio | primitive, no read | composite, no read | ratio |',
);
console.log('|---|---|---:|---:|---:|---:|---:|---:|');
for (const [n, d] of shapes) {
  const x = A.random.normal([n, d], { seed: 1 });
  const g = A.random.normal([n, d], { seed: 2 });
  for (const log of [false, true]) {
    // the primitive, as grad reaches it: the vjp of softmax at x
    const prim = A.jit((x, g) => A.vjp((t) => (log ? A.logSoftmax(t, -1) : A.softmax(t, -1)), x)[1](g)[0]);
    const comp = A.jit((x, g) => {
      const y = log ? A.logSoftmax(x, -1) : A.softmax(x, -1);
      return log
        ? A.sub(g, A.mul(A.exp(y), A.sum(g, -1, true)))
        : A.mul(y, A.sub(g, A.sum(A.mul(g, y), -1, true)));
    });
    const [a, b] = [await prim(x, g).data(), await comp(x, g).data()];
    const err = a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
    if (!(err < 1e-4)) throw new Error(`primitive and composite differ by ${err}`);
    // both runs include the forward softmax: y, then x's cotangent from y and g
    const tp = await time(() => prim(x, g).data());
    const tc = await time(() => comp(x, g).data());
    // computation alone: the result is released instead of read (no 4-byte-per-element copy out)
    const up = await time(async () => prim(x, g).dispose());
    const uc = await time(async () => comp(x, g).dispose());
    const ms = (t) => `${t.med.toFixed(3)} ms`;
    console.log(
      `| ${n} × ${d} | ${log ? 'logSoftmax' : 'softmax'} | ${ms(tp)} | ${ms(tc)} | ${(tc.med / tp.med).toFixed(2)}× | ${ms(up)} | ${ms(uc)} | ${(uc.med / up.med).toFixed(2)}× |`,
    );
  }
}
A.shutdown();
