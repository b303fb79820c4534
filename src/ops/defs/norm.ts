/**
 * Layer and RMS normalization over the last axis with scale and shift, as one primitive so a
 * backend runs it as one pass over memory: each row is read once, its statistics taken while it
 * is in cache, and the result written once (the composite of ops makes four reads and three
 * writes of x's size). Its rules are written with ops, so every derivative order works.
 */
import { full } from '../../creation';
import { DTypeError, ShapeError, ValueError } from '../../errors';
import { fmt, shapeEq } from '../../shape';
import type { Attrs, Tensor } from '../../tensor';
import * as o from '../api';
import { moveBatch } from '../batching';
import { apply, defineOp, type RefValue, type TensorInfo } from '../registry';

/** x̂ = (x - mean) · r with r = 1/√(var + eps) (layer), or x · r with r = 1/√(mean(x²) + eps) (rms). */
function normalized(x: Tensor, attrs: Attrs): { xhat: Tensor; r: Tensor } {
  const eps = attrs.eps as number;
  const c = attrs.rms ? x : o.sub(x, o.mean(x, -1, true));
  const r = o.rsqrt(o.add(o.mean(o.square(c), -1, true), eps));
  return { xhat: o.mul(c, r), r };
}

/** d x̂ for a change t of x: r · (t - mean(t) - x̂ · mean(x̂ · t)), without the mean(t) term for rms. */
function normalizedTangent(t: Tensor, xhat: Tensor, r: Tensor, attrs: Attrs): Tensor {
  const centered = attrs.rms ? t : o.sub(t, o.mean(t, -1, true));
  return o.mul(r, o.sub(centered, o.mul(xhat, o.mean(o.mul(xhat, t), -1, true))));
}

/** Checks x [..., d] and gamma [d], with a third operand named `third` of shape [d] or x's shape. */
function inferRows(op: string, [x, g, t]: readonly TensorInfo[], attrs: Attrs, third: string): TensorInfo {
  for (const [what, v] of [
    ['x', x],
    ['gamma', g],
    [third, t],
  ] as const)
    if (v.dtype !== 'float32') throw new DTypeError(`${op}: ${what} must be float32, got ${v.dtype}`);
  if (x.shape.length < 1) throw new ShapeError(`${op}: x must have at least one axis, got a scalar`);
  const d = x.shape[x.shape.length - 1];
  const tShape = third === 'beta' ? [d] : x.shape;
  if (g.shape.length !== 1 || g.shape[0] !== d || !shapeEq(t.shape, tShape))
    throw new ShapeError(
      `${op}: gamma ${fmt(g.shape)} must be [${d}] and ${third} ${fmt(t.shape)} must be ${fmt(tShape)} for x ${fmt(x.shape)}`,
    );
  const eps = attrs.eps as number;
  if (!(eps >= 0)) throw new ValueError(`${op}: eps must be >= 0, got ${String(eps)}`);
  return { shape: x.shape, dtype: 'float32' };
}

/** Visits each row of x as (offset, mean, r), with the reference's float64 two-pass statistics. */
function forEachRow(x: RefValue, attrs: Attrs, f: (base: number, mu: number, r: number) => void): void {
  const d = x.shape[x.shape.length - 1];
  for (let base = 0; base < x.data.length; base += d) {
    let mu = 0;
    if (!attrs.rms) {
      for (let j = 0; j < d; j++) mu += x.data[base + j];
      mu /= d;
    }
    let v = 0;
    for (let j = 0; j < d; j++) v += (x.data[base + j] - mu) ** 2;
    f(base, mu, 1 / Math.sqrt(v / d + (attrs.eps as number)));
  }
}

