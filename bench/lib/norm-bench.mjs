// What bench/layer-norm.mjs and bench/batch-norm.mjs share: a normalization y = norm(x, g, b)
// timed forward (result read back) and as value + gradients of sum(y · w) with respect to
// x, g and b (every gradient read back), for adjoint variants (jitted) and TF.js's.
import { measure, median } from './measure.mjs';

/** Median and min of `reps` timed runs after warm-up (at least 3 runs and 0.3 s). */
export async function timeReps(run, reps) {
  const { times } = await measure(run, {
    warmupRuns: 3,
    warmupMs: 300,
    minReps: reps,
    maxReps: reps,
    budgetMs: 0,
    hardCapMs: Number.POSITIVE_INFINITY,
    slowMs: Number.POSITIVE_INFINITY,
    checkRuns: 0,
  });
  return { med: median(times), min: Math.min(...times) };
}

/**
 * { name: { fwd, grad } } for each [name, f] of `adjoint` (on A's tensors x, g, b, w) and for
 * tfFn under `tfName` (on TF.js's tx, tg, tb, tw). Each run returns what it read back.
 */
export function normCases(A, tf, adjoint, [x, g, b, w], tfName, tfFn, [tx, tg, tb, tw]) {
  const cases = {};
  for (const [name, f] of adjoint) {
    const fwd = A.jit(f);
    const vg = A.jit(A.valueAndGrad((x, g, b) => A.sum(A.mul(f(x, g, b), w)), [0, 1, 2]));
    cases[name] = {
      fwd: () => fwd(x, g, b).data(),
      grad: async () => {
        const [v, gr] = vg(x, g, b);
        return Promise.all([v.data(), ...gr.map((t) => t.data())]);
      },
    };
  }
  const tfVg = tf.valueAndGrads((x, g, b) => tf.sum(tf.mul(tfFn(x, g, b), tw)));
  cases[tfName] = {
    fwd: async () => {
      const y = tf.tidy(() => tfFn(tx, tg, tb));
      const out = await y.data();
      y.dispose();
      return out;
    },
    grad: async () => {
      const { value, grads } = tfVg([tx, tg, tb]);
      const out = await Promise.all([value.data(), ...grads.map((t) => t.data())]);
      tf.dispose([value, ...grads]);
      return out;
    },
  };
  return cases;
}

/**
 * Times every case forward and with gradients; one table row each, the ratio against the first
 * case's median.
 */
export async function normRows(shape, cases, reps) {
  const rows = [];
  for (const kind of ['fwd', 'grad']) {
    const timed = [];
    for (const [name, c] of Object.entries(cases)) timed.push([name, await timeReps(c[kind], reps)]);
    const first = timed[0][1].med;
    for (const [name, t] of timed)
      rows.push(
        `| [${shape}] | ${kind === 'fwd' ? 'forward + read' : 'value + 3 gradients + read'} | ${name} | ${t.med.toFixed(3)} ms | ${t.min.toFixed(3)} ms | ${(t.med / first).toFixed(2)}× |`,
      );
  }
  return rows;
}
