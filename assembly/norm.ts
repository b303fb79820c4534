// Layer and RMS normalization over the rows of a [rows, cols] matrix, with scale and shift:
// out = (x - mean) / sqrt(var + eps) * g + b   (rms: x / sqrt(mean(x²) + eps) * g + b),
// and x's cotangent for ct: r * (h - mean(h) - x̂ * mean(h * x̂)) with h = ct * g (rms: no mean(h)).
// One read of each row from memory: its statistics are taken while it sits in cache.

export const NORM_RMS: i32 = 1;
export const NORM_BACKWARD: i32 = 2;

@inline function hsum(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
}

/** Σ (x[j] - s) over a row: with s one of the row's values, the sum loses nothing to a large common offset. */
@inline function rowSum(x: usize, n: i32, s: f32): f32 {
  const sv = f32x4.splat(s);
  let s0 = f32x4.splat(0.0), s1 = f32x4.splat(0.0);
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const p = x + (<usize>i << 2);
    s0 = f32x4.add(s0, f32x4.sub(v128.load(p), sv));
    s1 = f32x4.add(s1, f32x4.sub(v128.load(p, 16), sv));
  }
  let t = hsum(f32x4.add(s0, s1));
  for (; i < n; i++) t += load<f32>(x + (<usize>i << 2)) - s;
  return t;
}

/** Σ (x[j] - mu)² over a row (two passes: exact for rows far from zero). */
@inline function rowSquares(x: usize, n: i32, mu: f32): f32 {
  const m = f32x4.splat(mu);
  let s0 = f32x4.splat(0.0), s1 = f32x4.splat(0.0);
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const p = x + (<usize>i << 2);
    const d0 = f32x4.sub(v128.load(p), m);
    const d1 = f32x4.sub(v128.load(p, 16), m);
    s0 = f32x4.add(s0, f32x4.mul(d0, d0));
    s1 = f32x4.add(s1, f32x4.mul(d1, d1));
  }
  let s = hsum(f32x4.add(s0, s1));
  for (; i < n; i++) {
    const d = load<f32>(x + (<usize>i << 2)) - mu;
    s += d * d;
  }
  return s;
}

/**
 * Normalizes `rows` rows (t = b), or with NORM_BACKWARD writes x's cotangent (t = ct). flags:
 * NORM_RMS | NORM_BACKWARD. out may alias x (forward) or ct (backward).
 */
export function layerNormRows(
  x: usize, g: usize, t: usize, out: usize, rows: i32, cols: i32, eps: f32, flags: i32,
): void {
  const rms = (flags & NORM_RMS) != 0;
  for (let r = 0; r < rows; r++) {
    const o = (<usize>r * <usize>cols) << 2;
    const xr = x + o;
    const yr = out + o;
    const x0 = load<f32>(xr);
    const mu: f32 = rms ? 0 : x0 + rowSum(xr, cols, x0) / <f32>cols;
    const k: f32 = 1.0 / Mathf.sqrt(rowSquares(xr, cols, mu) / <f32>cols + eps);
    if ((flags & NORM_BACKWARD) != 0) backwardRow(xr, g, t + o, yr, cols, mu, k, rms);
    else forwardRow(xr, g, t, yr, cols, mu, k);
  }
}

@inline function forwardRow(xr: usize, g: usize, b: usize, yr: usize, cols: i32, mu: f32, k: f32): void {
  const mv = f32x4.splat(mu);
  const kv = f32x4.splat(k);
  let i = 0;
  for (; i + 4 <= cols; i += 4) {
    const p = <usize>i << 2;
    const v = f32x4.mul(f32x4.sub(v128.load(xr + p), mv), kv);
    v128.store(yr + p, f32x4.add(f32x4.mul(v, v128.load(g + p)), v128.load(b + p)));
  }
  for (; i < cols; i++) {
    const p = <usize>i << 2;
    store<f32>(yr + p, (load<f32>(xr + p) - mu) * k * load<f32>(g + p) + load<f32>(b + p));
  }
}