defineOp({
  name: 'layerNorm',
  kind: 'other',
  infer: (xs, attrs) => inferRows('layerNorm', xs, attrs, 'beta'),
  reference: ([x, g, b], attrs) => {
    const out = new Float64Array(x.data.length);
    forEachRow(x, attrs, (base, mu, r) => {
      for (let j = 0; j < g.data.length; j++)
        out[base + j] = (x.data[base + j] - mu) * r * g.data[j] + b.data[j];
    });
    return out;
  },
  jvp: ([tx, tg, tb], [x, g], y, attrs) => {
    if (!tx && !tg && !tb) return null;
    const { xhat, r } = normalized(x, attrs);
    let out: Tensor | null = tx ? o.mul(normalizedTangent(tx, xhat, r, attrs), g) : null;
    if (tg) out = out ? o.add(out, o.mul(xhat, tg)) : o.mul(xhat, tg);
    if (tb) out = out ? o.add(out, tb) : o.broadcastTo(tb, y.shape);
    return out;
  },
  vjp: (ct, [x, g], _y, attrs, needed) => {
    const d = [g.shape[0]];
    const xhat = needed?.[1] === false ? null : apply('layerNorm', [x, full(d, 1), full(d, 0)], attrs);
    return [
      needed?.[0] === false ? null : apply('layerNormGrad', [x, g, ct], attrs),
      xhat && o.sumTo(o.mul(ct, xhat), d),
      needed?.[2] === false ? null : o.sumTo(ct, d),
    ];
  },
  batch: ([x, g, b], [dx, dg, db], attrs, _y, size) => {
    // Shared scale and shift: rows stay rows wherever the batch axis is, unless it is the last.
    if (dg === null && db === null) {
      const last = x.ndim - 1;
      const xb = dx === last ? moveBatch(x, dx, 0, size) : x;
      return [apply('layerNorm', [xb, g, b], attrs), dx === last ? 0 : dx!];
    }
    // Per-example scale or shift: normalize with the primitive, then scale and shift by broadcasting.
    const xb = moveBatch(x, dx, 0, size);
    const rows = new Array<number>(xb.ndim - 2).fill(1);
    const perExample = (t: Tensor, dt: number | null) =>
      dt === null ? t : o.reshape(moveBatch(t, dt, 0, size), [size, ...rows, t.shape[1 - dt]]);
    const d = xb.shape[xb.ndim - 1];
    const xhat = apply('layerNorm', [xb, full([d], 1), full([d], 0)], attrs);
    return [o.add(o.mul(xhat, perExample(g, dg)), perExample(b, db)), 0];
  },
});

/**
 * layerNormGrad's derivative pieces at (x, gamma, ct) with value dx: L, and the part through x
 * for a change or cotangent v of x, -r·(mean(x̂·v)·dx + mean(dx·v)·x̂ + mean(h·x̂)·L(v)) with
 * h = ct·γ. That map is symmetric, so the same expression is the tangent and the cotangent.
 */
function gradParts(x: Tensor, g: Tensor, ct: Tensor, dx: Tensor, attrs: Attrs) {
  const { xhat, r } = normalized(x, attrs);
  const L = (v: Tensor) => normalizedTangent(v, xhat, r, attrs);
  const rowMean = (v: Tensor) => o.mean(v, -1, true);
  const throughX = (v: Tensor) => {
    const hx = rowMean(o.mul(o.mul(ct, g), xhat));
    const sum = o.add(o.mul(rowMean(o.mul(xhat, v)), dx), o.mul(rowMean(o.mul(dx, v)), xhat));
    return o.neg(o.mul(r, o.add(sum, o.mul(hx, L(v)))));
  };
  return { L, throughX };
}

/**
 * x's cotangent of layerNorm: L(ct · gamma), where L(v) = r · (v - mean(v) - x̂ · mean(x̂ · v))
 * (no mean(v) term for rms) is also the derivative of x̂, and symmetric. Its own primitive so
 * backends run it as one pass (each row of x and ct read once, dx written once). With h = ct·γ,
 * its tangent is L(t_h) plus the part through x (gradParts); x's cotangent is that part too.
 */
