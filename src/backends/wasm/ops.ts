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
import { convKernels } from './conv';
import {
  BinaryOp,
  type BinaryOpCode,
  broadcastShapes,
  coalesce,
  contiguousStrides,
  f32Bits,
  type Kernels,
  broadcastStrides as kBroadcastStrides,
  MAX_DIMS,
  ReduceOp,
  UnaryOp,
  type UnaryOpCode,
} from './kernels';
import { TaskKind } from './scheduler/control';

export type PtrTable = number[];

/** A record argument: a literal word, a buffer pointer (table slot + byte offset), or an address inside the record. */
export type TaskArg = number | { slot: number; bytes?: number } | { self: number };

/**
 * A step's work in the serializable form any thread can run (assembly/task.ts): a task kind,
 * a number of work units that may be split into ranges, and its arguments. Pointers are read
 * from the pointer table when the plan runs. Only plans for worker pools build records.
 */
export interface ParSpec {
  kind: number;
  units: number;
  args: TaskArg[];
  /** Ranges start at multiples of this many units (keeps SIMD tails and matmul tiles where a whole run puts them). */
  grain: number;
  /** Rough single-thread time in nanoseconds, for the scheduler's split decisions. */
  cost: number;
  /** Main-thread work before the record can run (fused: patch the program's pointers). */
  prepare?: (p: PtrTable) => void;
}

export type StepFn = ((p: PtrTable) => void) & { par?: ParSpec };

function withPar(fn: (p: PtrTable) => void, par: ParSpec | undefined, ctx: StepContext): StepFn {
  const f = fn as StepFn;
  if (par && ctx.parallel && par.units > 1) f.par = par;
  return f;
}

/** Nanoseconds per element of the unary kernels, roughly (transcendentals cost more). */
function unaryCost(code: number): number {
  return code >= UnaryOp.exp && code <= UnaryOp.log1p
    ? 1.2
    : code >= UnaryOp.sin && code <= UnaryOp.softplus
      ? 1.5
      : 0.4;
}

export interface StepContext {
  readonly k: Kernels;
  /** Index in the pointer table of a node's buffer. */
  at(n: GNode): number;
  /** A buffer of `elements` 32-bit values live only while this step runs. */
  temp(elements: number): number;
  /** Scratch bytes shared by all steps (matmul packing). Returns its pointer-table index. */
  scratch(bytes: number): number;
  /** True when the plan is for a worker pool: builders attach a ParSpec to splittable steps. */
  readonly parallel?: boolean;
}

export type KernelBuilder = (n: GNode, ctx: StepContext) => StepFn | null;

/**
 * Kernel op codes by naming rule, from the one op-code table (src/backends/opcodes.json): a
 * float32 graph op runs the kernel op of the same name, an int32 one the name + 'I32'. A graph op
 * with no such kernel op runs the host fallback.
 */
function codeOf<T extends Record<string, number>>(
  table: T,
  op: string,
  int: boolean,
): T[keyof T] | undefined {
  const name = int ? `${op}I32` : op;
  return Object.hasOwn(table, name) && name !== 'copy' ? (table[name] as T[keyof T]) : undefined;
}

/** The unary kernel op of a node, or undefined. The dtype that matters is the input's. */
export function unaryCode(n: GNode): UnaryOpCode | undefined {
  if (n.op === 'cast') return n.dtype === 'int32' ? UnaryOp.castF32ToI32 : UnaryOp.castI32ToF32;
  return codeOf(UnaryOp, n.op, n.inputs[0]?.dtype === 'int32');
}

export function binaryCode(n: GNode): BinaryOpCode | undefined {
  return codeOf(BinaryOp, n.op, n.inputs[0]?.dtype === 'int32');
}

