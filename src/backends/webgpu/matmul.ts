/**
 * WebGPU matmul: C = op(A)·op(B) in float32, with transpose flags on the last two axes and numpy
 * broadcasting over the leading (batch) axes, as the registry's `matmul` defines it.
 *
 * Two kernel shapes, picked per adapter (`ctx.tuning.matmul`, see `calibrateMatmul`):
 * - 'register': no workgroup memory; each invocation computes an 8×8 block of C in 16 vec4
 *   accumulators, reading both operands as vec4 (along k for an operand whose rows run along k,
 *   along m or n otherwise). Best on CPU adapters (lavapipe, SwiftShader), where barriers and
 *   workgroup-memory copies cost more than they save.
 * - 'tiled': 16×16 invocations share 64×16 and 16×64 tiles of A and B in workgroup memory (one
 *   vec4 load per invocation per operand per tile), each invocation computing a 4×4 block of C.
 *   What real GPUs favour.
 *
 * Both read operands as array<vec4<f32>>, so an operand's stored rows must start on 16-byte
 * boundaries: an operand whose last dimension is not a multiple of 4 is first copied into a
 * scratch buffer with rows zero-padded to a multiple of 4 (O(size) work against O(M·N·K)). For
 * 'register', a K that is not a multiple of 4 is padded with zeros in both operands the same way
 * (so the kernel has no k tail); 'tiled' zero-fills tile slots past K instead. Edges in M and N
 * are handled by clamping reads to valid rows and guarding writes. Shapes and batch strides live
 * in uniforms, so one WGSL source per (shape, transA, transB) serves all sizes. int32 matmul is
 * declined (the host fallback runs it).
 */
import type { GNode } from '../../graph/graph';
import { broadcastStrides, sizeOf } from '../../shape';
import { type GpuDispatch, type GpuKernelBuilder, type GpuLimits, grid } from './kernel';

export type MatmulShape = 'register' | 'tiled';

/** Output rows and columns covered by one workgroup (both shapes). */
const TILE = 64;
/** Coalesced batch dimensions a dispatch can address (more: declined). */
const MAX_BATCH_DIMS = 4;

const UNIFORM_STRUCT = /* wgsl */ `
struct U {
  M: u32, N: u32, K: u32, lda: u32,
  ldb: u32, batch0: u32, p0: u32, p1: u32,
  dims: vec4<u32>,
  sa: vec4<u32>,
  sb: vec4<u32>,
}`;

/** Batch offsets (in elements) of A and B for output matrix `b`; dims padded in front with 1s. */
const BATCH_FN = /* wgsl */ `
fn batchOffsets(b: u32) -> vec2<u32> {
  var rem = b;
  var o = vec2<u32>(0u, 0u);
  for (var d = 3i; d >= 0i; d--) {
    let i = rem % u.dims[d];
    rem = rem / u.dims[d];
    o += i * vec2<u32>(u.sa[d], u.sb[d]);
  }
  return o;
}`;

const BINDINGS = /* wgsl */ `
@group(0) @binding(0) var<storage, read> A: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> B: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
@group(0) @binding(3) var<uniform> u: U;`;

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const lane = (i: number) => 'xyzw'[i];

/**
 * 'register' kernel: invocation (x, y) of the grid owns C[r0..r0+7, c0..c0+7], r0 = 8y, c0 = 8x,
 * in accumulators c{i}_{h} (row r0+i, columns c0+4h..c0+4h+3).
 */
