/**
 * The wasm kernels of each op: for a graph node, a step that issues kernel calls. Buffers are
 * addressed through the plan's pointer table `p` (indices from `ctx.at`), so a step built once
 * runs with new constants and outputs on every call. Ops without a kernel here fall back to the
 * registry's reference implementation on the host (correct, slow, and counted in stats).
 */
import { ValueError } from '../../errors';
import type { GNode } from '../../graph/graph';
import { getOp } from '../../ops/registry';
import { broadcastStrides, sizeOf, stridesOf } from '../../shape';
import { BinaryOp, type BinaryOpCode, type Kernels, ReduceOp, UnaryOp, type UnaryOpCode } from './kernels';

export type PtrTable = number[];
export type StepFn = (p: PtrTable) => void;

export interface StepContext {
  readonly k: Kernels;
  /** Index in the pointer table of a node's buffer. */
  at(n: GNode): number;
  /** A buffer of `elements` 32-bit values live only while this step runs. */
  temp(elements: number): number;
  /** Scratch bytes shared by all steps (matmul packing). Returns its pointer-table index. */
  scratch(bytes: number): number;
}

export type KernelBuilder = (n: GNode, ctx: StepContext) => StepFn | null;

const f32Unary: Record<string, UnaryOpCode> = {
  neg: UnaryOp.neg,
  abs: UnaryOp.abs,
  sign: UnaryOp.sign,
  exp: UnaryOp.exp,
  log: UnaryOp.log,
  log1p: UnaryOp.log1p,
  sqrt: UnaryOp.sqrt,
  square: UnaryOp.square,
  reciprocal: UnaryOp.reciprocal,
  sin: UnaryOp.sin,
  cos: UnaryOp.cos,
  tanh: UnaryOp.tanh,
  sigmoid: UnaryOp.sigmoid,
  relu: UnaryOp.relu,
  softplus: UnaryOp.softplus,
};
const i32Unary: Record<string, UnaryOpCode> = { neg: UnaryOp.negI32, abs: UnaryOp.absI32 };

const f32Binary: Record<string, BinaryOpCode> = {
  add: BinaryOp.add,
  sub: BinaryOp.sub,
  mul: BinaryOp.mul,
  div: BinaryOp.div,
  pow: BinaryOp.pow,
  maximum: BinaryOp.maximum,
  minimum: BinaryOp.minimum,
  greater: BinaryOp.greater,
  less: BinaryOp.less,
  equal: BinaryOp.equal,
};
const i32Binary: Record<string, BinaryOpCode> = {
  add: BinaryOp.addI32,
  sub: BinaryOp.subI32,
  mul: BinaryOp.mulI32,
  maximum: BinaryOp.maximumI32,
  minimum: BinaryOp.minimumI32,
  greater: BinaryOp.greaterI32,
  less: BinaryOp.lessI32,
  equal: BinaryOp.equalI32,
};

/** The unary kernel op of a node, or undefined. The dtype that matters is the input's. */
export function unaryCode(n: GNode): UnaryOpCode | undefined {
  if (n.op === 'cast') return n.dtype === 'int32' ? UnaryOp.castF32ToI32 : UnaryOp.castI32ToF32;
  return (n.inputs[0]?.dtype === 'int32' ? i32Unary : f32Unary)[n.op];
}

export function binaryCode(n: GNode): BinaryOpCode | undefined {
  return (n.inputs[0]?.dtype === 'int32' ? i32Binary : f32Binary)[n.op];
}

const unary: KernelBuilder = (n, ctx) => {
  const code = unaryCode(n)!;
  const x = ctx.at(n.inputs[0]);
  const out = ctx.at(n);
  const size = sizeOf(n.shape);
  return (p) => ctx.k.exports.unary(code, p[x], p[out], size);
};

