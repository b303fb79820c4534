/** Batched matmul with transpose flags on the last two axes, and the softmax family. */
import { DTypeError, ShapeError } from '../../errors';
import { broadcastShapes, fmt, shapeEq, sizeOf, stridesOf } from '../../shape';
import type { Attrs, Tensor } from '../../tensor';
import * as o from '../api';
import { axisRule, batchFirst, moveBatch } from '../batching';
import { forEachBroadcast } from '../reference-utils';
import { apply, type BatchDim, defineOp, type RefValue } from '../registry';

/** (rows, cols) of op(x) for a matrix operand. */
function dims(shape: readonly number[], trans: boolean): [number, number] {
  const r = shape[shape.length - 2];
  const c = shape[shape.length - 1];
  return trans ? [c, r] : [r, c];
}

defineOp({
  name: 'matmul',
  kind: 'other',
  infer: ([a, b], attrs) => {
    if (a.dtype !== b.dtype) throw new DTypeError(`matmul: operand dtypes ${a.dtype} and ${b.dtype} differ`);
    if (a.shape.length < 2 || b.shape.length < 2)
      throw new ShapeError(`matmul: operands need rank >= 2 here, got ${fmt(a.shape)} and ${fmt(b.shape)}`);
    const [m, k] = dims(a.shape, attrs.transA as boolean);
    const [k2, n] = dims(b.shape, attrs.transB as boolean);
    if (k !== k2)
      throw new ShapeError(
        `matmul: inner dimensions differ (${k} vs ${k2}) for shapes ${fmt(a.shape)} and ${fmt(b.shape)}`,
      );
    const batch = broadcastShapes('matmul', a.shape.slice(0, -2), b.shape.slice(0, -2));
    return { shape: [...batch, m, n], dtype: a.dtype };
  },
  reference: ([a, b], attrs, out) => {
    const tA = attrs.transA as boolean;
    const tB = attrs.transB as boolean;
    const [m, k] = dims(a.shape, tA);
    const [, n] = dims(b.shape, tB);
    const res = new Float64Array(sizeOf(out.shape));
    const batchShape = out.shape.slice(0, -2);
    const aBatch = a.shape.slice(0, -2);
    const bBatch = b.shape.slice(0, -2);
    const ast = stridesOf(a.shape.slice(-2));
    const bst = stridesOf(b.shape.slice(-2));
    const [ar, ac] = tA ? [ast[1], ast[0]] : ast;
    const [br, bc] = tB ? [bst[1], bst[0]] : bst;
    forEachBroadcast(batchShape, [aBatch, bBatch], (bi, [ao, bo]) => {
      const aBase = ao * a.shape[a.shape.length - 2] * a.shape[a.shape.length - 1];
      const bBase = bo * b.shape[b.shape.length - 2] * b.shape[b.shape.length - 1];
      const oBase = bi * m * n;
      for (let i = 0; i < m; i++)
        for (let j = 0; j < n; j++) {
          let s = 0;
          for (let p = 0; p < k; p++) s += a.data[aBase + i * ar + p * ac] * b.data[bBase + p * br + j * bc];
          res[oBase + i * n + j] = s;
        }
    });
    return res;
  },
  jvp: ([ta, tb], [a, b], y, attrs) => {
    if (y.dtype !== 'float32') return null;
    const tA = attrs.transA as boolean;
    const tB = attrs.transB as boolean;
    const terms: Tensor[] = [];
    if (ta) terms.push(o.matmulT(ta, b, tA, tB));
    if (tb) terms.push(o.matmulT(a, tb, tA, tB));
    if (!terms.length) return null;
    return o.broadcastTo(terms.length === 2 ? o.add(terms[0], terms[1]) : terms[0], y.shape);
  },
  // C = op(A)·op(B). Each case is written so no transpose is materialized.
  vjp: (g, [a, b], y, attrs) => {
    if (y.dtype !== 'float32') return [null, null];
    const tA = attrs.transA as boolean;
    const tB = attrs.transB as boolean;
    let da: Tensor;
    let db: Tensor;
    if (!tA && !tB) {
      da = o.matmulT(g, b, false, true);
      db = o.matmulT(a, g, true, false);
    } else if (tA && !tB) {
      da = o.matmulT(b, g, false, true);
      db = o.matmulT(a, g, false, false);
    } else if (!tA && tB) {
      da = o.matmulT(g, b, false, false);
      db = o.matmulT(g, a, true, false);
    } else {
      da = o.matmulT(b, g, true, true);
      db = o.matmulT(g, a, true, true);
    }
    return [o.sumTo(da, a.shape), o.sumTo(db, b.shape)];
  },
  batch: ([a, b], [da, db], attrs, _y, size) => {
    const ra = a.ndim - (da === null ? 0 : 1);
    const rb = b.ndim - (db === null ? 0 : 1);
    // A batched a (not along its contracted axis) times one shared matrix: fold the batch into
    // the rows and run one large matmul instead of many small ones.
    if (db === null && rb === 2 && !attrs.transA && da !== ra) {
      const k = a.shape[a.ndim - 1];
      const rows = a.shape.slice(0, -1);
      const m = apply('matmul', [o.reshape(a, [sizeOf(rows), k]), b], attrs);
      return [o.reshape(m, [...rows, m.shape[1]]), da];
    }
    // Otherwise the batch leads and broadcasts like another batch dimension.
    const r = Math.max(ra, rb);
    const A = da === null ? a : batchFirst(a, da, r, size);
    const B = db === null ? b : batchFirst(b, db, r, size);
    return [apply('matmul', [A, B], attrs), 0];
  },
});

