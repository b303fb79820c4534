/**
 * WebGPU softmax family: softmax and logSoftmax over any axis and their backward (softmaxGrad),
 * and the fused cross-entropy primitives (softmaxCrossEntropy, softmaxCrossEntropyGrad) over the
 * last axis with int32 labels.
 *
 * A "lane" is the 1-D run of `cols` values along the axis: lane r starts at
 * (r / inner)·cols·inner + r % inner with stride `inner` (inner = 1 for the last axis), so a
 * non-last axis needs no transpose copies. Two kernel shapes, picked by lane length:
 * - one invocation per lane (64 lanes a workgroup) for short lanes (cols <= 128) and for
 *   non-last axes with many lanes side by side (adjacent invocations then read adjacent words);
 * - one 128-invocation workgroup per lane for long lanes, with tree reductions in workgroup
 *   memory for the max and the sum.
 *
 * Numerics follow the reference (ops/defs/linalg.ts): m = max of the lane, replaced by 0 when it
 * is not finite (+Infinity, or a lane of -Infinity); s = Σ exp(x - m); softmax = exp(x - m) / s,
 * logSoftmax = (x - m) - log(s); cross-entropy = -((x[label] - m) - log s), NaN for a label outside
 * [0, cols); its gradient g·(softmax - onehot(label)), where an out-of-range label subtracts
 * nothing. The reference's max is NaN (then 0) when the lane holds a NaN; here the max skips NaNs
 * instead, which gives the same outputs, all NaN, since s is NaN either way. Finiteness is tested
 * on the bits. Sums run in float32 in a fixed order.
 */
import { sizeOf } from '../../shape';
import { type GpuDispatch, type GpuKernelBuilder, type GpuLimits, grid } from './kernel';
import { fillWords, fits } from './matmul';
import { rowGroupWgsl } from './wgsl';

const NAN_BITS = 0x7fc00000;

/** 'masked': softmax with a keep mask (an int32 [K, cols] binding). */
type Kind = 'softmax' | 'masked' | 'xent' | 'xentGrad' | 'grad';
type Shape = 'thread' | 'group';

/** Lanes per workgroup in the per-invocation shape; invocations per lane in the per-workgroup shape. */
const LANES_PER_GROUP = 64;
const GROUP = 128;

const COMMON = /* wgsl */ `
struct U { rows: u32, cols: u32, inner: u32, log: u32, q: u32, group: u32 }
// Runtime values (private variables), so the WGSL front end never constant-folds a NaN or infinity.
var<private> NAN_BITS: u32 = 0x7fc00000u;
var<private> NEG_INF_BITS: u32 = 0xff800000u;
fn isFiniteF(x: f32) -> bool { return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u; }
fn laneBase(r: u32) -> u32 { return (r / u.inner) * u.cols * u.inner + r % u.inner; }
// softmax with a causal mask (q > 0): lane r, row r % q of a [q, cols] block, keeps this many
fn laneLen(r: u32) -> u32 { return select(u.cols, min(u.cols, r % max(u.q, 1u) + 1u + u.cols - u.q), u.q > 0u); }`;

function bindings(kind: Kind): string {
  const b = ['@group(0) @binding(0) var<storage, read> X: array<f32>;'];
  if (kind === 'masked') b.push('@group(0) @binding(1) var<storage, read> K: array<i32>;');
  if (kind === 'xent' || kind === 'xentGrad')
    b.push('@group(0) @binding(1) var<storage, read> L: array<i32>;');
  if (kind === 'xentGrad' || kind === 'grad')
    b.push(`@group(0) @binding(${b.length}) var<storage, read> G: array<f32>;`);
  b.push(`@group(0) @binding(${b.length}) var<storage, read_write> Y: array<f32>;`);
  b.push(`@group(0) @binding(${b.length}) var<uniform> u: U;`);
  // lane r's position i: kept, and the logit it contributes (a masked one counts as -Infinity)
  b.push(
    kind === 'masked'
      ? `fn kept(r: u32, i: u32) -> bool { return K[(r / u.group) * u.cols + i] != 0i; }
fn logit(r: u32, at: u32, i: u32) -> f32 { return select(bitcast<f32>(NEG_INF_BITS), X[at], kept(r, i)); }`
      : `fn kept(r: u32, i: u32) -> bool { return true; }
fn logit(r: u32, at: u32, i: u32) -> f32 { return X[at]; }`,
  );
  return b.join('\n');
}

/**
 * The output pass for lane r, given m and s; `loop` opens a loop over the lane's positions as
 * `i` (all of them, or this invocation's share). Cross-entropy writes one value per lane, from
 * the invocation where `first` holds.
 */
