/**
 * Geometry of 2-D convolution and pooling (NHWC images, HWIO filters, as in TensorFlow.js):
 * argument validation with typed errors, TF 'same' padding, output sizes. Shared by the public
 * functions (src/ops/conv-api.ts), the shape rules of the primitives (src/ops/defs/conv.ts) and
 * the kernels' descriptors.
 */
import { DTypeError, ShapeError, ValueError } from '../errors';
import { fmt } from '../shape';
import type { Attrs } from '../tensor';
import type { TensorInfo } from './registry';

export type Pair = [number, number];
/** Explicit padding as [top, bottom, left, right]. */
export type Pads = [number, number, number, number];
/** 'valid' (none), 'same' (TF: output = ceil(input / stride)) or explicit [[top, bottom], [left, right]]. */
export type Padding = 'valid' | 'same' | readonly [readonly [number, number], readonly [number, number]];

/** Attributes of the convolution primitives (conv2d, conv2dBackpropInput, conv2dBackpropFilter). */
export interface ConvAttrs {
  strides: Pair;
  pads: Pads;
  dilations: Pair;
  groups: number;
}

/** Attributes of the pooling primitives. */
export interface PoolAttrs {
  window: Pair;
  strides: Pair;
  pads: Pads;
}

/** Everything a convolution's kernels need, in the forward conv's terms (x → y with filter w). */
export interface ConvGeo {
  N: number;
  H: number;
  W: number;
  Cin: number;
  OH: number;
  OW: number;
  Cout: number;
  KH: number;
  KW: number;
  cinG: number;
  coutG: number;
  groups: number;
  sh: number;
  sw: number;
  dh: number;
  dw: number;
  pt: number;
  pb: number;
  pl: number;
  pr: number;
}

export interface PoolGeo {
  N: number;
  H: number;
  W: number;
  C: number;
  OH: number;
  OW: number;
  KH: number;
  KW: number;
  sh: number;
  sw: number;
  pt: number;
  pb: number;
  pl: number;
  pr: number;
}

const isPosInt = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v > 0;
const isNatInt = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 0;

/** A positive integer pair from a number or a pair; ValueError naming the op and argument otherwise. */
export function positivePair(op: string, name: string, v: unknown, fallback: number, n = 2): number[] {
  if (v === undefined) return new Array<number>(n).fill(fallback);
  const xs = typeof v === 'number' ? new Array<number>(n).fill(v) : v;
  if (!Array.isArray(xs) || xs.length !== n || !xs.every(isPosInt))
    throw new ValueError(
      `${op}: ${name} must be ${n === 1 ? 'a positive integer' : `a positive integer or ${n} positive integers`}, got ${JSON.stringify(v)}`,
    );
  return [...xs];
}

/** TF's 'same' padding along one axis: total max(0, (ceil(in / s) - 1)·s + k - in), the extra one after. */
function samePads(size: number, k: number, s: number): [number, number] {
  const out = Math.ceil(size / s);
  const total = Math.max(0, (out - 1) * s + k - size);
  const before = Math.floor(total / 2);
  return [before, total - before];
}

/** Explicit pads [top, bottom, left, right] for a padding argument, given the (dilated) window. */
export function resolvePadding(
  op: string,
  padding: Padding | undefined,
  spatial: readonly number[],
  window: readonly number[],
  strides: readonly number[],
): Pads {
  const p = padding ?? 'valid';
  if (p === 'valid') return [0, 0, 0, 0];
  if (p === 'same') {
    const [t, b] = samePads(spatial[0], window[0], strides[0]);
    const [l, r] = samePads(spatial[1], window[1], strides[1]);
    return [t, b, l, r];
  }
  if (
    Array.isArray(p) &&
    p.length === 2 &&
    p.every((q) => Array.isArray(q) && q.length === 2 && q.every(isNatInt))
  )
    return [p[0][0], p[0][1], p[1][0], p[1][1]];
  throw new ValueError(
    `${op}: padding must be 'valid', 'same' or [[top, bottom], [left, right]] of non-negative integers, got ${JSON.stringify(p)}`,
  );
}

/** One spatial output size; 0 for an empty input. */
function outLen(size: number, k: number, s: number, p0: number, p1: number): number {
  if (size === 0) return 0;
  return Math.floor((size + p0 + p1 - k) / s) + 1;
}

function checkAttrs(op: string, a: Attrs, keys: readonly string[]): void {
  for (const k of keys) {
    const v = a[k] as unknown;
    const n = k === 'pads' ? 4 : 2;
    const ok = Array.isArray(v) && v.length === n && v.every(k === 'pads' ? isNatInt : isPosInt);
    if (!ok)
      throw new ValueError(
        `${op}: ${k} must be ${n} ${k === 'pads' ? 'non-negative' : 'positive'} integers, got ${JSON.stringify(v)}`,
      );
  }
}

