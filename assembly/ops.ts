// Elementwise op codes, per-op SIMD definitions and the contiguous run loops
// every elementwise kernel (plain, broadcast, fused) is built from.

import { B_ADD, B_ADD_I32, B_DIV, B_EQUAL, B_EQUAL_I32, B_GREATER, B_GREATER_EQUAL, B_GREATER_EQUAL_I32, B_GREATER_I32, B_LESS, B_LESS_EQUAL, B_LESS_EQUAL_I32, B_LESS_I32, B_MAXIMUM, B_MAXIMUM_I32, B_MINIMUM, B_MINIMUM_I32, B_MUL, B_MUL_I32, B_NOT_EQUAL, B_NOT_EQUAL_I32, B_POW, B_SUB, B_SUB_I32, U_ABS, U_ABS_I32, U_CAST_F32_TO_I32, U_CAST_I32_TO_F32, U_CEIL, U_COPY, U_COS, U_ERF, U_EXP, U_FLOOR, U_LOG, U_LOG1P, U_NEG, U_NEG_I32, U_RECIPROCAL, U_RELU, U_ROUND, U_RSQRT, U_SIGMOID, U_SIGN, U_SIN, U_SOFTPLUS, U_SQRT, U_SQUARE, U_TANH } from './opcodes';
import { verf, vexp, vlog, vlog1p, vsin, vcos, vtanh, vsigmoid, vsoftplus, vpow, vsel } from './math';




@inline function one(m: v128): v128 {
  return v128.and(m, i32x4.splat(1));
}

/** Unary ops as final classes: loops are generic over them, so each op gets its own loop. */
class UnaryFn {
  @inline apply(x: v128): v128 {
    return x;
  }
}
@final class F_U_COPY extends UnaryFn {
  @inline apply(x: v128): v128 {
    return x;
  }
}
@final class F_U_NEG extends UnaryFn {
  @inline apply(x: v128): v128 {
    return f32x4.neg(x);
  }
}
@final class F_U_ABS extends UnaryFn {
  @inline apply(x: v128): v128 {
    return f32x4.abs(x);
  }
}
@final class F_U_SIGN extends UnaryFn {
  @inline apply(x: v128): v128 {
      const s = v128.or(v128.and(x, i32x4.splat(0x80000000)), f32x4.splat(1.0));
      // 0 -> 0 (keeps the sign of zero), nan -> nan
      return vsel(x, s, v128.or(f32x4.eq(x, f32x4.splat(0.0)), f32x4.ne(x, x)));
  }
}
@final class F_U_EXP extends UnaryFn {
  @inline apply(x: v128): v128 {
    return vexp(x);
  }
}
@final class F_U_LOG extends UnaryFn {
  @inline apply(x: v128): v128 {
    return vlog(x);
  }
}
@final class F_U_LOG1P extends UnaryFn {
  @inline apply(x: v128): v128 {
    return vlog1p(x);
  }
}
@final class F_U_SQRT extends UnaryFn {
  @inline apply(x: v128): v128 {
    return f32x4.sqrt(x);
  }
}
@final class F_U_SQUARE extends UnaryFn {
  @inline apply(x: v128): v128 {
    return f32x4.mul(x, x);
  }
}
@final class F_U_RECIPROCAL extends UnaryFn {
  @inline apply(x: v128): v128 {
    return f32x4.div(f32x4.splat(1.0), x);
  }
}
@final class F_U_SIN extends UnaryFn {
  @inline apply(x: v128): v128 {
    return vsin(x);
  }
}
@final class F_U_COS extends UnaryFn {
  @inline apply(x: v128): v128 {
    return vcos(x);
  }
}
@final class F_U_TANH extends UnaryFn {
  @inline apply(x: v128): v128 {
    return vtanh(x);
  }
}
@final class F_U_SIGMOID extends UnaryFn {
  @inline apply(x: v128): v128 {
    return vsigmoid(x);
  }
}
@final class F_U_RELU extends UnaryFn {
  @inline apply(x: v128): v128 {
    return f32x4.pmax(x, f32x4.splat(0.0));
  }
}
@final class F_U_SOFTPLUS extends UnaryFn {
  @inline apply(x: v128): v128 {
    return vsoftplus(x);
  }
}
@final class F_U_I2F extends UnaryFn {
  @inline apply(x: v128): v128 {
    return f32x4.convert_i32x4_s(x);
  }
}
@final class F_U_F2I extends UnaryFn {
  @inline apply(x: v128): v128 {
    return i32x4.trunc_sat_f32x4_s(x);
  }
}
@final class F_U_NEG_I32 extends UnaryFn {
  @inline apply(x: v128): v128 {
    return i32x4.neg(x);
  }
}
@final class F_U_ABS_I32 extends UnaryFn {
  @inline apply(x: v128): v128 {
    return i32x4.abs(x);
  }
}
@final class F_U_RSQRT extends UnaryFn {
  @inline apply(x: v128): v128 {
    return f32x4.div(f32x4.splat(1.0), f32x4.sqrt(x));
  }
}
@final class F_U_FLOOR extends UnaryFn {
  @inline apply(x: v128): v128 {
    return f32x4.floor(x);
  }
}
@final class F_U_CEIL extends UnaryFn {
  @inline apply(x: v128): v128 {
    return f32x4.ceil(x);
  }
}
@final class F_U_ROUND extends UnaryFn {
  @inline apply(x: v128): v128 {
    return f32x4.nearest(x);
  }
}
@final class F_U_ERF extends UnaryFn {
  @inline apply(x: v128): v128 {
    return verf(x);
  }
}