const binary: KernelBuilder = (n, ctx) => {
  const code = binaryCode(n)!;
  const [a, b] = n.inputs;
  const ia = ctx.at(a);
  const ib = ctx.at(b);
  const out = ctx.at(n);
  const size = sizeOf(n.shape);
  const sa = sizeOf(a.shape);
  const sb = sizeOf(b.shape);
  const e = ctx.k.exports;
  if ((sa === size || sa === 1) && (sb === size || sb === 1)) {
    const stA = sa === size ? 1 : 0;
    const stB = sb === size ? 1 : 0;
    return (p) => e.binary(code, p[ia], stA, p[ib], stB, p[out], size);
  }
  return (p) => ctx.k.binaryBroadcast(code, p[ia], a.shape, p[ib], b.shape, p[out]);
};

const where: KernelBuilder = (n, ctx) => {
  const [c, a, b] = n.inputs;
  const [ic, ia, ib, out] = [ctx.at(c), ctx.at(a), ctx.at(b), ctx.at(n)];
  return (p) => ctx.k.whereBroadcast(p[ic], c.shape, p[ia], a.shape, p[ib], b.shape, p[out]);
};

const fill: KernelBuilder = (n, ctx) => {
  const out = ctx.at(n);
  const size = sizeOf(n.shape);
  const v = n.attrs.value as number;
  return n.dtype === 'int32' ? (p) => ctx.k.fillI32(p[out], size, v) : (p) => ctx.k.fillF32(p[out], size, v);
};

/** [outer, len, inner] views when the reduced axes are one contiguous run, else null. */
function contiguousRun(shape: readonly number[], axes: readonly number[]): [number, number, number] | null {
  if (axes.length === 0) return [sizeOf(shape), 1, 1];
  for (let i = 1; i < axes.length; i++) if (axes[i] !== axes[i - 1] + 1) return null;
  const a0 = axes[0];
  const a1 = axes[axes.length - 1];
  return [sizeOf(shape.slice(0, a0)), sizeOf(shape.slice(a0, a1 + 1)), sizeOf(shape.slice(a1 + 1))];
}

const reduce: KernelBuilder = (n, ctx) => {
  const x = n.inputs[0];
  const axes = n.attrs.axes as number[];
  const int = x.dtype === 'int32';
  const code =
    n.op === 'sum'
      ? int
        ? ReduceOp.sumI32
        : ReduceOp.sum
      : n.op === 'max'
        ? int
          ? ReduceOp.maxI32
          : ReduceOp.max
        : int
          ? ReduceOp.minI32
          : ReduceOp.min;
  const ix = ctx.at(x);
  const out = ctx.at(n);
  const outSize = sizeOf(n.shape);
  if (outSize === 0) return null;
  const run = contiguousRun(x.shape, axes);
  if (run) {
    const [outer, len, inner] = run;
    if (len === 0) return (p) => ctx.k.fillF32(p[out], outSize, 0);
    return (p) => ctx.k.reduce(code, p[ix], p[out], outer, len, inner);
  }
  // Move the reduced axes last with one strided copy, then reduce rows.
  const kept = x.shape.map((_, i) => i).filter((i) => !axes.includes(i));
  const perm = [...kept, ...axes];
  const len = sizeOf(axes.map((a) => x.shape[a]));
  const tmp = ctx.temp(sizeOf(x.shape));
  return (p) => {
    ctx.k.transpose(p[ix], x.shape, perm, p[tmp]);
    ctx.k.reduce(code, p[tmp], p[out], outSize, len, 1);
  };
};

const argmax: KernelBuilder = (n, ctx) => {
  const x = n.inputs[0];
  const axis = n.attrs.axis as number;
  if (x.dtype !== 'float32') return null;
  const [ix, out] = [ctx.at(x), ctx.at(n)];
  const outer = sizeOf(x.shape.slice(0, axis));
  const inner = sizeOf(x.shape.slice(axis + 1));
  const len = x.shape[axis];
  if (sizeOf(n.shape) === 0) return null;
  return (p) => ctx.k.reduce(ReduceOp.argmax, p[ix], p[out], outer, len, inner);
};

