// N-d (<= 6 dims) strided iteration shared by broadcast binary, where and copy.
//
// Descriptor (i32 words at `desc`):
//   [0]        ndim (0..6)
//   [1..7)     shape[6]            (first ndim used)
//   [7..13)    strides of operand 0 (elements; 0 = broadcast)
//   [13..19)   strides of operand 1
//   [19..25)   strides of operand 2
//   [25..31)   strides of the output
// Elements are 32-bit; strides may be negative.

import { binaryRun, whereRun, fillRun } from './ops';

export const DESC_WORDS: i32 = 31;

@inline function dimSize(desc: usize, nd: i32, slot: i32): i32 {
  const d = slot - (6 - nd);
  return d >= 0 ? load<i32>(desc + ((1 + <usize>d) << 2)) : 1;
}

@inline function dimStride(desc: usize, nd: i32, k: i32, slot: i32): i32 {
  const d = slot - (6 - nd);
  return d >= 0 ? <i32>load<i32>(desc + ((7 + 6 * <usize>k + <usize>d) << 2)) << 2 : 0;
}

export function copyRun(src: usize, ss: i32, dst: usize, ds: i32, n: i32): void {
  if (n <= 0) return;
  if (ss == 1 && ds == 1) {
    memory.copy(dst, src, <usize>n << 2);
  } else if (ss == 0 && ds == 1) {
    fillRun(dst, load<i32>(src), n);
  } else {
    const sb = <i32>ss << 2;
    const db = <i32>ds << 2;
    let s = <i32>src;
    let d = <i32>dst;
    let i = 0;
    for (; i + 4 <= n; i += 4) {
      const v0 = load<i32>(s);
      const v1 = load<i32>(s + sb);
      const v2 = load<i32>(s + 2 * sb);
      const v3 = load<i32>(s + 3 * sb);
      store<i32>(d, v0);
      store<i32>(d + db, v1);
      store<i32>(d + 2 * db, v2);
      store<i32>(d + 3 * db, v3);
      s += 4 * sb;
      d += 4 * db;
    }
    for (; i < n; i++) {
      store<i32>(d, load<i32>(s));
      s += sb;
      d += db;
    }
  }
}

/** kind: 0 = binary(op), 1 = where, 2 = copy */
@inline function iterate(kind: i32, op: i32, desc: usize, p0: usize, p1: usize, p2: usize, out: usize): void {
  const nd = load<i32>(desc);
  for (let d = 0; d < nd; d++) if (load<i32>(desc + ((1 + <usize>d) << 2)) <= 0) return;
  const n0 = dimSize(desc, nd, 0), n1 = dimSize(desc, nd, 1), n2 = dimSize(desc, nd, 2);
  const n3 = dimSize(desc, nd, 3), n4 = dimSize(desc, nd, 4), n5 = dimSize(desc, nd, 5);
  const a0 = dimStride(desc, nd, 0, 0), a1 = dimStride(desc, nd, 0, 1), a2 = dimStride(desc, nd, 0, 2);
  const a3 = dimStride(desc, nd, 0, 3), a4 = dimStride(desc, nd, 0, 4);
  const b0 = dimStride(desc, nd, 1, 0), b1 = dimStride(desc, nd, 1, 1), b2 = dimStride(desc, nd, 1, 2);
  const b3 = dimStride(desc, nd, 1, 3), b4 = dimStride(desc, nd, 1, 4);
  const c0 = dimStride(desc, nd, 2, 0), c1 = dimStride(desc, nd, 2, 1), c2 = dimStride(desc, nd, 2, 2);
  const c3 = dimStride(desc, nd, 2, 3), c4 = dimStride(desc, nd, 2, 4);
  const o0 = dimStride(desc, nd, 3, 0), o1 = dimStride(desc, nd, 3, 1), o2 = dimStride(desc, nd, 3, 2);
  const o3 = dimStride(desc, nd, 3, 3), o4 = dimStride(desc, nd, 3, 4);
  const sa = <i32>(dimStride(desc, nd, 0, 5) >> 2);
  const sb = <i32>(dimStride(desc, nd, 1, 5) >> 2);
  const sc = <i32>(dimStride(desc, nd, 2, 5) >> 2);
  const so = <i32>(dimStride(desc, nd, 3, 5) >> 2);
  for (let i0 = 0; i0 < n0; i0++)
    for (let i1 = 0; i1 < n1; i1++)
      for (let i2 = 0; i2 < n2; i2++)
        for (let i3 = 0; i3 < n3; i3++)
          for (let i4 = 0; i4 < n4; i4++) {
            const pa = <usize>(<i32>p0 + i0 * a0 + i1 * a1 + i2 * a2 + i3 * a3 + i4 * a4);
            const pb = <usize>(<i32>p1 + i0 * b0 + i1 * b1 + i2 * b2 + i3 * b3 + i4 * b4);
            const pc = <usize>(<i32>p2 + i0 * c0 + i1 * c1 + i2 * c2 + i3 * c3 + i4 * c4);
            const po = <usize>(<i32>out + i0 * o0 + i1 * o1 + i2 * o2 + i3 * o3 + i4 * o4);
            if (kind == 0) {
              if (so == 1) binaryRun(op, pa, sa, pb, sb, po, n5);
              else for (let i = 0; i < n5; i++) binaryRun(op, pa + i * (sa << 2), 0, pb + i * (sb << 2), 0, po + i * (so << 2), 1);
            } else if (kind == 1) {
              if (so == 1) whereRun(pa, sa, pb, sb, pc, sc, po, n5);
              else for (let i = 0; i < n5; i++) whereRun(pa + i * (sa << 2), 0, pb + i * (sb << 2), 0, pc + i * (sc << 2), 0, po + i * (so << 2), 1);
            } else {
              copyRun(pa, sa, po, so, n5);
            }
          }
}

export function binaryStrided(op: i32, a: usize, b: usize, out: usize, desc: usize): void {
  iterate(0, op, desc, a, b, 0, out);
}

export function whereStrided(cond: usize, a: usize, b: usize, out: usize, desc: usize): void {
  iterate(1, 0, desc, cond, a, b, out);
}

export function copyStrided(src: usize, dst: usize, desc: usize): void {
  iterate(2, 0, desc, src, 0, 0, dst);
}