/** Visits each 1-D lane along `axis`: calls f(offset, stride, length). */
function lanes(
  shape: readonly number[],
  axis: number,
  f: (base: number, stride: number, len: number) => void,
) {
  const len = shape[axis];
  const inner = sizeOf(shape.slice(axis + 1));
  const outer = sizeOf(shape.slice(0, axis));
  for (let p = 0; p < outer; p++) for (let q = 0; q < inner; q++) f(p * len * inner + q, inner, len);
}

/**
 * How many leading positions lane `lane` of softmax's input may keep: all of them, or with
 * attrs.causal (axis last, lanes the rows of [q, cols] blocks) row i's first i + 1 + cols - q, so
 * query i of a self-attention block sees keys 0..i. The rest get weight 0, and so gradient 0.
 */
function causalLength(attrs: Attrs, shape: readonly number[], lane: number, cols: number): number {
  if (!attrs.causal) return cols;
  const q = shape[shape.length - 2];
  return Math.min(cols, (lane % q) + 1 + cols - q);
}

/**
 * softmax (or logSoftmax) along the axis; with `keep` (softmax only: int32 [K, cols], the axis
 * last) row r keeps the positions where keep[r / (rows / K)] is nonzero, the others weight 0 as
 * if their logits were -Infinity, and a row that keeps nothing is all 0.
 */
function softmaxRef(x: RefValue, attrs: Attrs, log: boolean, keep?: RefValue): Float64Array {
  const out = new Float64Array(x.data.length);
  const group = keep ? x.data.length / Math.max(1, sizeOf(keep.shape)) : 0;
  let lane = 0;
  lanes(x.shape, axisOf(attrs), (base, st, cols) => {
    const k0 = keep ? Math.floor(lane / group) * cols : 0;
    const len = causalLength(attrs, x.shape, lane++, cols);
    const kept = (i: number) => keep?.data[k0 + i] !== 0;
    let m = Number.NEGATIVE_INFINITY;
    let any = false;
    for (let i = 0; i < len; i++)
      if (kept(i)) {
        m = Math.max(m, x.data[base + i * st]);
        any = true;
      }
    if (!any) return; // positions past len, masked ones and rows keeping nothing stay 0
    if (!Number.isFinite(m)) m = 0;
    let s = 0;
    for (let i = 0; i < len; i++) if (kept(i)) s += Math.exp(x.data[base + i * st] - m);
    const ls = Math.log(s);
    for (let i = 0; i < len; i++) {
      const v = x.data[base + i * st] - m;
      if (kept(i)) out[base + i * st] = log ? v - ls : Math.exp(v) / s;
    }
  });
  return out;
}

