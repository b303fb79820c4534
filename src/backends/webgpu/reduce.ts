/**
 * Reductions (sum, max, min over any axes; argmax over one) with one WGSL shader: the op, the
 * dtype and the walk are uniforms. Each output ("row") reduces `len` elements found through two
 * strided walks — the kept dims give the row's base offset, the reduced dims the offset of its
 * r-th element — so any axis set reduces in place, without a transposing copy.
 *
 * Three schedules, all deterministic (the combination order depends only on the shapes):
 * - serial: one invocation per row, elements in order (short rows, or many rows);
 * - wide: one workgroup of 256 per row, each invocation a strided partial, then invocation 0
 *   combines the 256 partials in order (long rows). One barrier: a log-step tree compiles ~4x
 *   slower on lavapipe (each barrier splits the shader into coroutine segments) for a gain of
 *   about a microsecond per row on a GPU;
 * - split: few very long rows (a full sum) are cut into chunks reduced by wide workgroups into a
 *   scratch buffer of (value, index) pairs, then a second pass reduces the pairs, so a big
 *   reduction uses more than one workgroup (one CPU thread on lavapipe).
 * max/min propagate NaN; argmax takes the first NaN, else the first index of the largest value,
 * as the reference does (argmin likewise, with the smallest). int32 sums wrap. prod multiplies.
 */
import type { GNode } from '../../graph/graph';
import { type GpuDispatch, type GpuKernelBuilder, type GpuKernelContext, grid } from './kernel';
import {
  coalesce,
  contiguous,
  entry,
  helperSource,
  MAX_RANK,
  UNIFORM_WORD,
  Uniforms,
  uniformDecl,
} from './wgsl';

const TG = 256;
const OPS: Record<string, number> = { sum: 0, max: 1, min: 2, argmax: 3, prod: 4, argmin: 5 };
const FLAG_INT = 1;
const FLAG_PAIRS_IN = 2;
const FLAG_PAIRS_OUT = 4;
/** Words: rows, len, op, flags, mode (0 serial, 1 wide), chunks, chunkLen, keptRank, redRank, 3 spare, then 4 arrays of MAX_RANK. */
const KEPT_SHAPE = 12;
const KEPT_STRIDE = KEPT_SHAPE + MAX_RANK;
const RED_SHAPE = KEPT_STRIDE + MAX_RANK;
const RED_STRIDE = RED_SHAPE + MAX_RANK;
const WORDS = RED_STRIDE + MAX_RANK;

