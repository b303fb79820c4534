// Reductions over the middle axis of a [outer, len, inner] view (contiguous).
// out has outer*inner elements.

import { R_ARGMAX, R_ARGMIN, R_MAX, R_MAX_I32, R_MIN, R_MIN_I32, R_PROD, R_SUM, R_SUM_I32 } from './opcodes';
import { vexp, vlog, vsel } from './math';
import { loadPart, storePart } from './ops';




/**
 * The vector identity and combine step of each reduction as a final class: the loops are
 * generic over it, so every reduction gets its own loop (an op argument would be tested per
 * vector, and Binaryen evaluates the cheap alternatives eagerly). Each class defines both
 * methods: an inherited, overridden method would be a virtual call.
 */
class Red {
  @inline ident(): v128 {
    return i32x4.splat(0);
  }
  @inline comb(acc: v128, x: v128): v128 {
    return f32x4.add(acc, x);
  }
}
@final class RSum extends Red {
  @inline ident(): v128 {
    return i32x4.splat(0);
  }
  @inline comb(acc: v128, x: v128): v128 {
    return f32x4.add(acc, x);
  }
}
@final class RMax extends Red {
  @inline ident(): v128 {
    return f32x4.splat(-Infinity);
  }
  @inline comb(acc: v128, x: v128): v128 {
    return f32x4.max(acc, x);
  }
}
@final class RMin extends Red {
  @inline ident(): v128 {
    return f32x4.splat(Infinity);
  }
  @inline comb(acc: v128, x: v128): v128 {
    return f32x4.min(acc, x);
  }
}
@final class RProd extends Red {
  @inline ident(): v128 {
    return f32x4.splat(1.0);
  }
  @inline comb(acc: v128, x: v128): v128 {
    return f32x4.mul(acc, x);
  }
}
@final class RSumI32 extends Red {
  @inline ident(): v128 {
    return i32x4.splat(0);
  }
  @inline comb(acc: v128, x: v128): v128 {
    return i32x4.add(acc, x);
  }
}
@final class RMaxI32 extends Red {
  @inline ident(): v128 {
    return i32x4.splat(i32.MIN_VALUE);
  }
  @inline comb(acc: v128, x: v128): v128 {
    return i32x4.max_s(acc, x);
  }
}
@final class RMinI32 extends Red {
  @inline ident(): v128 {
    return i32x4.splat(i32.MAX_VALUE);
  }
  @inline comb(acc: v128, x: v128): v128 {
    return i32x4.min_s(acc, x);
  }
}

/** Tail load: lanes past r get the identity. */
@inline function loadTail<R extends Red>(op: i32, p: usize, r: i32): v128 {
  const red = changetype<R>(0);
  const v = loadPart(p, r);
  const lane = i32x4(0, 1, 2, 3);
  return v128.bitselect(v, red.ident(), i32x4.lt_s(lane, i32x4.splat(r)));
}

@inline function isInt(op: i32): bool {
  return op == R_SUM_I32 || op == R_MAX_I32 || op == R_MIN_I32;
}

/** Horizontal combine of a vector into an f64 (float ops) */
@inline function hcombF(op: i32, acc: f64, v: v128): f64 {
  const x0 = <f64>f32x4.extract_lane(v, 0), x1 = <f64>f32x4.extract_lane(v, 1);
  const x2 = <f64>f32x4.extract_lane(v, 2), x3 = <f64>f32x4.extract_lane(v, 3);
  if (op == R_MAX) return fmax(fmax(acc, fmax(x0, x1)), fmax(x2, x3));
  if (op == R_MIN) return fmin(fmin(acc, fmin(x0, x1)), fmin(x2, x3));
  if (op == R_PROD) return acc * (x0 * x1) * (x2 * x3);
  return acc + ((x0 + x1) + (x2 + x3));
}

@inline function fmax(a: f64, b: f64): f64 {
  return a != a || b != b ? NaN : max(a, b);
}

@inline function fmin(a: f64, b: f64): f64 {
  return a != a || b != b ? NaN : min(a, b);
}

@inline function hcombI(op: i32, acc: i32, v: v128): i32 {
  const x0 = i32x4.extract_lane(v, 0), x1 = i32x4.extract_lane(v, 1);
  const x2 = i32x4.extract_lane(v, 2), x3 = i32x4.extract_lane(v, 3);
  if (op == R_MAX_I32) return max(max(acc, max(x0, x1)), max(x2, x3));
  if (op == R_MIN_I32) return min(min(acc, min(x0, x1)), min(x2, x3));
  return acc + x0 + x1 + x2 + x3;
}

@inline function identF(op: i32): f64 {
  if (op == R_MAX) return -Infinity;
  if (op == R_MIN) return Infinity;
  if (op == R_PROD) return 1.0;
  return 0.0;
}

