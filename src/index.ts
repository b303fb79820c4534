/**
 * adjoint: lazy tensors, forward- and reverse-mode automatic differentiation of any order,
 * graph optimization, and execution on WebAssembly kernels.
 */
import './ops/index';
import './tensor-methods';
import './runtime/realize';
import './runtime/eager-grad';
import './runtime/init';

export { OutOfMemoryError } from './backends/wasm/backend';
export { WorkerError } from './backends/wasm/scheduler/errors';
export {
  WebGPUDeviceLostError,
  WebGPUExecutionError,
  WebGPULimitError,
  WebGPUOutOfMemoryError,
  WebGPUUnavailableError,
  WebGPUUnsupportedError,
} from './backends/webgpu/errors';
export { arange, eye, full, ones, tensor, zeros } from './creation';
export {
  AdjointError,
  AxisError,
  ConcretizationError,
  DisposedError,
  DTypeError,
  PytreeError,
  ShapeError,
  TransformError,
  ValueError,
  WasmUnavailableError,
} from './errors';
export { type GNode, Graph } from './graph/graph';
export * as io from './io/index';
export * as nn from './nn/index';
export {
  abs,
  add,
  argmax,
  argmin,
  avgPool2d,
  broadcastTo,
  cast,
  ceil,
  clip,
  concat,
  conv1d,
  conv2d,
  convTranspose2d,
  cos,
  cumsum,
  div,
  elu,
  equal,
  erf,
  exp,
  expandDims,
  floor,
  type GeluOptions,
  gather,
  gelu,
  greater,
  greaterEqual,
  leakyRelu,
  less,
  lessEqual,
  log,
  log1p,
  logSoftmax,
  logsumexp,
  matmul,
  max,
  maximum,
  maxPool2d,
  mean,
  min,
  minimum,
  mul,
  neg,
  notEqual,
  oneHot,
  pad,
  pow,
  prod,
  reciprocal,
  relu,
  reshape,
  round,
  rsqrt,
  sigmoid,
  sign,
  silu,
  sin,
  slice,
  softmax,
  softplus,
  sqrt,
  square,
  squeeze,
  stack,
  stopGradient,
  sub,
  sum,
  type TensorLike,
  tanh,
  transpose,
  variance,
  where,
} from './ops/api';
export { customJvp, customVjp } from './ops/custom';
export * as optim from './optim/index';
export * as random from './random';
export { type InitOptions, init, memoryStats, shutdown } from './runtime/init';
export { donate, type Jitted, jit, trace } from './runtime/jit';
export { type DType, type NestedArray, Tensor } from './tensor';
export { forwardSweep, recordTape, reverseSweep, type Tape } from './transforms/autodiff';
export { checkpoint } from './transforms/checkpoint';
export { flatten as treeFlatten, type Pytree, unflatten as treeUnflatten } from './transforms/pytree';
export { grad, hessian, jacfwd, jacrev, jvp, valueAndGrad, vjp } from './transforms/transforms';
export { type AxisSpec, vmap } from './transforms/vmap';
