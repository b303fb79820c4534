// Pooling kernels over NHWC images, one pass each, vectorized over channels.
//
//   mode 0  maxPool2d        y[n,oh,ow,c] = x at the window's argmax
//   mode 1  maxPool2dGather  y[n,oh,ow,c] = g (x-shaped) at the argmax of x's window
//   mode 2  maxPool2dGrad    dx (x-shaped) = Σ over windows of ct[n,oh,ow,c] added at the argmax
//   mode 3  avgPool2d        y = Σ window / (in-bounds count)
//   mode 4  avgPool2dGrad    dx = Σ over windows of ct / count added at every in-bounds position
//
// The argmax is the first in-bounds position (row by row) holding the largest value, a NaN
// counting as larger than any number — the registry's reference rule, so the max value is
// NaN-propagating and every mode agrees on the position. It is recomputed from x, never stored.
//
// Units: modes 0, 1, 3 write rows (n, oh) of the result, units = N·OH; modes 2 and 4 scatter
// into one image at a time (windows may overlap), units = N, each unit zeroing its image first
// and adding windows in (oh, ow) order. Either way a split never changes any result's bits.
//
// Descriptor (i32 words): [0] mode [1] x [2] g / ct [3] out [4] N [5] H [6] W [7] C [8] OH
// [9] OW [10] KH [11] KW [12] sh [13] sw [14] pt [15] pl

import { vsel } from './math';
import { P_AVG_POOL2D, P_AVG_POOL2D_GRAD, P_MAX_POOL2D, P_MAX_POOL2D_GATHER, P_MAX_POOL2D_GRAD } from './opcodes';

export const POOL_DESC_WORDS: i32 = 16;

@inline function word(desc: usize, i: i32): i32 {
  return load<i32>(desc + (<usize>i << 2));
}

/** Work units of a pooling descriptor. */
export function poolUnits(desc: usize): i32 {
  const mode = word(desc, 0);
  return mode == P_MAX_POOL2D_GRAD || mode == P_AVG_POOL2D_GRAD ? word(desc, 4) : word(desc, 4) * word(desc, 8);
}