function rank4(op: string, what: string, s: readonly number[]): void {
  if (s.length !== 4)
    throw new ShapeError(
      `${op}: ${what} must have rank 4 (${what === 'x' ? 'NHWC' : 'HWIO'}), got ${fmt(s)}`,
    );
}

function float32(op: string, inputs: readonly TensorInfo[]): void {
  for (const t of inputs)
    if (t.dtype !== 'float32') throw new DTypeError(`${op}: operands must be float32, got ${t.dtype}`);
}

/**
 * Validates a convolution x [N, H, W, Cin] * w [KH, KW, Cin / groups, Cout] and returns its
 * geometry. ValueError for bad strides, dilations, pads or groups; ShapeError naming both shapes
 * for ranks, a channel mismatch, groups that do not divide the channels and a window larger than
 * the padded input.
 */
export function convGeometry(op: string, x: readonly number[], w: readonly number[], attrs: Attrs): ConvGeo {
  checkAttrs(op, attrs, ['strides', 'dilations', 'pads']);
  const groups = attrs.groups as number;
  if (!isPosInt(groups))
    throw new ValueError(`${op}: groups must be a positive integer, got ${JSON.stringify(groups)}`);
  rank4(op, 'x', x);
  rank4(op, 'filter', w);
  const [N, H, W, Cin] = x;
  const [KH, KW, cinG, Cout] = w;
  const shapes = `x ${fmt(x)}, filter ${fmt(w)}`;
  if (Cin % groups !== 0 || Cout % groups !== 0)
    throw new ShapeError(
      `${op}: groups ${groups} must divide the input channels ${Cin} and the output channels ${Cout} (${shapes})`,
    );
  if (cinG * groups !== Cin)
    throw new ShapeError(
      `${op}: x has ${Cin} channels but the filter takes ${cinG} per group × ${groups} group${groups > 1 ? 's' : ''} (${shapes})`,
    );
  const [sh, sw] = attrs.strides as Pair;
  const [dh, dw] = attrs.dilations as Pair;
  const [pt, pb, pl, pr] = attrs.pads as Pads;
  const eh = (KH - 1) * dh + 1;
  const ew = (KW - 1) * dw + 1;
  if (KH === 0 || KW === 0) throw new ShapeError(`${op}: the filter window is empty (${shapes})`);
  if ((H > 0 && H + pt + pb < eh) || (W > 0 && W + pl + pr < ew))
    throw new ShapeError(
      `${op}: the filter window ${eh}×${ew}${dh > 1 || dw > 1 ? ' (dilated)' : ''} is larger than the input ${H}×${W} padded to ${H + pt + pb}×${W + pl + pr} (${shapes})`,
    );
  return {
    N,
    H,
    W,
    Cin,
    OH: outLen(H, eh, sh, pt, pb),
    OW: outLen(W, ew, sw, pl, pr),
    Cout,
    KH,
    KW,
    cinG,
    coutG: Cout / groups,
    groups,
    sh,
    sw,
    dh,
    dw,
    pt,
    pb,
    pl,
    pr,
  };
}

/** conv2d's shape rule. */
export function inferConv(op: string, [x, w]: readonly TensorInfo[], attrs: Attrs): TensorInfo {
  float32(op, [x, w]);
  const g = convGeometry(op, x.shape, w.shape, attrs);
  return { shape: [g.N, g.OH, g.OW, g.Cout], dtype: 'float32' };
}

/** conv2dBackpropInput(dy, w) with attrs.inputShape = [H, W]: the x of the forward conv. */
export function inferBackpropInput(op: string, [dy, w]: readonly TensorInfo[], attrs: Attrs): TensorInfo {
  float32(op, [dy, w]);
  rank4(op, 'dy', dy.shape);
  rank4(op, 'filter', w.shape);
  const hw = attrs.inputShape as Pair;
  if (!Array.isArray(hw) || hw.length !== 2 || !hw.every(isNatInt))
    throw new ValueError(`${op}: inputShape must be [height, width], got ${JSON.stringify(hw)}`);
  const groups = attrs.groups as number;
  const x = [dy.shape[0], hw[0], hw[1], w.shape[2] * (isPosInt(groups) ? groups : 1)];
  const g = convGeometry(op, x, w.shape, attrs);
  if (g.OH !== dy.shape[1] || g.OW !== dy.shape[2] || g.Cout !== dy.shape[3])
    throw new ShapeError(
      `${op}: dy ${fmt(dy.shape)} is not the output of a convolution of ${fmt(x)} with filter ${fmt(w.shape)} (that is ${fmt([g.N, g.OH, g.OW, g.Cout])})`,
    );
  return { shape: x, dtype: 'float32' };
}