const REDUCE_WGSL = `@group(0) @binding(0) var<storage, read> src: array<u32>;
@group(0) @binding(1) var<storage, read_write> dst: array<u32>;
${uniformDecl(2, WORDS)}
${UNIFORM_WORD}
${helperSource(['maxf', 'minf', 'isnanf'])}
const EMPTY = 0xffffffffu;
struct Acc { v: u32, i: u32 }
var<workgroup> sv: array<u32, ${TG}>;
var<workgroup> si: array<u32, ${TG}>;

fn isInt() -> bool { return (uw(3u) & ${FLAG_INT}u) != 0u; }

fn identity() -> u32 {
  let op = uw(2u);
  if (op == 1u) { return select(0xff800000u, 0x80000000u, isInt()); }
  if (op == 2u) { return select(0x7f800000u, 0x7fffffffu, isInt()); }
  if (op == 4u) { return select(0x3f800000u, 1u, isInt()); }
  return 0u;
}

// argmax: whether (b, ib) replaces (a, ia): NaN first, then the larger value, ties to the lower index.
fn better(a: Acc, b: Acc) -> bool {
  if (b.i == EMPTY) { return false; }
  if (a.i == EMPTY) { return true; }
  if (isInt()) {
    let x = bitcast<i32>(a.v);
    let y = bitcast<i32>(b.v);
    return select(y > x, y < x, uw(2u) == 5u) || (y == x && b.i < a.i);
  }
  let x = bitcast<f32>(a.v);
  let y = bitcast<f32>(b.v);
  if (isnanf(x)) { return isnanf(y) && b.i < a.i; }
  if (isnanf(y)) { return true; }
  return select(y > x, y < x, uw(2u) == 5u) || (y == x && b.i < a.i);
}

fn combine(a: Acc, b: Acc) -> Acc {
  let op = uw(2u);
  if (op == 3u || op == 5u) {
    if (better(a, b)) { return b; }
    return a;
  }
  if (isInt()) {
    let x = bitcast<i32>(a.v);
    let y = bitcast<i32>(b.v);
    if (op == 0u) { return Acc(bitcast<u32>(x + y), 0u); }
    if (op == 4u) { return Acc(bitcast<u32>(x * y), 0u); }
    if (op == 1u) { return Acc(bitcast<u32>(max(x, y)), 0u); }
    return Acc(bitcast<u32>(min(x, y)), 0u);
  }
  let x = bitcast<f32>(a.v);
  let y = bitcast<f32>(b.v);
  if (op == 0u) { return Acc(bitcast<u32>(x + y), 0u); }
  if (op == 4u) { return Acc(bitcast<u32>(x * y), 0u); }
  if (op == 1u) { return Acc(bitcast<u32>(maxf(x, y)), 0u); }
  return Acc(bitcast<u32>(minf(x, y)), 0u);
}

// Offset of index \`idx\` in a walk of \`rank\` dims (shapes at word s, strides at word t); the
// outermost index is what remains after the inner dims (one division per inner dim).
fn walk(idx: u32, rank: u32, s: u32, t: u32) -> u32 {
  var rem = idx;
  var off = 0u;
  for (var d = rank; d > 0u; d = d - 1u) {
    let k = d - 1u;
    var q = rem;
    if (k > 0u) {
      let n = uw(s + k);
      let next = rem / n;
      q = rem - next * n;
      rem = next;
    }
    off = off + q * uw(t + k);
  }
  return off;
}

// Row v's elements first, first + step, ... of its chunk.
fn partial(v: u32, first: u32, step: u32) -> Acc {
  let chunks = uw(5u);
  let o = v / chunks;
  let start = (v % chunks) * uw(6u);
  let end = min(uw(1u), start + uw(6u));
  let pairs = (uw(3u) & ${FLAG_PAIRS_IN}u) != 0u;
  let base = walk(o, uw(7u), ${KEPT_SHAPE}u, ${KEPT_STRIDE}u);
  var acc = Acc(identity(), EMPTY);
  for (var r = start + first; r < end; r = r + step) {
    var x: Acc;
    if (pairs) {
      let p = 2u * (o * uw(1u) + r);
      x = Acc(src[p], src[p + 1u]);
    } else {
      x = Acc(src[base + walk(r, uw(8u), ${RED_SHAPE}u, ${RED_STRIDE}u)], r);
    }
    acc = combine(acc, x);
  }
  return acc;
}

fn store(v: u32, a: Acc) {
  if ((uw(3u) & ${FLAG_PAIRS_OUT}u) != 0u) {
    dst[2u * v] = a.v;
    dst[2u * v + 1u] = a.i;
    return;
  }
  dst[v] = select(a.v, a.i, uw(2u) == 3u || uw(2u) == 5u);
}

@compute @workgroup_size(${TG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let rows = uw(0u);
  let g = wid.y * nwg.x + wid.x;
  let wide = uw(4u) != 0u;
  if (wide && g >= rows) { return; }
  // serial: invocation v reduces row v; wide: workgroup g reduces row g, invocation lid every TG-th element
  let v = select(g * ${TG}u + lid, g, wide);
  let p = partial(min(v, rows - 1u), select(0u, lid, wide), select(1u, ${TG}u, wide));
  if (!wide) {
    if (v < rows) { store(v, p); }
    return;
  }
  sv[lid] = p.v;
  si[lid] = p.i;
  workgroupBarrier();
  if (lid == 0u) {
    var acc = Acc(sv[0], si[0]);
    for (var k = 1u; k < ${TG}u; k = k + 1u) { acc = combine(acc, Acc(sv[k], si[k])); }
    store(g, acc);
  }
}
`;

/** Rows at least this long use a workgroup each. */
const WIDE_MIN_LEN = 256;
/** Rows at least this long, when there are few of them, are split into chunks of about SPLIT_CHUNK. */
const SPLIT_MIN_LEN = 16384;
const SPLIT_MAX_ROWS = 64;
const SPLIT_CHUNK = 4096;

interface Pass {
  rows: number;
  len: number;
  flags: number;
  chunks: number;
  chunkLen: number;
  kept: { shape: number[]; strides: number[] };
  red: { shape: number[]; strides: number[] };
}

function dispatch(op: number, pass: Pass, src: number, dst: number, ctx: GpuKernelContext): GpuDispatch {
  const wide = pass.chunkLen >= WIDE_MIN_LEN && pass.rows <= 65536;
  const uniforms = new Uniforms()
    .u32(pass.rows)
    .u32(pass.len)
    .u32(op)
    .u32(pass.flags)
    .u32(wide ? 1 : 0)
    .u32(pass.chunks)
    .u32(pass.chunkLen)
    .u32(pass.kept.shape.length)
    .u32(pass.red.shape.length)
    .u32(0)
    .u32(0)
    .u32(0)
    .array(pass.kept.shape, MAX_RANK)
    .array(pass.kept.strides, MAX_RANK)
    .array(pass.red.shape, MAX_RANK)
    .array(pass.red.strides, MAX_RANK)
    .finish();
  return {
    wgsl: REDUCE_WGSL,
    buffers: [src, dst],
    uniforms,
    workgroups: wide ? grid(pass.rows, 1, ctx.limits) : grid(pass.rows, TG, ctx.limits),
  };
}