@inline function identI(op: i32): i32 {
  if (op == R_MAX_I32) return i32.MIN_VALUE;
  if (op == R_MIN_I32) return i32.MAX_VALUE;
  return 0;
}

const BLOCK: i32 = 1024;

/** Reduce a contiguous row of n elements (block-wise f32x4 partials, combined in f64). */
@inline function rowReduceF<R extends Red>(op: i32, x: usize, n: i32): f64 {
  const red = changetype<R>(0);
  let total = identF(op);
  let i = 0;
  while (i < n) {
    const end = min(n, i + BLOCK);
    let a0 = red.ident(), a1 = red.ident(), a2 = red.ident(), a3 = red.ident();
    for (; i + 16 <= end; i += 16) {
      const p = x + (<usize>i << 2);
      a0 = red.comb(a0, v128.load(p));
      a1 = red.comb(a1, v128.load(p, 16));
      a2 = red.comb(a2, v128.load(p, 32));
      a3 = red.comb(a3, v128.load(p, 48));
    }
    for (; i + 4 <= end; i += 4) a0 = red.comb(a0, v128.load(x + (<usize>i << 2)));
    if (i < end) {
      a1 = red.comb(a1, loadTail<R>(op, x + (<usize>i << 2), end - i));
      i = end;
    }
    total = hcombF(op, total, a0);
    total = hcombF(op, total, a1);
    total = hcombF(op, total, a2);
    total = hcombF(op, total, a3);
  }
  return total;
}

@inline function rowReduceI<R extends Red>(op: i32, x: usize, n: i32): i32 {
  const red = changetype<R>(0);
  let a0 = red.ident(), a1 = red.ident();
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const p = x + (<usize>i << 2);
    a0 = red.comb(a0, v128.load(p));
    a1 = red.comb(a1, v128.load(p, 16));
  }
  for (; i + 4 <= n; i += 4) a0 = red.comb(a0, v128.load(x + (<usize>i << 2)));
  if (i < n) a1 = red.comb(a1, loadTail<R>(op, x + (<usize>i << 2), n - i));
  return hcombI(op, hcombI(op, identI(op), a0), a1);
}

/** Column reduce: width lanes (<=16) of columns starting at x, over len rows with row stride rs bytes. */
@inline function colReduce<R extends Red>(op: i32, x: usize, len: i32, rs: usize, out: usize, width: i32): void {
  const red = changetype<R>(0);
  let a0 = red.ident(), a1 = red.ident(), a2 = red.ident(), a3 = red.ident();
  let p = x;
  if (width == 16) {
    for (let l = 0; l < len; l++) {
      a0 = red.comb(a0, v128.load(p));
      a1 = red.comb(a1, v128.load(p, 16));
      a2 = red.comb(a2, v128.load(p, 32));
      a3 = red.comb(a3, v128.load(p, 48));
      p += rs;
    }
  } else if (width == 4) {
    for (let l = 0; l < len; l++) {
      a0 = red.comb(a0, v128.load(p));
      p += rs;
    }
  } else {
    for (let l = 0; l < len; l++) {
      a0 = red.comb(a0, loadPart(p, width));
      p += rs;
    }
  }
  if (width == 16) {
    v128.store(out, a0);
    v128.store(out, a1, 16);
    v128.store(out, a2, 32);
    v128.store(out, a3, 48);
  } else if (width == 4) {
    v128.store(out, a0);
  } else {
    store<i32>(out, i32x4.extract_lane(a0, 0));
    if (width > 1) store<i32>(out, i32x4.extract_lane(a0, 1), 4);
    if (width > 2) store<i32>(out, i32x4.extract_lane(a0, 2), 8);
  }
}

@inline function reduceSimple<R extends Red>(op: i32, x: usize, out: usize, outer: i32, len: i32, inner: i32): void {
  const red = changetype<R>(0);
  if (inner == 1) {
    for (let o = 0; o < outer; o++) {
      const row = x + ((<usize>o * <usize>len) << 2);
      if (isInt(op)) {
        store<i32>(out + (<usize>o << 2), rowReduceI<R>(op, row, len));
      } else {
        store<f32>(out + (<usize>o << 2), <f32>rowReduceF<R>(op, row, len));
      }
    }
    return;
  }
  const rs = <usize>inner << 2;
  for (let o = 0; o < outer; o++) {
    const base = x + ((<usize>o * <usize>len * <usize>inner) << 2);
    const ob = out + ((<usize>o * <usize>inner) << 2);
    let c = 0;
    for (; c + 16 <= inner; c += 16) colReduce<R>(op, base + (<usize>c << 2), len, rs, ob + (<usize>c << 2), 16);
    for (; c + 4 <= inner; c += 4) colReduce<R>(op, base + (<usize>c << 2), len, rs, ob + (<usize>c << 2), 4);
    if (c < inner) colReduce<R>(op, base + (<usize>c << 2), len, rs, ob + (<usize>c << 2), inner - c);
  }
}