defineOp({
  name: 'layerNormGrad',
  kind: 'other',
  infer: (xs, attrs) => inferRows('layerNormGrad', xs, attrs, 'cotangent'),
  reference: ([x, g, ct], attrs) => {
    const d = g.data.length;
    const out = new Float64Array(x.data.length);
    forEachRow(x, attrs, (base, mu, r) => {
      let sh = 0;
      let shx = 0;
      for (let j = 0; j < d; j++) {
        const h = ct.data[base + j] * g.data[j];
        sh += h;
        shx += h * (x.data[base + j] - mu) * r;
      }
      const m = attrs.rms ? 0 : sh / d;
      for (let j = 0; j < d; j++)
        out[base + j] = r * (ct.data[base + j] * g.data[j] - m - (x.data[base + j] - mu) * r * (shx / d));
    });
    return out;
  },
  jvp: ([tx, tg, tct], [x, g, ct], dx, attrs) => {
    if (!tx && !tg && !tct) return null;
    const { L, throughX } = gradParts(x, g, ct, dx, attrs);
    const terms: Tensor[] = [];
    if (tct || tg) {
      const th = tct && tg ? o.add(o.mul(tct, g), o.mul(ct, tg)) : tct ? o.mul(tct, g) : o.mul(ct, tg!);
      terms.push(L(th));
    }
    if (tx) terms.push(throughX(tx));
    return terms.length === 2 ? o.add(terms[0], terms[1]) : terms[0];
  },
  vjp: (u, [x, g, ct], dx, attrs, needed) => {
    const { L, throughX } = gradParts(x, g, ct, dx, attrs);
    const Lu = L(u);
    return [
      needed?.[0] === false ? null : throughX(u),
      needed?.[1] === false ? null : o.sumTo(o.mul(Lu, ct), [g.shape[0]]),
      needed?.[2] === false ? null : o.mul(Lu, g),
    ];
  },
  batch: ([x, g, ct], [dx, dg, dct], attrs, _y, size) => {
    const xb = moveBatch(x, dx, 0, size);
    const cb = moveBatch(ct, dct, 0, size);
    if (dg === null) return [apply('layerNormGrad', [xb, g, cb], attrs), 0];
    // per-example gamma: the same math with ops, gamma broadcast over each example's rows
    const gb = o.reshape(moveBatch(g, dg, 0, size), [
      size,
      ...new Array<number>(xb.ndim - 2).fill(1),
      g.shape[1 - dg],
    ]);
    const { xhat, r } = normalized(xb, attrs);
    return [normalizedTangent(o.mul(cb, gb), xhat, r, attrs), 0];
  },
});

/** The mean of v (x's shape) over x's leading axes, as a [1, C] row. */
function rowsMean(v: Tensor, x: Tensor): Tensor {
  const c = x.shape[x.ndim - 1];
  return o.reshape(
    x.ndim === 1
      ? v
      : o.mean(
          v,
          x.shape.slice(0, -1).map((_, i) => i),
        ),
    [1, c],
  );
}

/**
 * Mean and (biased) variance of each channel of x [..., C] over all the other axes, as one
 * [2, C] tensor: batch normalization's statistics in one pass over x (the composite mean and
 * mean of squared deviations made three, and wrote x's size once). Rules written with ops.
 */
defineOp({
  name: 'moments',
  kind: 'other',
  infer: ([x]) => {
    if (x.dtype !== 'float32') throw new DTypeError(`moments: x must be float32, got ${x.dtype}`);
    if (x.shape.length < 1) throw new ShapeError('moments: x must have at least one axis, got a scalar');
    return { shape: [2, x.shape[x.shape.length - 1]], dtype: 'float32' };
  },
  reference: ([x]) => {
    const c = x.shape[x.shape.length - 1];
    const rows = x.data.length / Math.max(1, c);
    const out = new Float64Array(2 * c);
    for (let j = 0; j < c; j++) {
      let m = 0;
      for (let r = 0; r < rows; r++) m += x.data[r * c + j];
      m /= rows;
      let v = 0;
      for (let r = 0; r < rows; r++) v += (x.data[r * c + j] - m) ** 2;
      out[j] = m;
      out[c + j] = v / rows;
    }
    return out;
  },
  // d mean = mean(t), d var = mean(2 (x - mean) t)
  jvp: ([t], [x], y) => t && o.concat([rowsMean(t, x), o.mul(rowsMean(o.mul(centered(x, y), t), x), 2)]),
  vjp: (ct, [x], y) => {
    const n = x.size / Math.max(1, x.shape[x.ndim - 1]);
    return [o.div(o.add(row(ct, 0), o.mul(o.mul(centered(x, y), row(ct, 1)), 2)), n)];
  },
  // per-example statistics: each example's channels become channels of their own
  batch: ([x], [dx], _attrs, _y, size) => {
    const xb = moveBatch(x, dx, x.ndim - 2, size); // [..., size, C]
    const c = xb.shape[xb.ndim - 1];
    const flat = o.reshape(xb, [...xb.shape.slice(0, -2), size * c]);
    return [o.reshape(apply('moments', [flat]), [2, size, c]), 1];
  },
});

/** Row i of a [2, C] tensor, as [C]. */
export const row = (t: Tensor, i: number) => o.reshape(o.slice(t, [i, 0], [1, -1]), [t.shape[1]]);

/** x minus its channel means (row 0 of moments' output y), broadcast over x's rows. */
const centered = (x: Tensor, y: Tensor) => o.sub(x, row(y, 0));
