// Elementwise op codes, per-op SIMD definitions and the contiguous run loops
// every elementwise kernel (plain, broadcast, fused) is built from.

import { vexp, vlog, vlog1p, vsin, vcos, vtanh, vsigmoid, vsoftplus, vpow, vsel } from './math';

export const U_COPY: i32 = 0;
export const U_NEG: i32 = 1;
export const U_ABS: i32 = 2;
export const U_SIGN: i32 = 3;
export const U_EXP: i32 = 4;
export const U_LOG: i32 = 5;
export const U_LOG1P: i32 = 6;
export const U_SQRT: i32 = 7;
export const U_SQUARE: i32 = 8;
export const U_RECIPROCAL: i32 = 9;
export const U_SIN: i32 = 10;
export const U_COS: i32 = 11;
export const U_TANH: i32 = 12;
export const U_SIGMOID: i32 = 13;
export const U_RELU: i32 = 14;
export const U_SOFTPLUS: i32 = 15;
export const U_I2F: i32 = 16;
export const U_F2I: i32 = 17;
export const U_NEG_I32: i32 = 18;
export const U_ABS_I32: i32 = 19;
export const U_RSQRT: i32 = 20;
export const U_FLOOR: i32 = 21;
export const U_CEIL: i32 = 22;
export const U_ROUND: i32 = 23;
export const U_NOT_I32: i32 = 24;
export const U_COUNT: i32 = 25;

export const B_ADD: i32 = 0;
export const B_SUB: i32 = 1;
export const B_MUL: i32 = 2;
export const B_DIV: i32 = 3;
export const B_POW: i32 = 4;
export const B_MAX: i32 = 5;
export const B_MIN: i32 = 6;
export const B_GT: i32 = 7;
export const B_LT: i32 = 8;
export const B_EQ: i32 = 9;
export const B_GE: i32 = 10;
export const B_LE: i32 = 11;
export const B_NE: i32 = 12;
export const B_ADD_I32: i32 = 13;
export const B_SUB_I32: i32 = 14;
export const B_MUL_I32: i32 = 15;
export const B_MAX_I32: i32 = 16;
export const B_MIN_I32: i32 = 17;
export const B_GT_I32: i32 = 18;
export const B_LT_I32: i32 = 19;
export const B_EQ_I32: i32 = 20;
export const B_GE_I32: i32 = 21;
export const B_LE_I32: i32 = 22;
export const B_NE_I32: i32 = 23;
export const B_COUNT: i32 = 24;


@inline function one(m: v128): v128 {
  return v128.and(m, i32x4.splat(1));
}

@inline export function uop(op: i32, x: v128): v128 {
  if (op == U_COPY) return x;
  if (op == U_NEG) return f32x4.neg(x);
  if (op == U_ABS) return f32x4.abs(x);
  if (op == U_SIGN) {
    const s = v128.or(v128.and(x, i32x4.splat(0x80000000)), f32x4.splat(1.0));
    // 0 -> 0 (keeps the sign of zero), nan -> nan
    return vsel(x, s, v128.or(f32x4.eq(x, f32x4.splat(0.0)), f32x4.ne(x, x)));
  }
  if (op == U_EXP) return vexp(x);
  if (op == U_LOG) return vlog(x);
  if (op == U_LOG1P) return vlog1p(x);
  if (op == U_SQRT) return f32x4.sqrt(x);
  if (op == U_SQUARE) return f32x4.mul(x, x);
  if (op == U_RECIPROCAL) return f32x4.div(f32x4.splat(1.0), x);
  if (op == U_SIN) return vsin(x);
  if (op == U_COS) return vcos(x);
  if (op == U_TANH) return vtanh(x);
  if (op == U_SIGMOID) return vsigmoid(x);
  if (op == U_RELU) return f32x4.max(x, f32x4.splat(0.0));
  if (op == U_SOFTPLUS) return vsoftplus(x);
  if (op == U_I2F) return f32x4.convert_i32x4_s(x);
  if (op == U_F2I) return i32x4.trunc_sat_f32x4_s(x);
  if (op == U_NEG_I32) return i32x4.neg(x);
  if (op == U_ABS_I32) return i32x4.abs(x);
  if (op == U_RSQRT) return f32x4.div(f32x4.splat(1.0), f32x4.sqrt(x));
  if (op == U_FLOOR) return f32x4.floor(x);
  if (op == U_CEIL) return f32x4.ceil(x);
  if (op == U_ROUND) return f32x4.nearest(x);
  if (op == U_NOT_I32) return one(i32x4.eq(x, i32x4.splat(0)));
  return x;
}

