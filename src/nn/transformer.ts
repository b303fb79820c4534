/**
 * Sequence and image layers as (init, apply) pairs: dropout, layer, RMS and batch normalization, embeddings,
 * multi-head attention, a 2-D convolution layer and a pre-norm transformer block.
 */
import { full, tensor } from '../creation';
import { ShapeError, ValueError } from '../errors';
import {
  add,
  asTensor,
  type Conv2dOptions,
  cast,
  conv2d as conv2dOp,
  div,
  expandDims,
  gather,
  greaterEqual,
  matmul,
  mul,
  reshape,
  rsqrt,
  stopGradient,
  sub,
  sum,
  transpose,
  where,
} from '../ops/api';
import { libraryVjp } from '../ops/custom';
import { row } from '../ops/defs/norm';
import { apply } from '../ops/registry';
import { type Key, normal, uniform } from '../random';
import { fmt } from '../shape';
import type { Tensor } from '../tensor';
import {
  checkDim,
  checkSeed,
  type InitOptions,
  type LinearParams,
  layerSeed,
  linear,
  type MlpParams,
  mlp,
} from './layers';

// ---------------------------------------------------------------- dropout

/**
 * Inverted dropout: each element is zeroed with probability `rate` and the rest scaled by
 * 1 / (1 - rate), so the expectation is unchanged. The mask is a function of `key` (and the shape)
 * only; rate 0 returns `x` itself. `rate` outside [0, 1) throws a ValueError.
 */
export function dropout(x: Tensor, rate: number, opts: { key: Key }): Tensor {
  if (typeof rate !== 'number' || !(rate >= 0 && rate < 1))
    throw new ValueError(`nn.dropout: rate must be in [0, 1), got ${String(rate)}`);
  if (opts === undefined || opts === null || !('key' in opts))
    throw new ValueError('nn.dropout: a PRNG key is required ({ key: random.key(seed) })');
  const t = asTensor(x);
  const u = uniform(t.shape, { key: opts.key });
  if (rate === 0) return t;
  return mul(t, mul(cast(greaterEqual(u, rate), 'float32'), 1 / (1 - rate)));
}

// ---------------------------------------------------------------- layer normalization

/** gamma (ones) and beta (zeros), both [dim]. */
export type LayerNormParams = { gamma: Tensor; beta: Tensor };

export const layerNorm = {
  init(dim: number): LayerNormParams {
    checkDim('nn.layerNorm.init', 'dim', dim);
    return { gamma: tensor(new Float32Array(dim).fill(1)), beta: tensor(new Float32Array(dim)) };
  },

  /** (x - mean) / sqrt(var + eps) · gamma + beta over the last axis (biased variance; eps 1e-5). */
  apply(params: LayerNormParams, x: Tensor, opts: { eps?: number } = {}): Tensor {
    const eps = opts.eps ?? 1e-5;
    if (!(eps >= 0)) throw new ValueError(`nn.layerNorm.apply: eps must be >= 0, got ${String(eps)}`);
    const t = asTensor(x);
    const d = params.gamma.shape[0];
    if (t.ndim < 1 || t.shape[t.ndim - 1] !== d)
      throw new ShapeError(`nn.layerNorm.apply: x must end in the normalized size ${d}, got ${fmt(t.shape)}`);
    return apply('layerNorm', [t, params.gamma, params.beta], { eps, rms: false });
  },
};

/** RMS normalization: gamma only. */
export type RmsNormParams = { gamma: Tensor };

export const rmsNorm = {
  init(dim: number): RmsNormParams {
    checkDim('nn.rmsNorm.init', 'dim', dim);
    return { gamma: tensor(new Float32Array(dim).fill(1)) };
  },

  /** x / sqrt(mean(x²) + eps) · gamma over the last axis (eps 1e-6). */
  apply(params: RmsNormParams, x: Tensor, opts: { eps?: number } = {}): Tensor {
    const eps = opts.eps ?? 1e-6;
    if (!(eps >= 0)) throw new ValueError(`nn.rmsNorm.apply: eps must be >= 0, got ${String(eps)}`);
    const t = asTensor(x);
    const d = params.gamma.shape[0];
    if (t.ndim < 1 || t.shape[t.ndim - 1] !== d)
      throw new ShapeError(`nn.rmsNorm.apply: x must end in the normalized size ${d}, got ${fmt(t.shape)}`);
    return apply('layerNorm', [t, params.gamma, full([d], 0)], { eps, rms: true });
  },
};