/** Binary ops as final classes (see UnaryFn). */
class BinaryFn {
  @inline apply(a: v128, b: v128): v128 {
    return a;
  }
}
@final class F_B_ADD extends BinaryFn {
  @inline apply(a: v128, b: v128): v128 {
    return f32x4.add(a, b);
  }
}
@final class F_B_SUB extends BinaryFn {
  @inline apply(a: v128, b: v128): v128 {
    return f32x4.sub(a, b);
  }
}
@final class F_B_MUL extends BinaryFn {
  @inline apply(a: v128, b: v128): v128 {
    return f32x4.mul(a, b);
  }
}
@final class F_B_DIV extends BinaryFn {
  @inline apply(a: v128, b: v128): v128 {
    return f32x4.div(a, b);
  }
}
@final class F_B_POW extends BinaryFn {
  @inline apply(a: v128, b: v128): v128 {
    return vpow(a, b);
  }
}
@final class F_B_MAX extends BinaryFn {
  @inline apply(a: v128, b: v128): v128 {
    return f32x4.max(a, b);
  }
}
@final class F_B_MIN extends BinaryFn {
  @inline apply(a: v128, b: v128): v128 {
    return f32x4.min(a, b);
  }
}
@final class F_B_GT extends BinaryFn {
  @inline apply(a: v128, b: v128): v128 {
    return one(f32x4.gt(a, b));
  }
}
@final class F_B_LT extends BinaryFn {
  @inline apply(a: v128, b: v128): v128 {
    return one(f32x4.lt(a, b));
  }
}
@final class F_B_EQ extends BinaryFn {
  @inline apply(a: v128, b: v128): v128 {
    return one(f32x4.eq(a, b));
  }
}
@final class F_B_GE extends BinaryFn {
  @inline apply(a: v128, b: v128): v128 {
    return one(f32x4.ge(a, b));
  }
}
@final class F_B_LE extends BinaryFn {
  @inline apply(a: v128, b: v128): v128 {
    return one(f32x4.le(a, b));
  }
}
@final class F_B_NE extends BinaryFn {
  @inline apply(a: v128, b: v128): v128 {
    return one(f32x4.ne(a, b));
  }
}
@final class F_B_ADD_I32 extends BinaryFn {
  @inline apply(a: v128, b: v128): v128 {
    return i32x4.add(a, b);
  }
}
@final class F_B_SUB_I32 extends BinaryFn {
  @inline apply(a: v128, b: v128): v128 {
    return i32x4.sub(a, b);
  }
}
@final class F_B_MUL_I32 extends BinaryFn {
  @inline apply(a: v128, b: v128): v128 {
    return i32x4.mul(a, b);
  }
}
@final class F_B_MAX_I32 extends BinaryFn {
  @inline apply(a: v128, b: v128): v128 {
    return i32x4.max_s(a, b);
  }
}
@final class F_B_MIN_I32 extends BinaryFn {
  @inline apply(a: v128, b: v128): v128 {
    return i32x4.min_s(a, b);
  }
}
@final class F_B_GT_I32 extends BinaryFn {
  @inline apply(a: v128, b: v128): v128 {
    return one(i32x4.gt_s(a, b));
  }
}
@final class F_B_LT_I32 extends BinaryFn {
  @inline apply(a: v128, b: v128): v128 {
    return one(i32x4.lt_s(a, b));
  }
}
@final class F_B_EQ_I32 extends BinaryFn {
  @inline apply(a: v128, b: v128): v128 {
    return one(i32x4.eq(a, b));
  }
}
@final class F_B_GE_I32 extends BinaryFn {
  @inline apply(a: v128, b: v128): v128 {
    return one(i32x4.ge_s(a, b));
  }
}
@final class F_B_LE_I32 extends BinaryFn {
  @inline apply(a: v128, b: v128): v128 {
    return one(i32x4.le_s(a, b));
  }
}
@final class F_B_NE_I32 extends BinaryFn {
  @inline apply(a: v128, b: v128): v128 {
    return one(i32x4.ne(a, b));
  }
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

@inline function unaryLoop<F extends UnaryFn>(x: usize, out: usize, n: i32): void {
  const f = changetype<F>(0);
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const p = <usize>i << 2;
    const v0 = v128.load(x + p);
    const v1 = v128.load(x + p, 16);
    v128.store(out + p, f.apply(v0));
    v128.store(out + p, f.apply(v1), 16);
  }
  // the last 1-7 elements: one more copy of the op's body, not two (module size)
  for (; i < n; i += 4) {
    const p = <usize>i << 2;
    const r = n - i;
    const v = f.apply(r >= 4 ? v128.load(x + p) : loadPart(x + p, r));
    if (r >= 4) v128.store(out + p, v);
    else storePart(out + p, v, r);
  }
}

