/**
 * WebGPU gather and scatterAdd along an axis with int32 indices.
 *
 * Views: x = [outer, len, inner] around the axis, indices flattened to n entries, so
 * gather: y[p, j, q] = x[p, idx[j], q] and scatterAdd: y[p, k, q] = Σ_{j: idx[j] = k} u[p, j, q].
 *
 * Out-of-range indices. The reference throws a ValueError; a kernel cannot, and the wasm backend
 * checks indices on the host, which a GPU buffer does not allow without a round trip. So the
 * result is poisoned instead, never silently plausible: gather writes NaN (float32) or
 * -2147483648 (int32) in each slice read through a bad index, as JAX's mode='fill' does; scatterAdd
 * writes NaN in the whole output when any index is out of range (its sum is undefined).
 *
 * scatterAdd is deterministic without float atomics (WGSL has none): the (index, position) pairs
 * are sorted on the GPU — a bitonic sort on (key, j), a total order, so the sorted array is unique
 * whatever the schedule; 512-element blocks sort in workgroup memory, larger merges take one
 * dispatch per stride above 256 — and then each output element binary-searches its index's run
 * and adds its updates in increasing j, the reference's order. Bits are identical run to run.
 * int32 scatterAdd is declined (the host fallback runs it).
 */
import { sizeOf } from '../../shape';
import { type GpuDispatch, type GpuKernelBuilder, grid } from './kernel';
import { fillWords, fits } from './matmul';

const NAN_BITS = 0x7fc00000;
const INT32_MIN_BITS = 0x80000000;

export const GATHER_WGSL = /* wgsl */ `// adjoint gather (32-bit words)
struct U { total: u32, inner: u32, n: u32, len: u32, poison: u32, p0: u32, p1: u32, p2: u32 }
@group(0) @binding(0) var<storage, read> X: array<u32>;
@group(0) @binding(1) var<storage, read> I: array<i32>;
@group(0) @binding(2) var<storage, read_write> Y: array<u32>;
@group(0) @binding(3) var<uniform> u: U;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let o = (wid.y * nwg.x + wid.x) * 64u + li;
  if (o >= u.total) { return; }
  let t = o / u.inner;
  let q = o - t * u.inner;
  let p = t / u.n;
  let j = t - p * u.n;
  let k = I[j];
  if (k < 0i || u32(k) >= u.len) { Y[o] = u.poison; return; }
  Y[o] = X[(p * u.len + u32(k)) * u.inner + q];
}
`;

/** Block sorted in workgroup memory (two elements per invocation). */
const BLOCK = 512;
/** Sort keys past the valid range: an out-of-range index, then padding up to a power of two. */
const KEY_BAD = 0xfffffffe;
const KEY_PAD = 0xffffffff;

export const SORT_WGSL = /* wgsl */ `// adjoint scatterAdd: bitonic sort of (index, position) pairs
struct U { global: u32, first: u32, n: u32, len: u32, P: u32, s0: u32, s1: u32, t: u32 }
@group(0) @binding(0) var<storage, read> I: array<i32>;
@group(0) @binding(1) var<storage, read_write> S: array<vec2<u32>>;
@group(0) @binding(2) var<uniform> u: U;

var<workgroup> sh: array<vec2<u32>, ${BLOCK}>;

fn gt(a: vec2<u32>, b: vec2<u32>) -> bool { return a.x > b.x || (a.x == b.x && a.y > b.y); }

fn pairOf(e: u32) -> vec2<u32> {
  if (e >= u.n) { return vec2<u32>(${KEY_PAD}u, e); }
  let k = I[e];
  if (k < 0i || u32(k) >= u.len) { return vec2<u32>(${KEY_BAD}u, e); }
  return vec2<u32>(u32(k), e);
}

@compute @workgroup_size(${BLOCK / 2}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let g = wid.y * nwg.x + wid.x;
  if (u.global == 0u) {
    // Sizes s0..s1 of the bitonic network, strides below ${BLOCK} only, inside one block.
    let base = g * ${BLOCK}u;
    let len = min(u.P, ${BLOCK}u);
    if (base >= u.P) { return; }
    for (var h = 0u; h < 2u; h++) {
      let l = li + h * ${BLOCK / 2}u;
      if (l < len) {
        if (u.first == 1u) { sh[l] = pairOf(base + l); } else { sh[l] = S[base + l]; }
      }
    }
    workgroupBarrier();
    for (var s = u.s0; s <= u.s1; s = s << 1u) {
      for (var t = min(s >> 1u, ${BLOCK / 2}u); t > 0u; t = t >> 1u) {
        if (li < (len >> 1u)) {
          let i = 2u * t * (li / t) + li % t;
          let x = sh[i];
          let y = sh[i + t];
          if (gt(x, y) == (((base + i) & s) == 0u)) {
            sh[i] = y;
            sh[i + t] = x;
          }
        }
        workgroupBarrier();
      }
    }
    for (var h = 0u; h < 2u; h++) {
      let l = li + h * ${BLOCK / 2}u;
      if (l < len) { S[base + l] = sh[l]; }
    }
  } else {
    // One compare-exchange step of size s0 and stride t (t >= ${BLOCK}) over the whole array.
    let c = g * ${BLOCK / 2}u + li;
    if (c < (u.P >> 1u)) {
      let t = u.t;
      let i = 2u * t * (c / t) + c % t;
      let x = S[i];
      let y = S[i + t];
      if (gt(x, y) == ((i & u.s0) == 0u)) {
        S[i] = y;
        S[i + t] = x;
      }
    }
  }
}
`;