/** Batch normalization over every axis but the last (channels, NHWC): scale and shift, plus running statistics. */
export type BatchNormParams = { gamma: Tensor; beta: Tensor };
export type BatchNormState = { mean: Tensor; variance: Tensor };

export const batchNorm = {
  init(channels: number): { params: BatchNormParams; state: BatchNormState } {
    checkDim('nn.batchNorm.init', 'channels', channels);
    return {
      params: { gamma: tensor(new Float32Array(channels).fill(1)), beta: tensor(new Float32Array(channels)) },
      state: {
        mean: tensor(new Float32Array(channels)),
        variance: tensor(new Float32Array(channels).fill(1)),
      },
    };
  },

  /**
   * Training: normalizes with the batch's statistics (biased variance) and returns the running
   * statistics moved towards them by `momentum` (0.99 keeps 99 % of the old); inference
   * (`training: false`) uses the running statistics and returns them unchanged. As in Flax.
   */
  apply(
    params: BatchNormParams,
    state: BatchNormState,
    x: Tensor,
    opts: { training?: boolean; momentum?: number; eps?: number } = {},
  ): [Tensor, BatchNormState] {
    const { training = true, momentum = 0.99, eps = 1e-5 } = opts;
    if (!(eps >= 0)) throw new ValueError(`nn.batchNorm.apply: eps must be >= 0, got ${String(eps)}`);
    if (!(momentum >= 0 && momentum <= 1))
      throw new ValueError(`nn.batchNorm.apply: momentum must be in [0, 1], got ${String(momentum)}`);
    const t = asTensor(x);
    const c = params.gamma.shape[0];
    if (t.ndim < 2 || t.shape[t.ndim - 1] !== c)
      throw new ShapeError(
        `nn.batchNorm.apply: x must be [..., ${c}] with a batch axis, got ${fmt(t.shape)}`,
      );
    if (!training) return [normalizeBy(t, state.mean, state.variance, params, eps)[0], state];
    const [y, stats] = batchNormTrain(t, params.gamma, params.beta, eps);
    const keep = (old: Tensor, i: number) =>
      add(mul(old, momentum), mul(stopGradient(row(stats, i)), 1 - momentum));
    return [y, { mean: keep(state.mean, 0), variance: keep(state.variance, 1) }];
  },
};

/** (x − mean)·r·γ + β with r = 1/√(variance + eps), per channel; and r. */
function normalizeBy(
  x: Tensor,
  mean: Tensor,
  variance: Tensor,
  p: BatchNormParams,
  eps: number,
): [Tensor, Tensor] {
  const r = rsqrt(add(variance, eps));
  return [add(mul(sub(x, mean), mul(r, p.gamma)), p.beta), r];
}

/** Training mode: [[y, the batch's [2, C] mean and variance (one pass: `moments`)], residuals]. */
function batchNormForward(x: Tensor, gamma: Tensor, beta: Tensor, eps: number) {
  const stats = apply('moments', [x]);
  const [y, r] = normalizeBy(x, row(stats, 0), row(stats, 1), { gamma, beta }, eps);
  return [
    [y, stats],
    [x, gamma, stats, r],
  ] as [[Tensor, Tensor], Tensor[]];
}

/**
 * Training-mode batch normalization, [y, statistics], with its reverse rule written out. x's
 * cotangent, γr·(ct − Σct/M − x̂·Σ(ct·x̂)/M) (M rows) plus what the statistics' own cotangent
 * sends back through them, is ct·γr + (x − mean)·b + c with per-channel b and c; its two sums are
 * also γ's and β's cotangents. So the backward makes two reductions and one fused pass over x's
 * size, where differentiating the composite made four reductions (through the mean and the
 * variance) and more passes. Forward mode differentiates batchNormForward; vmap batches the rule.
 */
export const batchNormTrain = libraryVjp(
  function batchNorm(x: Tensor, gamma: Tensor, beta: Tensor, eps: number) {
    return batchNormForward(x, gamma, beta, eps)[0];
  },
  batchNormForward,
  ([x, gamma, stats, r]: Tensor[], [ct, ctStats]: Tensor[]) => {
    const lead = x.shape.slice(1).map((_, i) => i);
    const m = x.size / gamma.size;
    const xc = sub(x, row(stats, 0));
    const sumCt = sum(ct, lead);
    const sumCtXc = sum(mul(ct, xc), lead);
    const gr = mul(gamma, r);
    // b = (2 ct_var − γr³·Σct·xc) / M, c = (ct_mean − γr·Σct) / M
    const b = div(sub(mul(row(ctStats, 1), 2), mul(mul(gr, mul(r, r)), sumCtXc)), m);
    const c = div(sub(row(ctStats, 0), mul(gr, sumCt)), m);
    return [add(add(mul(ct, gr), mul(xc, b)), c), mul(sumCtXc, r), sumCt, null];
  },
);

