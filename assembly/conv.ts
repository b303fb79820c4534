// Convolution kernels (NHWC images, HWIO filters): the forward convolution and its two
// gradients as GEMMs on the packed matmul micro-kernel (assembly/matmul.ts). Nothing builds an
// im2col matrix: patches are packed block by block straight from the image into the panels
// matmul() packs its operands into, and the input gradient scatters one block of columns at a
// time.
//
//   mode 0  conv2d               y[(n,oh,ow), co] = Σ_(kh,kw,ci) x[n, oh·sh-pt+kh·dh, ow·sw-pl+kw·dw, ci] · w[kh,kw,ci,co]
//                                A = patches of x (packed from x), B = w as stored
//   mode 2  conv2dBackpropFilter dw[(kh,kw,ci), co] = Σ_(n,oh,ow) x[n, oh·sh-pt+kh·dh, ...] · dy[(n,oh,ow), co]
//                                A = transposed patches of x, B = dy as stored
//   mode 1  conv2dBackpropInput  cols[(n,oh,ow), (kh,kw,ci)] = Σ_co dy[(n,oh,ow), co] · w[kh,kw,ci,co],
//                                then dx[n, oh·sh-pt+kh·dh, ow·sw-pl+kw·dw, ci] += cols[...] (col2im),
//                                one block of MR-aligned rows at a time: no work on the zeros that
//                                strides put between dy's positions
//
// Each group g is its own GEMM over its channels, written in place (ldc = the result's channel
// count). Depthwise convolutions (one input and one output channel per group) would waste seven
// of the micro-kernel's eight columns: they run direct kernels vectorized over channels.
//
// Work units: rows of the result (modes 0 and 2; depthwise mode 1 too), images (mode 1, whose
// scatter reaches neighbouring rows), or panels of NR output channels (mode 2 with fewer than
// 4·MR rows, e.g. a first layer). conv(desc, u0, u1) computes units [u0, u1) of every group,
// each element by the same sequence of operations whatever the split, so any thread count gives
// the same bits. The sum is never split.
//
// Descriptor (i32 words): [0] mode [1] x (mode 0, 2) or dy (mode 1) [2] w (mode 0, 1) or dy
// (mode 2) [3] out [4] N [5] H [6] W [7] Cin [8] OH [9] OW [10] Cout [11] KH [12] KW [13] sh
// [14] sw [15] dh [16] dw [17] pt [18] pl [19] groups — always the forward convolution's
// geometry: x [N,H,W,Cin], w [KH,KW,Cin/groups,Cout], y [N,OH,OW,Cout].

import { micro, packA, packB, MR, NR, KC, MC, NC, tick, roundUp, matmulScratchBytes } from './matmul';
import { fma4 } from './math';
import { C_CONV2D, C_CONV2D_BACKPROP_FILTER, C_CONV2D_BACKPROP_INPUT } from './opcodes';

export const CONV_DESC_WORDS: i32 = 20;

// The descriptor of the call in progress (globals are per instance, so per thread).
let mode: i32 = 0;
let px: usize = 0;
let pw: usize = 0;
let pout: usize = 0;
let N: i32 = 0;
let H: i32 = 0;
let W: i32 = 0;
let Cin: i32 = 0;
let OH: i32 = 0;
let OW: i32 = 0;
let Cout: i32 = 0;
let KH: i32 = 0;
let KW: i32 = 0;
let SH: i32 = 1;
let SW: i32 = 1;
let DH: i32 = 1;
let DW: i32 = 1;
let PT: i32 = 0;
let PL: i32 = 0;
let G: i32 = 1;
let CING: i32 = 0;
let COUTG: i32 = 0;

@inline function word(desc: usize, i: i32): i32 {
  return load<i32>(desc + (<usize>i << 2));
}

function readDesc(desc: usize): void {
  mode = word(desc, 0);
  px = <usize>word(desc, 1);
  pw = <usize>word(desc, 2);
  pout = <usize>word(desc, 3);
  N = word(desc, 4);
  H = word(desc, 5);
  W = word(desc, 6);
  Cin = word(desc, 7);
  OH = word(desc, 8);
  OW = word(desc, 9);
  Cout = word(desc, 10);
  KH = word(desc, 11);
  KW = word(desc, 12);
  SH = word(desc, 13);
  SW = word(desc, 14);
  DH = word(desc, 15);
  DW = word(desc, 16);
  PT = word(desc, 17);
  PL = word(desc, 18);
  G = max(word(desc, 19), 1);
  CING = Cin / G;
  COUTG = Cout / G;
}

