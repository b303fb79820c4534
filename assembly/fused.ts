// Fused elementwise programs: a small bytecode DAG interpreted tile by tile.
// See src/backends/wasm/kernels.ts for the documented format (kept in sync).

import { unaryRun, binaryRunVV, binaryRunVS, binaryRunSV, whereRun, fillRun } from './ops';
import { copyRun } from './strided';

export const TILE: i32 = 512;
export const MAX_SLOTS: i32 = 64;
const HEADER: i32 = 12;
const IN_WORDS: i32 = 8;
const OUT_WORDS: i32 = 2;
const INSTR_WORDS: i32 = 5;

export const K_UNARY: i32 = 0;
export const K_BINARY: i32 = 1;
export const K_BINARY_RS: i32 = 2;
export const K_BINARY_LS: i32 = 3;
export const K_WHERE: i32 = 4;
export const K_CONST: i32 = 5;

@inline function word(p: usize, i: i32): i32 {
  return load<i32>(p + (<usize>i << 2));
}

export function fusedScratchBytes(nSlots: i32): i32 {
  return MAX_SLOTS * 4 + nSlots * TILE * 4 + 16;
}

/** Gathers count elements starting at flat output index start from a strided input. */
function gatherTile(base: usize, strides: usize, shape: usize, nd: i32, start: i32, count: i32, dst: usize): void {
  // multi-index of start, right-aligned in 6 slots
  let i0 = 0, i1 = 0, i2 = 0, i3 = 0, i4 = 0, i5 = 0;
  let s0 = 1, s1 = 1, s2 = 1, s3 = 1, s4 = 1, s5 = 1;
  let t0: i32 = 0, t1: i32 = 0, t2: i32 = 0, t3: i32 = 0, t4: i32 = 0, t5: i32 = 0;
  for (let d = 0; d < nd; d++) {
    const slot = 6 - nd + d;
    const sz = word(shape, d);
    const st = <i32>word(strides, d);
    if (slot == 0) { s0 = sz; t0 = st; }
    else if (slot == 1) { s1 = sz; t1 = st; }
    else if (slot == 2) { s2 = sz; t2 = st; }
    else if (slot == 3) { s3 = sz; t3 = st; }
    else if (slot == 4) { s4 = sz; t4 = st; }
    else { s5 = sz; t5 = st; }
  }
  let r = start;
  i5 = r % s5; r /= s5;
  i4 = r % s4; r /= s4;
  i3 = r % s3; r /= s3;
  i2 = r % s2; r /= s2;
  i1 = r % s1; r /= s1;
  i0 = r;
  let left = count;
  let d = dst;
  while (left > 0) {
    const run = min(s5 - i5, left);
    const off = i0 * t0 + i1 * t1 + i2 * t2 + i3 * t3 + i4 * t4 + i5 * t5;
    copyRun(<usize>(<i32>base + (off << 2)), <i32>t5, d, 1, run);
    d += <usize>run << 2;
    left -= run;
    i5 += run;
    if (i5 == s5) {
      i5 = 0;
      if (++i4 == s4) {
        i4 = 0;
        if (++i3 == s3) {
          i3 = 0;
          if (++i2 == s2) {
            i2 = 0;
            if (++i1 == s1) {
              i1 = 0;
              ++i0;
            }
          }
        }
      }
    }
  }
}

/** Runs a fused program. Returns 0 on success, -1 if the program is malformed. */
export function fused(prog: usize, scratch: usize): i32 {
  return fusedRange(prog, scratch, 0, i32.MAX_VALUE);
}

/**
 * Runs the part of a fused program that writes flat output elements [start, end) (clamped to the
 * output size). `start` must be a multiple of TILE, so a split computes exactly the tiles, and
 * bits, of a whole run. Threads running disjoint ranges of one program need their own scratch.
 */
