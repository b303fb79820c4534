// gather / scatterAdd / oneHot over an [outer, axisLen, inner] view. 32-bit elements.

import { fillRun } from './ops';

/**
 * out[o, j, i] = x[o, idx[j], i] for j < nIdx. Negative indices count from the end;
 * indices still out of range produce 0 (never an out-of-bounds read).
 */
export function gather(x: usize, idx: usize, out: usize, outer: i32, axisLen: i32, inner: i32, nIdx: i32): void {
  const rowBytes = <usize>inner << 2;
  for (let o = 0; o < outer; o++) {
    const xb = x + <usize>o * <usize>axisLen * rowBytes;
    const ob = out + <usize>o * <usize>nIdx * rowBytes;
    for (let j = 0; j < nIdx; j++) {
      let k = load<i32>(idx + (<usize>j << 2));
      if (k < 0) k += axisLen;
      const dst = ob + <usize>j * rowBytes;
      if (k < 0 || k >= axisLen) fillRun(dst, 0, inner);
      else if (inner == 1) store<i32>(dst, load<i32>(xb + (<usize>k << 2)));
      else memory.copy(dst, xb + <usize>k * rowBytes, rowBytes);
    }
  }
}

/**
 * out[o, idx[j], i] += src[o, j, i] (float32; accumulates into out, so zero it first for the
 * plain adjoint of gather). Out-of-range indices are skipped.
 */
export function scatterAdd(src: usize, idx: usize, out: usize, outer: i32, axisLen: i32, inner: i32, nIdx: i32): void {
  const rowBytes = <usize>inner << 2;
  for (let o = 0; o < outer; o++) {
    const sb = src + <usize>o * <usize>nIdx * rowBytes;
    const ob = out + <usize>o * <usize>axisLen * rowBytes;
    for (let j = 0; j < nIdx; j++) {
      let k = load<i32>(idx + (<usize>j << 2));
      if (k < 0) k += axisLen;
      if (k < 0 || k >= axisLen) continue;
      const s = sb + <usize>j * rowBytes;
      const d = ob + <usize>k * rowBytes;
      let i = 0;
      for (; i + 4 <= inner; i += 4) {
        const p = <usize>i << 2;
        v128.store(d + p, f32x4.add(v128.load(d + p), v128.load(s + p)));
      }
      for (; i < inner; i++) {
        const p = <usize>i << 2;
        store<f32>(d + p, load<f32>(d + p) + load<f32>(s + p));
      }
    }
  }
}

/** out[n, depth] (float32) = idx[r] == c ? on : off. */
export function oneHot(idx: usize, out: usize, n: i32, depth: i32, on: f32, off: f32): void {
  const offBits = reinterpret<i32>(off);
  for (let r = 0; r < n; r++) {
    const row = out + ((<usize>r * <usize>depth) << 2);
    fillRun(row, offBits, depth);
    const k = load<i32>(idx + (<usize>r << 2));
    if (k >= 0 && k < depth) store<f32>(row + (<usize>k << 2), on);
  }
}