const unary: KernelBuilder = (n, ctx) => {
  const code = unaryCode(n)!;
  const x = ctx.at(n.inputs[0]);
  const out = ctx.at(n);
  const size = sizeOf(n.shape);
  return withPar(
    (p) => ctx.k.exports.unary(code, p[x], p[out], size),
    {
      kind: TaskKind.unary,
      units: size,
      args: [code, { slot: x }, { slot: out }],
      grain: 64,
      cost: size * unaryCost(code),
    },
    ctx,
  );
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
    return withPar(
      (p) => e.binary(code, p[ia], stA, p[ib], stB, p[out], size),
      {
        kind: TaskKind.binary,
        units: size,
        args: [code, { slot: ia }, stA, { slot: ib }, stB, { slot: out }],
        grain: 64,
        cost: size * 0.5,
      },
      ctx,
    );
  }
  const fn = (p: PtrTable) => ctx.k.binaryBroadcast(code, p[ia], a.shape, p[ib], b.shape, p[out]);
  return withPar(fn, stridedSpec(0, code, [a.shape, b.shape], [ia, ib, -1], out, n.shape, 0.8), ctx);
};

/**
 * A strided-kernel record (broadcast binary, where, copy) split along the first dim of the
 * coalesced iteration shape, or undefined when it has fewer than two dims (the plain kernels
 * run those) or is too small to matter.
 */
function stridedSpec(
  which: 0 | 1 | 2,
  op: number,
  inShapes: (readonly number[] | { strides: readonly number[] })[],
  slots: number[],
  out: number,
  outShape: readonly number[],
  nsPerElement: number,
  srcBytes = 0,
): ParSpec | undefined {
  const size = sizeOf(outShape);
  const strides = inShapes.map((s) => ('strides' in s ? [...s.strides] : kBroadcastStrides(s, outShape)));
  const all =
    which === 2 ? [strides[0], contiguousStrides(outShape)] : [...strides, contiguousStrides(outShape)];
  const c = coalesce(outShape, all);
  if (c.shape.length < 2 || c.shape.length > MAX_DIMS) return undefined;
  const desc = new Array<number>(31).fill(0);
  desc[0] = c.shape.length;
  const operand =
    which === 2
      ? [c.strides[0], undefined, undefined, c.strides[1]]
      : which === 0
        ? [c.strides[0], c.strides[1], undefined, c.strides[2]]
        : [c.strides[0], c.strides[1], c.strides[2], c.strides[3]];
  for (let d = 0; d < c.shape.length; d++) {
    desc[1 + d] = c.shape[d];
    for (let k = 0; k < 4; k++) desc[7 + 6 * k + d] = operand[k]?.[d] ?? 0;
  }
  const ptr = (i: number): TaskArg =>
    slots[i] === undefined || slots[i] < 0 ? 0 : { slot: slots[i], bytes: i === 0 ? srcBytes : 0 };
  return {
    kind: TaskKind.strided,
    units: c.shape[0],
    args: [which, op, ptr(0), ptr(1), ptr(2), { slot: out }, ...desc],
    grain: 1,
    cost: size * nsPerElement,
  };
}

const where: KernelBuilder = (n, ctx) => {
  const [c, a, b] = n.inputs;
  const [ic, ia, ib, out] = [ctx.at(c), ctx.at(a), ctx.at(b), ctx.at(n)];
  const fn = (p: PtrTable) => ctx.k.whereBroadcast(p[ic], c.shape, p[ia], a.shape, p[ib], b.shape, p[out]);
  const size = sizeOf(n.shape);
  const outShape = broadcastShapes(c.shape, a.shape, b.shape);
  const st = (s: readonly number[]) => (sizeOf(s) === size ? 1 : sizeOf(s) === 1 ? 0 : -1);
  const [sc, sa, sb] = [st(c.shape), st(a.shape), st(b.shape)];
  const spec: ParSpec | undefined =
    sc >= 0 && sa >= 0 && sb >= 0
      ? {
          kind: TaskKind.where,
          units: size,
          args: [{ slot: ic }, sc, { slot: ia }, sa, { slot: ib }, sb, { slot: out }],
          grain: 64,
          cost: size * 0.5,
        }
      : stridedSpec(1, 0, [c.shape, a.shape, b.shape], [ic, ia, ib], out, outShape, 0.8);
  return withPar(fn, spec, ctx);
};

