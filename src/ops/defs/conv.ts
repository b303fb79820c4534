/**
 * Convolution and pooling primitives (NHWC images, HWIO filters, as in TensorFlow.js).
 *
 * Convolution is three primitives, the partial derivatives of one trilinear form
 * T(x, w, dy) = <conv2d(x, w), dy>:
 *   conv2d(x, w)               = ∂T/∂dy   [N, OH, OW, Cout]
 *   conv2dBackpropInput(dy, w) = ∂T/∂x    [N, H, W, Cin]        (the transposed convolution)
 *   conv2dBackpropFilter(x, dy)= ∂T/∂w    [KH, KW, Cin/g, Cout]
 * Each is bilinear, so each one's JVP and VJP are the other two (and itself): derivatives of any
 * order stay within these three ops. All share the attributes { strides, pads [t, b, l, r],
 * dilations, groups } of the forward convolution; the backprop ops also carry the spatial size
 * of what they produce (inputShape, filterShape), which strides leave ambiguous.
 *
 * Pooling: maxPool2d(x) picks, per window and channel, the first in-bounds position holding the
 * window's largest value (a NaN counts as larger than anything, so it propagates). Its tangent
 * and cotangent go through two linear primitives that recompute that argmax from x instead of
 * storing it: maxPool2dGather(x, g) = g at each window's argmax, and its adjoint
 * maxPool2dGrad(x, ct), which adds each window's cotangent at its argmax. Neither depends on x
 * differentiably (the argmax is piecewise constant), so second derivatives are exact.
 * avgPool2d divides by the in-bounds count (padding never counts, as in TF); its adjoint is
 * avgPool2dGrad(ct) and vice versa.
 *
 * Batching (vmap): a batch that only runs along images folds into N; batched filters (or a
 * batched operand of the filter gradient, which sums over N) go into the channels as extra
 * groups, so a vmapped convolution is still one convolution.
 */
import { ShapeError, ValueError } from '../../errors';
import { fmt } from '../../shape';
import type { Attrs, Tensor } from '../../tensor';
import * as o from '../api';
import { moveBatch } from '../batching';
import {
  type ConvGeo,
  checkSameShape,
  convGeometry,
  inferBackpropFilter,
  inferBackpropInput,
  inferConv,
  inferPool,
  type PoolGeo,
  poolGeometry,
} from '../conv-geometry';
import { apply, type BatchDim, defineOp, type RefValue } from '../registry';

const CONV_KEYS = ['strides', 'pads', 'dilations', 'groups'] as const;

/** The forward convolution's attributes of any conv primitive's node. */
function convOnly(attrs: Attrs): Attrs {
  return Object.fromEntries(CONV_KEYS.map((k) => [k, attrs[k]]));
}

const spatial = (t: Tensor): [number, number] => [t.shape[1], t.shape[2]];
const window = (t: Tensor): [number, number] => [t.shape[0], t.shape[1]];

export function conv2dPrim(x: Tensor, w: Tensor, attrs: Attrs): Tensor {
  return apply('conv2d', [x, w], convOnly(attrs));
}
export function backpropInput(dy: Tensor, w: Tensor, attrs: Attrs, inputShape: [number, number]): Tensor {
  return apply('conv2dBackpropInput', [dy, w], { ...convOnly(attrs), inputShape });
}
export function backpropFilter(x: Tensor, dy: Tensor, attrs: Attrs, filterShape: [number, number]): Tensor {
  return apply('conv2dBackpropFilter', [x, dy], { ...convOnly(attrs), filterShape });
}

// ---------------------------------------------------------------- float64 references

/**
 * Visits every (output position, tap) pair whose input position is in bounds:
 * visit(xBase, yBase, wBase) with element offsets of x[n, ih, iw, 0], y[n, oh, ow, 0] and
 * w[kh, kw, 0, 0].
 */