function outputPass(kind: Exclude<Kind, 'grad'>, loop: string, first: string): string {
  switch (kind) {
    case 'softmax':
    case 'masked':
      return `  let ls = log(s);
  ${loop} {
    let at = base + i * u.inner;
    let v = X[at] - m;
    if (u.log == 1u) { Y[at] = v - ls; } else { Y[at] = select(0.0, exp(v) / s, i < len && any && kept(r, i)); }
  }`;
    case 'xent':
      return `  if (${first}) {
    let label = L[r];
    if (label < 0i || u32(label) >= u.cols) { Y[r] = bitcast<f32>(NAN_BITS); }
    else { Y[r] = -((X[base + u32(label)] - m) - log(s)); }
  }`;
    case 'xentGrad':
      return `  let label = L[r];
  let g = G[r];
  ${loop} {
    let at = base + i;
    let p = exp(X[at] - m) / s;
    Y[at] = g * (p - select(0.0, 1.0, i32(i) == label));
  }`;
  }
}

function threadWgsl(kind: Exclude<Kind, 'grad'>): string {
  return `// adjoint ${kind}, one invocation per lane
${COMMON}
${bindings(kind)}

@compute @workgroup_size(${LANES_PER_GROUP}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let r = (wid.y * nwg.x + wid.x) * ${LANES_PER_GROUP}u + li;
  if (r >= u.rows) { return; }
  let base = laneBase(r);
  let len = laneLen(r);
  var m = bitcast<f32>(NEG_INF_BITS);
  var any = false; // a lane that keeps nothing is written 0
  for (var i = 0u; i < len; i++) {
    let x = logit(r, base + i * u.inner, i);
    any = any || kept(r, i);
    if (x > m) { m = x; }
  }
  if (!isFiniteF(m)) { m = 0.0; }
  var s = 0.0;
  for (var i = 0u; i < len; i++) { s += exp(logit(r, base + i * u.inner, i) - m); }
${outputPass(kind, 'for (var i = 0u; i < u.cols; i++)', 'true')}
}
`;
}

function groupWgsl(kind: Exclude<Kind, 'grad'>): string {
  return `// adjoint ${kind}, one workgroup per lane
${COMMON}
${bindings(kind)}

${rowGroupWgsl(GROUP)}
  let base = laneBase(r);
  let len = laneLen(r);
  var m = bitcast<f32>(NEG_INF_BITS);
  var mine = false;
  for (var i = li; i < len; i += ${GROUP}u) {
    let x = logit(r, base + i * u.inner, i);
    mine = mine || kept(r, i);
    if (x > m) { m = x; }
  }
  red[li] = m;
  workgroupBarrier();
  for (var h = ${GROUP / 2}u; h > 0u; h >>= 1u) {
    if (li < h) {
      let o = red[li + h];
      if (o > red[li]) { red[li] = o; }
    }
    workgroupBarrier();
  }
  m = red[0];
  if (!isFiniteF(m)) { m = 0.0; }
  workgroupBarrier();
  var part = 0.0;
  for (var i = li; i < len; i += ${GROUP}u) { part += exp(logit(r, base + i * u.inner, i) - m); }
  let s = groupSum(li, part);
  let any = ${kind === 'masked' ? 'groupSum(li, select(0.0, 1.0, mine)) > 0.0' : 'true'};
${outputPass(kind, `for (var i = li; i < u.cols; i += ${GROUP}u)`, 'li == 0u')}
}
`;
}

/**
 * softmaxGrad: X is the forward output y, G the output cotangent g; per lane s = Σ g·y (Σ g for
 * logSoftmax), then y·(g - s) or g - exp(y)·s.
 */
function gradTerm(i: string): string {
  return `select(G[base + ${i} * u.inner] * X[base + ${i} * u.inner], G[base + ${i} * u.inner], u.log == 1u)`;
}

function gradOutput(loop: string): string {
  return `  ${loop} {
    let at = base + i * u.inner;
    if (u.log == 1u) { Y[at] = G[at] - exp(X[at]) * s; } else { Y[at] = X[at] * (G[at] - s); }
  }`;
}

function gradThreadWgsl(): string {
  return `// adjoint softmaxGrad, one invocation per lane
${COMMON}
${bindings('grad')}

@compute @workgroup_size(${LANES_PER_GROUP}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let r = (wid.y * nwg.x + wid.x) * ${LANES_PER_GROUP}u + li;
  if (r >= u.rows) { return; }
  let base = laneBase(r);
  var s = 0.0;
  for (var i = 0u; i < u.cols; i++) { s += ${gradTerm('i')}; }
${gradOutput('for (var i = 0u; i < u.cols; i++)')}
}
`;
}