const fill: KernelBuilder = (n, ctx) => {
  const out = ctx.at(n);
  const size = sizeOf(n.shape);
  const v = n.attrs.value as number;
  const bits = n.dtype === 'int32' ? v | 0 : f32Bits(v);
  return withPar(
    (p) => ctx.k.exports.fill(p[out], size, bits),
    {
      kind: TaskKind.fill,
      units: size,
      args: [{ slot: out }, bits],
      grain: 64,
      cost: size * 0.2,
    },
    ctx,
  );
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
    n.op === 'prod'
      ? ReduceOp.prod
      : n.op === 'sum'
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
    if (len === 0) return (p) => ctx.k.fillF32(p[out], outSize, n.op === 'prod' ? 1 : 0);
    return withPar(
      (p) => ctx.k.exports.reduce(code, p[ix], p[out], outer, len, inner),
      {
        kind: TaskKind.reduce,
        units: outer,
        args: [code, { slot: ix }, { slot: out }, len, inner],
        grain: 1,
        cost: outer * len * inner * 0.4,
      },
      ctx,
    );
  }
  // Move the reduced axes last with one strided copy, then reduce rows.
  const kept = x.shape.map((_, i) => i).filter((i) => !axes.includes(i));
  const perm = [...kept, ...axes];
  const len = sizeOf(axes.map((a) => x.shape[a]));
  const tmp = ctx.temp(sizeOf(x.shape));
  return (p) => {
    ctx.k.transpose(p[ix], x.shape, perm, p[tmp]);
    ctx.k.exports.reduce(code, p[tmp], p[out], outSize, len, 1);
  };
};

const argExtremum: KernelBuilder = (n, ctx) => {
  const x = n.inputs[0];
  const axis = n.attrs.axis as number;
  if (x.dtype !== 'float32') return null;
  const [ix, out] = [ctx.at(x), ctx.at(n)];
  const outer = sizeOf(x.shape.slice(0, axis));
  const inner = sizeOf(x.shape.slice(axis + 1));
  const len = x.shape[axis];
  if (sizeOf(n.shape) === 0) return null;
  const code = n.op === 'argmin' ? ReduceOp.argmin : ReduceOp.argmax;
  return (p) => ctx.k.exports.reduce(code, p[ix], p[out], outer, len, inner);
};

const copyLike =
  (strides: (n: GNode) => { src: number[]; offset: number }): KernelBuilder =>
  (n, ctx) => {
    const [ix, out] = [ctx.at(n.inputs[0]), ctx.at(n)];
    const { src, offset } = strides(n);
    if (sizeOf(n.shape) === 0) return null;
    const shape = n.shape;
    const fn = (p: PtrTable) => ctx.k.copyStrided(p[ix] + offset * 4, p[out], shape, src);
    return withPar(fn, stridedSpec(2, 0, [{ strides: src }], [ix], out, shape, 0.6, offset * 4), ctx);
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
  const fn = (p: PtrTable) =>
    ctx.k.matmul({ a: p[ia], b: p[ib], c: p[out], M, N, K, transA, transB, batch, scratch: p[scratch] });
  if (!ctx.parallel) return fn;
  const flags = (transA ? 1 : 0) | (transB ? 2 : 0);
  const batchWords = matmulBatchWords(batch);
  if (batchWords === null) return fn;
  const nBatch = sizeOf(batchShape);
  const HEAD = 8; // record words before the batch descriptor: kind, units, then 6 of the 8 args
  return withPar(
    fn,
    {
      kind: TaskKind.matmul,
      units: M,
      args: [
        { slot: ia },
        { slot: ib },
        { slot: out },
        M,
        N,
        K,
        flags,
        batchWords.length ? { self: HEAD + 2 } : 0,
        ...batchWords,
      ],
      grain: ctx.k.exports.matmulParam(0),
      cost: 2 * M * N * K * nBatch * 0.02,
    },
    ctx,
  );
};