function forEachTap(g: ConvGeo, visit: (xb: number, yb: number, wb: number) => void): void {
  for (let n = 0; n < g.N; n++)
    for (let oh = 0; oh < g.OH; oh++)
      for (let ow = 0; ow < g.OW; ow++) {
        const yb = ((n * g.OH + oh) * g.OW + ow) * g.Cout;
        for (let kh = 0; kh < g.KH; kh++) {
          const ih = oh * g.sh - g.pt + kh * g.dh;
          if (ih < 0 || ih >= g.H) continue;
          for (let kw = 0; kw < g.KW; kw++) {
            const iw = ow * g.sw - g.pl + kw * g.dw;
            if (iw < 0 || iw >= g.W) continue;
            visit(((n * g.H + ih) * g.W + iw) * g.Cin, yb, (kh * g.KW + kw) * g.cinG * g.Cout);
          }
        }
      }
}

/** Calls f(xc, yc, wc) with the channel offsets of every (input channel, output channel) pair of a group. */
function forEachChannelPair(g: ConvGeo, f: (xc: number, yc: number, wc: number) => void): void {
  for (let gi = 0; gi < g.groups; gi++)
    for (let ci = 0; ci < g.cinG; ci++)
      for (let co = 0; co < g.coutG; co++)
        f(gi * g.cinG + ci, gi * g.coutG + co, ci * g.Cout + gi * g.coutG + co);
}

function pairsOf(g: ConvGeo): Int32Array {
  const p: number[] = [];
  forEachChannelPair(g, (a, b, c) => p.push(a, b, c));
  return Int32Array.from(p);
}

export function convReference(x: Float64Array, w: Float64Array, g: ConvGeo): Float64Array {
  const y = new Float64Array(g.N * g.OH * g.OW * g.Cout);
  const pairs = pairsOf(g);
  forEachTap(g, (xb, yb, wb) => {
    for (let i = 0; i < pairs.length; i += 3) y[yb + pairs[i + 1]] += x[xb + pairs[i]] * w[wb + pairs[i + 2]];
  });
  return y;
}

function backpropInputReference(dy: Float64Array, w: Float64Array, g: ConvGeo): Float64Array {
  const dx = new Float64Array(g.N * g.H * g.W * g.Cin);
  const pairs = pairsOf(g);
  forEachTap(g, (xb, yb, wb) => {
    for (let i = 0; i < pairs.length; i += 3)
      dx[xb + pairs[i]] += dy[yb + pairs[i + 1]] * w[wb + pairs[i + 2]];
  });
  return dx;
}

function backpropFilterReference(x: Float64Array, dy: Float64Array, g: ConvGeo): Float64Array {
  const dw = new Float64Array(g.KH * g.KW * g.cinG * g.Cout);
  const pairs = pairsOf(g);
  forEachTap(g, (xb, yb, wb) => {
    for (let i = 0; i < pairs.length; i += 3)
      dw[wb + pairs[i + 2]] += x[xb + pairs[i]] * dy[yb + pairs[i + 1]];
  });
  return dw;
}

/**
 * Visits every window: visit(xOffsets, yBase) with the element offsets x[n, ih, iw, 0] of its
 * in-bounds positions in window order (row by row) and the offset of y[n, oh, ow, 0].
 */
function forEachWindow(g: PoolGeo, visit: (xs: number[], yb: number) => void): void {
  const xs: number[] = [];
  for (let n = 0; n < g.N; n++)
    for (let oh = 0; oh < g.OH; oh++)
      for (let ow = 0; ow < g.OW; ow++) {
        xs.length = 0;
        for (let kh = 0; kh < g.KH; kh++) {
          const ih = oh * g.sh - g.pt + kh;
          if (ih < 0 || ih >= g.H) continue;
          for (let kw = 0; kw < g.KW; kw++) {
            const iw = ow * g.sw - g.pl + kw;
            if (iw >= 0 && iw < g.W) xs.push(((n * g.H + ih) * g.W + iw) * g.C);
          }
        }
        visit(xs, ((n * g.OH + oh) * g.OW + ow) * g.C);
      }
}

/** The first position of the largest value (NaN beats everything) among x[xs[i] + c]. */
function argmaxOf(x: Float64Array, xs: readonly number[], c: number): number {
  let best = xs[0] + c;
  for (let i = 1; i < xs.length; i++) {
    const v = x[xs[i] + c];
    const b = x[best];
    if (v > b || (Number.isNaN(v) && !Number.isNaN(b))) best = xs[i] + c;
  }
  return best;
}