function registerWgsl(transA: boolean, transB: boolean): string {
  const L: string[] = [];
  // Per-invocation base indices, in vec4 units (element offsets are all multiples of 4).
  if (transA) L.push('  let lda4 = u.lda >> 2u;');
  if (!transB) L.push('  let ldb4 = u.ldb >> 2u;');
  if (!transA)
    for (const i of range(8)) L.push(`  let ia${i} = (off.x + min(r0 + ${i}u, u.M - 1u) * u.lda) >> 2u;`);
  else for (const h of range(2)) L.push(`  let ja${h} = (off.x + min(r0 + ${4 * h}u, u.lda - 4u)) >> 2u;`);
  if (!transB)
    for (const h of range(2)) L.push(`  let jb${h} = (off.y + min(c0 + ${4 * h}u, u.ldb - 4u)) >> 2u;`);
  else for (const j of range(8)) L.push(`  let ib${j} = (off.y + min(c0 + ${j}u, u.N - 1u) * u.ldb) >> 2u;`);
  for (const i of range(8)) for (const h of range(2)) L.push(`  var c${i}_${h} = vec4<f32>(0.0);`);

  // Four k at a time, every load a vec4 (K is a multiple of 4 here: operands are zero-padded).
  // k4 counts vec4s along k; ra / rb are the row offsets of k (operands stored k-major).
  if (transA) L.push('  var ra = 0u;');
  if (!transB) L.push('  var rb = 0u;');
  L.push('  for (var k4 = 0u; k4 < (u.K >> 2u); k4++) {');
  if (!transA) for (const i of range(8)) L.push(`    let a${i} = A[ia${i} + k4];`);
  else
    for (const kk of range(4))
      for (const h of range(2))
        L.push(`    let a${kk}_${h} = A[ja${h} + ra${kk ? ` + ${kk}u * lda4` : ''}];`);
  if (!transB)
    for (const kk of range(4))
      for (const h of range(2))
        L.push(`    let b${kk}_${h} = B[jb${h} + rb${kk ? ` + ${kk}u * ldb4` : ''}];`);
  else for (const j of range(8)) L.push(`    let b${j} = B[ib${j} + k4];`);
  const aMain = (i: number, kk: number) => (transA ? `a${kk}_${i >> 2}.${lane(i & 3)}` : `a${i}.${lane(kk)}`);
  const bMain = (kk: number, h: number) =>
    transB
      ? `vec4<f32>(${range(4)
          .map((e) => `b${4 * h + e}.${lane(kk)}`)
          .join(', ')})`
      : `b${kk}_${h}`;
  for (const kk of range(4)) {
    if (transB) for (const h of range(2)) L.push(`    let v${kk}_${h} = ${bMain(kk, h)};`);
    for (const i of range(8))
      for (const h of range(2))
        L.push(`    c${i}_${h} += ${aMain(i, kk)} * ${transB ? `v${kk}_${h}` : bMain(kk, h)};`);
  }
  if (transA) L.push('    ra += u.lda;');
  if (!transB) L.push('    rb += u.ldb;');
  L.push('  }');

  // Invocations wholly past the edge ran the loop on clamped rows and columns (no early return:
  // on a CPU adapter, code after a divergent return runs masked) and write nothing. The others
  // write without branches: indices past M or N are clamped to the last row or column, and the
  // block is written from its far corner back, so the in-range value (written last, by this same
  // invocation) is the one that stays.
  L.push('  if (r0 >= u.M || c0 >= u.N) { return; }', '  let co = b * u.M * u.N;');
  for (const i of range(8).reverse()) {
    L.push(`  let o${i} = co + min(r0 + ${i}u, u.M - 1u) * u.N;`);
    for (const col of range(8).reverse())
      L.push(`  C[o${i} + min(c0 + ${col}u, u.N - 1u)] = c${i}_${col >> 2}.${lane(col & 3)};`);
  }

  return `// adjoint matmul, register 8x8, transA=${transA} transB=${transB}
${UNIFORM_STRUCT}
${BINDINGS}
${BATCH_FN}

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let r0 = gid.y * 8u;
  let c0 = gid.x * 8u;
  let b = u.batch0 + gid.z;
  let off = batchOffsets(b);
${L.join('\n')}
}
`;
}

