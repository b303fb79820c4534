/**
 * Pieces shared by the WGSL kernels of this backend: scalar math helpers with the reference
 * interpreter's semantics, uniform packing, dimension coalescing and the invocation index.
 *
 * Why the helpers exist (measured on Dawn + lavapipe, allowed by the WGSL spec elsewhere):
 * builtin max/min drop NaN, `!=` is an ordered compare (NaN != 1 is false), i32(f32) saturates at
 * 2147483520, tanh is inaccurate near 0, pow is undefined for a < 0, log's error near 1 is
 * absolute (2^-21), and the shader compiler folds (1 + x) - 1 to x, x - x to 0 and x * 0.0 to 0
 * (so no compensated formulas, and literal zeros never multiply data). NaN tests use bit patterns.
 *
 * Shapes, strides and constants travel in uniforms, never in the source, so one pipeline serves
 * every shape. Uniforms are a flat `array<vec4<u32>, N>` read as words.
 */

/** Largest rank a kernel takes after coalescing; shapes above it are declined. */
export const MAX_RANK = 8;
/** Invocations per workgroup of the elementwise and copy kernels (SwiftShader allows 256). */
export const WG = 256;

/** Scalar helpers, each with the helpers it calls. Emitted in this order, only when used. */
const HELPERS: [name: string, deps: string[], code: string][] = [
  ['isnanf', [], 'fn isnanf(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }'],
  ['nanf', [], 'fn nanf() -> f32 { let b = 0x7fc00000u; return bitcast<f32>(b); }'],
  ['inff', [], 'fn inff() -> f32 { let b = 0x7f800000u; return bitcast<f32>(b); }'],
  [
    // log(1 + x) for |x| < 0.25 by the atanh series: 2s(1 + s^2/3 + s^4/5 + ...), s = x / (2 + x).
    'lnpoly',
    [],
    `fn lnpoly(x: f32) -> f32 {
  let s = x / (2.0 + x);
  let z = s * s;
  return 2.0 * s * (1.0 + z * (0.33333333333 + z * (0.2 + z * (0.14285714286 + z * 0.11111111111))));
}`,
  ],
  [
    // Special values explicitly: some adapters' log (SwiftShader) gives finite values for 0 and NaN.
    'logf',
    ['lnpoly', 'nanf', 'inff', 'isnanf'],
    `fn logf(x: f32) -> f32 {
  if (isnanf(x) || x == inff()) { return x; }
  if (x == 0.0) { return -inff(); }
  if (abs(x - 1.0) < 0.25) { return lnpoly(x - 1.0); }
  return select(log(x), nanf(), x < 0.0);
}`,
  ],
  [
    'log1pf',
    ['lnpoly', 'nanf', 'inff', 'isnanf'],
    `fn log1pf(x: f32) -> f32 {
  if (isnanf(x) || x == inff()) { return x; }
  if (x == -1.0) { return -inff(); }
  if (abs(x) < 0.25) { return lnpoly(x); }
  return select(log(1.0 + x), nanf(), x < -1.0);
}`,
  ],
  [
    'expf',
    ['isnanf', 'inff'],
    `fn expf(x: f32) -> f32 {
  if (isnanf(x)) { return x; }
  if (x > 88.72284) { return inff(); }
  if (x < -103.97208) { return 0.0; }
  return exp(x);
}`,
  ],
  [
    // sin and cos as the wasm kernels compute them (assembly/math.ts): reduction by pi/4 in three
    // parts, then minimax polynomials on [-pi/4, pi/4]; the builtins are only as accurate as
    // WGSL promises (2^-11 absolute), which some adapters take literally.
    'sincospoly',
    [],
    `fn sinpolyf(r: f32, z: f32) -> f32 {
  let p = (-1.9515295891e-4 * z + 8.3321608736e-3) * z - 1.6666654611e-1;
  return r + r * z * p;
}
fn cospolyf(z: f32) -> f32 {
  let p = (2.443315711809948e-5 * z - 1.388731625493765e-3) * z + 4.166664568298827e-2;
  return 1.0 - 0.5 * z + z * z * p;
}
fn octant(ax: f32) -> i32 { return (i32(ax * 1.27323954473516) + 1) & -2; }
fn reduced(ax: f32, j: i32) -> f32 {
  let y = f32(j);
  let r = ax - y * 0.78515625;
  let r2 = r - y * 2.4187564849853515625e-4;
  return r2 - y * 3.77489497744594108e-8;
}`,
  ],
  [
    'sinf',
    ['sincospoly', 'nanf', 'inff'],
    `fn sinf(x: f32) -> f32 {
  let ax = abs(x);
  let j = octant(ax);
  let r = reduced(ax, j);
  let z = r * r;
  let v = select(sinpolyf(r, z), cospolyf(z), (j & 2) == 2);
  let sign = (bitcast<u32>(x) & 0x80000000u) ^ (u32(j & 4) << 29u);
  return select(nanf(), bitcast<f32>(bitcast<u32>(v) ^ sign), ax < inff());
}`,
  ],
  [
    'cosf',
    ['sincospoly', 'nanf', 'inff'],
    `fn cosf(x: f32) -> f32 {
  let ax = abs(x);
  let j = octant(ax);
  let r = reduced(ax, j);
  let z = r * r;
  let v = select(cospolyf(z), sinpolyf(r, z), (j & 2) == 2);
  let sign = u32((j + 2) & 4) << 29u;
  return select(nanf(), bitcast<f32>(bitcast<u32>(v) ^ sign), ax < inff());
}`,
  ],
  ['sqrtf', ['nanf'], 'fn sqrtf(x: f32) -> f32 { return select(sqrt(x), nanf(), x < 0.0); }'],
  [
    // Taylor series to x^15 below 0.55 (relative error < 2e-7); (1 - e) / (1 + e), e = exp(-2|x|), above.
    'tanhf',
    [],
    `fn tanhf(x: f32) -> f32 {
  let a = abs(x);
  if (a < 0.55) {
    let z = x * x;
    return x * (1.0 + z * (-0.33333333333 + z * (0.13333333333 + z * (-0.053968253968 + z * (0.021869488536
      + z * (-0.0088632355299 + z * (0.0035921280366 + z * -0.0014558343870)))))));
  }
  let e = exp(-2.0 * a);
  let t = (1.0 - e) / (1.0 + e);
  return select(t, -t, x < 0.0);
}`,
  ],
  [
    'sigmoidf',
    [],
    `fn sigmoidf(x: f32) -> f32 {
  if (x >= 0.0) { return 1.0 / (1.0 + exp(-x)); }
  let e = exp(x);
  return e / (1.0 + e);
}`,
  ],
  [
    'softplusf',
    ['log1pf'],
    'fn softplusf(x: f32) -> f32 { return select(x, 0.0, x < 0.0) + log1pf(exp(-abs(x))); }',
  ],
  [
    // Taylor series below 0.5; above, 1 - erfc with Numerical Recipes' Chebyshev fit (as the wasm kernel).
    'erff',
    [],
    `fn erff(x: f32) -> f32 {
  let a = abs(x);
  let z = x * x;
  if (a < 0.5) {
    return 1.1283791671 * x * (1.0 + z * (-0.33333333333 + z * (0.1 + z * (-0.023809523810
      + z * (0.0046296296296 + z * -0.00075757575758)))));
  }
  let t = 1.0 / (1.0 + 0.5 * a);
  let q = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806
    + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
  let r = 1.0 - t * exp(q - z);
  return select(r, -r, x < 0.0);
}`,
  ],
  ['signf', [], 'fn signf(x: f32) -> f32 { return select(select(x, -1.0, x < 0.0), 1.0, x > 0.0); }'],
  ['signi', [], 'fn signi(x: i32) -> i32 { return select(select(0i, -1i, x < 0i), 1i, x > 0i); }'],
  // Math.max / Math.min: NaN wins; +0 is above -0.
  [
    'maxf',
    ['isnanf', 'nanf'],
    `fn maxf(a: f32, b: f32) -> f32 {
  if (isnanf(a) || isnanf(b)) { return nanf(); }
  return select(b, a, a > b || (a == b && bitcast<i32>(a) >= 0i));
}`,
  ],
  [
    'minf',
    ['isnanf', 'nanf'],
    `fn minf(a: f32, b: f32) -> f32 {
  if (isnanf(a) || isnanf(b)) { return nanf(); }
  return select(b, a, a < b || (a == b && bitcast<i32>(a) < 0i));
}`,
  ],
  [
    // JavaScript's a ** b: x ** 0 = 1 (even NaN), 1 ** ±Infinity = NaN, signed zeros and infinities.
    'powf',
    ['isnanf', 'nanf', 'inff', 'logf'],
    `fn powf(a: f32, b: f32) -> f32 {
  if (b == 0.0) { return 1.0; }
  if (isnanf(a) || isnanf(b)) { return nanf(); }
  let r = exp(b * logf(abs(a)));
  if ((bitcast<u32>(a) & 0x80000000u) == 0u) { return r; }
  let bfin = abs(b) < inff();
  let bint = bfin && floor(b) == b;
  if (bfin && !bint) { return select(r, nanf(), abs(a) < inff() && a != 0.0); }
  let odd = bint && abs(b) < 16777216.0 && floor(b * 0.5) * 2.0 != b;
  return select(r, -r, odd);
}`,
  ],
  // float -> int32 truncates and saturates; NaN -> 0 (the reference's cast).
  [
    'f2i',
    ['isnanf'],
    `fn f2i(x: f32) -> i32 {
  if (isnanf(x)) { return 0i; }
  if (x >= 2147483648.0) { return 2147483647i; }
  if (x <= -2147483648.0) { return -2147483647i - 1i; }
  return i32(x);
}`,
  ],
  // trunc(a / b) | 0: division by zero gives 0 (WGSL would give a).
  ['idiv', [], 'fn idiv(a: i32, b: i32) -> i32 { return select(0i, a / select(b, 1i, b == 0i), b != 0i); }'],
  [
    // trunc(a ** b) | 0 by squaring with wrapping multiplies (exact while the true power is below 2^53).
    'ipow',
    [],
    `fn ipow(a: i32, b: i32) -> i32 {
  if (b < 0i) {
    if (a == 1i) { return 1i; }
    if (a == -1i) { return select(1i, -1i, (b & 1i) != 0i); }
    return 0i;
  }
  var r = 1i;
  var p = a;
  var e = b;
  loop {
    if (e == 0i) { break; }
    if ((e & 1i) != 0i) { r = r * p; }
    p = p * p;
    e = e >> 1u;
  }
  return r;
}`,
  ],
];

