// Packed, cache-blocked, register-tiled SGEMM:  C = op(A) · op(B)  (+ C if accumulating)
//
// op(A) is M×K: A stored row-major M×K, or K×M when transposed.
// op(B) is K×N: B stored row-major K×N, or N×K when transposed.
// C is M×N row-major (contiguous). Blocking (Goto/BLIS order):
//   jc (NC cols of B) → pc (KC depth; pack B block) → ic (MC rows; pack A block)
//     → jr (NR-col micro-panel of B, stays in L1) → ir (MR-row micro-panel of A) → micro-kernel.

import { fma4 } from './math';

// FMA (relaxed) needs no temporary per update, so 6×8 (12 accumulators) fits V8's 15 usable
// xmm registers; mul+add needs one more, so the plain SIMD build uses 5×8.
const MR_PLAIN: i32 = 5;
export const MR: i32 = ASC_FEATURE_RELAXED_SIMD ? 6 : MR_PLAIN;
export const NR: i32 = 8;
export const KC: i32 = 256;
export const MC: i32 = 240;
export const NC: i32 = 2048;

@inline export function roundUp(x: i32, m: i32): i32 {
  return ((x + m - 1) / m) * m;
}

/** Bytes of scratch matmul() needs for these sizes (independent of m0/m1 and batch). */
export function matmulScratchBytes(M: i32, N: i32, K: i32): i32 {
  const mc = min(MC, roundUp(max(M, 1), MR));
  const kc = min(KC, max(K, 1));
  const nc = min(NC, roundUp(max(N, 1), NR));
  return (mc * kc + kc * nc + MR * NR) * 4 + 64;
}

// ---- micro-kernel: MR×NR tile, acc in 2*MR f32x4 registers ---------------------

@inline function storeRow(c: usize, v0: v128, v1: v128, acc: bool): void {
  if (acc) {
    v128.store(c, f32x4.add(v128.load(c), v0));
    v128.store(c, f32x4.add(v128.load(c, 16), v1), 16);
  } else {
    v128.store(c, v0);
    v128.store(c, v1, 16);
  }
}

export function micro(kc: i32, pa: usize, pb: usize, c: usize, ldc: usize, acc: bool): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0);
  let c10 = f32x4.splat(0), c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0);
  let c30 = f32x4.splat(0), c31 = f32x4.splat(0);
  let c40 = f32x4.splat(0), c41 = f32x4.splat(0);
  let c50 = f32x4.splat(0), c51 = f32x4.splat(0);
  for (let k = 0; k < kc; k++) {
    const b0 = v128.load(pb);
    const b1 = v128.load(pb, 16);
    let a = v128.load32_splat(pa);
    c00 = fma4(a, b0, c00);
    c01 = fma4(a, b1, c01);
    a = v128.load32_splat(pa, 4);
    c10 = fma4(a, b0, c10);
    c11 = fma4(a, b1, c11);
    a = v128.load32_splat(pa, 8);
    c20 = fma4(a, b0, c20);
    c21 = fma4(a, b1, c21);
    a = v128.load32_splat(pa, 12);
    c30 = fma4(a, b0, c30);
    c31 = fma4(a, b1, c31);
    if (MR >= 5) {
      a = v128.load32_splat(pa, 16);
      c40 = fma4(a, b0, c40);
      c41 = fma4(a, b1, c41);
    }
    if (MR >= 6) {
      a = v128.load32_splat(pa, 20);
      c50 = fma4(a, b0, c50);
      c51 = fma4(a, b1, c51);
    }
    pa += <usize>MR << 2;
    pb += <usize>NR << 2;
  }
  storeRow(c, c00, c01, acc);
  storeRow(c + ldc, c10, c11, acc);
  storeRow(c + 2 * ldc, c20, c21, acc);
  storeRow(c + 3 * ldc, c30, c31, acc);
  if (MR >= 5) storeRow(c + 4 * ldc, c40, c41, acc);
  if (MR >= 6) storeRow(c + 5 * ldc, c50, c51, acc);
}

// ---- packing ---------------------------------------------------------------------