const axisOf = (attrs: Attrs) => attrs.axis as number;

defineOp({
  name: 'softmax',
  kind: 'other',
  infer: ([x, keep], attrs) => {
    const n = x.shape.length;
    const cols = x.shape[n - 1];
    if ((attrs.causal || keep) && axisOf(attrs) !== n - 1)
      throw new ShapeError(
        `softmax: a mask needs the last axis, got axis ${axisOf(attrs)} of ${fmt(x.shape)}`,
      );
    if (attrs.causal && (n < 2 || x.shape[n - 2] > cols))
      throw new ShapeError(
        `softmax: a causal mask needs at least as many columns as rows, got ${fmt(x.shape)}`,
      );
    if (keep) {
      const rows = sizeOf(x.shape) / Math.max(1, cols);
      const K = keep.shape[0];
      if (
        keep.dtype !== 'int32' ||
        keep.shape.length !== 2 ||
        keep.shape[1] !== cols ||
        (K === 0 ? rows > 0 : rows % K !== 0)
      )
        throw new ShapeError(
          `softmax: keep must be int32 [K, ${cols}] with K dividing the ${rows} rows of x ${fmt(x.shape)}, got ${keep.dtype} ${fmt(keep.shape)}`,
        );
    }
    return { shape: x.shape, dtype: x.dtype };
  },
  reference: ([x, keep], attrs) => softmaxRef(x, attrs, false, keep),
  // masked positions have y = 0, so softmaxGrad gives them tangent and cotangent 0 as it is
  jvp: ([t], _x, y, attrs) => (t ? softmaxGrad(y, t, attrs, false) : null),
  vjp: (ct, xs, y, attrs) => [softmaxGrad(y, ct, attrs, false), ...(xs.length > 1 ? [null] : [])],
  batch: ([x, keep], [dx, dk], attrs, y, size) => {
    if (!attrs.causal && !keep) return axisRule('softmax')([x], [dx], attrs, y, size);
    // the batch leads x; keep's rows follow x's: [size · K, cols], one group per example's K
    const xb = moveBatch(x, dx, 0, size);
    const out = (ins: Tensor[]) => apply('softmax', ins, { ...attrs, axis: xb.ndim - 1 });
    if (!keep) return [out([xb]), 0];
    const kb = moveBatch(keep, dk, 0, size);
    return [out([xb, o.reshape(kb, [size * kb.shape[1], kb.shape[2]])]), 0];
  },
});

defineOp({
  name: 'logSoftmax',
  kind: 'other',
  infer: ([x]) => ({ shape: x.shape, dtype: x.dtype }),
  reference: ([x], attrs) => softmaxRef(x, attrs, true),
  jvp: ([t], _x, y, attrs) => (t ? o.sub(t, o.sum(o.mul(o.exp(y), t), axisOf(attrs), true)) : null),
  vjp: (ct, _x, y, attrs) => [softmaxGrad(y, ct, attrs, true)],
  batch: axisRule('logSoftmax'),
});

const softmaxGrad = (y: Tensor, ct: Tensor, attrs: Attrs, log: boolean) =>
  apply('softmaxGrad', [y, ct], { axis: axisOf(attrs), log });

