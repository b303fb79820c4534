/**
 * Optimizers, optax style: `opt.init(params) -> state`, `opt.update(grads, state, params) -> [params, state]`.
 * Parameters and state are pytrees of tensors; updates are graphs, so a training step can be jitted.
 * Gradient clipping: `clipByGlobalNorm(grads, maxNorm)` as a function, or `clipNorm` on any optimizer.
 */
export {
  type AdamOptions,
  type AdamState,
  adam,
  adamw,
  clipByGlobalNorm,
  cosineDecay,
  globalNorm,
  type Optimizer,
  type Schedule,
  type SgdOptions,
  type SgdState,
  sgd,
} from './optimizers';