// ---- logsumexp -------------------------------------------------------------

@inline function lseShift(m: v128): v128 {
  // non-finite max -> shift by 0 so that -inf rows give -inf and +inf rows give +inf
  return vsel(m, f32x4.splat(0.0), f32x4.lt(f32x4.abs(m), f32x4.splat(Infinity)));
}

/** Shift (row max, or 0 when that is not finite) and Σ exp(x - shift) of the last rowMaxSumExp call. */
export let rowShift: f32 = 0;
export let rowSum: f32 = 0;

@inline function maxSumExp(x: usize, n: i32, out: usize, keep: bool): void {
  const m = <f32>rowReduceF<RMax>(R_MAX, x, n);
  const ms = f32x4.extract_lane(lseShift(f32x4.splat(m)), 0);
  const mv = f32x4.splat(ms);
  let s0 = f32x4.splat(0.0), s1 = f32x4.splat(0.0);
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const p = <usize>i << 2;
    const e0 = vexp(f32x4.sub(v128.load(x + p), mv));
    const e1 = vexp(f32x4.sub(v128.load(x + p, 16), mv));
    if (keep) {
      v128.store(out + p, e0);
      v128.store(out + p, e1, 16);
    }
    s0 = f32x4.add(s0, e0);
    s1 = f32x4.add(s1, e1);
  }
  for (; i + 4 <= n; i += 4) {
    const p = <usize>i << 2;
    const e = vexp(f32x4.sub(v128.load(x + p), mv));
    if (keep) v128.store(out + p, e);
    s0 = f32x4.add(s0, e);
  }
  if (i < n) {
    const p = <usize>i << 2;
    const lane = i32x4(0, 1, 2, 3);
    const e = v128.and(vexp(f32x4.sub(loadPart(x + p, n - i), mv)), i32x4.lt_s(lane, i32x4.splat(n - i)));
    if (keep) storePart(out + p, e, n - i);
    s1 = f32x4.add(s1, e);
  }
  const s = f32x4.add(s0, s1);
  rowShift = ms;
  rowSum = f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1) + (f32x4.extract_lane(s, 2) + f32x4.extract_lane(s, 3));
}

/** Computes rowShift and rowSum for a contiguous row (globals are per instance, so thread-safe). */
export function rowMaxSumExp(x: usize, n: i32): void {
  maxSumExp(x, n, 0, false);
}

/** Same, also writing exp(x - rowShift) to out (may alias x). */
export function rowMaxSumExpStore(x: usize, n: i32, out: usize): void {
  maxSumExp(x, n, out, true);
}

@inline export function logf(x: f32): f32 {
  return f32x4.extract_lane(vlog(f32x4.splat(x)), 0);
}

// ---- argmax / argmin (first occurrence; nan counts as the extreme) -----------

@inline function better(isMax: bool, x: v128, best: v128): v128 {
  const cmp = isMax ? f32x4.gt(x, best) : f32x4.lt(x, best);
  // x is nan and best is not
  return v128.or(cmp, v128.andnot(f32x4.ne(x, x), f32x4.ne(best, best)));
}

@inline function argRow(isMax: bool, x: usize, n: i32): i32 {
  if (n <= 0) return -1;
  let best = f32x4.splat(isMax ? -Infinity : Infinity);
  let bi = i32x4.splat(-1);
  let idx = i32x4(0, 1, 2, 3);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const v = v128.load(x + (<usize>i << 2));
    const m = better(isMax, v, best);
    best = v128.bitselect(v, best, m);
    bi = v128.bitselect(idx, bi, m);
    idx = i32x4.add(idx, i32x4.splat(4));
  }
  // scalar combine of lanes, then tail
  let bv: f32 = isMax ? -Infinity : Infinity;
  let bidx = -1;
  for (let l = 0; l < 4; l++) {
    let v: f32;
    let k: i32;
    if (l == 0) { v = f32x4.extract_lane(best, 0); k = i32x4.extract_lane(bi, 0); }
    else if (l == 1) { v = f32x4.extract_lane(best, 1); k = i32x4.extract_lane(bi, 1); }
    else if (l == 2) { v = f32x4.extract_lane(best, 2); k = i32x4.extract_lane(bi, 2); }
    else { v = f32x4.extract_lane(best, 3); k = i32x4.extract_lane(bi, 3); }
    if (k < 0) continue;
    if (bidx < 0) { bv = v; bidx = k; continue; }
    const bnan = bv != bv, vnan = v != v;
    if (bnan) { if (vnan && k < bidx) bidx = k; continue; }
    if (vnan || (isMax ? v > bv : v < bv) || (v == bv && k < bidx)) { bv = v; bidx = k; }
  }
  for (; i < n; i++) {
    const v = load<f32>(x + (<usize>i << 2));
    if (bidx < 0) { bv = v; bidx = i; continue; }
    if (bv != bv) break;
    if (v != v || (isMax ? v > bv : v < bv)) { bv = v; bidx = i; }
  }
  return bidx < 0 ? 0 : bidx;
}