export const SCATTER_WGSL = /* wgsl */ `// adjoint scatterAdd: sum each index's run of sorted pairs
struct U { total: u32, inner: u32, len: u32, n: u32 }
@group(0) @binding(0) var<storage, read> Upd: array<f32>;
@group(0) @binding(1) var<storage, read> S: array<vec2<u32>>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;
@group(0) @binding(3) var<uniform> u: U;
var<private> NAN_BITS: u32 = ${NAN_BITS}u;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let o = (wid.y * nwg.x + wid.x) * 64u + li;
  if (o >= u.total) { return; }
  // Any out-of-range index sorts to the end of the first n pairs.
  if (S[u.n - 1u].x == ${KEY_BAD}u) { Y[o] = bitcast<f32>(NAN_BITS); return; }
  let t = o / u.inner;
  let q = o - t * u.inner;
  let p = t / u.len;
  let k = t - p * u.len;
  var lo = 0u;
  var hi = u.n;
  while (lo < hi) {
    let mid = (lo + hi) >> 1u;
    if (S[mid].x < k) { lo = mid + 1u; } else { hi = mid; }
  }
  var acc = 0.0;
  let row = p * u.n;
  for (var s = lo; s < u.n; s++) {
    let e = S[s];
    if (e.x != k) { break; }
    acc += Upd[(row + e.y) * u.inner + q];
  }
  Y[o] = acc;
}
`;

const gather: GpuKernelBuilder = (n, ctx) => {
  const [x, idx] = n.inputs;
  if (idx.dtype !== 'int32') return null;
  const axis = n.attrs.axis as number;
  const total = sizeOf(n.shape);
  if (total === 0) return [];
  const len = x.shape[axis];
  const poison = x.dtype === 'int32' ? INT32_MIN_BITS : NAN_BITS;
  const inner = sizeOf(x.shape.slice(axis + 1));
  // An empty axis: every index is out of range (and x's buffer is empty).
  const ds: GpuDispatch[] =
    len === 0
      ? [fillWords(ctx.at(n), total, ctx.limits, poison)]
      : [
          {
            wgsl: GATHER_WGSL,
            buffers: [ctx.at(x), ctx.at(idx), ctx.at(n)],
            uniforms: new Uint32Array([total, inner, sizeOf(idx.shape), len, poison, 0, 0, 0]),
            workgroups: grid(total, 64, ctx.limits),
          },
        ];
  return fits(ds, ctx.limits) ? ds : null;
};

const scatterAdd: GpuKernelBuilder = (n, ctx) => {
  const [upd, idx] = n.inputs;
  if (upd.dtype !== 'float32' || idx.dtype !== 'int32') return null;
  const axis = n.attrs.axis as number;
  const total = sizeOf(n.shape);
  if (total === 0) return [];
  const count = sizeOf(idx.shape);
  const out = ctx.at(n);
  if (count === 0) {
    const fill = [fillWords(out, total, ctx.limits)];
    return fits(fill, ctx.limits) ? fill : null;
  }
  const len = n.shape[axis];
  const inner = sizeOf(n.shape.slice(axis + 1));
  const limits = ctx.limits;
  let P = 2;
  while (P < count) P *= 2;
  if (P * 8 > limits.maxStorageBufferBindingSize || limits.maxComputeInvocationsPerWorkgroup < BLOCK / 2)
    return null;
  const pairs = ctx.temp(P * 8);
  const ii = ctx.at(idx);
  const sort = (global: boolean, first: boolean, s0: number, s1: number, t: number): GpuDispatch => ({
    wgsl: SORT_WGSL,
    buffers: [ii, pairs],
    uniforms: new Uint32Array([+global, +first, count, len, P, s0, s1, t]),
    workgroups: global ? grid(P / 2, BLOCK / 2, limits) : grid(Math.max(1, P / BLOCK), 1, limits),
  });
  const dispatches = [sort(false, true, 2, Math.min(P, BLOCK), 0)];
  for (let s = 2 * BLOCK; s <= P; s *= 2) {
    for (let t = s / 2; t >= BLOCK; t /= 2) dispatches.push(sort(true, false, s, s, t));
    dispatches.push(sort(false, false, s, s, 0));
  }
  dispatches.push({
    wgsl: SCATTER_WGSL,
    buffers: [ctx.at(upd), pairs, out],
    uniforms: new Uint32Array([total, inner, len, count]),
    workgroups: grid(total, 64, limits),
  });
  return fits(dispatches, limits) ? dispatches : null;
};

export const gatherKernels: Record<string, GpuKernelBuilder> = { gather, scatterAdd };