/** Rows of the result (the work units a split hands out). */
function rows(): i32 {
  if (mode == C_CONV2D) return N * OH * OW;
  if (mode == C_CONV2D_BACKPROP_INPUT) return N * H * W;
  return KH * KW * CING;
}

@inline function depthwise(): bool {
  return CING == 1 && COUTG == 1;
}

/** GEMM depth and columns per group. */
@inline function depth(): i32 {
  if (mode == C_CONV2D) return KH * KW * CING;
  if (mode == C_CONV2D_BACKPROP_INPUT) return KH * KW * COUTG;
  return N * OH * OW;
}

@inline function cols(): i32 {
  return mode == C_CONV2D_BACKPROP_INPUT ? CING : COUTG;
}

/** Mode 1 through a GEMM and col2im (not depthwise): splits by images. */
@inline function scatters(): bool {
  return mode == C_CONV2D_BACKPROP_INPUT && !depthwise();
}

/**
 * Mode 2 with few result rows (a first layer's taps × one or three channels) splits by panels
 * of NR output channels instead, so two threads still share it evenly.
 */
@inline function byColumns(): bool {
  return mode == C_CONV2D_BACKPROP_FILTER && !depthwise() && rows() < 4 * MR && COUTG > NR;
}

@inline function colPanels(): i32 {
  return (COUTG + NR - 1) / NR;
}

/** Work units of the descriptor in progress: result rows, images (scattering mode 1) or column panels. */
function units(): i32 {
  if (scatters()) return N;
  if (byColumns()) return G * colPanels();
  return rows();
}

/** Units a split's ranges should start at multiples of: MR for GEMM rows (whole panels), else 1. */
export function convGrain(desc: usize): i32 {
  readDesc(desc);
  return depthwise() || scatters() || byColumns() ? 1 : MR;
}

/** Columns of a col2im block (taps × the group's input channels, padded to NR) and its rows. */
@inline function colsPad(): i32 {
  return roundUp(max(KH * KW * CING, 1), NR);
}
function col2imRows(): i32 {
  const r = (65536 / colsPad() / MR) * MR;
  return min(max(r, MR), min(MC, roundUp(max(N * OH * OW, 1), MR)));
}

/** Work units of a descriptor (what a split hands out). */
export function convUnits(desc: usize): i32 {
  readDesc(desc);
  return units();
}

/** Scratch bytes conv() needs for this descriptor (any unit range). */
export function convScratchBytes(desc: usize): i32 {
  readDesc(desc);
  if (depthwise()) return 0;
  if (scatters()) {
    const K = max(COUTG, 1);
    const mc = col2imRows();
    return (mc * min(KC, K) + roundUp(K, KC) * colsPad() + mc * colsPad()) * 4 + 64;
  }
  return matmulScratchBytes(rows(), cols(), depth()) + 256 + KC * 16;
}

export function conv(desc: usize, u0: i32, u1: i32, scratch: usize): void {
  readDesc(desc);
  u0 = max(u0, 0);
  u1 = min(u1, units());
  if (u1 <= u0) return;
  if (depthwise()) {
    if (mode == C_CONV2D) depthwiseForward(u0, u1);
    else if (mode == C_CONV2D_BACKPROP_INPUT) depthwiseInput(u0, u1);
    else depthwiseFilter(u0, u1);
    return;
  }
  if (scatters()) {
    const img = <usize>H * <usize>W * <usize>Cin;
    memory.fill(pout + ((<usize>u0 * img) << 2), 0, (<usize>(u1 - u0) * img) << 2);
    if (COUTG == 0) return;
    const OHW = OH * OW;
    for (let g = 0; g < G; g++) col2imGemm(g, u0 * OHW, u1 * OHW, scratch);
    return;
  }
  const M = rows();
  const nc = cols();
  const K = depth();
  const ldc = mode == C_CONV2D_BACKPROP_INPUT ? Cin : Cout;
  if (nc == 0) return;
  if (byColumns()) {
    // units are (group, panel of NR columns); a range covers runs of panels within groups
    const per = colPanels();
    let u = u0;
    while (u < u1) {
      const g = u / per;
      const q1 = min(u1 - g * per, per);
      const j0 = (u - g * per) * NR;
      const j1 = min(q1 * NR, nc);
      if (K == 0)
        for (let m = 0; m < M; m++)
          memory.fill(pout + ((<usize>m * <usize>ldc + <usize>(g * nc + j0)) << 2), 0, <usize>(j1 - j0) << 2);
      else gemm(g, M, 0, M, nc, j0, j1, K, ldc, scratch);
      u = g * per + q1;
    }
    return;
  }
  for (let g = 0; g < G; g++) {
    if (K == 0) {
      for (let m = u0; m < u1; m++)
        memory.fill(pout + ((<usize>m * <usize>ldc + <usize>(g * nc)) << 2), 0, <usize>nc << 2);
      continue;
    }
    gemm(g, M, u0, u1, nc, 0, nc, K, ldc, scratch);
  }
}

