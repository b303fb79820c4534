/**
 * Neural-network building blocks: layers as (init, apply) pairs over parameter pytrees, and losses.
 * Nothing here is special to the core: these are plain functions of tensors, so grad, jit and the
 * optimizers in `optim` apply to them like to any other code.
 */
export {
  glorotUniform,
  type InitOptions,
  type LinearParams,
  layerSeed,
  linear,
  type MlpParams,
  mlp,
} from './layers';
export { accuracy, mse, softmaxCrossEntropy } from './losses';
export {
  type AttentionOptions,
  type AttentionParams,
  attention,
  batchNorm,
  type Conv2dParams,
  conv2d,
  dropout,
  type EmbeddingParams,
  embedding,
  type LayerNormParams,
  layerNorm,
  rmsNorm,
  type TransformerBlockParams,
  transformerBlock,
} from './transformer';