/** conv2dBackpropFilter(x, dy) with attrs.filterShape = [KH, KW]: the filter of the forward conv. */
export function inferBackpropFilter(op: string, [x, dy]: readonly TensorInfo[], attrs: Attrs): TensorInfo {
  float32(op, [x, dy]);
  rank4(op, 'x', x.shape);
  rank4(op, 'dy', dy.shape);
  const k = attrs.filterShape as Pair;
  if (!Array.isArray(k) || k.length !== 2 || !k.every(isPosInt))
    throw new ValueError(
      `${op}: filterShape must be [height, width] of positive integers, got ${JSON.stringify(k)}`,
    );
  const groups = attrs.groups as number;
  const gs = isPosInt(groups) ? groups : 1;
  const w = [k[0], k[1], Math.floor(x.shape[3] / gs), dy.shape[3]];
  const g = convGeometry(op, x.shape, w, attrs);
  if (g.N !== dy.shape[0] || g.OH !== dy.shape[1] || g.OW !== dy.shape[2])
    throw new ShapeError(
      `${op}: dy ${fmt(dy.shape)} is not the output of a convolution of ${fmt(x.shape)} with filter ${fmt(w)} (that is ${fmt([g.N, g.OH, g.OW, g.Cout])})`,
    );
  return { shape: w, dtype: 'float32' };
}

/**
 * Validates a pooling of x [N, H, W, C] and returns its geometry. Padded positions never count
 * (max ignores them, the average divides by the in-bounds count), so each pad must be smaller
 * than the window: every window then holds at least one element.
 */
export function poolGeometry(op: string, x: readonly number[], attrs: Attrs): PoolGeo {
  checkAttrs(op, attrs, ['window', 'strides', 'pads']);
  rank4(op, 'x', x);
  const [N, H, W, C] = x;
  const [KH, KW] = attrs.window as Pair;
  const [sh, sw] = attrs.strides as Pair;
  const [pt, pb, pl, pr] = attrs.pads as Pads;
  if (pt >= KH || pb >= KH || pl >= KW || pr >= KW)
    throw new ValueError(
      `${op}: padding [[${pt}, ${pb}], [${pl}, ${pr}]] must be smaller than the window ${KH}×${KW} (x ${fmt(x)})`,
    );
  if ((H > 0 && H + pt + pb < KH) || (W > 0 && W + pl + pr < KW))
    throw new ShapeError(
      `${op}: the window ${KH}×${KW} is larger than the input ${H}×${W} padded to ${H + pt + pb}×${W + pl + pr} (x ${fmt(x)})`,
    );
  return {
    N,
    H,
    W,
    C,
    OH: outLen(H, KH, sh, pt, pb),
    OW: outLen(W, KW, sw, pl, pr),
    KH,
    KW,
    sh,
    sw,
    pt,
    pb,
    pl,
    pr,
  };
}

export function inferPool(op: string, inputs: readonly TensorInfo[], attrs: Attrs): TensorInfo {
  float32(op, inputs);
  const x = inputs[0];
  const g = poolGeometry(op, x.shape, attrs);
  return { shape: [g.N, g.OH, g.OW, g.C], dtype: 'float32' };
}

/** ShapeError unless an operand (`what`) has the shape `want`. */
export function checkSameShape(
  op: string,
  what: string,
  got: readonly number[],
  want: readonly number[],
): void {
  if (got.length !== want.length || got.some((d, i) => d !== want[i]))
    throw new ShapeError(`${op}: ${what} ${fmt(got)} must have shape ${fmt(want)}`);
}

/** Attributes as a plain object for apply (copies, so callers may not alias them). */
export function convAttrs(a: ConvAttrs): Attrs {
  return { strides: [...a.strides], pads: [...a.pads], dilations: [...a.dilations], groups: a.groups };
}

export function poolAttrs(a: PoolAttrs): Attrs {
  return { window: [...a.window], strides: [...a.strides], pads: [...a.pads] };
}

/** Geometry of a node of one of the conv primitives, from its operands' shapes and attrs. */
/** The geometry words both backends' kernels read, in this order: N H W Cin OH OW Cout KH KW sh sw dh dw pt pl. */
export function convGeoWords(g: ConvGeo): number[] {
  return [g.N, g.H, g.W, g.Cin, g.OH, g.OW, g.Cout, g.KH, g.KW, g.sh, g.sw, g.dh, g.dw, g.pt, g.pl];
}

export function convGeoOf(
  op: string,
  inputs: readonly { shape: readonly number[] }[],
  out: readonly number[],
  attrs: Attrs,
): ConvGeo {
  if (op === 'conv2d') return convGeometry(op, inputs[0].shape, inputs[1].shape, attrs);
  if (op === 'conv2dBackpropInput') return convGeometry(op, out, inputs[1].shape, attrs);
  return convGeometry(op, inputs[0].shape, out, attrs);
}
