/**
 * WebGPU layer / RMS normalization over the last axis with scale and shift (ops/defs/norm.ts):
 * y = (x - mean) · r · g + b with r = 1/√(var + eps), or x · r · g + b with r = 1/√(mean(x²) + eps);
 * and layerNormGrad, x's cotangent r · (h - mean(h) - x̂ · mean(h · x̂)) with h = ct · g.
 * Statistics are two-pass (mean, then squares about it) like the reference; the mean sums
 * differences from the row's first value. Short rows run one
 * invocation each (64 rows a workgroup); long rows one 128-invocation workgroup each, with tree
 * sums in workgroup memory in a fixed order.
 */
import { sizeOf } from '../../shape';
import { type GpuDispatch, type GpuKernelBuilder, grid } from './kernel';
import { fits } from './matmul';
import { rowGroupWgsl, valueBits } from './wgsl';

const ROWS_PER_GROUP = 64;
const GROUP = 128;

const HEAD = /* wgsl */ `
// flags: 1 rms, 2 backward (T is ct [rows, cols] instead of b [cols])
struct U { rows: u32, cols: u32, eps: u32, flags: u32 }
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> G: array<f32>;
@group(0) @binding(2) var<storage, read> T: array<f32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;
@group(0) @binding(4) var<uniform> u: U;`;

const THREAD = /* wgsl */ `// adjoint layerNorm, one invocation per row
${HEAD}

@compute @workgroup_size(${ROWS_PER_GROUP}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let r = (wid.y * nwg.x + wid.x) * ${ROWS_PER_GROUP}u + li;
  if (r >= u.rows) { return; }
  let base = r * u.cols;
  let n = f32(u.cols);
  var m = 0.0;
  if ((u.flags & 1u) == 0u) {
    // about the row's first value, so a large common offset costs no accuracy
    for (var i = 0u; i < u.cols; i++) { m += X[base + i] - X[base]; }
    m = X[base] + m / n;
  }
  var v = 0.0;
  for (var i = 0u; i < u.cols; i++) { let d = X[base + i] - m; v += d * d; }
  let k = 1.0 / sqrt(v / n + bitcast<f32>(u.eps));
  if ((u.flags & 2u) == 0u) {
    for (var i = 0u; i < u.cols; i++) { Y[base + i] = (X[base + i] - m) * k * G[i] + T[i]; }
    return;
  }
  var sh = 0.0;
  var shx = 0.0;
  for (var i = 0u; i < u.cols; i++) {
    let h = T[base + i] * G[i];
    sh += h;
    shx += h * (X[base + i] - m) * k;
  }
  let mh = select(sh / n, 0.0, (u.flags & 1u) != 0u);
  let q = shx / n;
  for (var i = 0u; i < u.cols; i++) {
    Y[base + i] = k * (T[base + i] * G[i] - mh - (X[base + i] - m) * k * q);
  }
}
`;

const WORKGROUP = /* wgsl */ `// adjoint layerNorm, one workgroup per row
${HEAD}

${rowGroupWgsl(GROUP)}
  let base = r * u.cols;
  let n = f32(u.cols);
  var m = 0.0;
  if ((u.flags & 1u) == 0u) {
    var part = 0.0;
    for (var i = li; i < u.cols; i += ${GROUP}u) { part += X[base + i] - X[base]; }
    m = X[base] + groupSum(li, part) / n;
  }
  var sq = 0.0;
  for (var i = li; i < u.cols; i += ${GROUP}u) { let d = X[base + i] - m; sq += d * d; }
  let k = 1.0 / sqrt(groupSum(li, sq) / n + bitcast<f32>(u.eps));
  if ((u.flags & 2u) == 0u) {
    for (var i = li; i < u.cols; i += ${GROUP}u) { Y[base + i] = (X[base + i] - m) * k * G[i] + T[i]; }
    return;
  }
  var ph = 0.0;
  var phx = 0.0;
  for (var i = li; i < u.cols; i += ${GROUP}u) {
    let h = T[base + i] * G[i];
    ph += h;
    phx += h * (X[base + i] - m) * k;
  }
  let mh = select(groupSum(li, ph) / n, 0.0, (u.flags & 1u) != 0u);
  let q = groupSum(li, phx) / n;
  for (var i = li; i < u.cols; i += ${GROUP}u) {
    Y[base + i] = k * (T[base + i] * G[i] - mh - (X[base + i] - m) * k * q);
  }
}
`;

const layerNorm: GpuKernelBuilder = (n, ctx) => {
  const [x, g, t] = n.inputs;
  const size = sizeOf(x.shape);
  if (size === 0) return [];
  const cols = x.shape[x.shape.length - 1];
  const rows = size / cols;
  const perThread = cols <= 128;
  if (!perThread && ctx.limits.maxComputeInvocationsPerWorkgroup < GROUP) return null;
  const ds: GpuDispatch[] = [
    {
      wgsl: perThread ? THREAD : WORKGROUP,
      buffers: [ctx.at(x), ctx.at(g), ctx.at(t), ctx.at(n)],
      uniforms: new Uint32Array([
        rows,
        cols,
        valueBits(n.attrs.eps as number, 'float32'),
        (n.attrs.rms ? 1 : 0) | (n.op === 'layerNormGrad' ? 2 : 0),
      ]),
      workgroups: perThread ? grid(rows, ROWS_PER_GROUP, ctx.limits) : grid(rows, 1, ctx.limits),
    },
  ];
  return fits(ds, ctx.limits) ? ds : null;
};

/**
 * moments: each column's mean and biased variance over the rows of x [rows, cols], two passes
 * like the reference (the mean about the column's first value), one invocation per column.
 */
const MOMENTS = /* wgsl */ `// adjoint moments, one invocation per column
struct U { rows: u32, cols: u32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> Y: array<f32>;
@group(0) @binding(2) var<uniform> u: U;

@compute @workgroup_size(${ROWS_PER_GROUP}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let c = (wid.y * nwg.x + wid.x) * ${ROWS_PER_GROUP}u + li;
  if (c >= u.cols) { return; }
  let n = f32(u.rows);
  var m = 0.0;
  for (var r = 0u; r < u.rows; r++) { m += X[r * u.cols + c] - X[c]; }
  m = select(X[c], 0.0, u.rows == 0u) + m / n;
  var v = 0.0;
  for (var r = 0u; r < u.rows; r++) { let d = X[r * u.cols + c] - m; v += d * d; }
  Y[c] = m;
  Y[u.cols + c] = v / n;
}
`;

const moments: GpuKernelBuilder = (n, ctx) => {
  const x = n.inputs[0];
  const cols = x.shape[x.shape.length - 1];
  if (cols === 0) return [];
  const ds: GpuDispatch[] = [
    {
      wgsl: MOMENTS,
      buffers: [ctx.at(x), ctx.at(n)],
      uniforms: new Uint32Array([sizeOf(x.shape) / cols, cols, 0, 0]),
      workgroups: grid(cols, ROWS_PER_GROUP, ctx.limits),
    },
  ];
  return fits(ds, ctx.limits) ? ds : null;
};

export const normKernels: Record<string, GpuKernelBuilder> = { layerNorm, layerNormGrad: layerNorm, moments };