@inline export function bop(op: i32, a: v128, b: v128): v128 {
  if (op == B_ADD) return f32x4.add(a, b);
  if (op == B_SUB) return f32x4.sub(a, b);
  if (op == B_MUL) return f32x4.mul(a, b);
  if (op == B_DIV) return f32x4.div(a, b);
  if (op == B_POW) return vpow(a, b);
  if (op == B_MAX) return f32x4.max(a, b);
  if (op == B_MIN) return f32x4.min(a, b);
  if (op == B_GT) return one(f32x4.gt(a, b));
  if (op == B_LT) return one(f32x4.lt(a, b));
  if (op == B_EQ) return one(f32x4.eq(a, b));
  if (op == B_GE) return one(f32x4.ge(a, b));
  if (op == B_LE) return one(f32x4.le(a, b));
  if (op == B_NE) return one(f32x4.ne(a, b));
  if (op == B_ADD_I32) return i32x4.add(a, b);
  if (op == B_SUB_I32) return i32x4.sub(a, b);
  if (op == B_MUL_I32) return i32x4.mul(a, b);
  if (op == B_MAX_I32) return i32x4.max_s(a, b);
  if (op == B_MIN_I32) return i32x4.min_s(a, b);
  if (op == B_GT_I32) return one(i32x4.gt_s(a, b));
  if (op == B_LT_I32) return one(i32x4.lt_s(a, b));
  if (op == B_EQ_I32) return one(i32x4.eq(a, b));
  if (op == B_GE_I32) return one(i32x4.ge_s(a, b));
  if (op == B_LE_I32) return one(i32x4.le_s(a, b));
  if (op == B_NE_I32) return one(i32x4.ne(a, b));
  return a;
}

// ---- partial (1..3 lane) loads and stores for loop tails ----------------------

@inline export function loadPart(p: usize, r: i32): v128 {
  let v = i32x4.splat(0);
  v = i32x4.replace_lane(v, 0, load<i32>(p));
  if (r > 1) v = i32x4.replace_lane(v, 1, load<i32>(p, 4));
  if (r > 2) v = i32x4.replace_lane(v, 2, load<i32>(p, 8));
  return v;
}

@inline export function storePart(p: usize, v: v128, r: i32): void {
  store<i32>(p, i32x4.extract_lane(v, 0));
  if (r > 1) store<i32>(p, i32x4.extract_lane(v, 1), 4);
  if (r > 2) store<i32>(p, i32x4.extract_lane(v, 2), 8);
}

/** Gathers 4 (or r < 4) lanes at an element stride. */
@inline export function loadStrided(p: usize, strideBytes: usize, r: i32): v128 {
  let v = i32x4.splat(0);
  v = i32x4.replace_lane(v, 0, load<i32>(p));
  if (r > 1) v = i32x4.replace_lane(v, 1, load<i32>(p + strideBytes));
  if (r > 2) v = i32x4.replace_lane(v, 2, load<i32>(p + 2 * strideBytes));
  if (r > 3) v = i32x4.replace_lane(v, 3, load<i32>(p + 3 * strideBytes));
  return v;
}

// ---- loops (op is a compile-time constant after inlining) ---------------------

@inline function unaryLoop(op: i32, x: usize, out: usize, n: i32): void {
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const p = <usize>i << 2;
    const v0 = v128.load(x + p);
    const v1 = v128.load(x + p, 16);
    v128.store(out + p, uop(op, v0));
    v128.store(out + p, uop(op, v1), 16);
  }
  for (; i + 4 <= n; i += 4) {
    const p = <usize>i << 2;
    v128.store(out + p, uop(op, v128.load(x + p)));
  }
  if (i < n) {
    const p = <usize>i << 2;
    storePart(out + p, uop(op, loadPart(x + p, n - i)), n - i);
  }
}