/** Batch descriptor words as Kernels.matmul writes them ([] = one matrix, null = nothing to do). */
function matmulBatchWords(
  batch: { shape: number[]; strideA: number[]; strideB: number[]; strideC: number[] } | undefined,
): number[] | null {
  if (!batch || batch.shape.length === 0) return [];
  const cb = coalesce(batch.shape, [batch.strideA, batch.strideB, batch.strideC]);
  if (cb.shape.length > 4) return null;
  if (cb.shape.length === 0) return sizeOf(batch.shape) === 0 ? null : [];
  const w = new Array<number>(17).fill(0);
  w[0] = cb.shape.length;
  for (let d = 0; d < cb.shape.length; d++) {
    w[1 + d] = cb.shape[d];
    w[5 + d] = cb.strides[0][d];
    w[9 + d] = cb.strides[1][d];
    w[13 + d] = cb.strides[2][d];
  }
  return w;
}

/**
 * Softmax and logSoftmax over rows (mode 0 / 1), and their backward from (y, g) (softmaxGrad:
 * mode 2 / 3). Another axis than the last moves last with strided copies around the row kernel.
 */
const softmaxFamily: KernelBuilder = (n, ctx) => {
  const x = n.inputs[0];
  const axis = n.attrs.axis as number;
  const cols = x.shape[axis];
  const rows = sizeOf(x.shape) / Math.max(1, cols);
  if (sizeOf(x.shape) === 0) return null;
  const backward = n.op === 'softmaxGrad';
  const log = backward ? n.attrs.log === true : n.op === 'logSoftmax';
  const causal = n.attrs.causal ? x.shape[x.shape.length - 2] : 0;
  const mode = (log ? 1 : 0) | (backward ? 2 : 0) | (causal << 2);
  const ins = n.inputs.map((t) => ctx.at(t));
  const out = ctx.at(n);
  // a keep mask (forward only: the backward's second operand is g) and the rows each keep row masks
  const keep = backward ? undefined : n.inputs[1];
  const group = keep ? rows / Math.max(1, keep.shape[0]) : 1;
  const rowKernel = (p: PtrTable, y: number, o: number, g: number) =>
    backward
      ? ctx.k.softmaxBackward(p[y], p[g], p[o], rows, cols, log)
      : ctx.k.softmax(p[y], p[o], rows, cols, log, causal, keep ? p[g] : 0, group);
  if (axis !== x.shape.length - 1) {
    const perm = [...x.shape.keys()].filter((i) => i !== axis).concat(axis);
    const inv = perm.map((_, i) => perm.indexOf(i));
    const moved = perm.map((q) => x.shape[q]);
    const tmps = [...ins, out].map(() => ctx.temp(sizeOf(x.shape)));
    return (p) => {
      ins.forEach((i, j) => {
        ctx.k.transpose(p[i], x.shape, perm, p[tmps[j]]);
      });
      rowKernel(p, tmps[0], tmps[tmps.length - 1], tmps[1]);
      ctx.k.transpose(p[tmps[tmps.length - 1]], moved, inv, p[out]);
    };
  }
  return withPar(
    (p) => rowKernel(p, ins[0], out, ins[1]),
    {
      kind: TaskKind.softmax,
      units: rows,
      args: [{ slot: ins[0] }, { slot: out }, cols, mode, ins.length > 1 ? { slot: ins[1] } : 0, group],
      grain: 1,
      cost: rows * cols * 3,
    },
    ctx,
  );
};

/** Each channel's mean and variance over x's rows (batch normalization's statistics): one pass over x. */
const moments: KernelBuilder = (n, ctx) => {
  const x = n.inputs[0];
  const cols = x.shape[x.shape.length - 1];
  if (cols === 0) return null;
  const [ix, out] = [ctx.at(x), ctx.at(n)];
  const scratch = ctx.scratch(ctx.k.exports.momentsScratchBytes(cols));
  return (p) => ctx.k.exports.moments(p[ix], p[out], sizeOf(x.shape) / cols, cols, p[scratch]);
};