// ---------------------------------------------------------------- embeddings

/** table: [vocab, dim]. */
export type EmbeddingParams = { table: Tensor };

export const embedding = {
  /** A [vocab, dim] table of normal(0, std) values from `seed` (std defaults to 1). */
  init(vocab: number, dim: number, opts: InitOptions & { std?: number } = {}): EmbeddingParams {
    checkDim('nn.embedding.init', 'vocab', vocab);
    checkDim('nn.embedding.init', 'dim', dim);
    const seed = checkSeed('nn.embedding.init', opts.seed ?? 0);
    return { table: normal([vocab, dim], { seed, std: opts.std ?? 1 }) };
  },

  /** Rows of the table at the int32 `ids`: shape ids.shape ++ [dim]. */
  apply(params: EmbeddingParams, ids: Tensor): Tensor {
    const i = asTensor(ids, 'int32');
    if (i.dtype !== 'int32') throw new ValueError(`nn.embedding.apply: ids must be int32, got ${i.dtype}`);
    return gather(params.table, i, 0);
  },
};

// ---------------------------------------------------------------- attention

/** The four projections of multi-head attention, each [dModel, dModel] with a bias. */
export type AttentionParams = { q: LinearParams; k: LinearParams; v: LinearParams; o: LinearParams };

export interface AttentionOptions {
  /** Position i attends only to positions <= i. */
  causal?: boolean;
  /**
   * Padding mask [batch, seq] (or [seq] for unbatched x): nonzero marks a real token, 0 a padded one
   * that no position attends to. A query that can see no real token (with causal, a padded prefix)
   * gets all-zero weights.
   */
  mask?: Tensor;
  /**
   * Number of heads (default 1); must divide dModel. It is an option of apply, not a parameter leaf,
   * so the parameter pytree holds only tensors (grad, jit and the optimizers take it as is).
   */
  heads?: number;
}

export const attention = {
  /**
   * Multi-head scaled dot-product attention parameters: q, k, v, o projections [dModel, dModel]
   * (Glorot, seeded from `seed`). `heads` must divide dModel; pass the same number to apply.
   */
  init(dModel: number, numHeads: number, opts: InitOptions = {}): AttentionParams {
    checkDim('nn.attention.init', 'dModel', dModel);
    checkDim('nn.attention.init', 'heads', numHeads);
    if (dModel % numHeads !== 0)
      throw new ValueError(`nn.attention.init: heads (${numHeads}) must divide dModel (${dModel})`);
    const seed = checkSeed('nn.attention.init', opts.seed ?? 0);
    return {
      q: linear.init(dModel, dModel, { seed: layerSeed(seed, 0) }),
      k: linear.init(dModel, dModel, { seed: layerSeed(seed, 1) }),
      v: linear.init(dModel, dModel, { seed: layerSeed(seed, 2) }),
      o: linear.init(dModel, dModel, { seed: layerSeed(seed, 3) }),
    };
  },

  /** Attention weights [batch, heads, seq, seq] (rows sum to 1), for inspection and tests. */
  weights(params: AttentionParams, x: Tensor, opts: AttentionOptions = {}): Tensor {
    return attend(params, x, opts).weights;
  },

  /** Self-attention of x [batch, seq, dModel] (or [seq, dModel]); same shape out. */
  apply(params: AttentionParams, x: Tensor, opts: AttentionOptions = {}): Tensor {
    return attend(params, x, opts).out;
  },
};