/** mode: 0 = a,b vectors; 1 = b scalar; 2 = a scalar */
@inline function binaryLoop(op: i32, mode: i32, a: usize, b: usize, out: usize, n: i32): void {
  let i = 0;
  const as = v128.load32_splat(a);
  const bs = v128.load32_splat(b);
  for (; i + 4 <= n; i += 4) {
    const p = <usize>i << 2;
    const va = mode == 2 ? as : v128.load(a + p);
    const vb = mode == 1 ? bs : v128.load(b + p);
    v128.store(out + p, bop(op, va, vb));
  }
  if (i < n) {
    const p = <usize>i << 2;
    const va = mode == 2 ? as : loadPart(a + p, n - i);
    const vb = mode == 1 ? bs : loadPart(b + p, n - i);
    storePart(out + p, bop(op, va, vb), n - i);
  }
}

@inline function binaryLoopStrided(op: i32, a: usize, sa: i32, b: usize, sb: i32, out: usize, n: i32): void {
  const sab = <usize>sa << 2;
  const sbb = <usize>sb << 2;
  let i = 0;
  for (; i < n; i += 4) {
    const r = min(4, n - i);
    const va = loadStrided(a + <usize>i * sab, sab, r);
    const vb = loadStrided(b + <usize>i * sbb, sbb, r);
    const vo = bop(op, va, vb);
    if (r == 4) v128.store(out + (<usize>i << 2), vo);
    else storePart(out + (<usize>i << 2), vo, r);
  }
}

/** out[i] = op(x[i]) for i < n (contiguous). */
export function unaryRun(op: i32, x: usize, out: usize, n: i32): void {
  switch (op) {
    case U_COPY: unaryLoop(U_COPY, x, out, n); return;
    case U_NEG: unaryLoop(U_NEG, x, out, n); return;
    case U_ABS: unaryLoop(U_ABS, x, out, n); return;
    case U_SIGN: unaryLoop(U_SIGN, x, out, n); return;
    case U_EXP: unaryLoop(U_EXP, x, out, n); return;
    case U_LOG: unaryLoop(U_LOG, x, out, n); return;
    case U_LOG1P: unaryLoop(U_LOG1P, x, out, n); return;
    case U_SQRT: unaryLoop(U_SQRT, x, out, n); return;
    case U_SQUARE: unaryLoop(U_SQUARE, x, out, n); return;
    case U_RECIPROCAL: unaryLoop(U_RECIPROCAL, x, out, n); return;
    case U_SIN: unaryLoop(U_SIN, x, out, n); return;
    case U_COS: unaryLoop(U_COS, x, out, n); return;
    case U_TANH: unaryLoop(U_TANH, x, out, n); return;
    case U_SIGMOID: unaryLoop(U_SIGMOID, x, out, n); return;
    case U_RELU: unaryLoop(U_RELU, x, out, n); return;
    case U_SOFTPLUS: unaryLoop(U_SOFTPLUS, x, out, n); return;
    case U_I2F: unaryLoop(U_I2F, x, out, n); return;
    case U_F2I: unaryLoop(U_F2I, x, out, n); return;
    case U_NEG_I32: unaryLoop(U_NEG_I32, x, out, n); return;
    case U_ABS_I32: unaryLoop(U_ABS_I32, x, out, n); return;
    case U_RSQRT: unaryLoop(U_RSQRT, x, out, n); return;
    case U_FLOOR: unaryLoop(U_FLOOR, x, out, n); return;
    case U_CEIL: unaryLoop(U_CEIL, x, out, n); return;
    case U_ROUND: unaryLoop(U_ROUND, x, out, n); return;
    case U_NOT_I32: unaryLoop(U_NOT_I32, x, out, n); return;
  }
}

