/** Layers as pairs of pure functions: `init` makes a parameter pytree, `apply` maps (params, x) to y. */
import { tensor } from '../creation';
import { ValueError } from '../errors';
import { add, matmul, relu } from '../ops/api';
import { uniform } from '../random';
import type { Tensor } from '../tensor';

/** Parameters of one affine layer y = x·w + b. */
export type LinearParams = { w: Tensor; b: Tensor };

/** Parameters of an MLP: one {@link LinearParams} per layer, input side first. */
export type MlpParams = LinearParams[];

export interface InitOptions {
  /** Seed of the weights (default 0); the same seed always gives the same values. */
  seed?: number;
}

export function checkDim(where: string, name: string, d: unknown): number {
  if (typeof d !== 'number' || !Number.isInteger(d) || d < 1)
    throw new ValueError(`${where}: ${name} must be a positive integer, got ${String(d)}`);
  return d;
}

export function checkSeed(where: string, seed: unknown): number {
  if (typeof seed !== 'number' || !Number.isFinite(seed))
    throw new ValueError(`${where}: seed must be a finite number, got ${String(seed)}`);
  return seed;
}

/**
 * Derives the seed of layer `index` from the model seed (a splitmix32-style hash), so layers get
 * unrelated weights and the whole model is reproducible from one number.
 */
export function layerSeed(seed: number, index: number): number {
  let h = (Math.trunc(seed) ^ Math.imul(index + 1, 0x9e3779b9)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Glorot (Xavier) uniform: U(-l, l) with l = sqrt(6 / (fanIn + fanOut)), shape [fanIn, fanOut]. */
export function glorotUniform(fanIn: number, fanOut: number, seed: number): Tensor {
  const limit = Math.sqrt(6 / (fanIn + fanOut));
  return uniform([fanIn, fanOut], { seed, low: -limit, high: limit });
}

export const linear = {
  /** w: [inDim, outDim] Glorot-uniform from `seed`; b: [outDim] zeros. */
  init(inDim: number, outDim: number, opts: InitOptions = {}): LinearParams {
    checkDim('nn.linear.init', 'inDim', inDim);
    checkDim('nn.linear.init', 'outDim', outDim);
    const seed = checkSeed('nn.linear.init', opts.seed ?? 0);
    return { w: glorotUniform(inDim, outDim, seed), b: tensor(new Float32Array(outDim)) };
  },

  /** x·w + b for x of shape [..., inDim] (a batch, or a single vector). */
  apply(params: LinearParams, x: Tensor): Tensor {
    return add(matmul(x, params.w), params.b);
  },
};

export const mlp = {
  /**
   * A multi-layer perceptron with layer widths `sizes` (input first): `sizes.length - 1` linear layers,
   * layer i seeded with `layerSeed(seed, i)`. Returns an array of {@link LinearParams}.
   */
  init(sizes: readonly number[], opts: InitOptions = {}): MlpParams {
    if (!Array.isArray(sizes) || sizes.length < 2)
      throw new ValueError(
        `nn.mlp.init: sizes must list at least two widths (input and output), got ${JSON.stringify(sizes)}`,
      );
    sizes.forEach((d, i) => {
      checkDim('nn.mlp.init', `sizes[${i}]`, d);
    });
    const seed = checkSeed('nn.mlp.init', opts.seed ?? 0);
    const layers: MlpParams = [];
    for (let i = 0; i + 1 < sizes.length; i++)
      layers.push(linear.init(sizes[i], sizes[i + 1], { seed: layerSeed(seed, i) }));
    return layers;
  },

  /** Applies the layers in order with ReLU between them (none after the last: it returns logits). */
  apply(params: MlpParams, x: Tensor): Tensor {
    if (!Array.isArray(params) || params.length === 0)
      throw new ValueError('nn.mlp.apply: params must be the non-empty array that nn.mlp.init returns');
    let h = x;
    params.forEach((layer, i) => {
      h = linear.apply(layer, h);
      if (i < params.length - 1) h = relu(h);
    });
    return h;
  },
};