/**
 * The input cotangent of softmax from its output y and output cotangent g along `axis`:
 * y · (g - Σ g·y), or for logSoftmax (y its output) g - exp(y) · Σ g. Also softmax's tangent
 * (the map is linear in g and symmetric). One primitive so backends run it as one pass over y and
 * g (the composite made three); its rules are written with ops.
 */
defineOp({
  name: 'softmaxGrad',
  kind: 'other',
  infer: ([y, g]) => {
    if (y.dtype !== 'float32' || g.dtype !== 'float32')
      throw new DTypeError(`softmaxGrad: operands must be float32, got ${y.dtype} and ${g.dtype}`);
    if (!shapeEq(y.shape, g.shape))
      throw new ShapeError(`softmaxGrad: y ${fmt(y.shape)} and g ${fmt(g.shape)} must have one shape`);
    return { shape: y.shape, dtype: 'float32' };
  },
  reference: ([y, g], attrs) => {
    const out = new Float64Array(y.data.length);
    lanes(y.shape, axisOf(attrs), (base, st, len) => {
      let s = 0;
      for (let i = 0; i < len; i++) s += g.data[base + i * st] * (attrs.log ? 1 : y.data[base + i * st]);
      for (let i = 0; i < len; i++) {
        const at = base + i * st;
        out[at] = attrs.log ? g.data[at] - Math.exp(y.data[at]) * s : y.data[at] * (g.data[at] - s);
      }
    });
    return out;
  },
  // softmax: f = y·(g - S(g·y)) with S the sum along the axis; log: f = g - exp(y)·S(g)
  jvp: ([ty, tg], [y, g], _f, attrs) => {
    if (!ty && !tg) return null;
    const S = (t: Tensor) => o.sum(t, axisOf(attrs), true);
    const terms: Tensor[] = [];
    if (tg) terms.push(apply('softmaxGrad', [y, tg], attrs));
    if (ty)
      terms.push(
        attrs.log
          ? o.neg(o.mul(o.mul(o.exp(y), ty), S(g)))
          : o.sub(o.mul(ty, o.sub(g, S(o.mul(g, y)))), o.mul(y, S(o.mul(g, ty)))),
      );
    return terms.length === 2 ? o.add(terms[0], terms[1]) : terms[0];
  },
  vjp: (u, [y, g], _f, attrs, needed) => {
    const S = (t: Tensor) => o.sum(t, axisOf(attrs), true);
    let gy: Tensor | null = null;
    if (needed?.[0] !== false)
      gy = attrs.log
        ? o.neg(o.mul(o.mul(u, o.exp(y)), S(g)))
        : o.sub(o.mul(u, o.sub(g, S(o.mul(g, y)))), o.mul(g, S(o.mul(u, y))));
    // the cotangent of g: the transpose of the map g -> f (softmax's is itself)
    const gg = attrs.log ? o.sub(u, S(o.mul(u, o.exp(y)))) : apply('softmaxGrad', [y, u], attrs);
    return [gy, needed?.[1] === false ? null : gg];
  },
  batch: ([y, g], [dy, dg], attrs, _f, size) => [
    apply('softmaxGrad', [moveBatch(y, dy, 0, size), moveBatch(g, dg, 0, size)], {
      ...attrs,
      axis: axisOf(attrs) + 1,
    }),
    0,
  ],
});

/**
 * Per-example softmax cross-entropy with int32 class ids: logsumexp(x) - x[label] over the last
 * axis. One primitive (rather than logSoftmax and a mask) so backends run one pass over the
 * logits; an id outside [0, classes) gives NaN for that example.
 */