/** Pack rows [i0, i0+mc) × depth [k0, k0+kc) of op(A) into MR-row panels ([k][MR]), zero padded. */
export function packA(a: usize, lda: i32, transA: bool, i0: i32, mc: i32, k0: i32, kc: i32, dst: usize): void {
  const panels = (mc + MR - 1) / MR;
  for (let p = 0; p < panels; p++) {
    const pd = dst + ((<usize>p * <usize>kc * <usize>MR) << 2);
    const rows = min(MR, mc - p * MR);
    if (!transA) {
      for (let r = 0; r < MR; r++) {
        let d = pd + (<usize>r << 2);
        if (r < rows) {
          let s = a + ((<usize>(i0 + p * MR + r) * <usize>lda + <usize>k0) << 2);
          for (let k = 0; k < kc; k++) {
            store<f32>(d, load<f32>(s));
            s += 4;
            d += <usize>MR << 2;
          }
        } else {
          for (let k = 0; k < kc; k++) {
            store<f32>(d, 0);
            d += <usize>MR << 2;
          }
        }
      }
    } else {
      // A stored K×M: row k of storage holds op(A)[:, k]
      let d = pd;
      for (let k = 0; k < kc; k++) {
        const s = a + ((<usize>(k0 + k) * <usize>lda + <usize>(i0 + p * MR)) << 2);
        if (rows == MR) {
          v128.store(d, v128.load(s));
          if (MR == 5) store<f32>(d, load<f32>(s, 16), 16);
          if (MR == 6) store<u64>(d, load<u64>(s, 16), 16);
        } else {
          for (let r = 0; r < MR; r++) store<f32>(d + (<usize>r << 2), r < rows ? load<f32>(s + (<usize>r << 2)) : 0);
        }
        d += <usize>MR << 2;
      }
    }
  }
}

/** Pack depth [k0, k0+kc) × cols [j0, j0+nc) of op(B) into NR-col panels ([k][NR]), zero padded. */
export function packB(b: usize, ldb: i32, transB: bool, k0: i32, kc: i32, j0: i32, nc: i32, dst: usize): void {
  const panels = (nc + NR - 1) / NR;
  for (let q = 0; q < panels; q++) {
    const pd = dst + ((<usize>q * <usize>kc * <usize>NR) << 2);
    const cols = min(NR, nc - q * NR);
    if (!transB) {
      let d = pd;
      let s = b + ((<usize>k0 * <usize>ldb + <usize>(j0 + q * NR)) << 2);
      const sstep = <usize>ldb << 2;
      if (cols == NR) {
        for (let k = 0; k < kc; k++) {
          v128.store(d, v128.load(s));
          v128.store(d, v128.load(s, 16), 16);
          s += sstep;
          d += <usize>NR << 2;
        }
      } else {
        for (let k = 0; k < kc; k++) {
          for (let c = 0; c < NR; c++) store<f32>(d + (<usize>c << 2), c < cols ? load<f32>(s + (<usize>c << 2)) : 0);
          s += sstep;
          d += <usize>NR << 2;
        }
      }
    } else {
      // B stored N×K: row j of storage holds op(B)[:, j]
      for (let c = 0; c < NR; c++) {
        let d = pd + (<usize>c << 2);
        if (c < cols) {
          let s = b + ((<usize>(j0 + q * NR + c) * <usize>ldb + <usize>k0) << 2);
          for (let k = 0; k < kc; k++) {
            store<f32>(d, load<f32>(s));
            s += 4;
            d += <usize>NR << 2;
          }
        } else {
          for (let k = 0; k < kc; k++) {
            store<f32>(d, 0);
            d += <usize>NR << 2;
          }
        }
      }
    }
  }
}

// ---- progress (worker pools) ----------------------------------------------------

/**
 * Address of an i32 this instance bumps after each packed block of rows, or 0 for none. A
 * worker pool reads it to tell a long-running kernel from a dead thread. Globals are per
 * instance, so each thread's instance reports to its own word.
 */
let progressAddr: usize = 0;

export function setProgress(addr: usize): void {
  progressAddr = addr;
}

@inline export function tick(): void {
  if (progressAddr != 0) store<i32>(progressAddr, load<i32>(progressAddr) + 1);
}

// ---- one matrix ------------------------------------------------------------------