function gradGroupWgsl(): string {
  return `// adjoint softmaxGrad, one workgroup per lane
${COMMON}
${bindings('grad')}

${rowGroupWgsl(GROUP)}
  let base = laneBase(r);
  var part = 0.0;
  for (var i = li; i < u.cols; i += ${GROUP}u) { part += ${gradTerm('i')}; }
  let s = groupSum(li, part);
${gradOutput(`for (var i = li; i < u.cols; i += ${GROUP}u)`)}
}
`;
}

const sources = new Map<string, string>();

/** The WGSL of one kernel (memoized: the backend caches pipelines by source). */
export function softmaxWgsl(kind: Kind, shape: Shape): string {
  const key = `${kind}/${shape}`;
  let s = sources.get(key);
  if (!s) {
    if (kind === 'grad') s = shape === 'thread' ? gradThreadWgsl() : gradGroupWgsl();
    else s = shape === 'thread' ? threadWgsl(kind) : groupWgsl(kind);
    sources.set(key, s);
  }
  return s;
}

function rowDispatch(
  kind: Kind,
  buffers: number[],
  rows: number,
  cols: number,
  inner: number,
  log: boolean,
  limits: GpuLimits,
  causal = 0,
  group = 1,
): GpuDispatch[] | null {
  const shape: Shape = cols <= 128 || inner >= LANES_PER_GROUP ? 'thread' : 'group';
  if (shape === 'group' && limits.maxComputeInvocationsPerWorkgroup < GROUP) return null;
  const workgroups = shape === 'thread' ? grid(rows, LANES_PER_GROUP, limits) : grid(rows, 1, limits);
  const ds = [
    {
      wgsl: softmaxWgsl(kind, shape),
      buffers,
      uniforms: new Uint32Array([rows, cols, inner, log ? 1 : 0, causal, group, 0, 0]),
      workgroups,
    },
  ];
  return fits(ds, limits) ? ds : null;
}

const softmax: GpuKernelBuilder = (n, ctx) => {
  const [x, keep] = n.inputs;
  if (x.dtype !== 'float32') return null;
  const axis = n.attrs.axis as number;
  const size = sizeOf(x.shape);
  if (size === 0) return [];
  const cols = x.shape[axis];
  const inner = sizeOf(x.shape.slice(axis + 1));
  const rows = size / cols;
  return rowDispatch(
    keep ? 'masked' : 'softmax',
    keep ? [ctx.at(x), ctx.at(keep), ctx.at(n)] : [ctx.at(x), ctx.at(n)],
    rows,
    cols,
    inner,
    n.op === 'logSoftmax',
    ctx.limits,
    n.attrs.causal ? x.shape[x.shape.length - 2] : 0,
    keep ? rows / keep.shape[0] : 1,
  );
};

const softmaxCrossEntropy: GpuKernelBuilder = (n, ctx) => {
  const [x, y] = n.inputs;
  if (x.dtype !== 'float32' || y.dtype !== 'int32') return null;
  const rows = sizeOf(y.shape);
  if (rows === 0) return [];
  const cols = x.shape[x.shape.length - 1];
  // No classes: every label is out of range, so every loss is NaN (and the logits buffer is empty).
  if (cols === 0) {
    const fill = [fillWords(ctx.at(n), rows, ctx.limits, NAN_BITS)];
    return fits(fill, ctx.limits) ? fill : null;
  }
  return rowDispatch('xent', [ctx.at(x), ctx.at(y), ctx.at(n)], rows, cols, 1, false, ctx.limits);
};

const softmaxCrossEntropyGrad: GpuKernelBuilder = (n, ctx) => {
  const [x, y, g] = n.inputs;
  if (x.dtype !== 'float32' || y.dtype !== 'int32' || g.dtype !== 'float32') return null;
  if (sizeOf(x.shape) === 0) return [];
  const cols = x.shape[x.shape.length - 1];
  return rowDispatch(
    'xentGrad',
    [ctx.at(x), ctx.at(y), ctx.at(g), ctx.at(n)],
    sizeOf(y.shape),
    cols,
    1,
    false,
    ctx.limits,
  );
};

const softmaxGrad: GpuKernelBuilder = (n, ctx) => {
  const [y, g] = n.inputs;
  const axis = n.attrs.axis as number;
  const size = sizeOf(y.shape);
  if (size === 0) return [];
  const cols = y.shape[axis];
  const inner = sizeOf(y.shape.slice(axis + 1));
  return rowDispatch(
    'grad',
    [ctx.at(y), ctx.at(g), ctx.at(n)],
    size / cols,
    cols,
    inner,
    n.attrs.log === true,
    ctx.limits,
  );
};

export const softmaxKernels: Record<string, GpuKernelBuilder> = {
  softmax,
  logSoftmax: softmax,
  softmaxGrad,
  softmaxCrossEntropy,
  softmaxCrossEntropyGrad,
};
