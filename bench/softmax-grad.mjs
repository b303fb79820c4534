#!/usr/bin/env node
// Softmax's backward pass (issue 10: fused kernels where they save a pass over memory): the vjp
// of softmax at x, which runs the forward and then the softmaxGrad primitive (dx = y·(g - Σ g·y)
// in one pass over y and g), against the forward followed by the same math as a composite of ops
// (multiply, row sum, subtract, multiply); logSoftmax's (g - exp(y)·Σ g) likewise. All jitted,
// results released rather than read (the copy out would be the same for both), one thread. The
// three functions (primitive, composite, forward alone) run in turn, one call each per round, so
// the machine's drift touches them alike; the backward's time is the median minus the forward's.
//
//   npm run build && node bench/softmax-grad.mjs [--rounds 60] [--shapes 4096x128,1024x1024]
import { arg, shapesArg } from './lib/args.mjs';
import { median } from './lib/measure.mjs';

const rounds = Number(arg('rounds', 60));
const shapes = shapesArg('shapes', '4096x128,1024x1024');

const A = await import('../dist/index.js');
await A.init({ backend: 'wasm', threads: 1 });

console.log(
  `softmax backward, one thread, ${rounds} rounds; times are medians; ratio = composite ÷ primitive`,
);
console.log('| rows × cols | op | forward | + primitive backward | + composite backward | backward ratio |');
console.log('|---|---|---:|---:|---:|---:|');
for (const [n, d] of shapes) {
  const x = A.random.normal([n, d], { seed: 1 });
  const g = A.random.normal([n, d], { seed: 2 });
  for (const log of [false, true]) {
    const op = (t) => (log ? A.logSoftmax(t, -1) : A.softmax(t, -1));
    const fns = {
      forward: A.jit((x) => op(x)),
      primitive: A.jit((x, g) => A.vjp(op, x)[1](g)[0]),
      composite: A.jit((x, g) => {
        const y = op(x);
        return log
          ? A.sub(g, A.mul(A.exp(y), A.sum(g, -1, true)))
          : A.mul(y, A.sub(g, A.sum(A.mul(g, y), -1, true)));
      }),
    };
    const [a, b] = [await fns.primitive(x, g).data(), await fns.composite(x, g).data()];
    const err = a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
    if (!(err < 1e-4)) throw new Error(`primitive and composite differ by ${err}`);
    const times = { forward: [], primitive: [], composite: [] };
    for (let r = 0; r < rounds + 10; r++)
      for (const [name, f] of Object.entries(fns)) {
        const t = performance.now();
        f(x, g).dispose();
        if (r >= 10) times[name].push(performance.now() - t);
      }
    const [tf, tp, tc] = [median(times.forward), median(times.primitive), median(times.composite)];
    console.log(
      `| ${n} × ${d} | ${log ? 'logSoftmax' : 'softmax'} | ${tf.toFixed(3)} ms | ${tp.toFixed(3)} ms | ${tc.toFixed(3)} ms | ${((tc - tf) / (tp - tf)).toFixed(2)}× |`,
    );
  }
}
A.shutdown();