function gemm1(
  a: usize, b: usize, c: usize, M: i32, N: i32, K: i32,
  transA: bool, transB: bool, accumulate: bool, m0: i32, m1: i32, scratch: usize,
): void {
  const ldc = <usize>N << 2;
  if (K == 0) {
    if (!accumulate) memory.fill(c + <usize>m0 * ldc, 0, <usize>(m1 - m0) * ldc);
    return;
  }
  const mcMax = min(MC, roundUp(max(M, 1), MR));
  const kcMax = min(KC, max(K, 1));
  const packedA = (scratch + 15) & ~(<usize>15);
  const packedB = packedA + ((<usize>mcMax * <usize>kcMax) << 2);
  const ncMax = min(NC, roundUp(max(N, 1), NR));
  const tmp = packedB + ((<usize>kcMax * <usize>ncMax) << 2);
  const lda = transA ? M : K;
  const ldb = transB ? K : N;
  for (let jc = 0; jc < N; jc += NC) {
    const nc = min(NC, N - jc);
    for (let pc = 0; pc < K; pc += KC) {
      const kc = min(KC, K - pc);
      const acc = accumulate || pc > 0;
      packB(b, ldb, transB, pc, kc, jc, nc, packedB);
      for (let ic = m0; ic < m1; ic += MC) {
        const mc = min(MC, m1 - ic);
        tick();
        packA(a, lda, transA, ic, mc, pc, kc, packedA);
        for (let jr = 0; jr < nc; jr += NR) {
          const nr = min(NR, nc - jr);
          const pb = packedB + ((<usize>jr * <usize>kc) << 2);
          for (let ir = 0; ir < mc; ir += MR) {
            const mr = min(MR, mc - ir);
            const pa = packedA + ((<usize>ir * <usize>kc) << 2);
            const cp = c + <usize>(ic + ir) * ldc + (<usize>(jc + jr) << 2);
            if (mr == MR && nr == NR) {
              micro(kc, pa, pb, cp, ldc, acc);
            } else {
              micro(kc, pa, pb, tmp, <usize>NR << 2, false);
              for (let r = 0; r < mr; r++) {
                const crow = cp + <usize>r * ldc;
                const trow = tmp + ((<usize>r * <usize>NR) << 2);
                for (let q = 0; q < nr; q++) {
                  const v = load<f32>(trow + (<usize>q << 2));
                  const d = crow + (<usize>q << 2);
                  store<f32>(d, acc ? load<f32>(d) + v : v);
                }
              }
            }
          }
        }
      }
    }
  }
}

/**
 * Batched matmul. flags: bit0 transA, bit1 transB, bit2 accumulate into C.
 * batchDesc: 0 for a single matrix, else i32 words [nb (0..4), shape[4], strideA[4], strideB[4], strideC[4]]
 * (strides in elements, 0 = broadcast). Only rows [m0, m1) of each C are computed.
 */
export function matmul(
  a: usize, b: usize, c: usize, M: i32, N: i32, K: i32, flags: i32, batchDesc: usize, m0: i32, m1: i32, scratch: usize,
): void {
  const transA = (flags & 1) != 0;
  const transB = (flags & 2) != 0;
  const accumulate = (flags & 4) != 0;
  m0 = max(m0, 0);
  m1 = min(m1, M);
  if (m1 <= m0 || N <= 0) return;
  if (batchDesc == 0) {
    gemm1(a, b, c, M, N, K, transA, transB, accumulate, m0, m1, scratch);
    return;
  }
  const nb = load<i32>(batchDesc);
  let n0 = 1, n1 = 1, n2 = 1, n3 = 1;
  let sa0: i32 = 0, sa1: i32 = 0, sa2: i32 = 0, sa3: i32 = 0;
  let sb0: i32 = 0, sb1: i32 = 0, sb2: i32 = 0, sb3: i32 = 0;
  let sc0: i32 = 0, sc1: i32 = 0, sc2: i32 = 0, sc3: i32 = 0;
  // right-align the nb dims into slots 0..3
  for (let d = 0; d < nb; d++) {
    const slot = 4 - nb + d;
    const sz = load<i32>(batchDesc + ((1 + <usize>d) << 2));
    const xa = <i32>load<i32>(batchDesc + ((5 + <usize>d) << 2)) << 2;
    const xb = <i32>load<i32>(batchDesc + ((9 + <usize>d) << 2)) << 2;
    const xc = <i32>load<i32>(batchDesc + ((13 + <usize>d) << 2)) << 2;
    if (sz <= 0) return;
    if (slot == 0) { n0 = sz; sa0 = xa; sb0 = xb; sc0 = xc; }
    else if (slot == 1) { n1 = sz; sa1 = xa; sb1 = xb; sc1 = xc; }
    else if (slot == 2) { n2 = sz; sa2 = xa; sb2 = xb; sc2 = xc; }
    else { n3 = sz; sa3 = xa; sb3 = xb; sc3 = xc; }
  }
  for (let i0 = 0; i0 < n0; i0++)
    for (let i1 = 0; i1 < n1; i1++)
      for (let i2 = 0; i2 < n2; i2++)
        for (let i3 = 0; i3 < n3; i3++) {
          const pa = <usize>(<i32>a + i0 * sa0 + i1 * sa1 + i2 * sa2 + i3 * sa3);
          const pb = <usize>(<i32>b + i0 * sb0 + i1 * sb1 + i2 * sb2 + i3 * sb3);
          const pc = <usize>(<i32>c + i0 * sc0 + i1 * sc1 + i2 * sc2 + i3 * sc3);
          gemm1(pa, pb, pc, M, N, K, transA, transB, accumulate, m0, m1, scratch);
        }
}