const HELPER_INDEX = new Map(HELPERS.map((h, i) => [h[0], i]));

/** Source of the named helpers and everything they call, in a fixed order (so equal programs give equal sources). */
export function helperSource(names: Iterable<string>): string {
  const want = new Set<number>();
  const add = (name: string) => {
    const i = HELPER_INDEX.get(name);
    if (i === undefined) throw new Error(`adjoint internal error: unknown WGSL helper ${name}`);
    if (want.has(i)) return;
    want.add(i);
    for (const d of HELPERS[i][1]) add(d);
  };
  for (const n of names) add(n);
  return [...want]
    .sort((a, b) => a - b)
    .map((i) => HELPERS[i][2])
    .join('\n');
}

/** Words of a uniform block, packed into vec4s. */
export class Uniforms {
  private readonly words: number[] = [];

  get length(): number {
    return this.words.length;
  }

  u32(v: number): this {
    this.words.push(v >>> 0);
    return this;
  }

  i32(v: number): this {
    this.words.push(v | 0);
    return this;
  }

  /** `count` words from `vals`, zero-padded. */
  array(vals: readonly number[], count: number): this {
    for (let i = 0; i < count; i++) this.words.push((vals[i] ?? 0) | 0);
    return this;
  }

  /** Pads to a multiple of 4 words (a vec4 boundary). */
  align(): this {
    while (this.words.length % 4) this.words.push(0);
    return this;
  }

