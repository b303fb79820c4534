// adjoint, imported from the built package (dist/), used through its public API only.
import { adapterName, dawnGpu } from '../lib/gpu.mjs';

let A;

const THREAD_KEYS = /thread|worker|pool/i;

/** Thread-related fields memoryStats() reports, if any (the API does not promise one). */
function threadStats() {
  let s = {};
  try {
    s = A.memoryStats() ?? {};
  } catch {
    return {};
  }
  return Object.fromEntries(Object.entries(s).filter(([k]) => THREAD_KEYS.test(k)));
}

export async function load() {
  A = await import('../../dist/index.js');
  return A;
}

/**
 * Calls init(); `threads` undefined → init() with adjoint's defaults. Resolves to
 * { backend, threadStats, features, initError? }. An init that rejects the threads option is
 * retried without it, and the rejection is reported. `gpuBackend` ('webgpu' | 'auto' | 'wasm')
 * asks for that backend with the Dawn GPU offered; its failure is fatal (no silent wasm rows).
 */
export async function setup({ threads, gpuBackend } = {}) {
  if (!A) await load();
  const base = gpuBackend ? { backend: gpuBackend, gpu: await dawnGpu() } : {};
  let initError;
  try {
    await A.init(threads === undefined ? base : { ...base, threads });
  } catch (e) {
    if (gpuBackend) throw e;
    initError = `${e?.name ?? 'Error'}: ${e?.message ?? e}`;
    await A.init();
  }
  let stats = {};
  try {
    stats = A.memoryStats();
  } catch {}
  return {
    backend: stats.backend ?? '?',
    ...(gpuBackend && { gpuBackend, gpuPlaced: stats.gpu ?? null, adapter: await adapterName() }),
    threads: threads ?? 'default',
    threadStats: threadStats(),
    initError,
    features: { nn: typeof A.nn?.mlp?.init === 'function', optim: typeof A.optim?.sgd === 'function' },
  };
}

/** GPU work so far (memoryStats: graph runs, i.e. command encoders, and compute dispatches). */
export function counters() {
  const s = A.memoryStats();
  return { gpuRuns: s.gpuRuns ?? 0, gpuDispatches: s.gpuDispatches ?? 0 };
}

/** Re-initializes with another thread count (worker-pool scaling rows). */
export async function setThreads(n) {
  let error;
  try {
    await A.init({ threads: n });
  } catch (e) {
    error = `${e?.name ?? 'Error'}: ${e?.message ?? e}`;
  }
  let backend = '?';
  try {
    backend = A.memoryStats().backend ?? '?';
  } catch {}
  return { error, backend, threadStats: threadStats() };
}

const f32 = async (t) => {
  const d = await t.data();
  return d instanceof Float32Array ? d : Float32Array.from(d);
};

function transpose2d(w, rows, cols) {
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = w[i * cols + j];
  return out;
}

/** MLP step, hand-written: matmul / add / relu / logSoftmax, SGD update p - lr·g, jitted. */
function mlpManual(inp) {
  let params = inp.layers.map((L) => ({
    w: A.tensor(L.w, { shape: [L.fin, L.fout] }),
    b: A.tensor(L.b, { shape: [L.fout] }),
  }));
  const x = A.tensor(inp.x, { shape: [inp.batch, inp.layers[0].fin] });
  const y = A.tensor(inp.onehot, { shape: [inp.batch, inp.layers.at(-1).fout] });
  const lossFn = (p, xx, yy) => {
    let h = xx;
    p.forEach((L, i) => {
      h = A.add(A.matmul(h, L.w), L.b);
      if (i + 1 < p.length) h = A.relu(h);
    });
    return A.neg(A.mean(A.sum(A.mul(yy, A.logSoftmax(h, -1)), -1)));
  };
  const lr = inp.lr;
  const step = A.jit((p, xx, yy) => {
    const [loss, g] = A.valueAndGrad(lossFn)(p, xx, yy);
    return [loss, p.map((L, i) => ({ w: A.sub(L.w, A.mul(g[i].w, lr)), b: A.sub(L.b, A.mul(g[i].b, lr)) }))];
  });
  return {
    how: 'hand-written MLP (matmul/relu/logSoftmax), jit(valueAndGrad) + p - lr·g',
    run: async () => {
      const [loss, next] = step(params, x, y);
      params = next;
      return [await f32(loss)];
    },
  };
}

/**
 * MLP step through nn.mlp / nn.softmaxCrossEntropy / optim.sgd, with the parameter leaves
 * replaced by the shared deterministic initial values (matched by shape, so [in,out] and
 * [out,in] weight layouts both work). Throws if the structure is not recognisable.
 */