/** mode 0: max values; 1: g gathered at each argmax; 2: ct added at each argmax (x-shaped result). */
function maxPoolReference(
  x: Float64Array,
  other: Float64Array | null,
  g: PoolGeo,
  mode: 0 | 1 | 2,
): Float64Array {
  const out = new Float64Array(mode === 2 ? x.length : g.N * g.OH * g.OW * g.C);
  forEachWindow(g, (xs, yb) => {
    for (let c = 0; c < g.C; c++) {
      const a = argmaxOf(x, xs, c);
      if (mode === 0) out[yb + c] = x[a];
      else if (mode === 1) out[yb + c] = other![a];
      else out[a] += other![yb + c];
    }
  });
  return out;
}

function avgPoolReference(x: Float64Array, g: PoolGeo): Float64Array {
  const out = new Float64Array(g.N * g.OH * g.OW * g.C);
  forEachWindow(g, (xs, yb) => {
    for (let c = 0; c < g.C; c++) {
      let s = 0;
      for (const b of xs) s += x[b + c];
      out[yb + c] = s / xs.length;
    }
  });
  return out;
}

function avgPoolGradReference(ct: Float64Array, g: PoolGeo): Float64Array {
  const dx = new Float64Array(g.N * g.H * g.W * g.C);
  forEachWindow(g, (xs, yb) => {
    for (let c = 0; c < g.C; c++) {
      const v = ct[yb + c] / xs.length;
      for (const b of xs) dx[b + c] += v;
    }
  });
  return dx;
}

// ---------------------------------------------------------------- batching helpers

/** Batched operands moved (or broadcast) to axis 0 and folded into their leading axis. */
function foldLead(xs: readonly Tensor[], dims: readonly BatchDim[], size: number): Tensor[] {
  return xs.map((x, i) => {
    const b = moveBatch(x, dims[i], 0, size);
    return o.reshape(b, [size * b.shape[1], ...b.shape.slice(2)]);
  });
}

/** The result of a folded op back to [size, N, ...] with the batch at 0. */
function unfoldLead(y: Tensor, size: number, n: number): [Tensor, BatchDim] {
  return [o.reshape(y, [size, n, ...y.shape.slice(1)]), 0];
}

/** A rank-4 operand (batched at d, or broadcast) with the batch moved next to its last axis and merged into it. */
function intoChannels(x: Tensor, d: BatchDim, size: number): Tensor {
  const b = moveBatch(x, d, 3, size);
  return o.reshape(b, [b.shape[0], b.shape[1], b.shape[2], size * b.shape[4]]);
}

function outOfChannels(y: Tensor, size: number): [Tensor, BatchDim] {
  return [o.reshape(y, [y.shape[0], y.shape[1], y.shape[2], size, y.shape[3] / size]), 3];
}

/** The group count of `size` independent convolutions laid side by side in the channels. */
const sideBySide = (attrs: Attrs, size: number): Attrs => ({
  ...attrs,
  groups: (attrs.groups as number) * size,
});

const sumTerms = (terms: (Tensor | null)[]): Tensor | null => {
  const ts = terms.filter((t): t is Tensor => t !== null);
  if (ts.length === 0) return null;
  return ts.length === 1 ? ts[0] : o.add(ts[0], ts[1]);
};

// ---------------------------------------------------------------- convolution

defineOp({
  name: 'conv2d',
  kind: 'other',
  infer: (inputs, attrs) => inferConv('conv2d', inputs, attrs),
  reference: ([x, w], attrs) =>
    convReference(x.data, w.data, convGeometry('conv2d', x.shape, w.shape, attrs)),
  jvp: ([tx, tw], [x, w], _y, attrs) =>
    sumTerms([tx ? conv2dPrim(tx, w, attrs) : null, tw ? conv2dPrim(x, tw, attrs) : null]),
  vjp: (ct, [x, w], _y, attrs) => [
    backpropInput(ct, w, attrs, spatial(x)),
    backpropFilter(x, ct, attrs, window(w)),
  ],
  batch: ([x, w], [dx, dw], attrs, y, size) => {
    // one filter: the batch of images folds into N
    if (dw === null)
      return unfoldLead(apply('conv2d', [foldLead([x], [dx], size)[0], w], attrs), size, y.shape[0]);
    // a filter per example: the examples side by side in the channels, as groups
    const yb = apply(
      'conv2d',
      [intoChannels(x, dx, size), intoChannels(w, dw, size)],
      sideBySide(attrs, size),
    );
    return outOfChannels(yb, size);
  },
});

