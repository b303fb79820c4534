/**
 * Public convolution and pooling functions (re-exported by src/ops/api.ts): argument
 * normalization (numbers or pairs, TF 'same' padding resolved to explicit pads, unbatched
 * [H, W, C] images) around the primitives of src/ops/defs/conv.ts.
 */
import { ShapeError } from '../errors';
import { fmt, shapeEq } from '../shape';
import type { Tensor } from '../tensor';
import { add, asTensor, cast, relu, reshape, type TensorLike } from './api';
import {
  convAttrs,
  convGeometry,
  type Padding,
  type Pair,
  poolAttrs,
  positivePair,
  resolvePadding,
} from './conv-geometry';
import { apply } from './registry';

export type { Padding };

export interface Conv2dOptions {
  /** One number for both axes, or [vertical, horizontal]. Default 1. */
  strides?: number | readonly [number, number];
  /** Default 'valid'. */
  padding?: Padding;
  /** Default 1. */
  dilations?: number | readonly [number, number];
  /** Input and output channels split into this many independent groups (depthwise: groups = input channels). Default 1. */
  groups?: number;
}

export interface Conv1dOptions {
  strides?: number | readonly [number];
  /** 'valid' (default), 'same' or explicit [left, right]. */
  padding?: 'valid' | 'same' | readonly [number, number];
  dilations?: number | readonly [number];
  groups?: number;
}

export interface ConvTranspose2dOptions {
  /** [N, OH, OW, C], [OH, OW, C] or [OH, OW]; default the size a forward convolution would map to x's. */
  outputShape?: readonly number[];
  strides?: number | readonly [number, number];
  padding?: Padding;
}

export interface Pool2dOptions {
  /** Default: the window. */
  strides?: number | readonly [number, number];
  padding?: Padding;
}

const float = (x: TensorLike): Tensor => cast(asTensor(x), 'float32');

/** x as [N, H, W, C] (an unbatched [H, W, C] gets N = 1), and whether it was unbatched. */
function images(op: string, x: Tensor): [Tensor, boolean] {
  if (x.ndim === 4) return [x, false];
  if (x.ndim === 3) return [reshape(x, [1, ...x.shape]), true];
  throw new ShapeError(
    `${op}: x must be [batch, height, width, channels] or [height, width, channels], got ${fmt(x.shape)}`,
  );
}

const unbatch = (y: Tensor, was: boolean) => (was ? reshape(y, y.shape.slice(1)) : y);

function filter4(op: string, w: Tensor, what = '[height, width, in-channels, out-channels]'): void {
  if (w.ndim !== 4) throw new ShapeError(`${op}: the filter must be ${what}, got ${fmt(w.shape)}`);
}

/**
 * 2-D convolution of NHWC images with an HWIO filter [KH, KW, Cin / groups, Cout], as
 * TensorFlow.js's conv2d (plus groups: depthwise when groups equals the input channels).
 */
export function conv2d(x: TensorLike, w: TensorLike, opts: Conv2dOptions = {}): Tensor {
  const [t, was] = images('conv2d', float(x));
  const f = float(w);
  filter4('conv2d', f);
  const strides = positivePair('conv2d', 'strides', opts.strides, 1) as Pair;
  const dilations = positivePair('conv2d', 'dilations', opts.dilations, 1) as Pair;
  const eff = [(f.shape[0] - 1) * dilations[0] + 1, (f.shape[1] - 1) * dilations[1] + 1];
  const pads = resolvePadding('conv2d', opts.padding, [t.shape[1], t.shape[2]], eff, strides);
  const attrs = convAttrs({ strides, pads, dilations, groups: opts.groups ?? 1 });
  return unbatch(apply('conv2d', [t, f], attrs), was);
}

/** 1-D convolution of [N, W, C] (or [W, C]) with a filter [KW, Cin / groups, Cout], through conv2d. */
export function conv1d(x: TensorLike, w: TensorLike, opts: Conv1dOptions = {}): Tensor {
  let t = float(x);
  const f = float(w);
  const was = t.ndim === 2;
  if (was) t = reshape(t, [1, ...t.shape]);
  if (t.ndim !== 3)
    throw new ShapeError(
      `conv1d: x must be [batch, width, channels] or [width, channels], got ${fmt(t.shape)}`,
    );
  if (f.ndim !== 3)
    throw new ShapeError(
      `conv1d: the filter must be [width, in-channels, out-channels], got ${fmt(f.shape)}`,
    );
  const [stride] = positivePair('conv1d', 'strides', opts.strides, 1, 1);
  const [dilation] = positivePair('conv1d', 'dilations', opts.dilations, 1, 1);
  const p = opts.padding ?? 'valid';
  const padding: Padding = typeof p === 'string' ? p : [[0, 0], p];
  const y = conv2d(reshape(t, [t.shape[0], 1, t.shape[1], t.shape[2]]), reshape(f, [1, ...f.shape]), {
    strides: [1, stride],
    dilations: [1, dilation],
    padding,
    groups: opts.groups,
  });
  const out = reshape(y, [y.shape[0], y.shape[2], y.shape[3]]);
  return was ? reshape(out, out.shape.slice(1)) : out;
}

/**
 * Transposed convolution (the gradient of conv2d with respect to its input), as TensorFlow.js's
 * conv2dTranspose: x [N, H, W, Cin] and a filter [KH, KW, Cout, Cin] give [N, OH, OW, Cout],
 * where a conv2d of [N, OH, OW, Cout] with that filter (same strides and padding) has x's shape.
 */
