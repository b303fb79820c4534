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

const methods: Record<string, (this: Tensor, ...args: any[]) => Tensor> = {
  add(y) {
    return o.add(this, y);
  },
  sub(y) {
    return o.sub(this, y);
  },
  mul(y) {
    return o.mul(this, y);
  },
  div(y) {
    return o.div(this, y);
  },
  pow(y) {
    return o.pow(this, y);
  },
  maximum(y) {
    return o.maximum(this, y);
  },
  minimum(y) {
    return o.minimum(this, y);
  },
  greater(y) {
    return o.greater(this, y);
  },
  greaterEqual(y) {
    return o.greaterEqual(this, y);
  },
  lessEqual(y) {
    return o.lessEqual(this, y);
  },
  notEqual(y) {
    return o.notEqual(this, y);
  },
  less(y) {
    return o.less(this, y);
  },
  equal(y) {
    return o.equal(this, y);
  },
  neg() {
    return o.neg(this);
  },
  abs() {
    return o.abs(this);
  },
  sign() {
    return o.sign(this);
  },
  exp() {
    return o.exp(this);
  },
  log() {
    return o.log(this);
  },
  log1p() {
    return o.log1p(this);
  },
  sqrt() {
    return o.sqrt(this);
  },
  square() {
    return o.square(this);
  },
  reciprocal() {
    return o.reciprocal(this);
  },
  sin() {
    return o.sin(this);
  },
  cos() {
    return o.cos(this);
  },
  tanh() {
    return o.tanh(this);
  },
  sigmoid() {
    return o.sigmoid(this);
  },
  relu() {
    return o.relu(this);
  },
  softplus() {
    return o.softplus(this);
  },
  rsqrt() {
    return o.rsqrt(this);
  },
  erf() {
    return o.erf(this);
  },
  floor() {
    return o.floor(this);
  },
  ceil() {
    return o.ceil(this);
  },
  round() {
    return o.round(this);
  },
  elu() {
    return o.elu(this);
  },
  leakyRelu(alpha) {
    return o.leakyRelu(this, alpha);
  },
  silu() {
    return o.silu(this);
  },
  gelu(opts) {
    return o.gelu(this, opts);
  },
  clip(lo, hi) {
    return o.clip(this, lo, hi);
  },
  prod(axis, keepdims) {
    return o.prod(this, axis, keepdims);
  },
  variance(axis, keepdims) {
    return o.variance(this, axis, keepdims);
  },
  argmin(axis) {
    return o.argmin(this, axis);
  },
  cumsum(axis, opts) {
    return o.cumsum(this, axis, opts);
  },
  sum(axis, keepdims) {
    return o.sum(this, axis, keepdims);
  },
  mean(axis, keepdims) {
    return o.mean(this, axis, keepdims);
  },
  max(axis, keepdims) {
    return o.max(this, axis, keepdims);
  },
  min(axis, keepdims) {
    return o.min(this, axis, keepdims);
  },
  logsumexp(axis, keepdims) {
    return o.logsumexp(this, axis, keepdims);
  },
  argmax(axis) {
    return o.argmax(this, axis);
  },
  reshape(shape) {
    return o.reshape(this, shape);
  },
  transpose(perm) {
    return o.transpose(this, perm);
  },
  broadcastTo(shape) {
    return o.broadcastTo(this, shape);
  },
  expandDims(axis) {
    return o.expandDims(this, axis);
  },
  squeeze(axis) {
    return o.squeeze(this, axis);
  },
  slice(begin, size) {
    return o.slice(this, begin, size);
  },
  gather(indices, axis) {
    return o.gather(this, indices, axis);
  },
  matmul(y) {
    return o.matmul(this, y);
  },
  conv2d(w, opts) {
    return o.conv2d(this, w, opts);
  },
  conv1d(w, opts) {
    return o.conv1d(this, w, opts);
  },
  convTranspose2d(w, opts) {
    return o.convTranspose2d(this, w, opts);
  },
  maxPool2d(window, opts) {
    return o.maxPool2d(this, window, opts);
  },
  avgPool2d(window, opts) {
    return o.avgPool2d(this, window, opts);
  },
  softmax(axis) {
    return o.softmax(this, axis);
  },
  logSoftmax(axis) {
    return o.logSoftmax(this, axis);
  },
  cast(dtype) {
    return o.cast(this, dtype);
  },
  stopGradient() {
    return o.stopGradient(this);
  },
  where(a, b) {
    return o.where(this, a, b);
  },
};

for (const [name, fn] of Object.entries(methods)) {
  Object.defineProperty(Tensor.prototype, name, { value: fn, writable: true, configurable: true });
}