/** out[i] = op(a, b) over n elements; a, b contiguous. */
export function binaryRunVV(op: i32, a: usize, b: usize, out: usize, n: i32): void {
  switch (op) {
    case B_ADD: binaryLoop(B_ADD, 0, a, b, out, n); return;
    case B_SUB: binaryLoop(B_SUB, 0, a, b, out, n); return;
    case B_MUL: binaryLoop(B_MUL, 0, a, b, out, n); return;
    case B_DIV: binaryLoop(B_DIV, 0, a, b, out, n); return;
    case B_POW: binaryLoop(B_POW, 0, a, b, out, n); return;
    case B_MAX: binaryLoop(B_MAX, 0, a, b, out, n); return;
    case B_MIN: binaryLoop(B_MIN, 0, a, b, out, n); return;
    case B_GT: binaryLoop(B_GT, 0, a, b, out, n); return;
    case B_LT: binaryLoop(B_LT, 0, a, b, out, n); return;
    case B_EQ: binaryLoop(B_EQ, 0, a, b, out, n); return;
    case B_GE: binaryLoop(B_GE, 0, a, b, out, n); return;
    case B_LE: binaryLoop(B_LE, 0, a, b, out, n); return;
    case B_NE: binaryLoop(B_NE, 0, a, b, out, n); return;
    case B_ADD_I32: binaryLoop(B_ADD_I32, 0, a, b, out, n); return;
    case B_SUB_I32: binaryLoop(B_SUB_I32, 0, a, b, out, n); return;
    case B_MUL_I32: binaryLoop(B_MUL_I32, 0, a, b, out, n); return;
    case B_MAX_I32: binaryLoop(B_MAX_I32, 0, a, b, out, n); return;
    case B_MIN_I32: binaryLoop(B_MIN_I32, 0, a, b, out, n); return;
    case B_GT_I32: binaryLoop(B_GT_I32, 0, a, b, out, n); return;
    case B_LT_I32: binaryLoop(B_LT_I32, 0, a, b, out, n); return;
    case B_EQ_I32: binaryLoop(B_EQ_I32, 0, a, b, out, n); return;
    case B_GE_I32: binaryLoop(B_GE_I32, 0, a, b, out, n); return;
    case B_LE_I32: binaryLoop(B_LE_I32, 0, a, b, out, n); return;
    case B_NE_I32: binaryLoop(B_NE_I32, 0, a, b, out, n); return;
  }
}

/** out[i] = op(a, b) over n elements; b is a single scalar at b. */
export function binaryRunVS(op: i32, a: usize, b: usize, out: usize, n: i32): void {
  switch (op) {
    case B_ADD: binaryLoop(B_ADD, 1, a, b, out, n); return;
    case B_SUB: binaryLoop(B_SUB, 1, a, b, out, n); return;
    case B_MUL: binaryLoop(B_MUL, 1, a, b, out, n); return;
    case B_DIV: binaryLoop(B_DIV, 1, a, b, out, n); return;
    case B_POW: binaryLoop(B_POW, 1, a, b, out, n); return;
    case B_MAX: binaryLoop(B_MAX, 1, a, b, out, n); return;
    case B_MIN: binaryLoop(B_MIN, 1, a, b, out, n); return;
    case B_GT: binaryLoop(B_GT, 1, a, b, out, n); return;
    case B_LT: binaryLoop(B_LT, 1, a, b, out, n); return;
    case B_EQ: binaryLoop(B_EQ, 1, a, b, out, n); return;
    case B_GE: binaryLoop(B_GE, 1, a, b, out, n); return;
    case B_LE: binaryLoop(B_LE, 1, a, b, out, n); return;
    case B_NE: binaryLoop(B_NE, 1, a, b, out, n); return;
    case B_ADD_I32: binaryLoop(B_ADD_I32, 1, a, b, out, n); return;
    case B_SUB_I32: binaryLoop(B_SUB_I32, 1, a, b, out, n); return;
    case B_MUL_I32: binaryLoop(B_MUL_I32, 1, a, b, out, n); return;
    case B_MAX_I32: binaryLoop(B_MAX_I32, 1, a, b, out, n); return;
    case B_MIN_I32: binaryLoop(B_MIN_I32, 1, a, b, out, n); return;
    case B_GT_I32: binaryLoop(B_GT_I32, 1, a, b, out, n); return;
    case B_LT_I32: binaryLoop(B_LT_I32, 1, a, b, out, n); return;
    case B_EQ_I32: binaryLoop(B_EQ_I32, 1, a, b, out, n); return;
    case B_GE_I32: binaryLoop(B_GE_I32, 1, a, b, out, n); return;
    case B_LE_I32: binaryLoop(B_LE_I32, 1, a, b, out, n); return;
    case B_NE_I32: binaryLoop(B_NE_I32, 1, a, b, out, n); return;
  }
}