export function convTranspose2d(x: TensorLike, w: TensorLike, opts: ConvTranspose2dOptions = {}): Tensor {
  const op = 'convTranspose2d';
  const [t, was] = images(op, float(x));
  const f = float(w);
  filter4(op, f, '[height, width, out-channels, in-channels]');
  const [N, H, W, C] = t.shape;
  const [KH, KW, Cout, Cin] = f.shape;
  if (Cin !== C)
    throw new ShapeError(
      `${op}: x ${fmt(t.shape)} has ${C} channels but the filter ${fmt(f.shape)} takes ${Cin} (its last axis)`,
    );
  const strides = positivePair(op, 'strides', opts.strides, 1) as Pair;
  let out: number[];
  if (opts.outputShape !== undefined) {
    const s = [...opts.outputShape];
    const hw = s.length === 4 ? s.slice(1, 3) : s.slice(0, 2);
    const ok =
      (s.length === 2 || s.length === 3 || s.length === 4) &&
      s.every((d) => Number.isInteger(d) && d >= 0) &&
      (s.length !== 4 || s[0] === N) &&
      (s.length === 2 || s[s.length - 1] === Cout);
    if (!ok)
      throw new ShapeError(
        `${op}: outputShape ${fmt(s)} must be [${N}, height, width, ${Cout}], [height, width, ${Cout}] or [height, width] for x ${fmt(t.shape)} and filter ${fmt(f.shape)}`,
      );
    out = hw;
  } else {
    const p = opts.padding ?? 'valid';
    const len = (n: number, k: number, s: number, extra: number) =>
      n === 0 ? 0 : p === 'same' ? n * s : Math.max(0, (n - 1) * s + k - extra);
    const explicit = typeof p === 'string' ? [0, 0, 0, 0] : resolvePadding(op, p, [0, 0], [KH, KW], strides);
    out = [
      len(H, KH, strides[0], explicit[0] + explicit[1]),
      len(W, KW, strides[1], explicit[2] + explicit[3]),
    ];
  }
  const pads = resolvePadding(op, opts.padding, out, [KH, KW], strides);
  const attrs = convAttrs({ strides, pads, dilations: [1, 1], groups: 1 });
  // The forward convolution this transposes must map outputShape to x's size.
  const g = convGeometry(op, [N, out[0], out[1], Cout], f.shape, attrs);
  if (g.OH !== H || g.OW !== W)
    throw new ShapeError(
      `${op}: a convolution of ${fmt([N, out[0], out[1], Cout])} with filter ${fmt(f.shape)} gives ${g.OH}×${g.OW}, not x's ${H}×${W} (x ${fmt(t.shape)})`,
    );
  return unbatch(apply('conv2dBackpropInput', [t, f], { ...attrs, inputShape: out }), was);
}

function pool(
  op: 'maxPool2d' | 'avgPool2d',
  x: TensorLike,
  window: number | readonly [number, number],
  opts: Pool2dOptions,
): Tensor {
  const [t, was] = images(op, float(x));
  const win = positivePair(op, 'window', window, 1) as Pair;
  const strides = positivePair(op, 'strides', opts.strides ?? win, 1) as Pair;
  const pads = resolvePadding(op, opts.padding, [t.shape[1], t.shape[2]], win, strides);
  const attrs = poolAttrs({ window: win, strides, pads });
  const plain = (z: Tensor) => apply(op, [z], attrs);
  return unbatch(op === 'maxPool2d' ? maxPoolThrough(t, plain) : plain(t), was);
}

/**
 * Max pooling commutes with ReLU (max and a non-decreasing map commute) and with adding a value
 * constant over each window, so maxPool2d(relu(z + b)) is built as relu(maxPool2d(z) + b): the
 * same values and gradients (each window's cotangent still reaches its argmax of z), with the
 * elementwise work of both passes on the pooled tensor, a quarter of the traffic for 2×2
 * windows. (Padding smaller than the window, which infer requires, leaves no window empty.) Only
 * lazy nodes are rewritten; a realized one is pooled as it is.
 */
function maxPoolThrough(t: Tensor, pool: (z: Tensor) => Tensor): Tensor {
  if (t.isRealized || t.inputs.some((i) => i.disposed)) return pool(t);
  if (t.op === 'relu') return relu(maxPoolThrough(t.inputs[0], pool));
  if (t.op === 'add')
    for (const k of [0, 1]) {
      const [z, c] = [t.inputs[k], t.inputs[1 - k]];
      if (shapeEq(z.shape, t.shape) && constantOverWindows(c.shape)) return add(maxPoolThrough(z, pool), c);
    }
  return pool(t);
}

/** Whether a shape broadcast against [N, H, W, C] is 1 along H and W. */
function constantOverWindows(shape: readonly number[]): boolean {
  const n = shape.length;
  return n <= 4 && (n < 3 || shape[n - 3] === 1) && (n < 2 || shape[n - 2] === 1);
}

/** Max pooling over windows of NHWC images (padding never wins: it is ignored, as in TF). */
export function maxPool2d(
  x: TensorLike,
  window: number | readonly [number, number],
  opts: Pool2dOptions = {},
): Tensor {
  return pool('maxPool2d', x, window, opts);
}

/** Average pooling over windows of NHWC images; padded positions are not counted (as in TF). */
export function avgPool2d(
  x: TensorLike,
  window: number | readonly [number, number],
  opts: Pool2dOptions = {},
): Tensor {
  return pool('avgPool2d', x, window, opts);
}
