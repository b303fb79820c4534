// Vectorised float32 math (f32x4). Range reduction + minimax polynomials in the
// style of Cephes' single-precision routines; every function handles inf/nan.

// ---- small helpers -------------------------------------------------------

@inline export function splat(x: f32): v128 {
  return f32x4.splat(x);
}

@inline export function fma4(a: v128, b: v128, c: v128): v128 {
  // a * b + c ; fused on relaxed-SIMD builds
  if (ASC_FEATURE_RELAXED_SIMD) {
    return f32x4.relaxed_madd(a, b, c);
  } else {
    return f32x4.add(f32x4.mul(a, b), c);
  }
}

@inline function poly(x: v128, c0: f32, c1: f32): v128 {
  return f32x4.add(f32x4.mul(x, f32x4.splat(c0)), f32x4.splat(c1));
}

@inline function step(p: v128, x: v128, c: f32): v128 {
  return f32x4.add(f32x4.mul(p, x), f32x4.splat(c));
}

@inline export function vsel(ifTrue: v128, ifFalse: v128, mask: v128): v128 {
  return v128.bitselect(ifTrue, ifFalse, mask);
}

// ---- exp -----------------------------------------------------------------

@inline export function vexp(x: v128): v128 {
  // pmin/pmax (single instructions) keep a nan x because x is the first operand
  const xc = f32x4.pmin(f32x4.pmax(x, f32x4.splat(-104.0)), f32x4.splat(88.8));
  // round-to-nearest via the 1.5·2^23 magic number: its low mantissa bits hold n as an integer
  const magic = f32x4.splat(12582912.0);
  const nm = f32x4.add(f32x4.mul(xc, f32x4.splat(1.44269504088896341)), magic);
  const n = f32x4.sub(nm, magic);
  let r = f32x4.sub(xc, f32x4.mul(n, f32x4.splat(0.693359375)));
  r = f32x4.sub(r, f32x4.mul(n, f32x4.splat(-2.12194440e-4)));
  let p = poly(r, 1.9875691500e-4, 1.3981999507e-3);
  p = step(p, r, 8.3334519073e-3);
  p = step(p, r, 4.1665795894e-2);
  p = step(p, r, 1.6666665459e-1);
  p = step(p, r, 5.0000001201e-1);
  const r2 = f32x4.mul(r, r);
  let y = f32x4.add(f32x4.add(f32x4.mul(r2, p), r), f32x4.splat(1.0));
  const ni = i32x4.sub(nm, magic);
  const n1 = i32x4.shr_s(ni, 1);
  const n2 = i32x4.sub(ni, n1);
  const s1 = i32x4.shl(i32x4.add(n1, i32x4.splat(127)), 23);
  const s2 = i32x4.shl(i32x4.add(n2, i32x4.splat(127)), 23);
  y = f32x4.mul(f32x4.mul(y, s1), s2);
  y = vsel(f32x4.splat(Infinity), y, f32x4.gt(x, f32x4.splat(88.72283935546875)));
  y = vsel(f32x4.splat(0.0), y, f32x4.lt(x, f32x4.splat(-103.98)));
  return y;
}

// ---- log -----------------------------------------------------------------

@inline export function vlog(x: v128): v128 {
  const small = f32x4.lt(x, f32x4.splat(1.17549435e-38));
  const xs = vsel(f32x4.mul(x, f32x4.splat(8388608.0)), x, small);
  const eadj = v128.and(small, f32x4.splat(-23.0));
  const e = i32x4.sub(v128.and(i32x4.shr_u(xs, 23), i32x4.splat(0xff)), i32x4.splat(126));
  let m = v128.or(v128.and(xs, i32x4.splat(0x007fffff)), i32x4.splat(0x3f000000));
  let ef = f32x4.add(f32x4.convert_i32x4_s(e), eadj);
  const lt = f32x4.lt(m, f32x4.splat(0.707106781186547524));
  ef = f32x4.sub(ef, v128.and(lt, f32x4.splat(1.0)));
  m = f32x4.sub(f32x4.add(m, v128.and(lt, m)), f32x4.splat(1.0));
  const z = f32x4.mul(m, m);
  let p = poly(m, 7.0376836292e-2, -1.151461031e-1);
  p = step(p, m, 1.167699874e-1);
  p = step(p, m, -1.2420140846e-1);
  p = step(p, m, 1.4249322787e-1);
  p = step(p, m, -1.6668057665e-1);
  p = step(p, m, 2.0000714765e-1);
  p = step(p, m, -2.4999993993e-1);
  p = step(p, m, 3.3333331174e-1);
  let y = f32x4.mul(f32x4.mul(p, m), z);
  y = f32x4.add(y, f32x4.mul(ef, f32x4.splat(-2.12194440e-4)));
  y = f32x4.add(y, f32x4.mul(z, f32x4.splat(-0.5)));
  let r = f32x4.add(f32x4.add(m, y), f32x4.mul(ef, f32x4.splat(0.693359375)));
  r = vsel(f32x4.splat(Infinity), r, f32x4.eq(x, f32x4.splat(Infinity)));
  r = vsel(f32x4.splat(-Infinity), r, f32x4.eq(x, f32x4.splat(0.0)));
  // x < 0 or nan -> nan
  r = vsel(r, f32x4.splat(NaN), f32x4.ge(x, f32x4.splat(0.0)));
  return r;
}

