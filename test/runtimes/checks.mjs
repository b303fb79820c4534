/**
 * The cross-runtime checks: plain JavaScript that runs wherever adjoint's dist/ runs (Deno, Bun,
 * a browser page, workerd, Node). Written once, taking the adjoint module as an argument:
 *
 *   import * as A from '../../dist/index.js';
 *   const result = await runtimeChecks(A, { threads: [1, 2, 3] });
 *   // { runtime, checks, failures: [{ check, error }], runs: [{ requested, threads, workers }], ... }
 *
 * 1. value and gradient of a small program (elementwise and a matmul least-squares loss)
 *    against float64 derivatives computed here by hand;
 * 2. a jitted Adam step: the first update equals the hand-computed one (bias-corrected Adam
 *    moves each weight by lr * g / (|g| + eps)), the loss falls over 30 steps, one cached plan;
 * 3. a safetensors round trip: header as the format says, same dtypes, shapes and bits back;
 * 4. for each entry of `threads`: init({ threads: n }) and a jitted MLP training step big enough
 *    to be split across workers; losses and weights must be identical bit for bit to the first
 *    entry's (where threads cannot run, every entry runs on one thread: still identical).
 *
 * Used by test/runtimes-cross.test.ts through test/runtimes/checks-cli.mjs (Deno, Bun),
 * test/runtimes/checks.html (headless Chromium) and the workerd test. Messages adjoint prints
 * (console.warn/info/error/log starting with 'adjoint') are collected in `notices`.
 */

const TOL = 2e-5;

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

function runtimeName() {
  const g = globalThis;
  if (g.Deno?.version) return `deno ${g.Deno.version.deno}`;
  if (g.Bun?.version) return `bun ${g.Bun.version}`;
  if (g.navigator?.userAgent === 'Cloudflare-Workers') return 'workerd';
  if (typeof g.window === 'object' && g.navigator?.userAgent) return g.navigator.userAgent;
  if (g.process?.versions?.node) return `node ${g.process.versions.node}`;
  return g.navigator?.userAgent ?? 'unknown';
}

/** Largest |a - b| relative to max(1, |b|) over two arrays; Infinity when lengths differ. */
function maxRelErr(got, want) {
  if (got.length !== want.length) return Number.POSITIVE_INFINITY;
  let worst = 0;
  for (let i = 0; i < got.length; i++) {
    const e = Math.abs(got[i] - want[i]) / Math.max(1, Math.abs(want[i]));
    if (!(e <= worst)) worst = Number.isNaN(e) ? Number.POSITIVE_INFINITY : e;
  }
  return worst;
}

function close(name, got, want, tol = TOL) {
  const e = maxRelErr(Array.from(got), Array.from(want));
  if (!(e <= tol))
    throw new Error(
      `${name}: max relative error ${e} > ${tol} (got ${Array.from(got).slice(0, 6)}, want ${Array.from(want).slice(0, 6)})`,
    );
}

function sameBits(name, a, b) {
  const x = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const y = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  if (x.length !== y.length) throw new Error(`${name}: ${x.length} bytes vs ${y.length}`);
  for (let i = 0; i < x.length; i++)
    if (x[i] !== y[i]) throw new Error(`${name}: differs at byte ${i} (element ${Math.floor(i / 4)})`);
}

