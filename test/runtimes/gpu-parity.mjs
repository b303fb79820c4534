/**
 * A portable GPU parity check: plain JavaScript that runs wherever adjoint's dist/ runs (Deno,
 * a browser page, Node with npm 'webgpu'). For a representative set of ops it computes value and
 * gradients with init({ backend: 'webgpu' }) (every op the GPU supports goes to the GPU) and with
 * init({ backend: 'wasm' }), on small seeded random inputs, and compares them.
 *
 *   import * as A from '../../dist/index.js';
 *   const result = await gpuParity(A);   // { runtime, adapter, checks, failures, ... }
 *
 * Used by test/runtimes-gpu.test.ts through test/runtimes/cli.mjs (Deno) and
 * test/runtimes/gpu-parity.html (headless Chromium). Every computed output must end on 'webgpu'
 * (a result elsewhere is a failure too). 31 cases, 81 checks: ~2-4 s in Deno with a warm Mesa
 * shader cache (~12 s cold), ~8 s in headless Chromium, ~3.5 s in Node on Dawn.
 *
 * Tolerance, |gpu - wasm| <= atol + rtol * max|wasm| per output (NaN matches only NaN, an
 * infinity only itself): rtol 2e-5 as in the Node suite (GPU transcendentals are looser than
 * the wasm kernels'), atol 2e-6; int32 results exact. Special values (NaN, ±Inf, ±0) are compared
 * per element with 4e-6 relative, results below the smallest normal float counted as 0 (a GPU
 * may flush subnormals).
 */

const RTOL = 2e-5;
const ATOL = 2e-6;
const FTZ = 1.1754943508222875e-38;
const SPECIAL = [0, -0, -1, 1, Number.NaN, Infinity, -Infinity, 1e-3, 100, -100];

/** mulberry32: the same stream in every runtime. */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const count = (shape) => shape.reduce((a, d) => a * d, 1);

/** Plain data for one input: float32 values in [lo, hi), or int32 ids in [0, hi). */
function makeData(spec, r) {
  const n = count(spec.shape);
  if (spec.dtype === 'int32') return Int32Array.from({ length: n }, () => Math.floor(r() * spec.hi));
  if (spec.values) return Float32Array.from(spec.values);
  const [lo, hi] = spec.range ?? [-2, 2];
  return Float32Array.from({ length: n }, () => lo + r() * (hi - lo));
}

/**
 * The cases. `inputs`: shapes (float32 unless dtype), `f`: the function of all inputs, `diff`:
 * indices of the inputs to differentiate (default: every float32 input; [] = value only; then f may
 * return several tensors, named by `outputs`), `special`: compare per element with the
 * special-values tolerance.
 */