/** Reduces `x` over `axes` into `n` (op: sum, max, min or argmax); null when a walk has more than MAX_RANK dims. */
function reduction(n: GNode, x: GNode, axes: readonly number[], ctx: GpuKernelContext): GpuDispatch[] | null {
  const op = OPS[n.op];
  const st = contiguous(x.shape);
  const keptAxes = x.shape.map((_, i) => i).filter((i) => !axes.includes(i));
  const kc = coalesce(
    keptAxes.map((a) => x.shape[a]),
    [keptAxes.map((a) => st[a])],
  );
  const rc = coalesce(
    axes.map((a) => x.shape[a]),
    [axes.map((a) => st[a])],
  );
  if (kc.shape.length > MAX_RANK || rc.shape.length > MAX_RANK) return null;
  const rows = keptAxes.reduce((a, k) => a * x.shape[k], 1);
  const len = axes.reduce((a, k) => a * x.shape[k], 1);
  if (rows === 0) return [];
  const kept = { shape: kc.shape, strides: kc.strides[0] };
  const red = { shape: rc.shape, strides: rc.strides[0] };
  const int = x.dtype === 'int32' ? FLAG_INT : 0;
  const src = ctx.at(x);
  const dst = ctx.at(n);
  if (len >= SPLIT_MIN_LEN && rows <= SPLIT_MAX_ROWS) {
    const chunks = Math.min(TG, Math.ceil(len / SPLIT_CHUNK));
    const chunkLen = Math.ceil(len / chunks);
    const tmp = ctx.temp(Math.max(16, 8 * rows * chunks));
    const first: Pass = {
      rows: rows * chunks,
      len,
      flags: int | FLAG_PAIRS_OUT,
      chunks,
      chunkLen,
      kept,
      red,
    };
    const none = { shape: [], strides: [] };
    const second: Pass = {
      rows,
      len: chunks,
      flags: int | FLAG_PAIRS_IN,
      chunks: 1,
      chunkLen: chunks,
      kept: none,
      red: none,
    };
    return [dispatch(op, first, src, tmp, ctx), dispatch(op, second, tmp, dst, ctx)];
  }
  return [dispatch(op, { rows, len, flags: int, chunks: 1, chunkLen: len, kept, red }, src, dst, ctx)];
}

const reduceAxes: GpuKernelBuilder = (n, ctx) => reduction(n, n.inputs[0], n.attrs.axes as number[], ctx);

/** cumsum: one invocation per (outer, inner) line walks it in order (as the reference adds). */
const CUMSUM_WGSL = `@group(0) @binding(0) var<storage, read> src: array<u32>;
@group(0) @binding(1) var<storage, read_write> dst: array<u32>;
${uniformDecl(2, 4)}
${UNIFORM_WORD}
${entry(TG)}
  let lines = uw(0u);
  if (i >= lines) { return; }
  let len = uw(1u);
  let inner = uw(2u);
  let isInt = (uw(3u) & 1u) != 0u;
  let rev = (uw(3u) & 2u) != 0u;
  let base = (i / inner) * len * inner + i % inner;
  var accF = 0.0;
  var accI = 0i;
  for (var k = 0u; k < len; k = k + 1u) {
    let at = base + select(k, len - 1u - k, rev) * inner;
    if (isInt) {
      accI = accI + bitcast<i32>(src[at]);
      dst[at] = bitcast<u32>(accI);
    } else {
      accF = accF + bitcast<f32>(src[at]);
      dst[at] = bitcast<u32>(accF);
    }
  }
}
`;

const cumsum: GpuKernelBuilder = (n, ctx) => {
  const x = n.inputs[0];
  const axis = n.attrs.axis as number;
  const len = x.shape[axis];
  const inner = x.shape.slice(axis + 1).reduce((a, d) => a * d, 1);
  const lines = x.shape.reduce((a, d, i) => (i === axis ? a : a * d), 1);
  if (lines === 0 || len === 0) return [];
  const flags = (x.dtype === 'int32' ? 1 : 0) | (n.attrs.reverse ? 2 : 0);
  const uniforms = new Uniforms().u32(lines).u32(len).u32(inner).u32(flags).finish();
  return [
    { wgsl: CUMSUM_WGSL, buffers: [ctx.at(x), ctx.at(n)], uniforms, workgroups: grid(lines, TG, ctx.limits) },
  ];
};

export const reduceKernels: Record<string, GpuKernelBuilder> = {
  cumsum,
  sum: reduceAxes,
  max: reduceAxes,
  min: reduceAxes,
  prod: reduceAxes,
  argmax: (n, ctx) => reduction(n, n.inputs[0], [n.attrs.axis as number], ctx),
  argmin: (n, ctx) => reduction(n, n.inputs[0], [n.attrs.axis as number], ctx),
};