/**
 * 'tiled' kernel: a 16×16 workgroup owns a 64×64 block of C; per 16-wide step of k it stages
 * op(A)[64×16] as As[k][m] and op(B)[16×64] as Bs[k][n] (vec4 along m and n), then each
 * invocation accumulates its 4×4 block from one vec4 of each per k.
 */
function tiledWgsl(transA: boolean, transB: boolean): string {
  // Each invocation loads one vec4 of each operand per step; out-of-range slots get zeros.
  const loadA = transA
    ? `    {
      let kr = li >> 4u;
      let gk = k0 + kr;
      let gm = rBase + (li & 15u) * 4u;
      var v = vec4<f32>(0.0);
      if (gk < u.K && gm < u.M) { v = A[(off.x + gk * u.lda + gm) >> 2u]; }
      As[kr * 16u + (li & 15u)] = v;
    }`
    : `    {
      let row = li >> 2u;
      let kq = (li & 3u) * 4u;
      let gm = rBase + row;
      let gk = k0 + kq;
      var v = vec4<f32>(0.0);
      if (gm < u.M && gk < u.K) { v = A[(off.x + gm * u.lda + gk) >> 2u]; }
      let at = row >> 2u;
      let c = row & 3u;
      As[kq * 16u + at][c] = v.x;
      As[(kq + 1u) * 16u + at][c] = v.y;
      As[(kq + 2u) * 16u + at][c] = v.z;
      As[(kq + 3u) * 16u + at][c] = v.w;
    }`;
  const loadB = transB
    ? `    {
      let col = li >> 2u;
      let kq = (li & 3u) * 4u;
      let gn = cBase + col;
      let gk = k0 + kq;
      var v = vec4<f32>(0.0);
      if (gn < u.N && gk < u.K) { v = B[(off.y + gn * u.ldb + gk) >> 2u]; }
      let at = col >> 2u;
      let c = col & 3u;
      Bs[kq * 16u + at][c] = v.x;
      Bs[(kq + 1u) * 16u + at][c] = v.y;
      Bs[(kq + 2u) * 16u + at][c] = v.z;
      Bs[(kq + 3u) * 16u + at][c] = v.w;
    }`
    : `    {
      let kr = li >> 4u;
      let gk = k0 + kr;
      let gn = cBase + (li & 15u) * 4u;
      var v = vec4<f32>(0.0);
      if (gk < u.K && gn < u.N) { v = B[(off.y + gk * u.ldb + gn) >> 2u]; }
      Bs[kr * 16u + (li & 15u)] = v;
    }`;
  return `// adjoint matmul, tiled 64x64x16, transA=${transA} transB=${transB}
${UNIFORM_STRUCT}
${BINDINGS}
${BATCH_FN}

var<workgroup> As: array<vec4<f32>, 256>;
var<workgroup> Bs: array<vec4<f32>, 256>;

@compute @workgroup_size(16, 16, 1)
fn main(
  @builtin(local_invocation_id) lid: vec3<u32>,
  @builtin(local_invocation_index) li: u32,
  @builtin(workgroup_id) wid: vec3<u32>,
) {
  let rBase = wid.y * 64u;
  let cBase = wid.x * 64u;
  let b = u.batch0 + wid.z;
  let off = batchOffsets(b);
  var acc0 = vec4<f32>(0.0);
  var acc1 = vec4<f32>(0.0);
  var acc2 = vec4<f32>(0.0);
  var acc3 = vec4<f32>(0.0);
  for (var k0 = 0u; k0 < u.K; k0 += 16u) {
${loadA}
${loadB}
    workgroupBarrier();
    for (var kk = 0u; kk < 16u; kk++) {
      let a = As[kk * 16u + lid.y];
      let bv = Bs[kk * 16u + lid.x];
      acc0 += a.x * bv;
      acc1 += a.y * bv;
      acc2 += a.z * bv;
      acc3 += a.w * bv;
    }
    workgroupBarrier();
  }
  // Edge blocks clamp indices past M or N and write from the far corner back (see registerWgsl).
  let r = rBase + lid.y * 4u;
  let c = cBase + lid.x * 4u;
  if (r >= u.M || c >= u.N) { return; }
  let co = b * u.M * u.N;
${range(4)
  .reverse()
  .map(
    (i) => `  let o${i} = co + min(r + ${i}u, u.M - 1u) * u.N;
${range(4)
  .reverse()
  .map((e) => `  C[o${i} + min(c + ${e}u, u.N - 1u)] = acc${i}.${lane(e)};`)
  .join('\n')}`,
  )
  .join('\n')}
}
`;
}