/** out[i] = op(a, b) over n elements; a is a single scalar at a. */
export function binaryRunSV(op: i32, a: usize, b: usize, out: usize, n: i32): void {
  switch (op) {
    case B_ADD: binaryLoop(B_ADD, 2, a, b, out, n); return;
    case B_SUB: binaryLoop(B_SUB, 2, a, b, out, n); return;
    case B_MUL: binaryLoop(B_MUL, 2, a, b, out, n); return;
    case B_DIV: binaryLoop(B_DIV, 2, a, b, out, n); return;
    case B_POW: binaryLoop(B_POW, 2, a, b, out, n); return;
    case B_MAX: binaryLoop(B_MAX, 2, a, b, out, n); return;
    case B_MIN: binaryLoop(B_MIN, 2, a, b, out, n); return;
    case B_GT: binaryLoop(B_GT, 2, a, b, out, n); return;
    case B_LT: binaryLoop(B_LT, 2, a, b, out, n); return;
    case B_EQ: binaryLoop(B_EQ, 2, a, b, out, n); return;
    case B_GE: binaryLoop(B_GE, 2, a, b, out, n); return;
    case B_LE: binaryLoop(B_LE, 2, a, b, out, n); return;
    case B_NE: binaryLoop(B_NE, 2, a, b, out, n); return;
    case B_ADD_I32: binaryLoop(B_ADD_I32, 2, a, b, out, n); return;
    case B_SUB_I32: binaryLoop(B_SUB_I32, 2, a, b, out, n); return;
    case B_MUL_I32: binaryLoop(B_MUL_I32, 2, a, b, out, n); return;
    case B_MAX_I32: binaryLoop(B_MAX_I32, 2, a, b, out, n); return;
    case B_MIN_I32: binaryLoop(B_MIN_I32, 2, a, b, out, n); return;
    case B_GT_I32: binaryLoop(B_GT_I32, 2, a, b, out, n); return;
    case B_LT_I32: binaryLoop(B_LT_I32, 2, a, b, out, n); return;
    case B_EQ_I32: binaryLoop(B_EQ_I32, 2, a, b, out, n); return;
    case B_GE_I32: binaryLoop(B_GE_I32, 2, a, b, out, n); return;
    case B_LE_I32: binaryLoop(B_LE_I32, 2, a, b, out, n); return;
    case B_NE_I32: binaryLoop(B_NE_I32, 2, a, b, out, n); return;
  }
}