/** mode: 0 = a,b vectors; 1 = b scalar; 2 = a scalar */
@inline function binaryLoop<F extends BinaryFn>(mode: i32, a: usize, b: usize, out: usize, n: i32): void {
  const f = changetype<F>(0);
  let i = 0;
  const as = v128.load32_splat(a);
  const bs = v128.load32_splat(b);
  for (; i + 8 <= n; i += 8) {
    const p = <usize>i << 2;
    const va0 = mode == 2 ? as : v128.load(a + p);
    const vb0 = mode == 1 ? bs : v128.load(b + p);
    const va1 = mode == 2 ? as : v128.load(a + p, 16);
    const vb1 = mode == 1 ? bs : v128.load(b + p, 16);
    v128.store(out + p, f.apply(va0, vb0));
    v128.store(out + p, f.apply(va1, vb1), 16);
  }
  for (; i < n; i += 4) {
    const p = <usize>i << 2;
    const r = n - i;
    const va = mode == 2 ? as : r >= 4 ? v128.load(a + p) : loadPart(a + p, r);
    const vb = mode == 1 ? bs : r >= 4 ? v128.load(b + p) : loadPart(b + p, r);
    const v = f.apply(va, vb);
    if (r >= 4) v128.store(out + p, v);
    else storePart(out + p, v, r);
  }
}

@inline function binaryLoopStrided<F extends BinaryFn>(a: usize, sa: i32, b: usize, sb: i32, out: usize, n: i32): void {
  const f = changetype<F>(0);
  const sab = <usize>sa << 2;
  const sbb = <usize>sb << 2;
  let i = 0;
  for (; i < n; i += 4) {
    const r = min(4, n - i);
    const va = loadStrided(a + <usize>i * sab, sab, r);
    const vb = loadStrided(b + <usize>i * sbb, sbb, r);
    const vo = f.apply(va, vb);
    if (r == 4) v128.store(out + (<usize>i << 2), vo);
    else storePart(out + (<usize>i << 2), vo, r);
  }
}