function attend(
  params: AttentionParams,
  x: Tensor,
  opts: AttentionOptions,
): { out: Tensor; weights: Tensor } {
  let t = asTensor(x);
  const unbatched = t.ndim === 2;
  if (unbatched) t = expandDims(t, 0);
  if (t.ndim !== 3)
    throw new ShapeError(
      `nn.attention.apply: x must be [batch, seq, dModel] or [seq, dModel], got ${fmt(t.shape)}`,
    );
  const [b, n, d] = t.shape;
  const h = opts.heads ?? 1;
  checkDim('nn.attention.apply', 'heads', h);
  if (params.q.w.shape[0] !== d)
    throw new ShapeError(`nn.attention.apply: x's last axis must be dModel ${params.q.w.shape[0]}, got ${d}`);
  if (d % h !== 0) throw new ValueError(`nn.attention.apply: heads (${h}) must divide dModel (${d})`);
  const dh = d / h;
  const split = (y: Tensor) => transpose(reshape(y, [b, n, h, dh]), [0, 2, 1, 3]);
  // the 1/√dh scale goes on q ([b, h, n, dh]) rather than on the logits ([b, h, n, n]): with no
  // mask, softmax then reads the matmul's output directly instead of a scaled copy
  const q = split(mul(linear.apply(params.q, t), 1 / Math.sqrt(dh)));
  const k = split(linear.apply(params.k, t));
  const v = split(linear.apply(params.v, t));
  const logits = matmul(q, transpose(k, [0, 1, 3, 2]));
  const inputs = [logits];
  if (opts.mask !== undefined) {
    let m = asTensor(opts.mask);
    if (unbatched && m.ndim === 1) m = expandDims(m, 0);
    if (m.ndim !== 2 || m.shape[0] !== b || m.shape[1] !== n)
      throw new ShapeError(
        `nn.attention.apply: mask must be [batch, seq] = ${fmt([b, n])}, got ${fmt(m.shape)}`,
      );
    inputs.push(cast(where(cast(m, 'float32'), 1, 0), 'int32'));
  }
  // Both masks are softmax's own: the causal one takes row i over keys 0..i, and the padding one
  // ([batch, seq], a row per example) skips padded keys, so no mask tensor of the logits' size is
  // made and no pass over them applies it. Masked keys get weight 0; a query that may see no key
  // at all gets all-zero weights (so its output is the output projection's bias).
  const weights = apply('softmax', inputs, opts.causal ? { axis: 3, causal: true } : { axis: 3 });
  const ctx = reshape(transpose(matmul(weights, v), [0, 2, 1, 3]), [b, n, d]);
  let out = linear.apply(params.o, ctx);
  if (unbatched) out = reshape(out, [n, d]);
  return { out, weights: unbatched ? reshape(weights, [h, n, n]) : weights };
}

// ---------------------------------------------------------------- convolution layer

/** w: [kh, kw, cin, cout] (HWIO), b: [cout]. */
export type Conv2dParams = { w: Tensor; b: Tensor };

export const conv2d = {
  /** Glorot-uniform filter (fan-in kh·kw·cin, fan-out kh·kw·cout) from `seed`; zero bias. */
  init(kh: number, kw: number, cin: number, cout: number, opts: InitOptions = {}): Conv2dParams {
    checkDim('nn.conv2d.init', 'kh', kh);
    checkDim('nn.conv2d.init', 'kw', kw);
    checkDim('nn.conv2d.init', 'cin', cin);
    checkDim('nn.conv2d.init', 'cout', cout);
    const seed = checkSeed('nn.conv2d.init', opts.seed ?? 0);
    const limit = Math.sqrt(6 / (kh * kw * (cin + cout)));
    return {
      w: uniform([kh, kw, cin, cout], { seed, low: -limit, high: limit }),
      b: tensor(new Float32Array(cout)),
    };
  },

  /** conv2d(x, w, opts) + b for NHWC x. */
  apply(params: Conv2dParams, x: Tensor, opts: Conv2dOptions = {}): Tensor {
    return add(conv2dOp(x, params.w, opts), params.b);
  },
};

// ---------------------------------------------------------------- transformer block

export type TransformerBlockParams = {
  ln1: LayerNormParams;
  attn: AttentionParams;
  ln2: LayerNormParams;
  mlp: MlpParams;
};

export const transformerBlock = {
  /** Pre-norm block of width dModel with `heads` heads and an MLP of hidden width (default 4·dModel). */
  init(
    dModel: number,
    numHeads: number,
    opts: InitOptions & { hidden?: number } = {},
  ): TransformerBlockParams {
    const seed = checkSeed('nn.transformerBlock.init', opts.seed ?? 0);
    const hidden = checkDim('nn.transformerBlock.init', 'hidden', opts.hidden ?? 4 * dModel);
    return {
      ln1: layerNorm.init(dModel),
      attn: attention.init(dModel, numHeads, { seed: layerSeed(seed, 0) }),
      ln2: layerNorm.init(dModel),
      mlp: mlp.init([dModel, hidden, dModel], { seed: layerSeed(seed, 1) }),
    };
  },

  /** x + attention(layerNorm(x)), then + mlp(layerNorm(·)); pass `heads` as given to init. */
  apply(params: TransformerBlockParams, x: Tensor, opts: AttentionOptions = {}): Tensor {
    const a = add(x, attention.apply(params.attn, layerNorm.apply(params.ln1, x), opts));
    return add(a, mlp.apply(params.mlp, layerNorm.apply(params.ln2, a)));
  },
};