defineOp({
  name: 'conv2dBackpropInput',
  kind: 'other',
  infer: (inputs, attrs) => inferBackpropInput('conv2dBackpropInput', inputs, attrs),
  reference: ([dy, w], attrs, out) =>
    backpropInputReference(dy.data, w.data, convGeometry('conv2dBackpropInput', out.shape, w.shape, attrs)),
  jvp: ([tdy, tw], [dy, w], y, attrs) =>
    sumTerms([
      tdy ? backpropInput(tdy, w, attrs, spatial(y)) : null,
      tw ? backpropInput(dy, tw, attrs, spatial(y)) : null,
    ]),
  vjp: (ct, [dy, w], _y, attrs) => [conv2dPrim(ct, w, attrs), backpropFilter(ct, dy, attrs, window(w))],
  batch: ([dy, w], [ddy, dw], attrs, y, size) => {
    if (dw === null)
      return unfoldLead(
        apply('conv2dBackpropInput', [foldLead([dy], [ddy], size)[0], w], attrs),
        size,
        y.shape[0],
      );
    const dx = apply(
      'conv2dBackpropInput',
      [intoChannels(dy, ddy, size), intoChannels(w, dw, size)],
      sideBySide(attrs, size),
    );
    return outOfChannels(dx, size);
  },
});

defineOp({
  name: 'conv2dBackpropFilter',
  kind: 'other',
  infer: (inputs, attrs) => inferBackpropFilter('conv2dBackpropFilter', inputs, attrs),
  reference: ([x, dy], attrs, out) =>
    backpropFilterReference(x.data, dy.data, convGeometry('conv2dBackpropFilter', x.shape, out.shape, attrs)),
  jvp: ([tx, tdy], [x, dy], y, attrs) =>
    sumTerms([
      tx ? backpropFilter(tx, dy, attrs, window(y)) : null,
      tdy ? backpropFilter(x, tdy, attrs, window(y)) : null,
    ]),
  vjp: (ct, [x, dy], _y, attrs) => [backpropInput(dy, ct, attrs, spatial(x)), conv2dPrim(x, ct, attrs)],
  // The filter gradient sums over N, so a batch never folds into N: it becomes extra groups.
  batch: ([x, dy], [dx, ddy], attrs, _y, size) => {
    const dw = apply(
      'conv2dBackpropFilter',
      [intoChannels(x, dx, size), intoChannels(dy, ddy, size)],
      sideBySide(attrs, size),
    );
    return outOfChannels(dw, size);
  },
});

// ---------------------------------------------------------------- pooling

const POOL_KEYS = ['window', 'strides', 'pads'] as const;
function poolOnly(attrs: Attrs): Attrs {
  return Object.fromEntries(POOL_KEYS.map((k) => [k, attrs[k]]));
}

export function maxPoolGather(x: Tensor, g: Tensor, attrs: Attrs): Tensor {
  return apply('maxPool2dGather', [x, g], poolOnly(attrs));
}
export function maxPoolGrad(x: Tensor, ct: Tensor, attrs: Attrs): Tensor {
  return apply('maxPool2dGrad', [x, ct], poolOnly(attrs));
}
export function avgPoolGrad(ct: Tensor, attrs: Attrs, inputShape: [number, number]): Tensor {
  return apply('avgPool2dGrad', [ct], { ...poolOnly(attrs), inputShape });
}

/** Pooling ops batch along images: every operand's batch folds into N. */
const foldRule =
  (name: string) =>
  (
    xs: readonly Tensor[],
    dims: readonly BatchDim[],
    attrs: Attrs,
    y: Tensor,
    size: number,
  ): [Tensor, BatchDim] =>
    unfoldLead(apply(name, foldLead(xs, dims, size), attrs), size, y.shape[0]);