const copyLike =
  (strides: (n: GNode) => { src: number[]; offset: number }): KernelBuilder =>
  (n, ctx) => {
    const [ix, out] = [ctx.at(n.inputs[0]), ctx.at(n)];
    const { src, offset } = strides(n);
    if (sizeOf(n.shape) === 0) return null;
    const shape = n.shape;
    return (p) => ctx.k.copyStrided(p[ix] + offset * 4, p[out], shape, src);
  };

const transpose = copyLike((n) => {
  const st = stridesOf(n.inputs[0].shape);
  return { src: (n.attrs.perm as number[]).map((q) => st[q]), offset: 0 };
});
const broadcastTo = copyLike((n) => ({ src: broadcastStrides(n.inputs[0].shape, n.shape), offset: 0 }));
const slice = copyLike((n) => {
  const st = stridesOf(n.inputs[0].shape);
  return { src: st, offset: (n.attrs.begin as number[]).reduce((a, b, i) => a + b * st[i], 0) };
});

/** Copies each input into its place in the output (concat, pad). */
function placeInto(
  n: GNode,
  ctx: StepContext,
  parts: { node: GNode; offset: number }[],
  zeroFirst: boolean,
): StepFn {
  const out = ctx.at(n);
  const ost = stridesOf(n.shape);
  const size = sizeOf(n.shape);
  const items = parts
    .filter((q) => sizeOf(q.node.shape) > 0)
    .map((q) => ({ i: ctx.at(q.node), offset: q.offset, shape: q.node.shape, src: stridesOf(q.node.shape) }));
  return (p) => {
    if (zeroFirst) ctx.k.fillI32(p[out], size, 0);
    for (const it of items) ctx.k.copyStrided(p[it.i], p[out] + it.offset * 4, it.shape, it.src, ost);
  };
}

const concat: KernelBuilder = (n, ctx) => {
  const axis = n.attrs.axis as number;
  const ost = stridesOf(n.shape);
  let at = 0;
  const parts = n.inputs.map((x) => {
    const part = { node: x, offset: at * ost[axis] };
    at += x.shape[axis];
    return part;
  });
  return placeInto(n, ctx, parts, false);
};

const pad: KernelBuilder = (n, ctx) => {
  const pads = n.attrs.pads as [number, number][];
  const ost = stridesOf(n.shape);
  const offset = pads.reduce((a, q, i) => a + q[0] * ost[i], 0);
  return placeInto(n, ctx, [{ node: n.inputs[0], offset }], true);
};

/** Index bounds are checked before the kernel runs: an out-of-range index is an error, not a 0. */
function checkIndices(k: Kernels, ptr: number, n: number, len: number, op: string): void {
  const idx = k.i32(ptr, n);
  for (let j = 0; j < n; j++) {
    const v = idx[j];
    if (v < 0 || v >= len)
      throw new ValueError(`${op}: index ${v} is out of range for an axis of size ${len}`);
  }
}

const gather: KernelBuilder = (n, ctx) => {
  const [x, idx] = n.inputs;
  const axis = n.attrs.axis as number;
  const [ix, ii, out] = [ctx.at(x), ctx.at(idx), ctx.at(n)];
  const outer = sizeOf(x.shape.slice(0, axis));
  const inner = sizeOf(x.shape.slice(axis + 1));
  const len = x.shape[axis];
  const nIdx = sizeOf(idx.shape);
  return (p) => {
    checkIndices(ctx.k, p[ii], nIdx, len, 'gather');
    if (sizeOf(n.shape) > 0) ctx.k.gather(p[ix], p[ii], p[out], outer, len, inner, nIdx);
  };
};

const scatterAdd: KernelBuilder = (n, ctx) => {
  const [u, idx] = n.inputs;
  const axis = n.attrs.axis as number;
  const [iu, ii, out] = [ctx.at(u), ctx.at(idx), ctx.at(n)];
  const outer = sizeOf(n.shape.slice(0, axis));
  const inner = sizeOf(n.shape.slice(axis + 1));
  const len = n.shape[axis];
  const nIdx = sizeOf(idx.shape);
  const size = sizeOf(n.shape);
  return (p) => {
    checkIndices(ctx.k, p[ii], nIdx, len, 'scatterAdd');
    ctx.k.fillF32(p[out], size, 0);
    if (sizeOf(u.shape) > 0) ctx.k.scatterAdd(p[iu], p[ii], p[out], outer, len, inner, nIdx);
  };
};