/** out[i] = op(x[i]) for i < n (contiguous). */
export function unaryRun(op: i32, x: usize, out: usize, n: i32): void {
  switch (op) {
    case U_COPY: unaryLoop<F_U_COPY>(x, out, n); return;
    case U_NEG: unaryLoop<F_U_NEG>(x, out, n); return;
    case U_ABS: unaryLoop<F_U_ABS>(x, out, n); return;
    case U_SIGN: unaryLoop<F_U_SIGN>(x, out, n); return;
    case U_EXP: unaryLoop<F_U_EXP>(x, out, n); return;
    case U_LOG: unaryLoop<F_U_LOG>(x, out, n); return;
    case U_LOG1P: unaryLoop<F_U_LOG1P>(x, out, n); return;
    case U_SQRT: unaryLoop<F_U_SQRT>(x, out, n); return;
    case U_SQUARE: unaryLoop<F_U_SQUARE>(x, out, n); return;
    case U_RECIPROCAL: unaryLoop<F_U_RECIPROCAL>(x, out, n); return;
    case U_SIN: unaryLoop<F_U_SIN>(x, out, n); return;
    case U_COS: unaryLoop<F_U_COS>(x, out, n); return;
    case U_TANH: unaryLoop<F_U_TANH>(x, out, n); return;
    case U_SIGMOID: unaryLoop<F_U_SIGMOID>(x, out, n); return;
    case U_RELU: unaryLoop<F_U_RELU>(x, out, n); return;
    case U_SOFTPLUS: unaryLoop<F_U_SOFTPLUS>(x, out, n); return;
    case U_CAST_I32_TO_F32: unaryLoop<F_U_I2F>(x, out, n); return;
    case U_CAST_F32_TO_I32: unaryLoop<F_U_F2I>(x, out, n); return;
    case U_NEG_I32: unaryLoop<F_U_NEG_I32>(x, out, n); return;
    case U_ABS_I32: unaryLoop<F_U_ABS_I32>(x, out, n); return;
    case U_RSQRT: unaryLoop<F_U_RSQRT>(x, out, n); return;
    case U_FLOOR: unaryLoop<F_U_FLOOR>(x, out, n); return;
    case U_CEIL: unaryLoop<F_U_CEIL>(x, out, n); return;
    case U_ROUND: unaryLoop<F_U_ROUND>(x, out, n); return;
    case U_ERF: unaryLoop<F_U_ERF>(x, out, n); return;
  }
}

/** out[i] = op(a, b) over n elements; a, b contiguous. */
export function binaryRunVV(op: i32, a: usize, b: usize, out: usize, n: i32): void {
  switch (op) {
    case B_ADD: binaryLoop<F_B_ADD>(0, a, b, out, n); return;
    case B_SUB: binaryLoop<F_B_SUB>(0, a, b, out, n); return;
    case B_MUL: binaryLoop<F_B_MUL>(0, a, b, out, n); return;
    case B_DIV: binaryLoop<F_B_DIV>(0, a, b, out, n); return;
    case B_POW: binaryLoop<F_B_POW>(0, a, b, out, n); return;
    case B_MAXIMUM: binaryLoop<F_B_MAX>(0, a, b, out, n); return;
    case B_MINIMUM: binaryLoop<F_B_MIN>(0, a, b, out, n); return;
    case B_GREATER: binaryLoop<F_B_GT>(0, a, b, out, n); return;
    case B_LESS: binaryLoop<F_B_LT>(0, a, b, out, n); return;
    case B_EQUAL: binaryLoop<F_B_EQ>(0, a, b, out, n); return;
    case B_GREATER_EQUAL: binaryLoop<F_B_GE>(0, a, b, out, n); return;
    case B_LESS_EQUAL: binaryLoop<F_B_LE>(0, a, b, out, n); return;
    case B_NOT_EQUAL: binaryLoop<F_B_NE>(0, a, b, out, n); return;
    case B_ADD_I32: binaryLoop<F_B_ADD_I32>(0, a, b, out, n); return;
    case B_SUB_I32: binaryLoop<F_B_SUB_I32>(0, a, b, out, n); return;
    case B_MUL_I32: binaryLoop<F_B_MUL_I32>(0, a, b, out, n); return;
    case B_MAXIMUM_I32: binaryLoop<F_B_MAX_I32>(0, a, b, out, n); return;
    case B_MINIMUM_I32: binaryLoop<F_B_MIN_I32>(0, a, b, out, n); return;
    case B_GREATER_I32: binaryLoop<F_B_GT_I32>(0, a, b, out, n); return;
    case B_LESS_I32: binaryLoop<F_B_LT_I32>(0, a, b, out, n); return;
    case B_EQUAL_I32: binaryLoop<F_B_EQ_I32>(0, a, b, out, n); return;
    case B_GREATER_EQUAL_I32: binaryLoop<F_B_GE_I32>(0, a, b, out, n); return;
    case B_LESS_EQUAL_I32: binaryLoop<F_B_LE_I32>(0, a, b, out, n); return;
    case B_NOT_EQUAL_I32: binaryLoop<F_B_NE_I32>(0, a, b, out, n); return;
  }
}