@inline function argCol(isMax: bool, x: usize, len: i32, rs: usize, out: usize, width: i32): void {
  let best = f32x4.splat(isMax ? -Infinity : Infinity);
  let bi = i32x4.splat(0);
  let p = x;
  // first row initialises
  if (len > 0) {
    best = width == 4 ? v128.load(p) : loadPart(p, width);
    p += rs;
  }
  for (let l = 1; l < len; l++) {
    const v = width == 4 ? v128.load(p) : loadPart(p, width);
    const m = better(isMax, v, best);
    best = v128.bitselect(v, best, m);
    bi = v128.bitselect(i32x4.splat(l), bi, m);
    p += rs;
  }
  if (width == 4) v128.store(out, bi);
  else {
    store<i32>(out, i32x4.extract_lane(bi, 0));
    if (width > 1) store<i32>(out, i32x4.extract_lane(bi, 1), 4);
    if (width > 2) store<i32>(out, i32x4.extract_lane(bi, 2), 8);
  }
}

function reduceArg(isMax: bool, x: usize, out: usize, outer: i32, len: i32, inner: i32): void {
  if (inner == 1) {
    for (let o = 0; o < outer; o++) store<i32>(out + (<usize>o << 2), argRow(isMax, x + ((<usize>o * <usize>len) << 2), len));
    return;
  }
  const rs = <usize>inner << 2;
  for (let o = 0; o < outer; o++) {
    const base = x + ((<usize>o * <usize>len * <usize>inner) << 2);
    const ob = out + ((<usize>o * <usize>inner) << 2);
    let c = 0;
    for (; c + 4 <= inner; c += 4) argCol(isMax, base + (<usize>c << 2), len, rs, ob + (<usize>c << 2), 4);
    if (c < inner) argCol(isMax, base + (<usize>c << 2), len, rs, ob + (<usize>c << 2), inner - c);
  }
}

export function reduceAxis(op: i32, x: usize, out: usize, outer: i32, len: i32, inner: i32): void {
  if (outer <= 0 || inner <= 0) return;
  switch (op) {
    case R_SUM: reduceSimple<RSum>(R_SUM, x, out, outer, len, inner); return;
    case R_MAX: reduceSimple<RMax>(R_MAX, x, out, outer, len, inner); return;
    case R_MIN: reduceSimple<RMin>(R_MIN, x, out, outer, len, inner); return;
    case R_PROD: reduceSimple<RProd>(R_PROD, x, out, outer, len, inner); return;
    case R_SUM_I32: reduceSimple<RSumI32>(R_SUM_I32, x, out, outer, len, inner); return;
    case R_MAX_I32: reduceSimple<RMaxI32>(R_MAX_I32, x, out, outer, len, inner); return;
    case R_MIN_I32: reduceSimple<RMinI32>(R_MIN_I32, x, out, outer, len, inner); return;
    case R_ARGMAX: reduceArg(true, x, out, outer, len, inner); return;
    case R_ARGMIN: reduceArg(false, x, out, outer, len, inner); return;
  }
}


// ---- cumsum ------------------------------------------------------------------

/**
 * Cumulative sum along the middle axis of [outer, len, inner] (from the end when `reverse`):
 * float32 accumulates in f64 as the reference does, int32 wraps.
 */
export function cumsumAxis(x: usize, out: usize, outer: i32, len: i32, inner: i32, reverse: bool, isInt: bool): void {
  const step: isize = reverse ? -(<isize>inner << 2) : <isize>inner << 2;
  const first: usize = reverse ? (<usize>(len - 1) * <usize>inner) << 2 : 0;
  for (let o = 0; o < outer; o++) {
    const base = (<usize>o * <usize>len * <usize>inner) << 2;
    for (let q = 0; q < inner; q++) {
      let at = base + first + (<usize>q << 2);
      if (isInt) {
        let acc: i32 = 0;
        for (let k = 0; k < len; k++) {
          acc += load<i32>(x + at);
          store<i32>(out + at, acc);
          at += step;
        }
      } else {
        let acc: f64 = 0;
        for (let k = 0; k < len; k++) {
          acc += <f64>load<f32>(x + at);
          store<f32>(out + at, <f32>acc);
          at += step;
        }
      }
    }
  }
}