@inline export function vlog1p(x: v128): v128 {
  const u = f32x4.add(x, f32x4.splat(1.0));
  const d = f32x4.sub(u, f32x4.splat(1.0));
  let r = f32x4.mul(vlog(u), f32x4.div(x, d));
  r = vsel(x, r, f32x4.eq(d, f32x4.splat(0.0)));
  r = vsel(x, r, f32x4.eq(x, f32x4.splat(Infinity)));
  return r;
}

// ---- sin / cos -----------------------------------------------------------

@inline function sinPoly(x: v128, z: v128): v128 {
  let p = poly(z, -1.9515295891e-4, 8.3321608736e-3);
  p = step(p, z, -1.6666654611e-1);
  return f32x4.add(x, f32x4.mul(f32x4.mul(x, z), p));
}

@inline function cosPoly(z: v128): v128 {
  let p = poly(z, 2.443315711809948e-5, -1.388731625493765e-3);
  p = step(p, z, 4.166664568298827e-2);
  return f32x4.add(f32x4.sub(f32x4.splat(1.0), f32x4.mul(z, f32x4.splat(0.5))), f32x4.mul(f32x4.mul(z, z), p));
}

@inline export function vsin(x: v128): v128 {
  const ax = f32x4.abs(x);
  let j = i32x4.trunc_sat_f32x4_s(f32x4.mul(ax, f32x4.splat(1.27323954473516)));
  j = v128.and(i32x4.add(j, i32x4.splat(1)), i32x4.splat(-2));
  const yj = f32x4.convert_i32x4_s(j);
  let r = f32x4.sub(ax, f32x4.mul(yj, f32x4.splat(0.78515625)));
  r = f32x4.sub(r, f32x4.mul(yj, f32x4.splat(2.4187564849853515625e-4)));
  r = f32x4.sub(r, f32x4.mul(yj, f32x4.splat(3.77489497744594108e-8)));
  const z = f32x4.mul(r, r);
  const useCos = i32x4.eq(v128.and(j, i32x4.splat(2)), i32x4.splat(2));
  let res = vsel(cosPoly(z), sinPoly(r, z), useCos);
  const sign = v128.xor(v128.and(x, i32x4.splat(0x80000000)), i32x4.shl(v128.and(j, i32x4.splat(4)), 29));
  res = v128.xor(res, sign);
  return vsel(res, f32x4.splat(NaN), f32x4.lt(ax, f32x4.splat(Infinity)));
}

@inline export function vcos(x: v128): v128 {
  const ax = f32x4.abs(x);
  let j = i32x4.trunc_sat_f32x4_s(f32x4.mul(ax, f32x4.splat(1.27323954473516)));
  j = v128.and(i32x4.add(j, i32x4.splat(1)), i32x4.splat(-2));
  const yj = f32x4.convert_i32x4_s(j);
  let r = f32x4.sub(ax, f32x4.mul(yj, f32x4.splat(0.78515625)));
  r = f32x4.sub(r, f32x4.mul(yj, f32x4.splat(2.4187564849853515625e-4)));
  r = f32x4.sub(r, f32x4.mul(yj, f32x4.splat(3.77489497744594108e-8)));
  const z = f32x4.mul(r, r);
  const useSin = i32x4.eq(v128.and(j, i32x4.splat(2)), i32x4.splat(2));
  let res = vsel(sinPoly(r, z), cosPoly(z), useSin);
  const sign = i32x4.shl(v128.and(i32x4.add(j, i32x4.splat(2)), i32x4.splat(4)), 29);
  res = v128.xor(res, sign);
  return vsel(res, f32x4.splat(NaN), f32x4.lt(ax, f32x4.splat(Infinity)));
}