/** Layer / RMS normalization of the rows of x with scale and shift, or x's cotangent: one pass over memory. */
const layerNorm: KernelBuilder = (n, ctx) => {
  const [x, g, t] = n.inputs;
  const cols = x.shape[x.shape.length - 1];
  const rows = sizeOf(x.shape) / Math.max(1, cols);
  if (rows === 0 || cols === 0) return null;
  const [ix, ig, it, out] = [ctx.at(x), ctx.at(g), ctx.at(t), ctx.at(n)];
  const eps = n.attrs.eps as number;
  const flags = (n.attrs.rms === true ? 1 : 0) | (n.op === 'layerNormGrad' ? 2 : 0);
  return withPar(
    (p) => ctx.k.exports.layerNorm(p[ix], p[ig], p[it], p[out], rows, cols, eps, flags),
    {
      kind: TaskKind.norm,
      units: rows,
      args: [{ slot: ix }, { slot: ig }, { slot: it }, { slot: out }, cols, f32Bits(eps), flags],
      grain: 1,
      cost: rows * cols * (flags & 2 ? 4 : 2),
    },
    ctx,
  );
};

const softmaxCrossEntropy: KernelBuilder = (n, ctx) => {
  const [x, y] = n.inputs;
  const cols = x.shape[x.shape.length - 1];
  const rows = sizeOf(y.shape);
  if (rows === 0 || cols === 0) return null;
  const [ix, iy, out] = [ctx.at(x), ctx.at(y), ctx.at(n)];
  return (p) => ctx.k.exports.softmaxXent(p[ix], p[iy], p[out], 0, rows, cols);
};

const softmaxCrossEntropyGrad: KernelBuilder = (n, ctx) => {
  const [x, y, g] = n.inputs;
  const cols = x.shape[x.shape.length - 1];
  const rows = sizeOf(y.shape);
  if (rows === 0 || cols === 0) return null;
  const [ix, iy, ig, out] = [ctx.at(x), ctx.at(y), ctx.at(g), ctx.at(n)];
  return (p) => ctx.k.exports.softmaxXentGrad(p[ix], p[iy], p[ig], 1, 1, p[out], rows, cols);
};

/** Running sums along one axis, one (outer, inner) line at a time on this thread. */
const cumsum: KernelBuilder = (n, ctx) => {
  const x = n.inputs[0];
  const axis = n.attrs.axis as number;
  const len = x.shape[axis];
  const outer = sizeOf(x.shape.slice(0, axis));
  const inner = sizeOf(x.shape.slice(axis + 1));
  const [ix, out] = [ctx.at(x), ctx.at(n)];
  const reverse = n.attrs.reverse === true;
  const int = n.dtype === 'int32';
  return (p) => ctx.k.cumsum(p[ix], p[out], outer, len, inner, reverse, int);
};

/** Kernel builders by op name. A builder may return null to decline (the host fallback runs). */
export const wasmKernels: Record<string, KernelBuilder> = {
  fill,
  where,
  sum: reduce,
  max: reduce,
  min: reduce,
  prod: reduce,
  argmax: argExtremum,
  argmin: argExtremum,
  cumsum,
  // keyed random draws and splits run their reference on the host on every device (ops/defs/random.ts)
  randomDraw: () => null,
  randomSplit: () => null,
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
  softmaxGrad: softmaxFamily,
  softmaxCrossEntropy,
  softmaxCrossEntropyGrad,
  layerNorm,
  layerNormGrad: layerNorm,
  moments,
  ...convKernels,
};
// Every kernel op named like a graph op serves it (codeOf: the int32 variant by its suffix).
const graphOpName = (k: string) => k !== 'copy' && !k.endsWith('I32') && !k.startsWith('cast');
for (const op of Object.keys(UnaryOp).filter(graphOpName))
  wasmKernels[op] = (n, ctx) => (unaryCode(n) === undefined ? null : unary(n, ctx));
wasmKernels.cast = unary;
for (const op of Object.keys(BinaryOp).filter(graphOpName))
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