// ---- mode 1: GEMM into a block of columns, then col2im --------------------------------

/**
 * dy rows [r0, r1) of group g: cols = dy[rows, group's channels] · w[(tap, ci), group's
 * channels]ᵀ block by block (w packed once, as matmul packs a transposed B), each block added
 * into dx at the input position of each tap, in row then tap order.
 */
function col2imGemm(g: i32, r0: i32, r1: i32, scratch: usize): void {
  const K = COUTG;
  const ncols = KH * KW * CING;
  const cp = colsPad();
  const mcMax = col2imRows();
  const kcMax = min(KC, K);
  const packedA = (scratch + 15) & ~(<usize>15);
  const packedB = packedA + ((<usize>mcMax * <usize>kcMax) << 2);
  const cbuf = packedB + ((<usize>roundUp(K, KC) * <usize>cp) << 2);
  const ldcB = <usize>cp << 2;
  const dy = px + (<usize>(g * COUTG) << 2);
  for (let pc = 0; pc < K; pc += KC)
    packB(pw + (<usize>(g * COUTG) << 2), Cout, true, pc, min(KC, K - pc), 0, ncols, packedB + ((<usize>pc * <usize>cp) << 2));
  const OHW = OH * OW;
  for (let ic = r0; ic < r1; ic += mcMax) {
    const mc = min(mcMax, r1 - ic);
    tick();
    for (let pc = 0; pc < K; pc += KC) {
      const kc = min(KC, K - pc);
      packA(dy, Cout, false, ic, mc, pc, kc, packedA);
      const pbBase = packedB + ((<usize>pc * <usize>cp) << 2);
      for (let jr = 0; jr < cp; jr += NR) {
        const pb = pbBase + ((<usize>jr * <usize>kc) << 2);
        for (let ir = 0; ir < mc; ir += MR)
          micro(kc, packedA + ((<usize>ir * <usize>kc) << 2), pb, cbuf + <usize>ir * ldcB + (<usize>jr << 2), ldcB, pc > 0);
      }
    }
    // col2im
    for (let r = 0; r < mc; r++) {
      const m = ic + r;
      const n = m / OHW;
      const rem = m - n * OHW;
      const oh = rem / OW;
      const ow = rem - oh * OW;
      const row = cbuf + <usize>r * ldcB;
      for (let kh = 0; kh < KH; kh++) {
        const ih = oh * SH - PT + kh * DH;
        if (ih < 0 || ih >= H) continue;
        for (let kw = 0; kw < KW; kw++) {
          const iw = ow * SW - PL + kw * DW;
          if (iw < 0 || iw >= W) continue;
          const d = pout + ((<usize>(((n * H + ih) * W + iw) * Cin + g * CING)) << 2);
          const s = row + ((<usize>((kh * KW + kw) * CING)) << 2);
          let c = 0;
          for (; c + 4 <= CING; c += 4) {
            const o = <usize>c << 2;
            v128.store(d + o, f32x4.add(v128.load(d + o), v128.load(s + o)));
          }
          for (; c < CING; c++) {
            const o = <usize>c << 2;
            store<f32>(d + o, load<f32>(d + o) + load<f32>(s + o));
          }
        }
      }
    }
  }
}

// ---- the GEMM driver: matmul's blocking with conv packers --------------------------

