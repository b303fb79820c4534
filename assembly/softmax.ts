// Softmax / logSoftmax over the last axis of a [rows, cols] matrix, their
// backward passes, and softmax cross-entropy with int32 labels.

import { vexp } from './math';
import { loadPart, storePart } from './ops';
import { rowMaxSumExp, rowMaxSumExpStore, rowShift, rowSum, logf } from './reduce';

/** out[j] = exp(x[j] - shift) * scale, or (x[j] - shift) - scale when logMode */
@inline function expShiftScale(x: usize, out: usize, n: i32, shift: f32, scale: f32, logMode: bool): void {
  const sv = f32x4.splat(shift);
  const kv = f32x4.splat(scale);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const p = <usize>i << 2;
    const d = f32x4.sub(v128.load(x + p), sv);
    v128.store(out + p, logMode ? f32x4.sub(d, kv) : f32x4.mul(vexp(d), kv));
  }
  if (i < n) {
    const p = <usize>i << 2;
    const d = f32x4.sub(loadPart(x + p, n - i), sv);
    storePart(out + p, logMode ? f32x4.sub(d, kv) : f32x4.mul(vexp(d), kv), n - i);
  }
}

@inline function scaleRow(p: usize, n: i32, k: f32): void {
  const kv = f32x4.splat(k);
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(p + (<usize>i << 2), f32x4.mul(v128.load(p + (<usize>i << 2)), kv));
  for (; i < n; i++) store<f32>(p + (<usize>i << 2), load<f32>(p + (<usize>i << 2)) * k);
}

/**
 * Row-wise softmax (mode bit 0 clear) or logSoftmax (set). out may alias x. Masks (softmax only):
 * mode >> 2 = q > 0 is causal: the rows are those of [q, cols] blocks, row0 the index of the
 * first, and row i of a block keeps its first i + 1 + cols - q columns. keep != 0 is an int32
 * [K, cols] mask, row r reading its row (row0 + r) / group: positions where it is 0 count as
 * -Infinity. Masked positions are written 0, and so is a row that keeps nothing.
 */
export function softmaxRows(
  x: usize, out: usize, rows: i32, cols: i32, mode: i32, row0: i32, keep: usize, group: i32,
): void {
  const q = mode >> 2;
  for (let r = 0; r < rows; r++) {
    const off = (<usize>r * <usize>cols) << 2;
    const len = q == 0 ? cols : min(cols, (row0 + r) % q + 1 + cols - q);
    let src = x + off;
    if (keep != 0) {
      // the masked logits, written where the weights go (out may alias x: each read comes first)
      const kr = keep + ((<usize>((row0 + r) / group) * <usize>cols) << 2);
      const ninf = f32x4.splat(-Infinity);
      let any = i32x4.splat(0);
      let j = 0;
      for (; j + 4 <= len; j += 4) {
        const p = <usize>j << 2;
        const k = i32x4.ne(v128.load(kr + p), i32x4.splat(0));
        any = v128.or(any, k);
        v128.store(out + off + p, v128.bitselect(v128.load(x + off + p), ninf, k));
      }
      let kept = v128.any_true(any);
      for (; j < len; j++) {
        const p = <usize>j << 2;
        const k = load<i32>(kr + p) != 0;
        kept = kept || k;
        store<f32>(out + off + p, k ? load<f32>(x + off + p) : -Infinity);
      }
      if (!kept) {
        memory.fill(out + off, 0, <usize>cols << 2);
        continue;
      }
      src = out + off;
    }
    // x - max is exact for nearby values, so large offsets cost no accuracy
    if ((mode & 1) != 0) {
      rowMaxSumExp(src, len);
      expShiftScale(src, out + off, len, rowShift, logf(rowSum), true);
    } else {
      rowMaxSumExpStore(src, len, out + off);
      scaleRow(out + off, len, 1.0 / rowSum);
    }
    if (len < cols) memory.fill(out + off + (<usize>len << 2), 0, <usize>(cols - len) << 2);
  }
}

@inline function dot(a: usize, b: usize, n: i32): f32 {
  let s0 = f32x4.splat(0.0), s1 = f32x4.splat(0.0);
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const p = <usize>i << 2;
    s0 = f32x4.add(s0, f32x4.mul(v128.load(a + p), v128.load(b + p)));
    s1 = f32x4.add(s1, f32x4.mul(v128.load(a + p, 16), v128.load(b + p, 16)));
  }
  for (; i + 4 <= n; i += 4) {
    const p = <usize>i << 2;
    s0 = f32x4.add(s0, f32x4.mul(v128.load(a + p), v128.load(b + p)));
  }
  if (i < n) {
    const p = <usize>i << 2;
    s1 = f32x4.add(s1, f32x4.mul(loadPart(a + p, n - i), loadPart(b + p, n - i)));
  }
  const s = f32x4.add(s0, s1);
  return f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1) + (f32x4.extract_lane(s, 2) + f32x4.extract_lane(s, 3));
}