/** Check 1: value and gradient of a small program against float64 by hand. */
async function valueAndGradient(A) {
  const r = rng(1);
  const xs = Float32Array.from({ length: 7 }, () => -2 + 4 * r());
  // f(x) = sum(x^2 sin x + exp(-x)), f'(x) = 2x sin x + x^2 cos x - exp(-x)
  const f = (x) => x.square().mul(x.sin()).add(x.neg().exp()).sum();
  const [v, g] = A.valueAndGrad(f)(A.tensor(xs));
  let want = 0;
  const wantG = [];
  for (const x of xs) {
    want += x * x * Math.sin(x) + Math.exp(-x);
    wantG.push(2 * x * Math.sin(x) + x * x * Math.cos(x) - Math.exp(-x));
  }
  close('elementwise value', [await v.item()], [want]);
  close('elementwise gradient', await g.data(), wantG);

  // L(W) = mean((X W - Y)^2) over all entries; dL/dW = 2/(N*M) X^T (X W - Y)
  const [N, K, M] = [5, 3, 2];
  const X = Float32Array.from({ length: N * K }, () => r() - 0.5);
  const W = Float32Array.from({ length: K * M }, () => r() - 0.5);
  const Y = Float32Array.from({ length: N * M }, () => r() - 0.5);
  const loss = (w, x, y) => A.matmul(x, w).sub(y).square().mean();
  const [lv, lg] = A.valueAndGrad(loss)(
    A.tensor(W, { shape: [K, M] }),
    A.tensor(X, { shape: [N, K] }),
    A.tensor(Y, { shape: [N, M] }),
  );
  const R = new Float64Array(N * M);
  let l = 0;
  for (let n = 0; n < N; n++)
    for (let m = 0; m < M; m++) {
      let s = -Y[n * M + m];
      for (let k = 0; k < K; k++) s += X[n * K + k] * W[k * M + m];
      R[n * M + m] = s;
      l += s * s;
    }
  const G = new Float64Array(K * M);
  for (let k = 0; k < K; k++)
    for (let m = 0; m < M; m++) {
      let s = 0;
      for (let n = 0; n < N; n++) s += X[n * K + k] * R[n * M + m];
      G[k * M + m] = (2 * s) / (N * M);
    }
  close('matmul loss value', [await lv.item()], [l / (N * M)]);
  close('matmul loss gradient', await lg.data(), G);
  const shape = lg.shape.join('x');
  if (shape !== `${K}x${M}`) throw new Error(`gradient shape ${shape}, want ${K}x${M}`);
}

/** Check 2: a jitted Adam step, first update by hand, loss falls, one plan. */
async function adamStep(A) {
  const r = rng(2);
  const N = 16;
  const trueW = [1.5, -2, 0.5];
  const Xs = Float32Array.from({ length: N * 3 }, () => r() * 2 - 1);
  const Ys = Float32Array.from(
    { length: N },
    (_, n) => trueW.reduce((s, w, k) => s + w * Xs[n * 3 + k], 0) + 0.3,
  );
  const x = A.tensor(Xs, { shape: [N, 3] });
  const y = A.tensor(Ys, { shape: [N] });
  const lossFn = (p, x, y) => A.matmul(x, p.w).add(p.b).sub(y).square().mean();
  const lr = 0.1;
  const opt = A.optim.adam({ lr });
  const step = A.jit((p, s, x, y) => {
    const [loss, grads] = A.valueAndGrad(lossFn)(p, x, y);
    const [params, state] = opt.update(grads, s, p);
    return { loss, params, state };
  });
  let params = { w: A.zeros([3]), b: A.zeros([]) };
  let state = opt.init(params);
  // gradient at zero, by hand: dL/dw_k = -2/N sum_n y_n x_nk, dL/db = -2/N sum_n y_n
  const gw = [0, 0, 0];
  let gb = 0;
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < 3; k++) gw[k] += (-2 / N) * Ys[n] * Xs[n * 3 + k];
    gb += (-2 / N) * Ys[n];
  }
  const eps = 1e-8;
  const losses = [];
  for (let i = 0; i < 30; i++) {
    const out = step(params, state, x, y);
    params = out.params;
    state = out.state;
    losses.push(await out.loss.item());
    if (i === 0) {
      close(
        'first Adam update (w)',
        await params.w.data(),
        gw.map((g) => -lr * (g / (Math.abs(g) + eps))),
        1e-5,
      );
      close('first Adam update (b)', [await params.b.item()], [-lr * (gb / (Math.abs(gb) + eps))], 1e-5);
    }
  }
  if (!(losses[29] < losses[0] * 0.5)) throw new Error(`loss did not fall: ${losses[0]} -> ${losses[29]}`);
  if (step.cacheSize !== 1) throw new Error(`jit cached ${step.cacheSize} plans for one signature`);
  return { first: losses[0], last: losses[29] };
}