// ---- tanh / sigmoid / softplus ---------------------------------------------

@inline export function vtanh(x: v128): v128 {
  const ax = f32x4.abs(x);
  const z = f32x4.mul(x, x);
  let p = poly(z, -5.70498872745e-3, 2.06390887954e-2);
  p = step(p, z, -5.37397155531e-2);
  p = step(p, z, 1.33314422036e-1);
  p = step(p, z, -3.33332819422e-1);
  const ys = f32x4.add(x, f32x4.mul(f32x4.mul(x, z), p));
  const e = vexp(f32x4.add(ax, ax));
  let yl = f32x4.sub(f32x4.splat(1.0), f32x4.div(f32x4.splat(2.0), f32x4.add(e, f32x4.splat(1.0))));
  yl = v128.or(yl, v128.and(x, i32x4.splat(0x80000000)));
  return vsel(ys, yl, f32x4.lt(ax, f32x4.splat(0.625)));
}

@inline export function vsigmoid(x: v128): v128 {
  const e = vexp(f32x4.neg(x));
  return f32x4.div(f32x4.splat(1.0), f32x4.add(f32x4.splat(1.0), e));
}

@inline export function vsoftplus(x: v128): v128 {
  const e = vexp(f32x4.neg(f32x4.abs(x)));
  return f32x4.add(f32x4.max(x, f32x4.splat(0.0)), vlog1p(e));
}

// ---- erf -----------------------------------------------------------------

@inline export function verf(x: v128): v128 {
  // |x| < 0.5: Taylor series x·(2/√π)·(1 − x²/3 + x⁴/10 − x⁶/42 + x⁸/216 − x¹⁰/1320);
  // else 1 − erfc(|x|) with Numerical Recipes' Chebyshev fit of erfc (relative error < 1.2e-7), signed.
  const ax = f32x4.abs(x);
  const z = f32x4.mul(x, x);
  let p = poly(z, -7.575757575757576e-4, 4.6296296296296296e-3);
  p = step(p, z, -2.3809523809523808e-2);
  p = step(p, z, 0.1);
  p = step(p, z, -0.3333333333333333);
  p = step(p, z, 1.0);
  const ys = f32x4.mul(f32x4.mul(x, p), f32x4.splat(1.1283791670955126));
  const t = f32x4.div(f32x4.splat(1.0), f32x4.add(f32x4.splat(1.0), f32x4.mul(f32x4.splat(0.5), ax)));
  let q = poly(t, 0.17087277, -0.82215223);
  q = step(q, t, 1.48851587);
  q = step(q, t, -1.13520398);
  q = step(q, t, 0.27886807);
  q = step(q, t, -0.18628806);
  q = step(q, t, 0.09678418);
  q = step(q, t, 0.37409196);
  q = step(q, t, 1.00002368);
  q = step(q, t, -1.26551223);
  const erfc = f32x4.mul(t, vexp(f32x4.sub(q, z)));
  let yl = f32x4.sub(f32x4.splat(1.0), erfc);
  yl = v128.or(yl, v128.and(x, i32x4.splat(0x80000000)));
  // a nan x fails the comparison and takes yl, which is nan
  return vsel(ys, yl, f32x4.lt(ax, f32x4.splat(0.5)));
}

// ---- pow -----------------------------------------------------------------

@inline export function vpow(a: v128, b: v128): v128 {
  const aa = f32x4.abs(a);
  let r = vexp(f32x4.mul(b, vlog(aa)));
  // negative base: integer exponent -> sign by parity, else nan
  const bInt = f32x4.eq(f32x4.trunc(b), b);
  const bHalf = f32x4.mul(b, f32x4.splat(0.5));
  const odd = v128.andnot(bInt, f32x4.eq(f32x4.trunc(bHalf), bHalf));
  const neg = f32x4.lt(a, f32x4.splat(0.0));
  r = vsel(v128.xor(r, v128.and(odd, i32x4.splat(0x80000000))), r, v128.and(neg, bInt));
  r = vsel(f32x4.splat(NaN), r, v128.andnot(neg, bInt));
  // x^0 = 1 (also for nan), 1^y = 1
  r = vsel(f32x4.splat(1.0), r, v128.or(f32x4.eq(b, f32x4.splat(0.0)), f32x4.eq(a, f32x4.splat(1.0))));
  return r;
}