@inline function sum(a: usize, n: i32): f32 {
  let s0 = f32x4.splat(0.0);
  let i = 0;
  for (; i + 4 <= n; i += 4) s0 = f32x4.add(s0, v128.load(a + (<usize>i << 2)));
  if (i < n) s0 = f32x4.add(s0, loadPart(a + (<usize>i << 2), n - i));
  return f32x4.extract_lane(s0, 0) + f32x4.extract_lane(s0, 1) + (f32x4.extract_lane(s0, 2) + f32x4.extract_lane(s0, 3));
}

/**
 * Backward of softmaxRows given its output y and upstream dy.
 *  softmax:    dx = y * (dy - sum(dy * y))
 *  logSoftmax: dx = dy - exp(y) * sum(dy)
 * dx may alias dy.
 */
export function softmaxBackwardRows(y: usize, dy: usize, dx: usize, rows: i32, cols: i32, logMode: i32): void {
  for (let r = 0; r < rows; r++) {
    const off = (<usize>r * <usize>cols) << 2;
    if (logMode != 0) logBackwardRow(y + off, dy + off, dx + off, cols);
    else softmaxBackwardRow(y + off, dy + off, dx + off, cols);
  }
}

// Whole vectors, then one partial vector for the tail.

@inline function softmaxBackwardRow(py: usize, pd: usize, po: usize, cols: i32): void {
  const s = f32x4.splat(dot(py, pd, cols));
  let i = 0;
  for (; i + 4 <= cols; i += 4) {
    const p = <usize>i << 2;
    v128.store(po + p, f32x4.mul(v128.load(py + p), f32x4.sub(v128.load(pd + p), s)));
  }
  if (i < cols) {
    const p = <usize>i << 2;
    storePart(po + p, f32x4.mul(loadPart(py + p, cols - i), f32x4.sub(loadPart(pd + p, cols - i), s)), cols - i);
  }
}

@inline function logBackwardRow(py: usize, pd: usize, po: usize, cols: i32): void {
  const s = f32x4.splat(sum(pd, cols));
  let i = 0;
  for (; i + 4 <= cols; i += 4) {
    const p = <usize>i << 2;
    v128.store(po + p, f32x4.sub(v128.load(pd + p), f32x4.mul(vexp(v128.load(py + p)), s)));
  }
  if (i < cols) {
    const p = <usize>i << 2;
    storePart(po + p, f32x4.sub(loadPart(pd + p, cols - i), f32x4.mul(vexp(loadPart(py + p, cols - i)), s)), cols - i);
  }
}

/**
 * Softmax cross-entropy forward. loss[r] = logsumexp(x_r) - x_r[label_r].
 * probs (optional, 0 = skip) receives softmax(x). A label outside [0, cols) gives loss = NaN.
 */
export function softmaxXentForward(logits: usize, labels: usize, loss: usize, probs: usize, rows: i32, cols: i32): void {
  for (let r = 0; r < rows; r++) {
    const off = (<usize>r * <usize>cols) << 2;
    rowMaxSumExp(logits + off, cols);
    const shift = rowShift;
    const s = rowSum;
    const lab = load<i32>(labels + (<usize>r << 2));
    const valid = lab >= 0 && lab < cols;
    const xl = valid ? load<f32>(logits + off + (<usize>lab << 2)) : NaN;
    if (loss != 0) store<f32>(loss + (<usize>r << 2), (shift - xl) + logf(s));
    if (probs != 0) expShiftScale(logits + off, probs + off, cols, shift, 1.0 / s, false);
  }
}

/**
 * Softmax cross-entropy backward:
 *   dlogits[r, :] = (softmax(x_r) - onehot(label_r)) * g[r * gStride] * scale
 * gStride 0 broadcasts one upstream value (g = 0 pointer means g = 1). Labels outside [0, cols)
 * contribute no one-hot term.
 */
export function softmaxXentBackward(
  logits: usize, labels: usize, g: usize, gStride: i32, scale: f32, dlogits: usize, rows: i32, cols: i32,
): void {
  for (let r = 0; r < rows; r++) {
    const off = (<usize>r * <usize>cols) << 2;
    rowMaxSumExp(logits + off, cols);
    const gr: f32 = g != 0 ? load<f32>(g + ((<usize>r * <usize>gStride) << 2)) : 1.0;
    const k = gr * scale;
    expShiftScale(logits + off, dlogits + off, cols, rowShift, k / rowSum, false);
    const lab = load<i32>(labels + (<usize>r << 2));
    if (lab >= 0 && lab < cols) {
      const p = dlogits + off + (<usize>lab << 2);
      store<f32>(p, load<f32>(p) - k);
    }
  }
}