const sources = new Map<string, string>();

/** The WGSL of one matmul kernel (memoized: the backend caches pipelines by source). */
export function matmulWgsl(shape: MatmulShape, transA: boolean, transB: boolean): string {
  const key = `${shape}${+transA}${+transB}`;
  let s = sources.get(key);
  if (!s) {
    s = shape === 'register' ? registerWgsl(transA, transB) : tiledWgsl(transA, transB);
    sources.set(key, s);
  }
  return s;
}

/** Copies matrices [rows, cols] into [rowsP, ld] (ld a multiple of 4), zero-filling the rest. */
export const PAD_WGSL = /* wgsl */ `// adjoint pad matrices
struct U { total4: u32, cols: u32, ld4: u32, rows: u32, rowsP: u32, p0: u32, p1: u32, p2: u32 }
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> Y: array<vec4<f32>>;
@group(0) @binding(2) var<uniform> u: U;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let i = (wid.y * nwg.x + wid.x) * 64u + li;
  if (i >= u.total4) { return; }
  let gr = i / u.ld4;
  let c = (i - gr * u.ld4) * 4u;
  let mat = gr / u.rowsP;
  let row = gr - mat * u.rowsP;
  let s = (mat * u.rows + row) * u.cols;
  var v = vec4<f32>(0.0);
  if (row >= u.rows) { Y[i] = v; return; }
  if (c < u.cols) { v.x = X[s + c]; }
  if (c + 1u < u.cols) { v.y = X[s + c + 1u]; }
  if (c + 2u < u.cols) { v.z = X[s + c + 2u]; }
  if (c + 3u < u.cols) { v.w = X[s + c + 3u]; }
  Y[i] = v;
}
`;

/** Writes `count` copies of one 32-bit word. */
export const FILL_WORDS_WGSL = /* wgsl */ `// adjoint fill words
struct U { count: u32, bits: u32, p0: u32, p1: u32 }
@group(0) @binding(0) var<storage, read_write> Y: array<u32>;
@group(0) @binding(1) var<uniform> u: U;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let i = (wid.y * nwg.x + wid.x) * 64u + li;
  if (i < u.count) { Y[i] = u.bits; }
}
`;

/** A dispatch that sets the first `count` 32-bit words of `slot` to `bits` (default 0: +0.0 or int 0). */
export function fillWords(slot: number, count: number, limits: GpuLimits, bits = 0): GpuDispatch {
  return {
    wgsl: FILL_WORDS_WGSL,
    buffers: [slot],
    uniforms: new Uint32Array([count, bits >>> 0, 0, 0]),
    workgroups: grid(count, 64, limits),
  };
}

/** Whether workgroup counts are within the per-dimension limit (grid() folds into 2-D, but only so far). */
export function fits(dispatches: readonly GpuDispatch[], limits: GpuLimits): boolean {
  return dispatches.every((d) => d.workgroups.every((w) => w <= limits.maxComputeWorkgroupsPerDimension));
}

/** Drops size-1 batch dims and merges runs that are contiguous in every operand. */
function coalesceBatch(
  dims: readonly number[],
  strides: readonly (readonly number[])[],
): { dims: number[]; strides: number[][] } {
  const d: number[] = [];
  const s: number[][] = strides.map(() => []);
  for (let i = 0; i < dims.length; i++) {
    if (dims[i] === 1) continue;
    const last = d.length - 1;
    if (last >= 0 && strides.every((st, k) => s[k][last] === st[i] * dims[i])) {
      d[last] *= dims[i];
      strides.forEach((st, k) => {
        s[k][last] = st[i];
      });
    } else {
      d.push(dims[i]);
      strides.forEach((st, k) => {
        s[k].push(st[i]);
      });
    }
  }
  return { dims: d, strides: s };
}