const matmul: KernelBuilder = (n, ctx) => {
  const [a, b] = n.inputs;
  if (a.dtype !== 'float32') return null;
  const transA = n.attrs.transA as boolean;
  const transB = n.attrs.transB as boolean;
  const ar = a.shape[a.shape.length - 2];
  const ac = a.shape[a.shape.length - 1];
  const br = b.shape[b.shape.length - 2];
  const bc = b.shape[b.shape.length - 1];
  const M = transA ? ac : ar;
  const K = transA ? ar : ac;
  const N = transB ? br : bc;
  const [ia, ib, out] = [ctx.at(a), ctx.at(b), ctx.at(n)];
  const size = sizeOf(n.shape);
  if (size === 0) return null;
  if (K === 0) return (p) => ctx.k.fillF32(p[out], size, 0);
  const batchShape = n.shape.slice(0, -2);
  const batch =
    batchShape.length === 0
      ? undefined
      : {
          shape: batchShape,
          strideA: broadcastStrides(a.shape.slice(0, -2), batchShape).map((s) => s * ar * ac),
          strideB: broadcastStrides(b.shape.slice(0, -2), batchShape).map((s) => s * br * bc),
          strideC: stridesOf(batchShape).map((s) => s * M * N),
        };
  const scratch = ctx.scratch(ctx.k.matmulScratchBytes(M, N, K));
  return (p) =>
    ctx.k.matmul({ a: p[ia], b: p[ib], c: p[out], M, N, K, transA, transB, batch, scratch: p[scratch] });
};

const softmaxFamily: KernelBuilder = (n, ctx) => {
  const x = n.inputs[0];
  const axis = n.attrs.axis as number;
  if (axis !== x.shape.length - 1) return null;
  const cols = x.shape[axis];
  const rows = sizeOf(x.shape) / Math.max(1, cols);
  if (sizeOf(x.shape) === 0) return null;
  const [ix, out] = [ctx.at(x), ctx.at(n)];
  const log = n.op === 'logSoftmax';
  return (p) => ctx.k.softmax(p[ix], p[out], rows, cols, log);
};

/** Kernel builders by op name. A builder may return null to decline (the host fallback runs). */
export const wasmKernels: Record<string, KernelBuilder> = {
  fill,
  where,
  sum: reduce,
  max: reduce,
  min: reduce,
  argmax,
  transpose,
  broadcastTo,
  slice,
  concat,
  pad,
  gather,
  scatterAdd,
  matmul,
  softmax: softmaxFamily,
  logSoftmax: softmaxFamily,
};
for (const op of Object.keys(f32Unary))
  wasmKernels[op] = (n, ctx) => (unaryCode(n) === undefined ? null : unary(n, ctx));
wasmKernels.cast = unary;
for (const op of Object.keys(f32Binary))
  wasmKernels[op] = (n, ctx) => (binaryCode(n) === undefined ? null : binary(n, ctx));

/** Runs the op's float64 reference on host copies of its inputs: the safety net for rare cases. */
export const hostFallback = (n: GNode, ctx: StepContext): StepFn => {
  const def = getOp(n.op);
  const ins = n.inputs.map((x) => ({ i: ctx.at(x), node: x }));
  const out = ctx.at(n);
  const size = sizeOf(n.shape);
  return (p) => {
    const args = ins.map(({ i, node }) => {
      const view =
        node.dtype === 'int32' ? ctx.k.i32(p[i], sizeOf(node.shape)) : ctx.k.f32(p[i], sizeOf(node.shape));
      return { data: Float64Array.from(view), shape: node.shape };
    });
    const r = def.reference(args, n.attrs, n);
    if (n.dtype === 'int32') ctx.k.i32(p[out], size).set(r);
    else ctx.k.f32(p[out], size).set(r);
  };
};