  finish(): Uint32Array {
    this.align();
    if (this.words.length === 0) this.words.push(0, 0, 0, 0);
    return Uint32Array.from(this.words, (w) => w >>> 0);
  }
}

/**
 * For kernels that give each row a workgroup of `size` invocations: `var<workgroup> red` and
 * `groupSum(li, part)`, the sum of `part` over the workgroup as a tree in a fixed order (the same
 * bits every run), returned to every invocation (call it from uniform control flow); then the head
 * of `main`, which sets `r` (the row, from a 2-D grid of workgroups), `li` (the invocation) and
 * returns past `u.rows`. The caller writes the rest of main's body and its closing brace.
 */
export function rowGroupWgsl(size: number): string {
  return `var<workgroup> red: array<f32, ${size}>;

fn groupSum(li: u32, part: f32) -> f32 {
  red[li] = part;
  workgroupBarrier();
  for (var h = ${size / 2}u; h > 0u; h >>= 1u) {
    if (li < h) { red[li] = red[li] + red[li + h]; }
    workgroupBarrier();
  }
  let s = red[0];
  workgroupBarrier();
  return s;
}

@compute @workgroup_size(${size}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let r = wid.y * nwg.x + wid.x;
  if (r >= u.rows) { return; }`;
}

const f32buf = new Float32Array(1);
const u32view = new Uint32Array(f32buf.buffer);

