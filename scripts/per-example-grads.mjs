/**
 * Per-example gradients of the MLP 784-256-10 on a batch of 64: vmap(grad(loss)) against a loop
 * of 64 grad calls (the target in issue 10: vmap ≥ 10× faster). One thread.
 *
 *   node scripts/per-example-grads.mjs [--reps 20]
 *
 * It bundles src/ with esbuild into a temporary directory (so it measures the working tree and
 * leaves dist/ alone), warms each variant up, then reports the median of --reps runs of each:
 * - eager: build the graph and read every gradient (Tensor.data()), as a user loop would;
 * - jit: compiled once, each call computes the gradients into wasm memory (no read), then
 *   releases them.
 * Timings on a shared machine vary from run to run; the ratios are what to look at.
 */
import { cpSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const reps = Number(process.argv[process.argv.indexOf('--reps') + 1]) || 20;

const out = mkdtempSync(join(tmpdir(), 'adjoint-pe-'));
await build({
  entryPoints: [join(root, 'src/index.ts')],
  bundle: true,
  format: 'esm',
  platform: 'node',
  outfile: join(out, 'index.js'),
  logLevel: 'error',
});
cpSync(join(root, 'src/wasm'), join(out, 'wasm'), { recursive: true });
const a = await import(pathToFileURL(join(out, 'index.js')).href);

await a.init({ backend: 'wasm', threads: 1 });
const B = 64;
const params = a.nn.mlp.init([784, 256, 10], { seed: 0 });
const xs = a.random.normal([B, 784], { seed: 1 });
const ys = a.tensor(
  Int32Array.from({ length: B }, (_, i) => (i * 7) % 10),
  { dtype: 'int32' },
);
const xsHost = await xs.data();
const ysHost = await ys.data();
const examples = Array.from({ length: B }, (_, i) => [
  a.tensor(xsHost.slice(i * 784, (i + 1) * 784)),
  a.tensor(Int32Array.of(ysHost[i]), { shape: [], dtype: 'int32' }),
]);

const loss = (p, x, y) => a.nn.softmaxCrossEntropy(a.nn.mlp.apply(p, x), y);
const leaves = (tree) => a.treeFlatten(tree).leaves;
const readAll = (tree) => Promise.all(leaves(tree).map((t) => t.data()));
const dispose = (tree) => {
  for (const t of leaves(tree)) t.dispose();
};

const perExample = a.vmap(a.grad(loss), [null, 0, 0]);
const perExampleJit = a.jit(perExample);
const gradJit = a.jit(a.grad(loss));

const variants = {
  'vmap eager': async () => {
    await readAll(perExample(params, xs, ys));
  },
  'loop eager': async () => {
    for (const [x, y] of examples) await readAll(a.grad(loss)(params, x, y));
  },
  // results are released as soon as they are made, so each variant reuses its memory
  'vmap jit': async () => {
    dispose(perExampleJit(params, xs, ys));
  },
  'loop jit': async () => {
    for (const [x, y] of examples) dispose(gradJit(params, x, y));
  },
};

async function median(f) {
  for (let i = 0; i < 3; i++) await f(); // warm-up: compile, residency, JIT of the JS itself
  const ts = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await f();
    ts.push(performance.now() - t0);
  }
  ts.sort((x, y) => x - y);
  return ts[Math.floor(ts.length / 2)];
}

// check once that both give the same numbers (first layer's weight gradient of example 5)
const v = perExample(params, xs, ys);
const l = a.grad(loss)(params, ...examples[5]);
const got = (await v[0].w.data()).subarray(5 * 784 * 256, 6 * 784 * 256);
const want = await l[0].w.data();
let err = 0;
for (let i = 0; i < want.length; i++) err = Math.max(err, Math.abs(got[i] - want[i]));
console.log(`max |vmap - loop| on example 5, layer 0 weights: ${err.toExponential(2)}`);

const ms = {};
for (const [name, f] of Object.entries(variants)) {
  ms[name] = await median(f);
  console.log(`${name.padEnd(11)} ${ms[name].toFixed(1).padStart(8)} ms (median of ${reps})`);
}
console.log(`eager: loop / vmap = ${(ms['loop eager'] / ms['vmap eager']).toFixed(1)}×`);
console.log(`jit:   loop / vmap = ${(ms['loop jit'] / ms['vmap jit']).toFixed(1)}×`);
console.log('(shared machine: timings vary between runs)');
a.shutdown();