@inline function backwardRow(xr: usize, g: usize, cr: usize, yr: usize, cols: i32, mu: f32, k: f32, rms: bool): void {
  const mv = f32x4.splat(mu);
  const kv = f32x4.splat(k);
  // Σ h and Σ h·x̂ over the row, h = ct·g, x̂ = (x - mu)·k
  let sh = f32x4.splat(0.0), shx = f32x4.splat(0.0);
  let i = 0;
  for (; i + 4 <= cols; i += 4) {
    const p = <usize>i << 2;
    const h = f32x4.mul(v128.load(cr + p), v128.load(g + p));
    sh = f32x4.add(sh, h);
    shx = f32x4.add(shx, f32x4.mul(h, f32x4.mul(f32x4.sub(v128.load(xr + p), mv), kv)));
  }
  let a = hsum(sh), c = hsum(shx);
  for (let j = i; j < cols; j++) {
    const p = <usize>j << 2;
    const h = load<f32>(cr + p) * load<f32>(g + p);
    a += h;
    c += h * (load<f32>(xr + p) - mu) * k;
  }
  const m: f32 = rms ? 0 : a / <f32>cols;
  const q: f32 = c / <f32>cols;
  const m4 = f32x4.splat(m);
  const q4 = f32x4.splat(q);
  i = 0;
  for (; i + 4 <= cols; i += 4) {
    const p = <usize>i << 2;
    const h = f32x4.mul(v128.load(cr + p), v128.load(g + p));
    const xh = f32x4.mul(f32x4.sub(v128.load(xr + p), mv), kv);
    v128.store(yr + p, f32x4.mul(kv, f32x4.sub(f32x4.sub(h, m4), f32x4.mul(xh, q4))));
  }
  for (; i < cols; i++) {
    const p = <usize>i << 2;
    const h = load<f32>(cr + p) * load<f32>(g + p);
    store<f32>(yr + p, k * (h - m - (load<f32>(xr + p) - mu) * k * q));
  }
}

/**
 * Mean and biased variance of each column of x [rows, cols] into out [2, cols], in one pass over
 * x. Sums are of d = x - x[0, column] (a value of the column, so a large common offset costs no
 * accuracy), gathered in float32 over blocks of 64 rows and added up in float64. scratch:
 * momentsScratchBytes(cols). No rows: NaN, as 0/0.
 */
export function momentsCols(x: usize, out: usize, rows: i32, cols: i32, scratch: usize): void {
  const cb = <usize>cols << 2;
  const s1 = scratch;
  const s2 = s1 + (cb << 1);
  const b1 = s2 + (cb << 1);
  const b2 = b1 + cb;
  memory.fill(s1, 0, cb << 2);
  for (let r0 = 0; r0 < rows; r0 += 64) {
    const r1 = min(rows, r0 + 64);
    memory.fill(b1, 0, cb << 1);
    for (let r = r0; r < r1; r++) {
      const row = x + <usize>r * cb;
      let c = 0;
      for (; c + 4 <= cols; c += 4) {
        const p = <usize>c << 2;
        const d = f32x4.sub(v128.load(row + p), v128.load(x + p));
        v128.store(b1 + p, f32x4.add(v128.load(b1 + p), d));
        v128.store(b2 + p, f32x4.add(v128.load(b2 + p), f32x4.mul(d, d)));
      }
      for (; c < cols; c++) {
        const p = <usize>c << 2;
        const d = load<f32>(row + p) - load<f32>(x + p);
        store<f32>(b1 + p, load<f32>(b1 + p) + d);
        store<f32>(b2 + p, load<f32>(b2 + p) + d * d);
      }
    }
    for (let c = 0; c < cols; c++) {
      const p = <usize>c << 3;
      store<f64>(s1 + p, load<f64>(s1 + p) + <f64>load<f32>(b1 + (<usize>c << 2)));
      store<f64>(s2 + p, load<f64>(s2 + p) + <f64>load<f32>(b2 + (<usize>c << 2)));
    }
  }
  const n = <f64>rows;
  for (let c = 0; c < cols; c++) {
    const m = load<f64>(s1 + (<usize>c << 3)) / n;
    const shift = rows > 0 ? <f64>load<f32>(x + (<usize>c << 2)) : 0;
    store<f32>(out + (<usize>c << 2), <f32>(shift + m));
    store<f32>(out + cb + (<usize>c << 2), <f32>max(load<f64>(s2 + (<usize>c << 3)) / n - m * m, 0));
  }
}

export function momentsScratchBytes(cols: i32): i32 {
  return cols * 24;
}