export function fusedRange(prog: usize, scratch: usize, start: i32, end: i32): i32 {
  const nIn = word(prog, 1);
  const nOut = word(prog, 2);
  const nTemp = word(prog, 3);
  const nInstr = word(prog, 4);
  const nd = word(prog, 5);
  const nSlots = nIn + nTemp;
  if (nSlots > MAX_SLOTS || nd < 0 || nd > 6 || nIn < 0 || nTemp < 0 || nOut < 0) return -1;
  const shape = prog + (<usize>6 << 2);
  let total = 1;
  for (let d = 0; d < nd; d++) total *= word(shape, d);
  if (total <= 0) return 0;
  const inputs = prog + (<usize>HEADER << 2);
  const outputs = inputs + (<usize>(nIn * IN_WORDS) << 2);
  const instrs = outputs + (<usize>(nOut * OUT_WORDS) << 2);
  const table = (scratch + 15) & ~(<usize>15);
  const regions = table + (<usize>MAX_SLOTS << 2);
  const tileBytes = <usize>TILE << 2;
  // validate slot references
  for (let j = 0; j < nInstr; j++) {
    const ip = instrs + (<usize>(j * INSTR_WORDS) << 2);
    const kind = word(ip, 0) >> 8;
    const dst = word(ip, 1);
    if (dst < nIn || dst >= nSlots) return -1;
    const s0 = word(ip, 2), s1 = word(ip, 3), s2 = word(ip, 4);
    if (kind != K_CONST && kind != K_BINARY_LS && (s0 < 0 || s0 >= nSlots)) return -1;
    if ((kind == K_BINARY || kind == K_BINARY_LS || kind == K_WHERE) && (s1 < 0 || s1 >= nSlots)) return -1;
    if (kind == K_WHERE && (s2 < 0 || s2 >= nSlots)) return -1;
    if (kind > K_CONST) return -1;
  }
  for (let o = 0; o < nOut; o++) {
    const s = word(outputs + (<usize>(o * OUT_WORDS) << 2), 1);
    if (s < 0 || s >= nSlots) return -1;
  }
  // temps and pre-filled scalar inputs
  for (let s = 0; s < nSlots; s++) store<usize>(table + (<usize>s << 2), regions + <usize>s * tileBytes);
  for (let i = 0; i < nIn; i++) {
    const ib = inputs + (<usize>(i * IN_WORDS) << 2);
    if (word(ib, 1) == 1) fillRun(regions + <usize>i * tileBytes, load<i32>(<usize>word(ib, 0)), TILE);
  }
  // An output held in a temporary slot that no other output shares is computed straight into
  // the output memory (the slot is redirected each tile), saving a copy pass; others are copied.
  // Bit o of `direct` marks output o as direct (outputs beyond 31 are always copied).
  let direct: u32 = 0;
  for (let o = 0; o < nOut && o < 32; o++) {
    const s = word(outputs + (<usize>(o * OUT_WORDS) << 2), 1);
    if (s < nIn) continue;
    let shared = false;
    for (let q = 0; q < nOut; q++) {
      if (q != o && word(outputs + (<usize>(q * OUT_WORDS) << 2), 1) == s) shared = true;
    }
    if (!shared) direct |= (<u32>1) << o;
  }
  // A strided input that repeats a contiguous block whose size divides TILE (a bias broadcast
  // over rows: zero strides, then the block's own) reads the same values in every tile: it is
  // gathered once, into its own slot, which nothing else writes. Bit i marks input i.
  let fixed: u64 = 0;
  for (let i = 0; i < nIn; i++) {
    const ib = inputs + (<usize>(i * IN_WORDS) << 2);
    if (word(ib, 1) != 2) continue;
    let block = 1;
    let d = nd - 1;
    for (; d >= 0 && word(ib + 8, d) == block; d--) block *= word(shape, d);
    while (d >= 0 && word(ib + 8, d) == 0) d--;
    if (d < 0 && TILE % block == 0) fixed |= (<u64>1) << (<u64>i);
  }
  const stop = min(end, total);
  const first = max(start, 0);
  for (let t = first; t < stop; t += TILE) {
    const L = min(TILE, stop - t);
    const tb = <usize>t << 2;
    for (let o = 0; o < nOut && o < 32; o++) {
      if ((direct >> o) & 1) {
        const ob = outputs + (<usize>(o * OUT_WORDS) << 2);
        store<usize>(table + (<usize>word(ob, 1) << 2), <usize>word(ob, 0) + tb);
      }
    }
    for (let i = 0; i < nIn; i++) {
      const ib = inputs + (<usize>(i * IN_WORDS) << 2);
      const kind = word(ib, 1);
      const ptr = <usize>word(ib, 0);
      if (kind == 0) store<usize>(table + (<usize>i << 2), ptr + tb);
      else if (kind == 2 && (t == first || !((fixed >> (<u64>i)) & 1)))
        gatherTile(ptr, ib + 8, shape, nd, t, L, regions + <usize>i * tileBytes);
    }
    for (let j = 0; j < nInstr; j++) {
      const ip = instrs + (<usize>(j * INSTR_WORDS) << 2);
      const code = word(ip, 0);
      const kind = code >> 8;
      const op = code & 0xff;
      const dst = load<usize>(table + (<usize>word(ip, 1) << 2));
      const a = word(ip, 2);
      const b = word(ip, 3);
      if (kind == K_UNARY) {
        unaryRun(op, load<usize>(table + (<usize>a << 2)), dst, L);
      } else if (kind == K_BINARY) {
        binaryRunVV(op, load<usize>(table + (<usize>a << 2)), load<usize>(table + (<usize>b << 2)), dst, L);
      } else if (kind == K_BINARY_RS) {
        binaryRunVS(op, load<usize>(table + (<usize>a << 2)), ip + 12, dst, L);
      } else if (kind == K_BINARY_LS) {
        binaryRunSV(op, ip + 8, load<usize>(table + (<usize>b << 2)), dst, L);
      } else if (kind == K_WHERE) {
        const c = word(ip, 4);
        whereRun(
          load<usize>(table + (<usize>a << 2)), 1,
          load<usize>(table + (<usize>b << 2)), 1,
          load<usize>(table + (<usize>c << 2)), 1, dst, L,
        );
      } else {
        fillRun(dst, a, L);
      }
    }
    for (let o = 0; o < nOut; o++) {
      if (o < 32 && ((direct >> o) & 1)) continue;
      const ob = outputs + (<usize>(o * OUT_WORDS) << 2);
      const src = load<usize>(table + (<usize>word(ob, 1) << 2));
      memory.copy(<usize>word(ob, 0) + tb, src, <usize>L << 2);
    }
  }
  return 0;
}