const refPool = (x: RefValue, attrs: Attrs, op: string) => poolGeometry(op, x.shape, attrs);

defineOp({
  name: 'maxPool2d',
  kind: 'other',
  infer: (inputs, attrs) => inferPool('maxPool2d', inputs, attrs),
  reference: ([x], attrs) => maxPoolReference(x.data, null, refPool(x, attrs, 'maxPool2d'), 0),
  jvp: ([t], [x], _y, attrs) => (t ? maxPoolGather(x, t, attrs) : null),
  vjp: (ct, [x], _y, attrs) => [maxPoolGrad(x, ct, attrs)],
  batch: foldRule('maxPool2d'),
});

defineOp({
  name: 'maxPool2dGather',
  kind: 'other',
  infer: ([x, g], attrs) => {
    checkSameShape('maxPool2dGather', 'g', g.shape, x.shape);
    return inferPool('maxPool2dGather', [x, g], attrs);
  },
  reference: ([x, g], attrs) => maxPoolReference(x.data, g.data, refPool(x, attrs, 'maxPool2dGather'), 1),
  // Linear in g; the argmax is piecewise constant in x.
  jvp: ([, tg], [x], _y, attrs) => (tg ? maxPoolGather(x, tg, attrs) : null),
  vjp: (ct, [x], _y, attrs) => [null, maxPoolGrad(x, ct, attrs)],
  batch: foldRule('maxPool2dGather'),
});

defineOp({
  name: 'maxPool2dGrad',
  kind: 'other',
  infer: ([x, ct], attrs) => {
    const y = inferPool('maxPool2dGrad', [x, ct], attrs);
    checkSameShape('maxPool2dGrad', 'cotangent', ct.shape, y.shape);
    return { shape: x.shape, dtype: 'float32' };
  },
  reference: ([x, ct], attrs) => maxPoolReference(x.data, ct.data, refPool(x, attrs, 'maxPool2dGrad'), 2),
  jvp: ([, tct], [x], _y, attrs) => (tct ? maxPoolGrad(x, tct, attrs) : null),
  vjp: (ct, [x], _y, attrs) => [null, maxPoolGather(x, ct, attrs)],
  batch: foldRule('maxPool2dGrad'),
});

defineOp({
  name: 'avgPool2d',
  kind: 'other',
  infer: (inputs, attrs) => inferPool('avgPool2d', inputs, attrs),
  reference: ([x], attrs) => avgPoolReference(x.data, refPool(x, attrs, 'avgPool2d')),
  jvp: ([t], _x, _y, attrs) => (t ? apply('avgPool2d', [t], poolOnly(attrs)) : null),
  vjp: (ct, [x], _y, attrs) => [avgPoolGrad(ct, attrs, spatial(x))],
  batch: foldRule('avgPool2d'),
});

defineOp({
  name: 'avgPool2dGrad',
  kind: 'other',
  infer: ([ct], attrs) => {
    const hw = attrs.inputShape as [number, number];
    if (!Array.isArray(hw) || hw.length !== 2 || !hw.every((d) => Number.isInteger(d) && d >= 0))
      throw new ValueError(`avgPool2dGrad: inputShape must be [height, width], got ${JSON.stringify(hw)}`);
    if (ct.shape.length !== 4)
      throw new ShapeError(`avgPool2dGrad: the cotangent must have rank 4 (NHWC), got ${fmt(ct.shape)}`);
    const x = [ct.shape[0], hw[0], hw[1], ct.shape[3]];
    const y = inferPool('avgPool2dGrad', [{ shape: x, dtype: ct.dtype }], attrs);
    checkSameShape('avgPool2dGrad', 'cotangent', ct.shape, y.shape);
    return { shape: x, dtype: 'float32' };
  },
  reference: ([ct], attrs, out) =>
    avgPoolGradReference(ct.data, poolGeometry('avgPool2dGrad', out.shape, attrs)),
  jvp: ([t], _ct, y, attrs) => (t ? avgPoolGrad(t, attrs, spatial(y)) : null),
  vjp: (ct, _ct, _y, attrs) => [apply('avgPool2d', [ct], poolOnly(attrs))],
  batch: foldRule('avgPool2dGrad'),
});