function cases(A) {
  const f32 = (shape, range) => ({ shape, range });
  const ids = (shape, hi) => ({ shape, dtype: 'int32', hi });
  return [
    {
      name: 'unary (fused elementwise)',
      inputs: [f32([3, 7], [0.5, 2])],
      f: (x) =>
        A.stack(
          [
            A.exp(x),
            A.log(x),
            A.log1p(x),
            A.sqrt(x),
            A.square(x),
            A.reciprocal(x),
            A.tanh(A.sub(x, 1)),
            A.sigmoid(A.sub(x, 1)),
            A.softplus(A.sub(x, 1)),
            A.relu(A.sub(x, 1.25)),
            A.abs(A.sub(x, 1.25)),
            A.neg(x),
          ],
          0,
        ),
    },
    {
      // their own case: WGSL promises only 2^-11 absolute on [-π, π] for sin and cos
      name: 'sin and cos',
      inputs: [f32([4, 5], [-3, 3])],
      f: (x) => A.stack([A.sin(x), A.cos(x)], 0),
    },
    {
      name: 'unary, one op per kernel',
      inputs: [f32([5, 6])],
      f: (x) => A.tanh(x),
    },
    {
      name: 'binary with broadcasting',
      inputs: [f32([2, 3, 4], [0.5, 2]), f32([3, 1], [-1.5, 1.5])],
      f: (a, b) =>
        A.stack(
          [
            A.add(a, b),
            A.sub(b, a),
            A.mul(a, b),
            A.div(b, a),
            A.pow(a, b),
            A.maximum(a, A.add(b, 1)),
            A.minimum(a, A.add(b, 1)),
          ],
          -1,
        ),
    },
    {
      name: 'binary, rank-1 against rank-3',
      inputs: [f32([4]), f32([2, 5, 4])],
      f: (a, b) => A.mul(a, b),
    },
    {
      name: 'where with broadcasting (greater/less masks)',
      inputs: [f32([4, 1]), f32([4, 5]), f32([5])],
      f: (c, a, b) => A.add(A.where(A.greater(c, 0), a, b), A.where(A.less(a, b), a, 0.5)),
      diff: [1, 2], // d/dc is zero: a fill, made on the host
    },
    { name: 'sum over axes [0, 2], keepdims', inputs: [f32([3, 4, 5])], f: (x) => A.sum(x, [0, 2], true) },
    { name: 'sum of everything', inputs: [f32([7, 9])], f: (x) => A.sum(x) },
    { name: 'max over axis 1', inputs: [f32([4, 6, 3])], f: (x) => A.max(x, 1) },
    { name: 'max over axis -1', inputs: [f32([5, 7])], f: (x) => A.max(x, -1) },
    { name: 'mean and logsumexp', inputs: [f32([3, 8])], f: (x) => A.add(A.mean(x, 0), A.logsumexp(x, 0)) },
    { name: 'argmax axis 1', inputs: [f32([5, 7])], f: (x) => A.argmax(x, 1), diff: [] },
    { name: 'argmax of everything', inputs: [f32([4, 6])], f: (x) => A.argmax(x), diff: [] },
    { name: 'matmul', inputs: [f32([9, 13]), f32([13, 11])], f: (a, b) => A.matmul(a, b) },
    {
      name: 'matmul aᵀ·b',
      inputs: [f32([13, 9]), f32([13, 11])],
      f: (a, b) => A.matmul(A.transpose(a), b),
    },
    {
      name: 'matmul a·bᵀ',
      inputs: [f32([9, 13]), f32([11, 13])],
      f: (a, b) => A.matmul(a, A.transpose(b)),
    },
    {
      name: 'matmul batched with broadcasting',
      inputs: [f32([2, 3, 5, 6]), f32([6, 4])],
      f: (a, b) => A.matmul(a, b),
    },
    {
      name: 'matmul batched, both transposed',
      inputs: [f32([2, 6, 5]), f32([2, 7, 6])],
      f: (a, b) => A.matmul(A.transpose(a, [0, 2, 1]), A.transpose(b, [0, 2, 1])),
    },
    { name: 'matmul 40x33x36', inputs: [f32([40, 33]), f32([33, 36])], f: (a, b) => A.matmul(a, b) },
    { name: 'softmax axis -1', inputs: [f32([4, 9])], f: (x) => A.softmax(x) },
    { name: 'softmax axis 0', inputs: [f32([5, 3])], f: (x) => A.softmax(x, 0) },
    { name: 'logSoftmax axis 1', inputs: [f32([3, 4, 6])], f: (x) => A.logSoftmax(x, 1) },
    {
      name: 'softmaxCrossEntropy, int32 labels',
      inputs: [f32([8, 10], [-3, 3]), ids([8], 10)],
      f: (x, y) => A.nn.softmaxCrossEntropy(x, y),
    },
    {
      name: 'gather axis 0 (gradient: scatter-add with repeats)',
      inputs: [f32([6, 4]), ids([2, 3], 6)],
      f: (x, i) => A.gather(x, i, 0),
    },
    { name: 'gather axis -1', inputs: [f32([3, 5]), ids([4], 5)], f: (x, i) => A.gather(x, i, -1) },
    {
      name: 'transpose [2, 0, 1]',
      inputs: [f32([2, 3, 4])],
      f: (x) => A.mul(A.transpose(x, [2, 0, 1]), 3),
    },
    { name: 'slice', inputs: [f32([5, 6])], f: (x) => A.mul(A.slice(x, [1, 2], [3, -1]), 2) },
    {
      name: 'concat axis 0 and 1',
      inputs: [f32([2, 3]), f32([4, 3]), f32([6, 2])],
      f: (a, b, c) => A.concat([A.concat([a, b], 0), c], 1),
    },
    {
      name: 'pad',
      inputs: [f32([3, 4])],
      f: (x) =>
        A.exp(
          A.pad(x, [
            [1, 2],
            [0, 3],
          ]),
        ),
    },
    {
      name: 'mlp loss (matmul, relu, cross-entropy together)',
      inputs: [f32([6, 5]), f32([5, 8]), f32([8]), f32([8, 3]), ids([6], 3)],
      f: (x, w1, b1, w2, y) => A.nn.softmaxCrossEntropy(A.matmul(A.relu(A.add(A.matmul(x, w1), b1)), w2), y),
      diff: [1, 2, 3],
    },
    {
      name: 'special values',
      inputs: [{ shape: [10], values: SPECIAL }],
      outputs: ['log', 'log1p', 'sqrt', 'reciprocal', 'exp', 'tanh', 'sigmoid', 'relu', 'abs', 'neg'],
      f: (x) => [
        A.log(x),
        A.log1p(x),
        A.sqrt(x),
        A.reciprocal(x),
        A.exp(x),
        A.tanh(x),
        A.sigmoid(x),
        A.relu(x),
        A.abs(x),
        A.neg(x),
      ],
      diff: [],
      special: true,
    },
  ];
}