export function pool(desc: usize, u0: i32, u1: i32): void {
  const mode = word(desc, 0);
  const px = <usize>word(desc, 1);
  const pg = <usize>word(desc, 2);
  const pout = <usize>word(desc, 3);
  const N = word(desc, 4);
  const H = word(desc, 5);
  const W = word(desc, 6);
  const C = word(desc, 7);
  const OH = word(desc, 8);
  const OW = word(desc, 9);
  const KH = word(desc, 10);
  const KW = word(desc, 11);
  const SH = word(desc, 12);
  const SW = word(desc, 13);
  const PT = word(desc, 14);
  const PL = word(desc, 15);
  u0 = max(u0, 0);
  u1 = min(u1, poolUnits(desc));
  if (u1 <= u0 || C == 0) return;
  const scatter = mode == P_MAX_POOL2D_GRAD || mode == P_AVG_POOL2D_GRAD;
  // Windows that tile the image exactly: each dx element belongs to one window, so the
  // gradients write it once (no zeroing pass, no read-modify-write).
  const tiles = scatter && SH == KH && SW == KW && PT == 0 && PL == 0 && OH * SH == H && OW * SW == W;
  const cb = <usize>C << 2;
  for (let u = u0; u < u1; u++) {
    const n = scatter ? u : u / OH;
    const oh0 = scatter ? 0 : u - n * OH;
    const oh1 = scatter ? OH : oh0 + 1;
    const img = <usize>n * <usize>H * <usize>W;
    if (scatter && !tiles) memory.fill(pout + img * cb, 0, <usize>H * <usize>W * cb);
    for (let oh = oh0; oh < oh1; oh++) {
      const h0 = max(oh * SH - PT, 0);
      const h1 = min(oh * SH - PT + KH, H);
      for (let ow = 0; ow < OW; ow++) {
        const w0 = max(ow * SW - PL, 0);
        const w1 = min(ow * SW - PL + KW, W);
        const yo = <usize>((n * OH + oh) * OW + ow) * cb;
        const first = (img + <usize>(h0 * W + w0)) * cb;
        let c = 0;
        if (mode == P_AVG_POOL2D || mode == P_AVG_POOL2D_GRAD) {
          const count = <f32>((h1 - h0) * (w1 - w0));
          for (; c + 4 <= C; c += 4) {
            const co = <usize>c << 2;
            if (mode == P_AVG_POOL2D) {
              let s = f32x4.splat(0);
              for (let h = h0; h < h1; h++)
                for (let w = w0; w < w1; w++)
                  s = f32x4.add(s, v128.load(px + (img + <usize>(h * W + w)) * cb + co));
              v128.store(pout + yo + co, f32x4.div(s, f32x4.splat(count)));
            } else {
              const v = f32x4.div(v128.load(pg + yo + co), f32x4.splat(count));
              for (let h = h0; h < h1; h++)
                for (let w = w0; w < w1; w++) {
                  const d = pout + (img + <usize>(h * W + w)) * cb + co;
                  v128.store(d, tiles ? v : f32x4.add(v128.load(d), v));
                }
            }
          }
          for (; c < C; c++) {
            const co = <usize>c << 2;
            if (mode == P_AVG_POOL2D) {
              let s: f32 = 0;
              for (let h = h0; h < h1; h++)
                for (let w = w0; w < w1; w++) s += load<f32>(px + (img + <usize>(h * W + w)) * cb + co);
              store<f32>(pout + yo + co, s / count);
            } else {
              const v = load<f32>(pg + yo + co) / count;
              for (let h = h0; h < h1; h++)
                for (let w = w0; w < w1; w++) {
                  const d = pout + (img + <usize>(h * W + w)) * cb + co;
                  store<f32>(d, tiles ? v : load<f32>(d) + v);
                }
            }
          }
          continue;
        }
        // 2×2 windows inside the image, for the value and the tiling gradient (most CNNs): the four
        // positions' pointers once per window, not an offset per position and channel vector
        if (h1 - h0 == 2 && w1 - w0 == 2 && (mode == P_MAX_POOL2D || tiles)) {
          const row = <usize>W * cb;
          for (; c + 4 <= C; c += 4) {
            const p = first + (<usize>c << 2);
            let bv = v128.load(px + p);
            let k = i32x4.splat(0);
            for (let j = 1; j < 4; j++) {
              const v = v128.load(px + p + (j & 1 ? cb : 0) + (j & 2 ? row : 0));
              const take = v128.or(f32x4.gt(v, bv), v128.and(f32x4.ne(v, v), f32x4.eq(bv, bv)));
              bv = vsel(v, bv, take);
              k = vsel(i32x4.splat(j), k, take);
            }
            if (mode == P_MAX_POOL2D) {
              v128.store(pout + yo + (<usize>c << 2), bv);
              continue;
            }
            const ct = v128.load(pg + yo + (<usize>c << 2));
            for (let j = 0; j < 4; j++)
              v128.store(pout + p + (j & 1 ? cb : 0) + (j & 2 ? row : 0), v128.and(ct, i32x4.eq(k, i32x4.splat(j))));
          }
        }
        // max modes: best value and its byte offset per lane
        for (; c + 4 <= C; c += 4) {
          const co = <usize>c << 2;
          let bv = v128.load(px + first + co);
          let bo = i32x4.splat(<i32>(first + co));
          for (let h = h0; h < h1; h++)
            for (let w = w0; w < w1; w++) {
              const off = (img + <usize>(h * W + w)) * cb + co;
              const v = v128.load(px + off);
              const take = v128.or(f32x4.gt(v, bv), v128.and(f32x4.ne(v, v), f32x4.eq(bv, bv)));
              bv = vsel(v, bv, take);
              bo = vsel(i32x4.splat(<i32>off), bo, take);
            }
          if (mode == P_MAX_POOL2D) v128.store(pout + yo + co, bv);
          else if (tiles) {
            // every position of the window: ct where it is the argmax, else 0
            const ct = v128.load(pg + yo + co);
            for (let h = h0; h < h1; h++)
              for (let w = w0; w < w1; w++) {
                const off = (img + <usize>(h * W + w)) * cb + co;
                v128.store(pout + off, v128.and(ct, i32x4.eq(bo, i32x4.splat(<i32>off))));
              }
          } else if (mode == P_MAX_POOL2D_GATHER) {
            // lane l's argmax is byte offset bo[l] of channel c (+ 4·l bytes)
            store<f32>(pout + yo + co, load<f32>(pg + <usize>i32x4.extract_lane(bo, 0)));
            store<f32>(pout + yo + co, load<f32>(pg + <usize>i32x4.extract_lane(bo, 1), 4), 4);
            store<f32>(pout + yo + co, load<f32>(pg + <usize>i32x4.extract_lane(bo, 2), 8), 8);
            store<f32>(pout + yo + co, load<f32>(pg + <usize>i32x4.extract_lane(bo, 3), 12), 12);
          } else {
            const ct = v128.load(pg + yo + co);
            let d = pout + <usize>i32x4.extract_lane(bo, 0);
            store<f32>(d, load<f32>(d) + f32x4.extract_lane(ct, 0));
            d = pout + <usize>i32x4.extract_lane(bo, 1) + 4;
            store<f32>(d, load<f32>(d) + f32x4.extract_lane(ct, 1));
            d = pout + <usize>i32x4.extract_lane(bo, 2) + 8;
            store<f32>(d, load<f32>(d) + f32x4.extract_lane(ct, 2));
            d = pout + <usize>i32x4.extract_lane(bo, 3) + 12;
            store<f32>(d, load<f32>(d) + f32x4.extract_lane(ct, 3));
          }
        }
        for (; c < C; c++) {
          const co = <usize>c << 2;
          let bo = first + co;
          let bv = load<f32>(px + bo);
          for (let h = h0; h < h1; h++)
            for (let w = w0; w < w1; w++) {
              const off = (img + <usize>(h * W + w)) * cb + co;
              const v = load<f32>(px + off);
              if (v > bv || (v != v && bv == bv)) {
                bv = v;
                bo = off;
              }
            }
          if (mode == P_MAX_POOL2D) store<f32>(pout + yo + co, bv);
          else if (tiles) {
            const ct = load<f32>(pg + yo + co);
            for (let h = h0; h < h1; h++)
              for (let w = w0; w < w1; w++) {
                const off = (img + <usize>(h * W + w)) * cb + co;
                store<f32>(pout + off, off == bo ? ct : 0);
              }
          } else if (mode == P_MAX_POOL2D_GATHER) store<f32>(pout + yo + co, load<f32>(pg + bo));
          else {
            const d = pout + bo;
            store<f32>(d, load<f32>(d) + load<f32>(pg + yo + co));
          }
        }
      }
    }
  }
}
