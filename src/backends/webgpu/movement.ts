/**
 * Data movement and sources: one strided-copy shader serves transpose, broadcastTo, slice, pad
 * and concat, and a fill shader writes constants. Copies move 32-bit words, so one pipeline
 * serves both dtypes.
 *
 * The copy walks `count` elements of an iteration shape; element (i0, i1, ...) is read at
 * srcBase + Σ i_d·srcStride_d and written at dstBase + Σ i_d·dstStride_d. With bounds, an element
 * whose index leaves [lo_d, hi_d) on some dim is written as `fill` instead of read (pad). Each op
 * is a choice of shape, strides and bases (in uniforms, coalesced): transpose permutes source
 * strides, broadcastTo zeroes them, slice offsets the base, pad bounds the walk, concat is one
 * dispatch per input writing into its region of the output. const, input and reshape need no
 * work (a reshape aliases its input's buffer).
 */
import { broadcastStrides } from '../../shape';
import { type GpuDispatch, type GpuKernelBuilder, type GpuKernelContext, grid } from './kernel';
import {
  coalesce,
  contiguous,
  entry,
  MAX_RANK,
  UNIFORM_WORD,
  Uniforms,
  uniformDecl,
  valueBits,
  WG,
} from './wgsl';

/** Words: count, rank, srcBase (i32), dstBase, fill, bounded, 2 spare, then 5 arrays of MAX_RANK. */
const SHAPE = 8;
const SRC = SHAPE + MAX_RANK;
const DST = SRC + MAX_RANK;
const LO = DST + MAX_RANK;
const HI = LO + MAX_RANK;
const WORDS = HI + MAX_RANK;

const COPY_WGSL = `@group(0) @binding(0) var<storage, read> src: array<u32>;
@group(0) @binding(1) var<storage, read_write> dst: array<u32>;
${uniformDecl(2, WORDS)}
${UNIFORM_WORD}
${entry(WG)}
  if (i >= uw(0u)) { return; }
  var rem = i;
  var s = bitcast<i32>(uw(2u));
  var o = uw(3u);
  var inside = true;
  let bounded = uw(5u) != 0u;
  // innermost dim first; the outermost index is what remains (one division per inner dim)
  for (var d = uw(1u); d > 0u; d = d - 1u) {
    let k = d - 1u;
    var q = rem;
    if (k > 0u) {
      let n = uw(${SHAPE}u + k);
      let next = rem / n;
      q = rem - next * n;
      rem = next;
    }
    s = s + i32(q) * bitcast<i32>(uw(${SRC}u + k));
    o = o + q * uw(${DST}u + k);
    if (bounded) { inside = inside && q >= uw(${LO}u + k) && q < uw(${HI}u + k); }
  }
  if (inside) {
    dst[o] = src[u32(s)];
  } else {
    dst[o] = uw(4u);
  }
}
`;

const FILL_WGSL = `@group(0) @binding(0) var<storage, read_write> dst: array<u32>;
${uniformDecl(1, 4)}
${entry(WG)}
  if (i < u[0][0]) { dst[i] = u[0][1]; }
}
`;

interface Walk {
  shape: readonly number[];
  src: readonly number[];
  dst: readonly number[];
  srcBase?: number;
  dstBase?: number;
  /** Pad: per dim [lo, hi) of indices that read the source; others write `fill`. */
  bounds?: { lo: readonly number[]; hi: readonly number[]; fill: number };
}