/** Value (and gradients, through vjp with a seeded cotangent) of one case: lazy tensors. */
function build(A, c, seed) {
  const r = rng(seed);
  const data = c.inputs.map((s) => makeData(s, r));
  const xs = c.inputs.map((s, i) => A.tensor(data[i], { shape: s.shape, dtype: s.dtype ?? 'float32' }));
  const diff = c.diff ?? c.inputs.flatMap((s, i) => (s.dtype === 'int32' ? [] : [i]));
  if (diff.length === 0) {
    const ys = c.f(...xs);
    return Array.isArray(ys) ? ys.map((t, i) => ({ what: c.outputs[i], t })) : [{ what: 'value', t: ys }];
  }
  const g = (...ds) => {
    const all = [...xs];
    diff.forEach((k, j) => {
      all[k] = ds[j];
    });
    return c.f(...all);
  };
  const [y, pullback] = A.vjp(g, ...diff.map((k) => xs[k]));
  const cot = A.tensor(
    Float32Array.from({ length: y.size }, () => r() * 2 - 1),
    { shape: [...y.shape] },
  );
  const grads = pullback(cot);
  const gs = Array.isArray(grads) ? grads : [grads];
  return [{ what: 'value', t: y }, ...gs.map((t, j) => ({ what: `d/dx${diff[j]}`, t }))];
}

/** Every case's outputs, read (all of them at once per case), with the device they ended on. */
async function runAll(A, list) {
  const out = [];
  for (let k = 0; k < list.length; k++) {
    const c = list[k];
    try {
      const ts = build(A, c, 1000 + k);
      const vals = await Promise.all(ts.map((o) => o.t.data()));
      out.push({
        outputs: ts.map((o, i) => ({
          what: o.what,
          dtype: o.t.dtype,
          shape: [...o.t.shape],
          device: o.t.device,
          data: vals[i],
        })),
      });
    } catch (e) {
      out.push({ error: errorText(e) });
    }
  }
  return out;
}

function errorText(e) {
  if (e && typeof e === 'object' && 'stack' in e && e.stack) {
    const s = String(e.stack);
    return s.includes(String(e.message)) ? s : `${e.name}: ${e.message}\n${s}`;
  }
  return String(e);
}

/**
 * null when close, else a message: the worst element and the first few out of tolerance (with
 * the input value for the special-values case).
 */
function compare(got, want, special) {
  if (got.length !== want.length) return `length ${got.length}, want ${want.length}`;
  let peak = 0;
  for (const w of want) if (Number.isFinite(w)) peak = Math.max(peak, Math.abs(w));
  const exact = got instanceof Int32Array || want instanceof Int32Array;
  const bad = [];
  let worst = 0;
  let worstAt = -1;
  for (let i = 0; i < want.length; i++) {
    let a = got[i];
    let b = want[i];
    let err = 0;
    if (Number.isNaN(a) || Number.isNaN(b) || !Number.isFinite(a) || !Number.isFinite(b)) {
      // NaN matches only NaN, an infinity only itself
      err = (Number.isNaN(a) ? Number.isNaN(b) : a === b) ? 0 : Infinity;
    } else {
      if (special) {
        if (Math.abs(a) < FTZ) a = 0;
        if (Math.abs(b) < FTZ) b = 0;
      }
      const diff = Math.abs(a - b);
      const tol = exact ? 0 : special ? 4e-6 * Math.abs(b) : ATOL + RTOL * peak;
      err = diff === 0 ? 0 : tol === 0 ? Infinity : diff / tol;
    }
    if (err > 1) bad.push(i);
    if (err > worst) {
      worst = err;
      worstAt = i;
    }
  }
  if (bad.length === 0) return null;
  const at = (i) => `[${i}]${special ? ` (x = ${SPECIAL[i]})` : ''}: got ${got[i]}, want ${want[i]}`;
  const tol = exact
    ? 'int32: exact'
    : special
      ? '4e-6 relative'
      : `rtol ${RTOL} of max |want| ${peak.toPrecision(4)}, atol ${ATOL}`;
  const first = bad.slice(0, 4).filter((i) => i !== worstAt);
  return (
    `${bad.length} of ${want.length} elements out of tolerance (${tol}); worst ${at(worstAt)}` +
    (Number.isFinite(worst) ? ` (${worst.toPrecision(3)}x the tolerance)` : '') +
    (first.length ? `; also ${first.map(at).join(', ')}` : '')
  );
}