/** Check 3: a safetensors round trip. */
async function safetensors(A) {
  const tree = {
    layer: { w: A.random.normal([3, 4], { seed: 3 }), b: A.tensor([0.5, -1, 2, 1e-30]) },
    ids: A.tensor([0, 1, -7, 2147483647], { dtype: 'int32' }),
  };
  const bytes = A.io.saveSafetensors(tree);
  if (!(bytes instanceof Uint8Array)) throw new Error('saveSafetensors did not return a Uint8Array');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = Number(view.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLen)));
  const names = Object.keys(header)
    .filter((k) => k !== '__metadata__')
    .sort();
  if (names.join() !== 'ids,layer.b,layer.w') throw new Error(`header names ${names}`);
  if (header['layer.w'].dtype !== 'F32' || header.ids.dtype !== 'I32')
    throw new Error(`header dtypes ${header['layer.w'].dtype} ${header.ids.dtype}`);
  const back = A.io.loadSafetensors(bytes);
  for (const [name, a, b] of [
    ['layer.w', tree.layer.w, back.layer?.w],
    ['layer.b', tree.layer.b, back.layer?.b],
    ['ids', tree.ids, back.ids],
  ]) {
    if (!b) throw new Error(`${name} missing after loading`);
    if (a.dtype !== b.dtype || a.shape.join() !== b.shape.join())
      throw new Error(`${name}: ${b.dtype} [${b.shape}] back, ${a.dtype} [${a.shape}] saved`);
    sameBits(name, await a.data(), await b.data());
  }
  return bytes.byteLength;
}

/** Check 4's workload: three jitted SGD steps of an MLP, big enough for the pool to split. */
async function mlpTraining(A) {
  const sizes = [64, 256, 256, 10];
  let params = A.nn.mlp.init(sizes, { seed: 11 });
  const x = A.random.normal([128, 64], { seed: 12 });
  const labels = A.tensor(
    Int32Array.from({ length: 128 }, (_, i) => (i * 7) % 10),
    { dtype: 'int32' },
  );
  const lossFn = (q) => A.nn.softmaxCrossEntropy(A.nn.mlp.apply(q, x), labels);
  const step = A.jit((p) => {
    const [l, g] = A.valueAndGrad(lossFn)(p);
    return [l, g.map((L, i) => ({ w: p[i].w.sub(L.w.mul(0.1)), b: p[i].b.sub(L.b.mul(0.1)) }))];
  });
  const losses = [];
  for (let i = 0; i < 3; i++) {
    const [l, p] = step(params);
    losses.push(await l.item());
    params = p;
  }
  return { losses: Float32Array.from(losses), w: await params[1].w.data(), w2: await params[2].w.data() };
}

/**
 * Runs every check on `A` (the adjoint module). opts.threads: thread counts for check 4 (default
 * [1, 2]); opts.wasmModule: passed to every init(). Never throws: failures are in the result.
 */
export async function runtimeChecks(A, opts = {}) {
  const started = Date.now();
  const threads = opts.threads ?? [1, 2];
  const base = opts.wasmModule ? { wasmModule: opts.wasmModule } : {};
  const notices = [];
  const saved = {};
  for (const level of ['warn', 'info', 'error', 'log']) {
    saved[level] = console[level];
    console[level] = (...args) => {
      if (String(args[0]).startsWith('adjoint')) notices.push({ level, text: args.map(String).join(' ') });
      saved[level].apply(console, args);
    };
  }
  const result = { runtime: runtimeName(), checks: 0, failures: [], runs: [], notices, details: {} };
  const run = async (name, fn) => {
    result.checks++;
    try {
      const d = await fn();
      if (d !== undefined) result.details[name] = d;
    } catch (e) {
      result.failures.push({ check: name, error: String(e?.stack || e) });
    }
  };
  try {
    await run('init', () => A.init({ ...base, threads: threads[0] }));
    await run('value and gradient', () => valueAndGradient(A));
    await run('jitted Adam step', () => adamStep(A));
    await run('safetensors round trip', () => safetensors(A));
    let first;
    for (const n of threads) {
      await run(`MLP training, threads ${n}`, async () => {
        await A.init({ ...base, threads: n });
        const s = A.memoryStats();
        const got = await mlpTraining(A);
        result.runs.push({
          requested: n,
          threads: s.threads,
          workers: s.workers,
          losses: Array.from(got.losses),
        });
        if (!first) {
          first = got;
          if (!got.losses.every(Number.isFinite)) throw new Error(`losses ${got.losses}`);
          return;
        }
        sameBits(`losses, threads ${n} vs ${threads[0]}`, got.losses, first.losses);
        sameBits(`layer 1 weights, threads ${n} vs ${threads[0]}`, got.w, first.w);
        sameBits(`layer 2 weights, threads ${n} vs ${threads[0]}`, got.w2, first.w2);
      });
    }
    await run('shutdown', () => A.shutdown());
  } finally {
    for (const level of Object.keys(saved)) console[level] = saved[level];
  }
  result.crossOriginIsolated = globalThis.crossOriginIsolated;
  result.seconds = (Date.now() - started) / 1000;
  return result;
}