defineOp({
  name: 'softmaxCrossEntropy',
  kind: 'other',
  infer: ([x, y]) => {
    if (x.dtype !== 'float32')
      throw new DTypeError(`softmaxCrossEntropy: logits must be float32, got ${x.dtype}`);
    if (y.dtype !== 'int32')
      throw new DTypeError(`softmaxCrossEntropy: labels must be int32, got ${y.dtype}`);
    if (
      x.shape.length < 1 ||
      y.shape.length !== x.shape.length - 1 ||
      y.shape.some((d, i) => d !== x.shape[i])
    )
      throw new ShapeError(
        `softmaxCrossEntropy: labels ${fmt(y.shape)} must have the shape of logits ${fmt(x.shape)} without the class axis`,
      );
    return { shape: y.shape, dtype: 'float32' };
  },
  reference: ([x, y]) => {
    const cols = x.shape[x.shape.length - 1];
    const logp = softmaxRef(x, { axis: x.shape.length - 1 }, true);
    return y.data.map((label, r) => (label >= 0 && label < cols ? -logp[r * cols + label] : Number.NaN));
  },
  // d loss_i / d x_ic = softmax(x_i)_c - onehot(label_i)_c.
  jvp: ([t], [x, y]) => (t ? o.sum(o.mul(t, xentGrad(x, y)), -1) : null),
  vjp: (ct, [x, y]) => [apply('softmaxCrossEntropyGrad', [x, y, ct]), null],
  batch: classRowsRule('softmaxCrossEntropy'),
});

/**
 * Ops over rows of logits [..., classes] with per-row operands [...]: every operand's batch axis
 * goes to one place among the row axes (where the logits have it, if not on the class axis).
 */
function classRowsRule(name: string) {
  return (
    xs: readonly Tensor[],
    dims: readonly BatchDim[],
    attrs: Attrs,
    _y: Tensor,
    size: number,
  ): [Tensor, BatchDim] => {
    const dx = dims[0];
    const rows = xs[0].ndim - (dx === null ? 0 : 1) - 1;
    const t = dx !== null && dx <= rows ? dx : (dims.find((d, i) => i > 0 && d !== null) ?? 0);
    return [
      apply(
        name,
        xs.map((x, i) => moveBatch(x, dims[i], t, size)),
        attrs,
      ),
      t,
    ];
  };
}

function xentGrad(x: Tensor, y: Tensor): Tensor {
  return o.sub(o.softmax(x, -1), o.oneHot(y, x.shape[x.shape.length - 1]));
}

/**
 * The logits' cotangent of softmaxCrossEntropy: g_i · (softmax(x_i) - onehot(label_i)). Its own
 * primitive so backends run it as one pass (the fused xent-gradient kernel); its rules, written
 * with ops, keep it differentiable for higher-order derivatives.
 */
defineOp({
  name: 'softmaxCrossEntropyGrad',
  kind: 'other',
  infer: ([x]) => ({ shape: x.shape, dtype: 'float32' }),
  reference: ([x, y, g]) => {
    const cols = x.shape[x.shape.length - 1];
    const p = softmaxRef(x, { axis: x.shape.length - 1 }, false);
    return p.map((v, i) => {
      const r = Math.floor(i / cols);
      return g.data[r] * (v - (i - r * cols === y.data[r] ? 1 : 0));
    });
  },
  jvp: ([tx, , tg], [x, y, g]) => {
    const terms: Tensor[] = [];
    if (tg) terms.push(o.mul(o.expandDims(tg, -1), xentGrad(x, y)));
    if (tx) {
      const p = o.softmax(x, -1);
      terms.push(o.mul(o.expandDims(g, -1), o.mul(p, o.sub(tx, o.sum(o.mul(p, tx), -1, true)))));
    }
    if (!terms.length) return null;
    return terms.length === 2 ? o.add(terms[0], terms[1]) : terms[0];
  },
  vjp: (ct, [x, y, g]) => {
    const p = o.softmax(x, -1);
    const dx = o.mul(o.expandDims(g, -1), o.mul(p, o.sub(ct, o.sum(o.mul(ct, p), -1, true))));
    const dg = o.sum(o.mul(ct, xentGrad(x, y)), -1);
    return [dx, null, dg];
  },
  batch: classRowsRule('softmaxCrossEntropyGrad'),
});