/** out[i] = op(a, b) over n elements; b is a single scalar at b. */
export function binaryRunVS(op: i32, a: usize, b: usize, out: usize, n: i32): void {
  switch (op) {
    case B_ADD: binaryLoop<F_B_ADD>(1, a, b, out, n); return;
    case B_SUB: binaryLoop<F_B_SUB>(1, a, b, out, n); return;
    case B_MUL: binaryLoop<F_B_MUL>(1, a, b, out, n); return;
    case B_DIV: binaryLoop<F_B_DIV>(1, a, b, out, n); return;
    case B_POW: binaryLoop<F_B_POW>(1, a, b, out, n); return;
    case B_MAXIMUM: binaryLoop<F_B_MAX>(1, a, b, out, n); return;
    case B_MINIMUM: binaryLoop<F_B_MIN>(1, a, b, out, n); return;
    case B_GREATER: binaryLoop<F_B_GT>(1, a, b, out, n); return;
    case B_LESS: binaryLoop<F_B_LT>(1, a, b, out, n); return;
    case B_EQUAL: binaryLoop<F_B_EQ>(1, a, b, out, n); return;
    case B_GREATER_EQUAL: binaryLoop<F_B_GE>(1, a, b, out, n); return;
    case B_LESS_EQUAL: binaryLoop<F_B_LE>(1, a, b, out, n); return;
    case B_NOT_EQUAL: binaryLoop<F_B_NE>(1, a, b, out, n); return;
    case B_ADD_I32: binaryLoop<F_B_ADD_I32>(1, a, b, out, n); return;
    case B_SUB_I32: binaryLoop<F_B_SUB_I32>(1, a, b, out, n); return;
    case B_MUL_I32: binaryLoop<F_B_MUL_I32>(1, a, b, out, n); return;
    case B_MAXIMUM_I32: binaryLoop<F_B_MAX_I32>(1, a, b, out, n); return;
    case B_MINIMUM_I32: binaryLoop<F_B_MIN_I32>(1, a, b, out, n); return;
    case B_GREATER_I32: binaryLoop<F_B_GT_I32>(1, a, b, out, n); return;
    case B_LESS_I32: binaryLoop<F_B_LT_I32>(1, a, b, out, n); return;
    case B_EQUAL_I32: binaryLoop<F_B_EQ_I32>(1, a, b, out, n); return;
    case B_GREATER_EQUAL_I32: binaryLoop<F_B_GE_I32>(1, a, b, out, n); return;
    case B_LESS_EQUAL_I32: binaryLoop<F_B_LE_I32>(1, a, b, out, n); return;
    case B_NOT_EQUAL_I32: binaryLoop<F_B_NE_I32>(1, a, b, out, n); return;
  }
}

/**
 * out[i] = op(a, b) over n elements; a is a single scalar at a. Only the ops that do not commute
 * (up to swapping a comparison) get loops of their own; the rest run binaryRunVS with the operands
 * swapped, which gives the same bits (IEEE addition, multiplication, min, max and comparisons are
 * symmetric) and keeps one copy of each loop in the module.
 */