const roundUp4 = (x: number) => Math.ceil(x / 4) * 4;

const matmul: GpuKernelBuilder = (n, ctx) => {
  const [a, b] = n.inputs;
  if (a.dtype !== 'float32' || b.dtype !== 'float32' || n.dtype !== 'float32') return null;
  const transA = n.attrs.transA as boolean;
  const transB = n.attrs.transB as boolean;
  const [ar, ac] = a.shape.slice(-2);
  const [br, bc] = b.shape.slice(-2);
  const M = transA ? ac : ar;
  const K = transA ? ar : ac;
  const N = transB ? br : bc;
  const size = sizeOf(n.shape);
  if (size === 0) return [];
  const limits = ctx.limits;
  const out = ctx.at(n);
  if (K === 0) {
    const fill = [fillWords(out, size, limits)];
    return fits(fill, limits) ? fill : null;
  }

  // Stored operand layouts after padding: rows of a multiple of 4 floats (vec4 loads) and, for
  // 'register' (which has no k tail), K rounded up to a multiple of 4 with zeros in both operands.
  const register = ctx.tuning.matmul === 'register';
  const kP = register ? roundUp4(K) : K;
  const [arP, lda] = transA ? [kP, roundUp4(ac)] : [ar, roundUp4(register ? kP : ac)];
  const [brP, ldb] = transB ? [br, roundUp4(register ? kP : bc)] : [kP, roundUp4(bc)];
  const aMats = sizeOf(a.shape.slice(0, -2));
  const bMats = sizeOf(b.shape.slice(0, -2));
  const maxBytes = limits.maxStorageBufferBindingSize;
  if (Math.max(size, aMats * arP * lda, bMats * brP * ldb) * 4 > maxBytes) return null;
  const tilesX = Math.ceil(N / TILE);
  const tilesY = Math.ceil(M / TILE);
  const maxGroups = limits.maxComputeWorkgroupsPerDimension;
  if (tilesX > maxGroups || tilesY > maxGroups) return null;
  if (!register && limits.maxComputeInvocationsPerWorkgroup < 256) return null;

  const batchShape = n.shape.slice(0, -2);
  const nBatch = sizeOf(batchShape);
  const cb = coalesceBatch(batchShape, [
    broadcastStrides(a.shape.slice(0, -2), batchShape).map((s) => s * arP * lda),
    broadcastStrides(b.shape.slice(0, -2), batchShape).map((s) => s * brP * ldb),
  ]);
  if (cb.dims.length > MAX_BATCH_DIMS) return null;
  const pad = MAX_BATCH_DIMS - cb.dims.length;
  const dims = [...new Array<number>(pad).fill(1), ...cb.dims];
  const sa = [...new Array<number>(pad).fill(0), ...cb.strides[0]];
  const sb = [...new Array<number>(pad).fill(0), ...cb.strides[1]];

  const dispatches: GpuDispatch[] = [];
  const operand = (node: GNode, rows: number, cols: number, rowsP: number, ld: number, mats: number) => {
    if (ld === cols && rowsP === rows) return ctx.at(node);
    const tmp = ctx.temp(mats * rowsP * ld * 4);
    const total4 = (mats * rowsP * ld) / 4;
    dispatches.push({
      wgsl: PAD_WGSL,
      buffers: [ctx.at(node), tmp],
      uniforms: new Uint32Array([total4, cols, ld / 4, rows, rowsP, 0, 0, 0]),
      workgroups: grid(total4, 64, limits),
    });
    return tmp;
  };
  const ia = operand(a, ar, ac, arP, lda, aMats);
  const ib = operand(b, br, bc, brP, ldb, bMats);
  const wgsl = matmulWgsl(ctx.tuning.matmul, transA, transB);
  for (let b0 = 0; b0 < nBatch; b0 += maxGroups) {
    const count = Math.min(maxGroups, nBatch - b0);
    dispatches.push({
      wgsl,
      buffers: [ia, ib, out],
      uniforms: new Uint32Array([M, N, kP, lda, ldb, b0, 0, 0, ...dims, ...sa, ...sb]),
      workgroups: [tilesX, tilesY, count],
    });
  }
  return fits(dispatches, limits) ? dispatches : null;
};