/** Rows [m0, m1) × the group's columns [j0, j1) of one group's GEMM (matmul's blocking, conv packers). */
function gemm(g: i32, M: i32, m0: i32, m1: i32, Ncols: i32, j0: i32, j1: i32, K: i32, ldc: i32, scratch: usize): void {
  const mcMax = min(MC, roundUp(max(M, 1), MR));
  const kcMax = min(KC, max(K, 1));
  const ncMax = min(NC, roundUp(max(Ncols, 1), NR));
  const packedA = (scratch + 15) & ~(<usize>15);
  const packedB = packedA + ((<usize>mcMax * <usize>kcMax) << 2);
  const tmp = packedB + ((<usize>kcMax * <usize>ncMax) << 2);
  const params = tmp + ((<usize>MR * <usize>NR) << 2);
  const ldcB = <usize>ldc << 2;
  const col0 = g * Ncols;
  for (let jc = j0; jc < j1; jc += NC) {
    const nc = min(NC, j1 - jc);
    for (let pc = 0; pc < K; pc += KC) {
      const kc = min(KC, K - pc);
      const acc = pc > 0;
      if (mode == C_CONV2D_BACKPROP_INPUT) packFilterT(g, pc, kc, jc, nc, packedB);
      else packB(pw + (<usize>(g * COUTG) << 2), Cout, false, pc, kc, jc, nc, packedB);
      for (let ic = m0; ic < m1; ic += MC) {
        const mc = min(MC, m1 - ic);
        tick();
        if (mode == C_CONV2D_BACKPROP_FILTER) packPatchesT(g, ic, mc, pc, kc, packedA, params);
        else packPatches(g, ic, mc, pc, kc, packedA, params);
        for (let jr = 0; jr < nc; jr += NR) {
          const nr = min(NR, nc - jr);
          const pb = packedB + ((<usize>jr * <usize>kc) << 2);
          for (let ir = 0; ir < mc; ir += MR) {
            const mr = min(MR, mc - ir);
            const pa = packedA + ((<usize>ir * <usize>kc) << 2);
            const cp = pout + <usize>(ic + ir) * ldcB + (<usize>(col0 + jc + jr) << 2);
            if (mr == MR && nr == NR) {
              micro(kc, pa, pb, cp, ldcB, acc);
            } else {
              micro(kc, pa, pb, tmp, <usize>NR << 2, false);
              for (let r = 0; r < mr; r++) {
                const crow = cp + <usize>r * ldcB;
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
 * Modes 0 and 1: rows [i0, i0+mc) × depth [k0, k0+kc) of the patch matrix into MR-row panels
 * ([k][MR], zero padded). A row is a position of the result; the depth runs over taps, and
 * within a tap over the group's channels of the source. A table gives each depth index its
 * spatial step and element offset from the row's anchor in the source, so a row whose window
 * lies inside the source (most rows) is a gather through the table without a bounds test.
 * Mode 1 with strides reads only the taps that land on a dy position (the others are zeros).
 */
function packPatches(g: i32, i0: i32, mc: i32, k0: i32, kc: i32, dst: usize, table: usize): void {
  const fwd = mode == C_CONV2D;
  const chans = fwd ? CING : COUTG;
  const srcC = fwd ? Cin : Cout;
  const src = px + (<usize>(g * chans) << 2);
  const SHh = fwd ? H : OH;
  const SWw = fwd ? W : OW;
  const RW = fwd ? OW : W;
  const RHW = (fwd ? OH : H) * RW;
  const linear = fwd || (SH == 1 && SW == 1);
  const step = <usize>MR << 2;
  // per depth index: [spatial step h, spatial step w, element offset, channel]
  {
    let tap = k0 / chans;
    let c = k0 - tap * chans;
    let kh = tap / KW;
    let kw = tap - kh * KW;
    let t = table;
    for (let k = 0; k < kc; k++) {
      const dh = fwd ? kh * DH : -kh * DH;
      const dw = fwd ? kw * DW : -kw * DW;
      store<i32>(t, dh);
      store<i32>(t, dw, 4);
      store<i32>(t, (dh * SWw + dw) * srcC + c, 8);
      store<i32>(t, c, 12);
      t += 16;
      c++;
      if (c == chans) {
        c = 0;
        kw++;
        if (kw == KW) {
          kw = 0;
          kh++;
        }
      }
    }
  }
  // the window's extent around a row's anchor (over every tap)
  const loH = fwd ? 0 : -(KH - 1) * DH;
  const hiH = fwd ? (KH - 1) * DH : 0;
  const loW = fwd ? 0 : -(KW - 1) * DW;
  const hiW = fwd ? (KW - 1) * DW : 0;
  const panels = (mc + MR - 1) / MR;
  for (let p = 0; p < panels; p++) {
    const pd = dst + ((<usize>p * <usize>kc * <usize>MR) << 2);
    const live = min(MR, mc - p * MR);
    if (linear && live == MR && chans >= 4) {
      // every row's window inside the source: the whole panel at once, 4 channels at a time
      let inside = true;
      let a0 = 0;
      let a1 = 0;
      let a2 = 0;
      let a3 = 0;
      let a4 = 0;
      let a5 = 0;
      for (let r = 0; r < MR; r++) {
        const m = i0 + p * MR + r;
        const n = m / RHW;
        const rem = m - n * RHW;
        const a = rem / RW;
        const b = rem - a * RW;
        const s0 = fwd ? a * SH - PT : a + PT;
        const t0 = fwd ? b * SW - PL : b + PL;
        inside = inside && s0 + loH >= 0 && s0 + hiH < SHh && t0 + loW >= 0 && t0 + hiW < SWw;
        const anchor = ((n * SHh + s0) * SWw + t0) * srcC;
        if (r == 0) a0 = anchor;
        else if (r == 1) a1 = anchor;
        else if (r == 2) a2 = anchor;
        else if (r == 3) a3 = anchor;
        else if (r == 4) a4 = anchor;
        else a5 = anchor;
      }
      if (inside) {
        packPanelInside(src, a0, a1, a2, a3, a4, a5, kc, chans, pd, table);
        continue;
      }
    }
    for (let r = 0; r < MR; r++) {
      let d = pd + (<usize>r << 2);
      if (r >= live) {
        for (let k = 0; k < kc; k++) {
          store<f32>(d, 0);
          d += step;
        }
        continue;
      }
      const m = i0 + p * MR + r;
      const n = m / RHW;
      const rem = m - n * RHW;
      const a = rem / RW;
      const b = rem - a * RW;
      let t = table;
      if (linear) {
        const s0 = fwd ? a * SH - PT : a + PT;
        const t0 = fwd ? b * SW - PL : b + PL;
        const anchor = ((n * SHh + s0) * SWw + t0) * srcC;
        const inside = s0 + loH >= 0 && s0 + hiH < SHh && t0 + loW >= 0 && t0 + hiW < SWw;
        if (inside && chans < 4) {
          // inside, few channels: a gather through the table
          for (let k = 0; k < kc; k++) {
            store<f32>(d, load<f32>(src + (<usize>(anchor + load<i32>(t, 8)) << 2)));
            t += 16;
            d += step;
          }
        } else if (inside) {
          // inside: one contiguous run of channels per tap
          let k = 0;
          while (k < kc) {
            const run = min(chans - load<i32>(t, 12), kc - k);
            let sp = src + (<usize>(anchor + load<i32>(t, 8)) << 2);
            for (let i = 0; i < run; i++) {
              store<f32>(d, load<f32>(sp));
              sp += 4;
              d += step;
            }
            k += run;
            t += <usize>run << 4;
          }
        } else {
          for (let k = 0; k < kc; k++) {
            const sh = s0 + load<i32>(t);
            const sw = t0 + load<i32>(t, 4);
            let v: f32 = 0;
            if (sh >= 0 && sh < SHh && sw >= 0 && sw < SWw) v = load<f32>(src + (<usize>(anchor + load<i32>(t, 8)) << 2));
            store<f32>(d, v);
            t += 16;
            d += step;
          }
        }
      } else {
        for (let k = 0; k < kc; k++) {
          const u = a + PT + load<i32>(t);
          const v = b + PL + load<i32>(t, 4);
          const s = u / SH;
          const q = v / SW;
          let x: f32 = 0;
          if (u >= 0 && v >= 0 && s * SH == u && q * SW == v && s < OH && q < OW)
            x = load<f32>(src + (<usize>(((n * OH + s) * OW + q) * Cout + load<i32>(t, 12)) << 2));
          store<f32>(d, x);
          t += 16;
          d += step;
        }
      }
    }
  }
}

/**
 * One MR-row panel of patches whose windows all lie inside the source (anchors a0..a5: element
 * offsets of each row's window origin): per tap, 4 channels of every row are loaded as vectors
 * and transposed in registers into 4 panel entries of MR floats.
 */
function packPanelInside(
  src: usize, a0: i32, a1: i32, a2: i32, a3: i32, a4: i32, a5: i32, kc: i32, chans: i32, dst: usize, table: usize,
): void {
  const step = <usize>MR << 2;
  let d = dst;
  let t = table;
  let k = 0;
  while (k < kc) {
    const run = min(chans - load<i32>(t, 12), kc - k);
    const off = load<i32>(t, 8);
    let p0 = src + (<usize>(a0 + off) << 2);
    let p1 = src + (<usize>(a1 + off) << 2);
    let p2 = src + (<usize>(a2 + off) << 2);
    let p3 = src + (<usize>(a3 + off) << 2);
    let p4 = src + (<usize>(a4 + off) << 2);
    let p5 = src + (<usize>(a5 + off) << 2);
    let i = 0;
    for (; i + 4 <= run; i += 4) {
      const v0 = v128.load(p0);
      const v1 = v128.load(p1);
      const v2 = v128.load(p2);
      const v3 = v128.load(p3);
      const t0 = i32x4.shuffle(v0, v1, 0, 4, 1, 5);
      const t1 = i32x4.shuffle(v2, v3, 0, 4, 1, 5);
      const t2 = i32x4.shuffle(v0, v1, 2, 6, 3, 7);
      const t3 = i32x4.shuffle(v2, v3, 2, 6, 3, 7);
      v128.store(d, i32x4.shuffle(t0, t1, 0, 1, 4, 5));
      v128.store(d + step, i32x4.shuffle(t0, t1, 2, 3, 6, 7));
      v128.store(d + 2 * step, i32x4.shuffle(t2, t3, 0, 1, 4, 5));
      v128.store(d + 3 * step, i32x4.shuffle(t2, t3, 2, 3, 6, 7));
      if (MR == 5) {
        const v4 = v128.load(p4);
        store<f32>(d, f32x4.extract_lane(v4, 0), 16);
        store<f32>(d + step, f32x4.extract_lane(v4, 1), 16);
        store<f32>(d + 2 * step, f32x4.extract_lane(v4, 2), 16);
        store<f32>(d + 3 * step, f32x4.extract_lane(v4, 3), 16);
      }
      if (MR == 6) {
        const v4 = v128.load(p4);
        const v5 = v128.load(p5);
        const e = i32x4.shuffle(v4, v5, 0, 4, 1, 5);
        const f = i32x4.shuffle(v4, v5, 2, 6, 3, 7);
        v128.store64_lane(d, e, 0, 16);
        v128.store64_lane(d + step, e, 1, 16);
        v128.store64_lane(d + 2 * step, f, 0, 16);
        v128.store64_lane(d + 3 * step, f, 1, 16);
      }
      p0 += 16;
      p1 += 16;
      p2 += 16;
      p3 += 16;
      p4 += 16;
      p5 += 16;
      d += 4 * step;
    }
    for (; i < run; i++) {
      store<f32>(d, load<f32>(p0));
      store<f32>(d, load<f32>(p1), 4);
      store<f32>(d, load<f32>(p2), 8);
      store<f32>(d, load<f32>(p3), 12);
      if (MR >= 5) store<f32>(d, load<f32>(p4), 16);
      if (MR >= 6) store<f32>(d, load<f32>(p5), 20);
      p0 += 4;
      p1 += 4;
      p2 += 4;
      p3 += 4;
      p4 += 4;
      p5 += 4;
      d += step;
    }
    k += run;
    t += <usize>run << 4;
  }
}

/** Stores `count` panel entries of MR zeros from d; returns the next entry. */
@inline function zeroEntries(d: usize, count: i32): usize {
  for (let i = 0; i < count; i++) {
    v128.store(d, i32x4.splat(0));
    if (MR == 5) store<f32>(d, 0, 16);
    if (MR == 6) store<u64>(d, 0, 16);
    d += <usize>MR << 2;
  }
  return d;
}

/**
 * Mode 2: rows [i0, i0+mc) (taps × the group's input channels) × depth [k0, k0+kc) (positions
 * of dy) of the transposed patch matrix into MR-row panels. A panel's rows are usually
 * consecutive channels of one tap: then each position is one contiguous load of MR floats, and
 * along a row of dy positions the in-bounds ones form one run (no test per position).
 */
function packPatchesT(g: i32, i0: i32, mc: i32, k0: i32, kc: i32, dst: usize, params: usize): void {
  const src = px + (<usize>(g * CING) << 2);
  const OHW = OH * OW;
  const pixel = <usize>Cin << 2;
  const panels = (mc + MR - 1) / MR;
  for (let p = 0; p < panels; p++) {
    let d = dst + ((<usize>p * <usize>kc * <usize>MR) << 2);
    const first = i0 + p * MR;
    const live = min(MR, mc - p * MR);
    // per row: [step h, step w, channel, element offset] from a position's window origin
    let loH = i32.MAX_VALUE;
    let hiH = i32.MIN_VALUE;
    let loW = i32.MAX_VALUE;
    let hiW = i32.MIN_VALUE;
    for (let r = 0; r < live; r++) {
      const m = first + r;
      const tap = m / CING;
      const kh = tap / KW;
      const kw = tap - kh * KW;
      const q = params + (<usize>r << 4);
      const oh = kh * DH - PT;
      const ow = kw * DW - PL;
      store<i32>(q, oh);
      store<i32>(q, ow, 4);
      store<i32>(q, m - tap * CING, 8);
      store<i32>(q, (oh * W + ow) * Cin + m - tap * CING, 12);
      loH = min(loH, oh);
      hiH = max(hiH, oh);
      loW = min(loW, ow);
      hiW = max(hiW, ow);
    }
    const ci0 = load<i32>(params, 8);
    const same = live == MR && ci0 + MR <= CING;
    const offH = load<i32>(params);
    const offW = load<i32>(params, 4);
    // positions ow with ow·sw + offW in [0, W): [owMin, owMax)
    const owMin = offW >= 0 ? 0 : (SW - 1 - offW) / SW;
    const owMax = W - offW <= 0 ? 0 : (W - offW + SW - 1) / SW;
    let n = k0 / OHW;
    const rem = k0 - n * OHW;
    let oh = rem / OW;
    let ow = rem - oh * OW;
    let k = 0;
    while (k < kc) {
      const seg = min(OW - ow, kc - k);
      const bh = oh * SH;
      if (same) {
        const ih = bh + offH;
        const end = ow + seg;
        if (ih < 0 || ih >= H) d = zeroEntries(d, seg);
        else {
          const a = min(max(owMin, ow), end);
          const b = min(max(owMax, a), end);
          d = zeroEntries(d, a - ow);
          let sp = src + ((<usize>(((n * H + ih) * W + a * SW + offW) * Cin + ci0)) << 2);
          const sstep = <usize>SW * pixel;
          for (let i = a; i < b; i++) {
            v128.store(d, v128.load(sp));
            if (MR == 5) store<f32>(d, load<f32>(sp, 16), 16);
            if (MR == 6) store<u64>(d, load<u64>(sp, 16), 16);
            d += <usize>MR << 2;
            sp += sstep;
          }
          d = zeroEntries(d, end - b);
        }
      } else {
        const rowInside = bh + loH >= 0 && bh + hiH < H;
        for (let i = 0; i < seg; i++) {
          const bw = (ow + i) * SW;
          if (rowInside && bw + loW >= 0 && bw + hiW < W) {
            // every row's tap inside: gathers through the element offsets
            const base = ((n * H + bh) * W + bw) * Cin;
            for (let r = 0; r < MR; r++)
              store<f32>(
                d + (<usize>r << 2),
                r < live ? load<f32>(src + (<usize>(base + load<i32>(params + (<usize>r << 4), 12)) << 2)) : 0,
              );
          } else {
            for (let r = 0; r < MR; r++) {
              let v: f32 = 0;
              if (r < live) {
                const q = params + (<usize>r << 4);
                const ih = bh + load<i32>(q);
                const iw = bw + load<i32>(q, 4);
                if (ih >= 0 && ih < H && iw >= 0 && iw < W)
                  v = load<f32>(src + ((<usize>(((n * H + ih) * W + iw) * Cin + load<i32>(q, 8))) << 2));
              }
              store<f32>(d + (<usize>r << 2), v);
            }
          }
          d += <usize>MR << 2;
        }
      }
      k += seg;
      ow += seg;
      if (ow == OW) {
        ow = 0;
        oh++;
        if (oh == OH) {
          oh = 0;
          n++;
        }
      }
    }
  }
}

/**
 * Mode 1: depth [k0, k0+kc) (taps × the group's output channels) × columns [j0, j0+nc) (the
 * group's input channels) of B[(tap, co), ci] = w[tap, ci, g·coutG + co] into NR-column panels.
 */
function packFilterT(g: i32, k0: i32, kc: i32, j0: i32, nc: i32, dst: usize): void {
  const panels = (nc + NR - 1) / NR;
  const cstride = <usize>Cout << 2;
  for (let q = 0; q < panels; q++) {
    let d = dst + ((<usize>q * <usize>kc * <usize>NR) << 2);
    const live = min(NR, nc - q * NR);
    let tap = k0 / COUTG;
    let co = k0 - tap * COUTG;
    for (let k = 0; k < kc; k++) {
      const base = pw + ((<usize>((tap * CING + j0 + q * NR) * Cout + g * COUTG + co)) << 2);
      for (let c = 0; c < NR; c++) store<f32>(d + (<usize>c << 2), c < live ? load<f32>(base + <usize>c * cstride) : 0);
      d += <usize>NR << 2;
      co++;
      if (co == COUTG) {
        co = 0;
        tap++;
      }
    }
  }
}

// ---- depthwise: one channel in and out per group, vectorized over channels ----------

/** acc over channels [c, c+4) or a scalar tail: C = Cin = Cout = groups. */
function depthwiseForward(m0: i32, m1: i32): void {
  const C = Cin;
  const OHW = OH * OW;
  for (let m = m0; m < m1; m++) {
    if ((m & 63) == 0) tick();
    const n = m / OHW;
    const rem = m - n * OHW;
    const oh = rem / OW;
    const ow = rem - oh * OW;
    const yo = pout + ((<usize>m * <usize>C) << 2);
    let c = 0;
    for (; c + 4 <= C; c += 4) {
      let acc = f32x4.splat(0);
      for (let kh = 0; kh < KH; kh++) {
        const ih = oh * SH - PT + kh * DH;
        if (ih < 0 || ih >= H) continue;
        for (let kw = 0; kw < KW; kw++) {
          const iw = ow * SW - PL + kw * DW;
          if (iw < 0 || iw >= W) continue;
          const xv = v128.load(px + ((<usize>(((n * H + ih) * W + iw) * C + c)) << 2));
          const wv = v128.load(pw + ((<usize>((kh * KW + kw) * C + c)) << 2));
          acc = fma4(xv, wv, acc);
        }
      }
      v128.store(yo + (<usize>c << 2), acc);
    }
    for (; c < C; c++) {
      let acc: f32 = 0;
      for (let kh = 0; kh < KH; kh++) {
        const ih = oh * SH - PT + kh * DH;
        if (ih < 0 || ih >= H) continue;
        for (let kw = 0; kw < KW; kw++) {
          const iw = ow * SW - PL + kw * DW;
          if (iw < 0 || iw >= W) continue;
          acc += load<f32>(px + ((<usize>(((n * H + ih) * W + iw) * C + c)) << 2)) *
            load<f32>(pw + ((<usize>((kh * KW + kw) * C + c)) << 2));
        }
      }
      store<f32>(yo + (<usize>c << 2), acc);
    }
  }
}

function depthwiseInput(m0: i32, m1: i32): void {
  const C = Cin;
  const HW = H * W;
  for (let m = m0; m < m1; m++) {
    if ((m & 63) == 0) tick();
    const n = m / HW;
    const rem = m - n * HW;
    const h = rem / W;
    const w = rem - h * W;
    const xo = pout + ((<usize>m * <usize>C) << 2);
    let c = 0;
    for (; c + 4 <= C; c += 4) {
      let acc = f32x4.splat(0);
      for (let kh = 0; kh < KH; kh++) {
        const u = h + PT - kh * DH;
        const oh = u / SH;
        if (u < 0 || oh * SH != u || oh >= OH) continue;
        for (let kw = 0; kw < KW; kw++) {
          const v = w + PL - kw * DW;
          const ow = v / SW;
          if (v < 0 || ow * SW != v || ow >= OW) continue;
          const dv = v128.load(px + ((<usize>(((n * OH + oh) * OW + ow) * C + c)) << 2));
          const wv = v128.load(pw + ((<usize>((kh * KW + kw) * C + c)) << 2));
          acc = fma4(dv, wv, acc);
        }
      }
      v128.store(xo + (<usize>c << 2), acc);
    }
    for (; c < C; c++) {
      let acc: f32 = 0;
      for (let kh = 0; kh < KH; kh++) {
        const u = h + PT - kh * DH;
        const oh = u / SH;
        if (u < 0 || oh * SH != u || oh >= OH) continue;
        for (let kw = 0; kw < KW; kw++) {
          const v = w + PL - kw * DW;
          const ow = v / SW;
          if (v < 0 || ow * SW != v || ow >= OW) continue;
          acc += load<f32>(px + ((<usize>(((n * OH + oh) * OW + ow) * C + c)) << 2)) *
            load<f32>(pw + ((<usize>((kh * KW + kw) * C + c)) << 2));
        }
      }
      store<f32>(xo + (<usize>c << 2), acc);
    }
  }
}

/** Rows are taps: dw[tap, 0, c] accumulates x · dy over every position, in position order. */
function depthwiseFilter(m0: i32, m1: i32): void {
  const C = Cin;
  for (let m = m0; m < m1; m++) {
    const kh = m / KW;
    const kw = m - kh * KW;
    const wo = pout + ((<usize>m * <usize>C) << 2);
    memory.fill(wo, 0, <usize>C << 2);
    for (let n = 0; n < N; n++) {
      tick();
      for (let oh = 0; oh < OH; oh++) {
        const ih = oh * SH - PT + kh * DH;
        if (ih < 0 || ih >= H) continue;
        for (let ow = 0; ow < OW; ow++) {
          const iw = ow * SW - PL + kw * DW;
          if (iw < 0 || iw >= W) continue;
          const xp = px + ((<usize>(((n * H + ih) * W + iw) * C)) << 2);
          const dp = pw + ((<usize>(((n * OH + oh) * OW + ow) * C)) << 2);
          let c = 0;
          for (; c + 4 <= C; c += 4) {
            const o = wo + (<usize>c << 2);
            v128.store(o, fma4(v128.load(xp + (<usize>c << 2)), v128.load(dp + (<usize>c << 2)), v128.load(o)));
          }
          for (; c < C; c++) {
            const o = wo + (<usize>c << 2);
            store<f32>(o, load<f32>(o) + load<f32>(xp + (<usize>c << 2)) * load<f32>(dp + (<usize>c << 2)));
          }
        }
      }
    }
  }
}