/** General element strides (any, incl. 0). */
export function binaryRunStrided(op: i32, a: usize, sa: i32, b: usize, sb: i32, out: usize, n: i32): void {
  switch (op) {
    case B_ADD: binaryLoopStrided(B_ADD, a, sa, b, sb, out, n); return;
    case B_SUB: binaryLoopStrided(B_SUB, a, sa, b, sb, out, n); return;
    case B_MUL: binaryLoopStrided(B_MUL, a, sa, b, sb, out, n); return;
    case B_DIV: binaryLoopStrided(B_DIV, a, sa, b, sb, out, n); return;
    case B_POW: binaryLoopStrided(B_POW, a, sa, b, sb, out, n); return;
    case B_MAX: binaryLoopStrided(B_MAX, a, sa, b, sb, out, n); return;
    case B_MIN: binaryLoopStrided(B_MIN, a, sa, b, sb, out, n); return;
    case B_GT: binaryLoopStrided(B_GT, a, sa, b, sb, out, n); return;
    case B_LT: binaryLoopStrided(B_LT, a, sa, b, sb, out, n); return;
    case B_EQ: binaryLoopStrided(B_EQ, a, sa, b, sb, out, n); return;
    case B_GE: binaryLoopStrided(B_GE, a, sa, b, sb, out, n); return;
    case B_LE: binaryLoopStrided(B_LE, a, sa, b, sb, out, n); return;
    case B_NE: binaryLoopStrided(B_NE, a, sa, b, sb, out, n); return;
    case B_ADD_I32: binaryLoopStrided(B_ADD_I32, a, sa, b, sb, out, n); return;
    case B_SUB_I32: binaryLoopStrided(B_SUB_I32, a, sa, b, sb, out, n); return;
    case B_MUL_I32: binaryLoopStrided(B_MUL_I32, a, sa, b, sb, out, n); return;
    case B_MAX_I32: binaryLoopStrided(B_MAX_I32, a, sa, b, sb, out, n); return;
    case B_MIN_I32: binaryLoopStrided(B_MIN_I32, a, sa, b, sb, out, n); return;
    case B_GT_I32: binaryLoopStrided(B_GT_I32, a, sa, b, sb, out, n); return;
    case B_LT_I32: binaryLoopStrided(B_LT_I32, a, sa, b, sb, out, n); return;
    case B_EQ_I32: binaryLoopStrided(B_EQ_I32, a, sa, b, sb, out, n); return;
    case B_GE_I32: binaryLoopStrided(B_GE_I32, a, sa, b, sb, out, n); return;
    case B_LE_I32: binaryLoopStrided(B_LE_I32, a, sa, b, sb, out, n); return;
    case B_NE_I32: binaryLoopStrided(B_NE_I32, a, sa, b, sb, out, n); return;
  }
}

/** Picks the right run loop for element strides sa, sb of a run of n outputs. */
export function binaryRun(op: i32, a: usize, sa: i32, b: usize, sb: i32, out: usize, n: i32): void {
  if (sa == 1 && sb == 1) binaryRunVV(op, a, b, out, n);
  else if (sa == 1 && sb == 0) binaryRunVS(op, a, b, out, n);
  else if (sa == 0 && sb == 1) binaryRunSV(op, a, b, out, n);
  else if (sa == 0 && sb == 0) {
    binaryRunVS(op, a, b, out, 1);
    fillRun(out + 4, load<i32>(out), n - 1);
  } else binaryRunStrided(op, a, sa, b, sb, out, n);
}

/** Fills n 32-bit words with a bit pattern. */
export function fillRun(out: usize, bits: i32, n: i32): void {
  if (n <= 0) return;
  const v = i32x4.splat(bits);
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(out + (<usize>i << 2), v);
  for (; i < n; i++) store<i32>(out + (<usize>i << 2), bits);
}

/** where: out = cond != 0 ? a : b, with element strides (0 or 1 fast, others gathered). */
export function whereRun(c: usize, sc: i32, a: usize, sa: i32, b: usize, sb: i32, out: usize, n: i32): void {
  const scb = <usize>sc << 2;
  const sab = <usize>sa << 2;
  const sbb = <usize>sb << 2;
  if (sc == 1 && sa == 1 && sb == 1) {
    let i = 0;
    for (; i + 4 <= n; i += 4) {
      const p = <usize>i << 2;
      const m = i32x4.ne(v128.load(c + p), i32x4.splat(0));
      v128.store(out + p, v128.bitselect(v128.load(a + p), v128.load(b + p), m));
    }
    for (; i < n; i++) {
      const p = <usize>i << 2;
      store<i32>(out + p, load<i32>(c + p) != 0 ? load<i32>(a + p) : load<i32>(b + p));
    }
    return;
  }
  for (let i = 0; i < n; i++) {
    const o = <usize>i;
    store<i32>(out + (o << 2), load<i32>(c + o * scb) != 0 ? load<i32>(a + o * sab) : load<i32>(b + o * sbb));
  }
}