export const matmulKernels: Record<string, GpuKernelBuilder> = { matmul };

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Times both kernel shapes on a 512×512×512 product and returns the faster; the backend caches the
 * answer per adapter. Costs a pipeline compilation per shape (about a second each on a CPU adapter,
 * where the compilation happens on first dispatch) plus a few runs. `pipeline`, when given, builds
 * pipelines through the backend's own cache (so the ones compiled here are reused); a shape whose
 * pipeline fails to build loses.
 */
export async function calibrateMatmul(
  device: GPUDevice,
  opts: { pipeline?: (wgsl: string) => Promise<GPUComputePipeline> } = {},
): Promise<MatmulShape> {
  const S = 512;
  const bytes = S * S * 4;
  const usage = GPUBufferUsage.STORAGE;
  const a = device.createBuffer({ size: bytes, usage: usage | GPUBufferUsage.COPY_DST });
  const b = device.createBuffer({ size: bytes, usage: usage | GPUBufferUsage.COPY_DST });
  const c = device.createBuffer({ size: bytes, usage });
  const uni = device.createBuffer({ size: 80, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  const fill = new Float32Array(S * S).map((_, i) => ((i * 7919) % 13) / 13 - 0.5);
  device.queue.writeBuffer(a, 0, fill);
  device.queue.writeBuffer(b, 0, fill);
  device.queue.writeBuffer(
    uni,
    0,
    new Uint32Array([S, S, S, S, S, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0]),
  );
  const build =
    opts.pipeline ??
    ((code: string) =>
      device.createComputePipelineAsync({
        layout: 'auto',
        compute: { module: device.createShaderModule({ code }), entryPoint: 'main' },
      }));
  const time = async (shape: MatmulShape): Promise<number> => {
    let pipeline: GPUComputePipeline;
    try {
      pipeline = await build(matmulWgsl(shape, false, false));
    } catch {
      return Number.POSITIVE_INFINITY;
    }
    const group = device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: [a, b, c, uni].map((buffer, binding) => ({ binding, resource: { buffer } })),
    });
    const run = async (reps: number, expectMs: number) => {
      const enc = device.createCommandEncoder();
      for (let r = 0; r < reps; r++) {
        const pass = enc.beginComputePass();
        pass.setPipeline(pipeline);
        pass.setBindGroup(0, group);
        pass.dispatchWorkgroups(S / TILE, S / TILE, 1);
        pass.end();
      }
      const t0 = performance.now();
      device.queue.submit([enc.finish()]);
      // Dawn in Node polls on the main thread while a promise on GPU work is pending, taking CPU
      // from a software adapter's own threads: sleep through most of the expected time first.
      if (expectMs > 2) await sleep(expectMs * 0.8);
      await device.queue.onSubmittedWorkDone();
      return performance.now() - t0;
    };
    await run(1, 0); // compiles the pipeline on first use
    const first = await run(1, 0);
    let best = first;
    for (let i = 0; i < 2; i++) best = Math.min(best, (await run(2, 2 * best)) / 2);
    return best;
  };
  try {
    const reg = await time('register');
    const tiled = await time('tiled');
    return tiled < reg ? 'tiled' : 'register';
  } finally {
    for (const buf of [a, b, c, uni]) buf.destroy();
  }
}