/** Bit pattern of a value stored with `dtype` (float32 rounding, or int32 wrapping). */
export function valueBits(v: number, dtype: 'float32' | 'int32'): number {
  if (dtype === 'int32') return v | 0;
  f32buf[0] = v;
  return u32view[0];
}

/** Row-major strides. */
export { stridesOf as contiguous } from '../../shape';

/**
 * Fewest dims describing the same walk: drops size-1 dims and merges neighbours whose strides
 * line up in every operand (a row-major walk over `shape`, each operand indexed by its strides).
 */
export function coalesce(
  shape: readonly number[],
  strides: readonly (readonly number[])[],
): { shape: number[]; strides: number[][] } {
  const outShape: number[] = [];
  const outStrides: number[][] = strides.map(() => []);
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 1) continue;
    const last = outShape.length - 1;
    if (last >= 0 && strides.every((st, k) => outStrides[k][last] === st[d] * shape[d])) {
      outShape[last] *= shape[d];
      strides.forEach((st, k) => {
        outStrides[k][last] = st[d];
      });
    } else {
      outShape.push(shape[d]);
      strides.forEach((st, k) => {
        outStrides[k].push(st[d]);
      });
    }
  }
  return { shape: outShape, strides: outStrides };
}

/** Reads word `i` of the uniform block `u` (i may be dynamic). */
export const UNIFORM_WORD = 'fn uw(i: u32) -> u32 { return u[i >> 2u][i & 3u]; }';

/** Declaration of the uniform block of `words` words at binding `binding`. */
export function uniformDecl(binding: number, words: number): string {
  return `@group(0) @binding(${binding}) var<uniform> u: array<vec4<u32>, ${Math.max(1, Math.ceil(words / 4))}>;`;
}

/** Entry point header: `i` is the linear invocation index over a 2D grid of workgroups (kernel.ts `grid`). */
export function entry(wg: number): string {
  return `@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.y * nwg.x + wid.x) * ${wg}u + lid;`;
}