export function binaryRunSV(op: i32, a: usize, b: usize, out: usize, n: i32): void {
  switch (op) {
    case B_SUB: binaryLoop<F_B_SUB>(2, a, b, out, n); return;
    case B_DIV: binaryLoop<F_B_DIV>(2, a, b, out, n); return;
    case B_POW: binaryLoop<F_B_POW>(2, a, b, out, n); return;
    case B_SUB_I32: binaryLoop<F_B_SUB_I32>(2, a, b, out, n); return;
  }
  binaryRunVS(swapped(op), b, a, out, n);
}

/** The op giving op(a, b) from operands (b, a). */
function swapped(op: i32): i32 {
  switch (op) {
    case B_GREATER: return B_LESS;
    case B_LESS: return B_GREATER;
    case B_GREATER_EQUAL: return B_LESS_EQUAL;
    case B_LESS_EQUAL: return B_GREATER_EQUAL;
    case B_GREATER_I32: return B_LESS_I32;
    case B_LESS_I32: return B_GREATER_I32;
    case B_GREATER_EQUAL_I32: return B_LESS_EQUAL_I32;
    case B_LESS_EQUAL_I32: return B_GREATER_EQUAL_I32;
  }
  return op;
}

/** General element strides (any, incl. 0). */
export function binaryRunStrided(op: i32, a: usize, sa: i32, b: usize, sb: i32, out: usize, n: i32): void {
  switch (op) {
    case B_ADD: binaryLoopStrided<F_B_ADD>(a, sa, b, sb, out, n); return;
    case B_SUB: binaryLoopStrided<F_B_SUB>(a, sa, b, sb, out, n); return;
    case B_MUL: binaryLoopStrided<F_B_MUL>(a, sa, b, sb, out, n); return;
    case B_DIV: binaryLoopStrided<F_B_DIV>(a, sa, b, sb, out, n); return;
    case B_POW: binaryLoopStrided<F_B_POW>(a, sa, b, sb, out, n); return;
    case B_MAXIMUM: binaryLoopStrided<F_B_MAX>(a, sa, b, sb, out, n); return;
    case B_MINIMUM: binaryLoopStrided<F_B_MIN>(a, sa, b, sb, out, n); return;
    case B_GREATER: binaryLoopStrided<F_B_GT>(a, sa, b, sb, out, n); return;
    case B_LESS: binaryLoopStrided<F_B_LT>(a, sa, b, sb, out, n); return;
    case B_EQUAL: binaryLoopStrided<F_B_EQ>(a, sa, b, sb, out, n); return;
    case B_GREATER_EQUAL: binaryLoopStrided<F_B_GE>(a, sa, b, sb, out, n); return;
    case B_LESS_EQUAL: binaryLoopStrided<F_B_LE>(a, sa, b, sb, out, n); return;
    case B_NOT_EQUAL: binaryLoopStrided<F_B_NE>(a, sa, b, sb, out, n); return;
    case B_ADD_I32: binaryLoopStrided<F_B_ADD_I32>(a, sa, b, sb, out, n); return;
    case B_SUB_I32: binaryLoopStrided<F_B_SUB_I32>(a, sa, b, sb, out, n); return;
    case B_MUL_I32: binaryLoopStrided<F_B_MUL_I32>(a, sa, b, sb, out, n); return;
    case B_MAXIMUM_I32: binaryLoopStrided<F_B_MAX_I32>(a, sa, b, sb, out, n); return;
    case B_MINIMUM_I32: binaryLoopStrided<F_B_MIN_I32>(a, sa, b, sb, out, n); return;
    case B_GREATER_I32: binaryLoopStrided<F_B_GT_I32>(a, sa, b, sb, out, n); return;
    case B_LESS_I32: binaryLoopStrided<F_B_LT_I32>(a, sa, b, sb, out, n); return;
    case B_EQUAL_I32: binaryLoopStrided<F_B_EQ_I32>(a, sa, b, sb, out, n); return;
    case B_GREATER_EQUAL_I32: binaryLoopStrided<F_B_GE_I32>(a, sa, b, sb, out, n); return;
    case B_LESS_EQUAL_I32: binaryLoopStrided<F_B_LE_I32>(a, sa, b, sb, out, n); return;
    case B_NOT_EQUAL_I32: binaryLoopStrided<F_B_NE_I32>(a, sa, b, sb, out, n); return;
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
