/** Chainable methods: x.mul(y).sum(). Added here so tensor.ts does not depend on the ops. */
import * as o from './ops/api';
import { type DType, Tensor } from './tensor';

type Like = o.TensorLike;

declare module './tensor' {
  interface Tensor {
    add(y: Like): Tensor;
    sub(y: Like): Tensor;
    mul(y: Like): Tensor;
    div(y: Like): Tensor;
    pow(y: Like): Tensor;
    maximum(y: Like): Tensor;
    minimum(y: Like): Tensor;
    greater(y: Like): Tensor;
    greaterEqual(y: Like): Tensor;
    lessEqual(y: Like): Tensor;
    notEqual(y: Like): Tensor;
    less(y: Like): Tensor;
    equal(y: Like): Tensor;
    neg(): Tensor;
    abs(): Tensor;
    sign(): Tensor;
    exp(): Tensor;
    log(): Tensor;
    log1p(): Tensor;
    sqrt(): Tensor;
    square(): Tensor;
    reciprocal(): Tensor;
    sin(): Tensor;
    cos(): Tensor;
    tanh(): Tensor;
    sigmoid(): Tensor;
    relu(): Tensor;
    softplus(): Tensor;
    rsqrt(): Tensor;
    erf(): Tensor;
    floor(): Tensor;
    ceil(): Tensor;
    round(): Tensor;
    elu(): Tensor;
    leakyRelu(alpha?: number): Tensor;
    silu(): Tensor;
    gelu(opts?: o.GeluOptions): Tensor;
    clip(lo: Like, hi: Like): Tensor;
    prod(axis?: o.Axis, keepdims?: boolean): Tensor;
    variance(axis?: o.Axis, keepdims?: boolean): Tensor;
    argmin(axis?: number): Tensor;
    cumsum(axis?: number, opts?: { reverse?: boolean }): Tensor;
    sum(axis?: o.Axis, keepdims?: boolean): Tensor;
    mean(axis?: o.Axis, keepdims?: boolean): Tensor;
    max(axis?: o.Axis, keepdims?: boolean): Tensor;
    min(axis?: o.Axis, keepdims?: boolean): Tensor;
    logsumexp(axis?: o.Axis, keepdims?: boolean): Tensor;
    argmax(axis?: number): Tensor;
    reshape(shape: readonly number[]): Tensor;
    transpose(perm?: readonly number[]): Tensor;
    broadcastTo(shape: readonly number[]): Tensor;
    expandDims(axis: number): Tensor;
    squeeze(axis?: o.Axis): Tensor;
    slice(begin: number | readonly number[], size?: number | readonly number[]): Tensor;
    gather(indices: Like, axis?: number): Tensor;
    matmul(y: Like): Tensor;
    conv2d(w: Like, opts?: o.Conv2dOptions): Tensor;
    conv1d(w: Like, opts?: o.Conv1dOptions): Tensor;
    convTranspose2d(w: Like, opts?: o.ConvTranspose2dOptions): Tensor;
    maxPool2d(window: number | readonly [number, number], opts?: o.Pool2dOptions): Tensor;
    avgPool2d(window: number | readonly [number, number], opts?: o.Pool2dOptions): Tensor;
    softmax(axis?: number): Tensor;
    logSoftmax(axis?: number): Tensor;
    cast(dtype: DType): Tensor;
    stopGradient(): Tensor;
    where(a: Like, b: Like): Tensor;
  }
}

/** Every method is the op of the same name, with the tensor as its first argument. */
const methods: Record<string, (x: Tensor, ...args: any[]) => Tensor> = {
  add: o.add,
  sub: o.sub,
  mul: o.mul,
  div: o.div,
  pow: o.pow,
  maximum: o.maximum,
  minimum: o.minimum,
  greater: o.greater,
  greaterEqual: o.greaterEqual,
  lessEqual: o.lessEqual,
  notEqual: o.notEqual,
  less: o.less,
  equal: o.equal,
  neg: o.neg,
  abs: o.abs,
  sign: o.sign,
  exp: o.exp,
  log: o.log,
  log1p: o.log1p,
  sqrt: o.sqrt,
  square: o.square,
  reciprocal: o.reciprocal,
  sin: o.sin,
  cos: o.cos,
  tanh: o.tanh,
  sigmoid: o.sigmoid,
  relu: o.relu,
  softplus: o.softplus,
  rsqrt: o.rsqrt,
  erf: o.erf,
  floor: o.floor,
  ceil: o.ceil,
  round: o.round,
  elu: o.elu,
  leakyRelu: o.leakyRelu,
  silu: o.silu,
  gelu: o.gelu,
  clip: o.clip,
  prod: o.prod,
  variance: o.variance,
  argmin: o.argmin,
  cumsum: o.cumsum,
  sum: o.sum,
  mean: o.mean,
  max: o.max,
  min: o.min,
  logsumexp: o.logsumexp,
  argmax: o.argmax,
  reshape: o.reshape,
  transpose: o.transpose,
  broadcastTo: o.broadcastTo,
  expandDims: o.expandDims,
  squeeze: o.squeeze,
  slice: o.slice,
  gather: o.gather,
  matmul: o.matmul,
  conv2d: o.conv2d,
  conv1d: o.conv1d,
  convTranspose2d: o.convTranspose2d,
  maxPool2d: o.maxPool2d,
  avgPool2d: o.avgPool2d,
  softmax: o.softmax,
  logSoftmax: o.logSoftmax,
  cast: o.cast,
  stopGradient: o.stopGradient,
  where: o.where,
};

for (const [name, op] of Object.entries(methods)) {
  Object.defineProperty(Tensor.prototype, name, {
    value(this: Tensor, ...args: unknown[]) {
      return op(this, ...args);
    },
    writable: true,
    configurable: true,
  });
}
