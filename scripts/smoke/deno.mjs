// Manual smoke check in Deno (also runs under Node): gradients, a matmul, and a jitted Adam
// training loop on 1 and 2 threads. Not part of `npm test` yet.
//   npm run build; deno run -A scripts/smoke/deno.mjs
import * as A from '../../dist/index.js';

for (const threads of [1, 2]) {
  await A.init({ threads });
  const x = A.tensor([1, 2, 3]);
  const g = A.grad((x) => x.sin().mul(x).sum())(x);
  const w = A.random.normal([256, 256], { seed: 1 });
  const m = await A.matmul(w, w).sum().item();
  const params = A.nn.mlp.init([4, 8, 2], { seed: 0 });
  const opt = A.optim.adam({ lr: 0.01 });
  let state = opt.init(params);
  let p = params;
  const xs = A.random.normal([16, 4], { seed: 2 });
  const ys = A.tensor(
    Int32Array.from({ length: 16 }, (_, i) => i % 2),
    { dtype: 'int32' },
  );
  const step = A.jit((p, s, x, y) => {
    const [l, gr] = A.valueAndGrad((q) => A.nn.softmaxCrossEntropy(A.nn.mlp.apply(q, x), y))(p);
    const [np, ns] = opt.update(gr, s, p);
    return { l, p: np, s: ns };
  });
  let first, last;
  for (let i = 0; i < 200; i++) {
    const o = step(p, state, xs, ys);
    p = o.p;
    state = o.s;
    const v = await o.l.item();
    if (i === 0) first = v;
    last = v;
  }
  console.log(
    `threads=${threads}`,
    [...(await g.data())].map((v) => v.toFixed(4)).join(','),
    m.toFixed(2),
    first.toFixed(3),
    '->',
    last.toFixed(3),
    JSON.stringify(A.memoryStats()),
  );
}
await A.shutdown();