function mlpNN(inp) {
  const sizes = [inp.layers[0].fin, ...inp.layers.map((L) => L.fout)];
  const p0 = A.nn.mlp.init(sizes, { seed: 0 });
  const { leaves, def } = A.treeFlatten(p0, 'bench', true);
  let wi = 0;
  let bi = 0;
  const mine = leaves.map((t) => {
    const s = t.shape;
    if (s.length === 2) {
      const L = inp.layers[wi++];
      if (!L) throw new Error('nn.mlp.init returned more weight matrices than layers');
      if (s[0] === L.fin && s[1] === L.fout) return A.tensor(L.w, { shape: [L.fin, L.fout] });
      if (s[0] === L.fout && s[1] === L.fin)
        return A.tensor(transpose2d(L.w, L.fin, L.fout), { shape: [L.fout, L.fin] });
      throw new Error(`unexpected weight shape [${s}] for layer ${wi - 1}`);
    }
    if (s.length === 1 || (s.length === 2 && s[0] === 1)) {
      const L = inp.layers[bi++];
      if (!L || s.at(-1) !== L.fout) throw new Error(`unexpected bias shape [${s}]`);
      return A.tensor(L.b, { shape: [...s] });
    }
    throw new Error(`unexpected parameter shape [${s}]`);
  });
  if (wi !== inp.layers.length || bi !== inp.layers.length)
    throw new Error(`nn.mlp.init: found ${wi} weights and ${bi} biases, expected ${inp.layers.length} each`);
  let params = A.treeUnflatten(def, mine);
  const opt = A.optim.sgd({ lr: inp.lr });
  let state = opt.init(params);
  const x = A.tensor(inp.x, { shape: [inp.batch, inp.layers[0].fin] });
  const labels = A.tensor(inp.labels, { shape: [inp.batch], dtype: 'int32' });
  const step = A.jit((p, s, xx, yy) => {
    const [loss, g] = A.valueAndGrad((pp) => A.nn.softmaxCrossEntropy(A.nn.mlp.apply(pp, xx), yy))(p);
    const [p2, s2] = opt.update(g, s, p);
    return [loss, p2, s2];
  });
  return {
    how: 'nn.mlp + nn.softmaxCrossEntropy + optim.sgd, jit(valueAndGrad + opt.update)',
    run: async () => {
      const [loss, p2, s2] = step(params, state, x, labels);
      params = p2;
      state = s2;
      return [await f32(loss)];
    },
  };
}

/** Returns { rows: [{ row, run, note? }] }; run() computes and reads back, resolving to Float32Array[]. */
export function prepare(c, inp, rowName = 'adjoint', notes = () => {}) {
  switch (c.kind) {
    case 'matmul': {
      const a = A.tensor(inp.a, { shape: [inp.n, inp.n] });
      const b = A.tensor(inp.b, { shape: [inp.n, inp.n] });
      return { rows: [{ row: rowName, run: async () => [await f32(A.matmul(a, b))] }] };
    }
    case 'ew': {
      const a = A.tensor(inp.a);
      const b = A.tensor(inp.b);
      const cc = A.tensor(inp.c);
      if (c.compute) {
        // Computation alone: jit realizes the result without reading it; dispose frees it.
        const f = A.jit((x, y, z) => A.relu(A.add(A.mul(x, y), z)));
        let first = true;
        const run = async () => {
          const y = f(a, b, cc);
          if (first) {
            first = false;
            return [await f32(y)];
          }
          y.dispose();
          return [];
        };
        return { rows: [{ row: rowName, run }] };
      }
      // Like the TF.js rows (tidy + dispose), the result is disposed once read; the '-kept' row
      // leaves it to the garbage collector, which frees its wasm block later (after a GC and a
      // finalizer), so each rep writes a block that is not in cache.
      const read = async (dispose) => {
        const y = A.relu(A.add(A.mul(a, b), cc));
        const out = await f32(y);
        if (dispose) y.dispose();
        return [out];
      };
      const rows = [{ row: rowName, run: () => read(true) }];
      if (rowName === 'adjoint') rows.push({ row: 'adjoint-kept', run: () => read(false) });
      return { rows };
    }
    case 'mlp': {
      const haveNN =
        typeof A.nn?.mlp?.init === 'function' &&
        typeof A.nn?.mlp?.apply === 'function' &&
        typeof A.nn?.softmaxCrossEntropy === 'function' &&
        typeof A.optim?.sgd === 'function';
      let impl = null;
      if (haveNN) {
        try {
          impl = mlpNN(inp);
        } catch (e) {
          notes(`nn/optim present but not usable for the bench (${e.message}); using the hand-written MLP`);
        }
      }
      let first = true;
      let active = impl ?? mlpManual(inp);
      let how = active.how;
      const run = async () => {
        if (first && impl) {
          first = false;
          try {
            return await active.run();
          } catch (e) {
            notes(`nn/optim step failed (${e?.name}: ${e?.message}); falling back to the hand-written MLP`);
            active = mlpManual(inp);
            how = active.how;
          }
        }
        first = false;
        return active.run();
      };
      return { rows: [{ row: rowName, run, how: () => how }] };
    }
    case 'chain': {
      const x = A.tensor(inp.x);
      const w = A.tensor(inp.w);
      const f = (x0) => {
        let y = x0;
        for (let i = 0; i < inp.ops; i++) {
          if (i % 3 === 0) y = A.sin(y);
          else if (i % 3 === 1) y = A.mul(y, w);
          else y = A.add(y, x0);
        }
        return A.sum(y);
      };
      const vg = A.valueAndGrad(f);
      const jvg = A.jit(A.valueAndGrad(f));
      const read = async ([v, g]) => Promise.all([f32(v), f32(g)]);
      return {
        rows: [
          { row: rowName, run: async () => read(vg(x)) },
          { row: `${rowName}-jit`, run: async () => read(jvg(x)) },
        ],
      };
    }
    case 'branches': {
      const br = inp.branches.map((B) => ({
        a: A.tensor(B.a, { shape: [inp.n, inp.n] }),
        ws: B.ws.map((w) => A.tensor(w, { shape: [inp.n, inp.n] })),
      }));
      const f = () => {
        const ends = br.map((B) => B.ws.reduce((m, w) => A.matmul(m, w), B.a));
        return A.add(ends[0], ends[1]);
      };
      return { rows: [{ row: rowName, run: async () => [await f32(f())] }] };
    }
    default:
      throw new Error(`adjoint: no implementation for case kind '${c.kind}'`);
  }
}