/** One strided copy, or null past MAX_RANK dims; [] when there is nothing to copy. */
function copy(w: Walk, src: number, dst: number, ctx: GpuKernelContext): GpuDispatch[] | null {
  const count = w.shape.reduce((a, d) => a * d, 1);
  if (count === 0) return [];
  let shape: readonly number[] = w.shape;
  let ss: readonly number[] = w.src;
  let ds: readonly number[] = w.dst;
  if (!w.bounds) {
    const c = coalesce(w.shape, [w.src, w.dst]);
    [shape, ss, ds] = [c.shape, c.strides[0], c.strides[1]];
  }
  if (shape.length > MAX_RANK) return null;
  const uniforms = new Uniforms()
    .u32(count)
    .u32(shape.length)
    .i32(w.srcBase ?? 0)
    .u32(w.dstBase ?? 0)
    .u32(w.bounds?.fill ?? 0)
    .u32(w.bounds ? 1 : 0)
    .u32(0)
    .u32(0)
    .array(shape, MAX_RANK)
    .array(ss, MAX_RANK)
    .array(ds, MAX_RANK)
    .array(w.bounds?.lo ?? [], MAX_RANK)
    .array(w.bounds?.hi ?? [], MAX_RANK)
    .finish();
  return [{ wgsl: COPY_WGSL, buffers: [src, dst], uniforms, workgroups: grid(count, WG, ctx.limits) }];
}

const transpose: GpuKernelBuilder = (n, ctx) => {
  const x = n.inputs[0];
  const st = contiguous(x.shape);
  const perm = n.attrs.perm as number[];
  return copy(
    {
      shape: n.shape,
      src: perm.map((p) => st[p]),
      dst: contiguous(n.shape),
    },
    ctx.at(x),
    ctx.at(n),
    ctx,
  );
};

const broadcastTo: GpuKernelBuilder = (n, ctx) => {
  const x = n.inputs[0];
  return copy(
    { shape: n.shape, src: broadcastStrides(x.shape, n.shape), dst: contiguous(n.shape) },
    ctx.at(x),
    ctx.at(n),
    ctx,
  );
};

const slice: GpuKernelBuilder = (n, ctx) => {
  const x = n.inputs[0];
  const st = contiguous(x.shape);
  const begin = n.attrs.begin as number[];
  return copy(
    {
      shape: n.shape,
      src: st,
      dst: contiguous(n.shape),
      srcBase: begin.reduce((a, b, i) => a + b * st[i], 0),
    },
    ctx.at(x),
    ctx.at(n),
    ctx,
  );
};

const pad: GpuKernelBuilder = (n, ctx) => {
  const x = n.inputs[0];
  const pads = n.attrs.pads as [number, number][];
  const st = contiguous(x.shape);
  // Bounded walks are not coalesced (bounds are per dim): pads of rank > MAX_RANK are declined.
  const lo = pads.map((p) => p[0]);
  const hi = pads.map((p, i) => p[0] + x.shape[i]);
  return copy(
    {
      shape: n.shape,
      src: st,
      dst: contiguous(n.shape),
      srcBase: -lo.reduce((a, l, i) => a + l * st[i], 0),
      bounds: { lo, hi, fill: valueBits(0, n.dtype) },
    },
    ctx.at(x),
    ctx.at(n),
    ctx,
  );
};

const concat: GpuKernelBuilder = (n, ctx) => {
  const axis = n.attrs.axis as number;
  const ost = contiguous(n.shape);
  const out: GpuDispatch[] = [];
  let at = 0;
  for (const x of n.inputs) {
    const d = copy(
      { shape: x.shape, src: contiguous(x.shape), dst: ost, dstBase: at * ost[axis] },
      ctx.at(x),
      ctx.at(n),
      ctx,
    );
    if (d === null) return null;
    out.push(...d);
    at += x.shape[axis];
  }
  return out;
};

const fill: GpuKernelBuilder = (n, ctx) => {
  const size = n.shape.reduce((a, d) => a * d, 1);
  if (size === 0) return [];
  const uniforms = new Uniforms()
    .u32(size)
    .u32(valueBits(n.attrs.value as number, n.dtype))
    .finish();
  return [{ wgsl: FILL_WGSL, buffers: [ctx.at(n)], uniforms, workgroups: grid(size, WG, ctx.limits) }];
};

/** Nodes whose value is already in a buffer (a reshape shares its input's). */
const none: GpuKernelBuilder = () => [];

export const movementKernels: Record<string, GpuKernelBuilder> = {
  const: none,
  input: none,
  reshape: none,
  rematBarrier: none,
  fill,
  transpose,
  broadcastTo,
  slice,
  pad,
  concat,
};