function runtimeName() {
  const g = globalThis;
  if (g.Deno?.version) return `deno ${g.Deno.version.deno}`;
  if (g.process?.versions?.node && !g.window) return `node ${g.process.version}`;
  return g.navigator?.userAgent ?? 'unknown';
}

/**
 * Runs the check with adjoint's module namespace `A`. opts.gpu: a GPU object for init (Node);
 * default navigator.gpu. Never throws: anything that goes wrong is in `failures`.
 */
export async function gpuParity(A, opts = {}) {
  const started = performance.now();
  const result = {
    runtime: runtimeName(),
    adapter: null,
    checks: 0,
    failures: [],
    gpuOutputs: 0,
    devices: {},
    cases: 0,
    stats: null,
    seconds: { gpu: 0, wasm: 0, total: 0 },
  };
  const fail = (check, error) => result.failures.push({ check, error });
  try {
    const gpu = opts.gpu ?? globalThis.navigator?.gpu;
    if (!gpu) throw new Error('no WebGPU here: navigator.gpu is undefined');
    const adapter = await gpu.requestAdapter();
    if (!adapter) throw new Error('navigator.gpu.requestAdapter() returned null');
    const info = adapter.info ?? {};
    result.adapter = {
      vendor: info.vendor,
      architecture: info.architecture,
      device: info.device,
      description: info.description,
      isFallbackAdapter: info.isFallbackAdapter ?? adapter.isFallbackAdapter,
      maxComputeInvocationsPerWorkgroup: adapter.limits.maxComputeInvocationsPerWorkgroup,
    };
    const list = cases(A);
    result.cases = list.length;

    let t0 = performance.now();
    await A.init({ backend: 'webgpu', ...(opts.gpu ? { gpu: opts.gpu } : {}) });
    const usedGpu = A.memoryStats().gpu;
    if (usedGpu !== 'webgpu')
      fail('init', `memoryStats().gpu is ${usedGpu} after init({ backend: 'webgpu' })`);
    const onGpu = await runAll(A, list);
    result.stats = A.memoryStats();
    result.seconds.gpu = (performance.now() - t0) / 1000;

    t0 = performance.now();
    await A.init({ backend: 'wasm' });
    const onWasm = await runAll(A, list);
    result.seconds.wasm = (performance.now() - t0) / 1000;
    result.threads = A.memoryStats().threads;

    list.forEach((c, k) => {
      const g = onGpu[k];
      const w = onWasm[k];
      if (g.error || w.error) {
        result.checks++;
        if (g.error) fail(`${c.name}: on webgpu`, g.error);
        if (w.error) fail(`${c.name}: on wasm`, w.error);
        return;
      }
      g.outputs.forEach((go, i) => {
        const wo = w.outputs[i];
        const check = `${c.name}: ${go.what}`;
        result.checks++;
        result.devices[go.device] = (result.devices[go.device] ?? 0) + 1;
        if (go.device === 'webgpu') result.gpuOutputs++;
        // every computed output of 'webgpu' mode is computed on the GPU
        else fail(check, `computed on ${go.device}, not webgpu, under init({ backend: 'webgpu' })`);
        if (go.shape.join() !== wo.shape.join() || go.dtype !== wo.dtype) {
          fail(check, `shape/dtype ${go.shape}/${go.dtype} on webgpu, ${wo.shape}/${wo.dtype} on wasm`);
          return;
        }
        const why = compare(go.data, wo.data, c.special);
        if (why) fail(check, `webgpu vs wasm ${why}`);
      });
    });
  } catch (e) {
    fail('setup', errorText(e));
  } finally {
    try {
      await A.shutdown();
    } catch (e) {
      fail('shutdown', errorText(e));
    }
    result.seconds.total = (performance.now() - started) / 1000;
  }
  return result;
}
