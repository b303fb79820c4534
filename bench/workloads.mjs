// Workload and case definitions, shared by the parent (tables, ratios, tolerances) and the
// child processes (inputs). Inputs are plain typed arrays built from fixed seeds.
import { intsBelow, normal, oneHot, uniform } from './lib/data.mjs';

export const MLP_SIZES = [784, 512, 512, 10];
export const MLP_BATCH = 256;
export const MLP_LR = 0.05;
export const CHAIN_OPS = 200;
export const CHAIN_N = 1000;

export const WORKLOADS = {
  a: {
    title: '(a) f32 matmul C = A·B, n×n, readback included',
    unit: 'GFLOP/s',
    // max|x - ref| / max|ref| over the output; float32 accumulation order differs between
    // kernels, so allow a few ulps times sqrt(n)-ish growth.
    tol: 1e-4,
  },
  b: {
    title:
      '(b) relu(a·b + c) elementwise, a, b, c same shape: with readback, and computation alone (not with --webgpu)',
    unit: 'GB/s', // 16 bytes per element: three reads and one write
    tol: 1e-5,
  },
  c: {
    title: `(c) one SGD step, MLP ${MLP_SIZES.join('-')}, ReLU, softmax cross-entropy, batch ${MLP_BATCH}, loss read back`,
    unit: 'samples/s',
    // compared: the losses of the first three steps from the same initial parameters (the loss
    // drops ~3-6% a step, so later losses check the gradients and the update)
    tol: 1e-3,
  },
  d: {
    title: `(d) value + gradient of a ${CHAIN_OPS}-op elementwise chain on ${CHAIN_N} floats, then sum; gradient w.r.t. x`,
    unit: 'evals/s',
    tol: 1e-4,
  },
  t: {
    title: 'adjoint worker pool: threads = 1 vs 2 (adjoint only)',
    unit: '',
    tol: 0,
  },
};

export const ORDER = ['a', 'b', 'c', 'd', 't'];

/** Matrix sizes of (a): the --webgpu run goes one size up, where a GPU should pay off. */
const MATMUL_SIZES = {
  cpu: { quick: [128, 256, 512], full: [128, 256, 512, 1024] },
  webgpu: { quick: [256, 512], full: [256, 512, 1024, 2048] },
};

/**
 * The cases of one workload. `grow` = expected time factor over the previous case (for skip
 * predictions). `webgpu`: the cases of the --webgpu run ((b) with the result read back only).
 */
export function casesFor(w, { quick, webgpu = false }) {
  switch (w) {
    case 'a':
      return MATMUL_SIZES[webgpu ? 'webgpu' : 'cpu'][quick ? 'quick' : 'full'].map((n, i) => ({
        id: `matmul-${n}`,
        workload: 'a',
        label: `n=${n}`,
        kind: 'matmul',
        n,
        heavy: n >= 1024,
        grow: i === 0 ? null : 8,
        throughput: (ms) => (2 * n ** 3) / (ms * 1e6),
      }));
    case 'b':
      // Each size twice: with the result read back, and the computation alone (the result is
      // read back on the first call only, for the correctness check, then just released).
      return (quick ? [20] : [20, 24]).flatMap((p, i) =>
        (webgpu ? [false] : [false, true]).map((compute) => ({
          id: `ew-2^${p}${compute ? '-compute' : ''}`,
          workload: 'b',
          label: `2^${p}${compute ? ', compute' : ''}`,
          kind: 'ew',
          compute,
          n: 2 ** p,
          heavy: p >= 24,
          grow: i === 0 || compute ? null : 16,
          throughput: (ms) => (16 * 2 ** p) / (ms * 1e6),
        })),
      );
    case 'c':
      return [
        {
          id: 'mlp-step',
          workload: 'c',
          label: `batch ${MLP_BATCH}`,
          kind: 'mlp',
          heavy: true,
          grow: null,
          throughput: (ms) => MLP_BATCH / (ms / 1e3),
        },
      ];
    case 'd':
      return [
        {
          id: 'chain-200',
          workload: 'd',
          label: `${CHAIN_OPS} ops`,
          kind: 'chain',
          heavy: false,
          grow: null,
          throughput: (ms) => 1e3 / ms,
        },
      ];
    case 't': {
      const n = quick ? 512 : 1024;
      return [
        { id: `t-matmul-${n}`, workload: 't', label: `matmul n=${n}`, kind: 'matmul', n, heavy: true },
        { id: 't-mlp-step', workload: 't', label: 'MLP SGD step', kind: 'mlp', heavy: true },
        {
          id: 't-branches',
          workload: 't',
          label: '2 independent 512² matmul chains (3 deep), summed',
          kind: 'branches',
          n: 512,
          depth: 3,
          heavy: true,
        },
      ];
    }
    default:
      throw new Error(`unknown workload '${w}'`);
  }
}

/** Inputs for a case, as typed arrays (identical in every process). */
export function inputsFor(c) {
  switch (c.kind) {
    case 'matmul':
      return { n: c.n, a: normal(c.n * c.n, 1), b: normal(c.n * c.n, 2) };
    case 'ew':
      return { n: c.n, a: uniform(c.n, 11), b: uniform(c.n, 12), c: uniform(c.n, 13) };
    case 'mlp': {
      const layers = [];
      for (let l = 0; l + 1 < MLP_SIZES.length; l++) {
        const fin = MLP_SIZES[l];
        const fout = MLP_SIZES[l + 1];
        layers.push({
          fin,
          fout,
          w: normal(fin * fout, 100 + l, Math.sqrt(2 / fin)), // [fin, fout], row-major
          b: uniform(fout, 200 + l, -0.01, 0.01),
        });
      }
      const labels = intsBelow(MLP_BATCH, MLP_SIZES.at(-1), 301);
      return {
        layers,
        batch: MLP_BATCH,
        x: uniform(MLP_BATCH * MLP_SIZES[0], 300, 0, 1),
        labels,
        onehot: oneHot(labels, MLP_SIZES.at(-1)),
        lr: MLP_LR,
      };
    }
    case 'chain':
      return { ops: CHAIN_OPS, x: uniform(CHAIN_N, 400, -1, 1), w: uniform(CHAIN_N, 401, 0.5, 1.5) };
    case 'branches': {
      const n = c.n;
      const mk = (k) => ({
        a: normal(n * n, 500 + k),
        ws: Array.from({ length: c.depth }, (_, j) => normal(n * n, 510 + 10 * k + j, 1 / Math.sqrt(n))),
      });
      return { n, branches: [mk(0), mk(1)] };
    }
    default:
      throw new Error(`unknown case kind '${c.kind}'`);
  }
}
