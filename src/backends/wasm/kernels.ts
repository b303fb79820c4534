/**
 * Typed bindings for the adjoint WebAssembly SIMD kernels (sources in assembly/).
 *
 * ## Raw ABI (exports of every build)
 * All pointers are byte offsets into the imported linear memory (`env.memory`), element
 * counts are i32, data is float32 unless noted; "bits" means the raw 32-bit pattern.
 *
 *   heapBase() -> ptr                    first byte above the module's static data
 *   isRelaxed() -> 0|1                   abiVersion() -> 1
 *   fill(out, n, bits)                   n 32-bit words := bits (f32 or i32 pattern)
 *   unary(op, x, out, n)                 out[i] = op(x[i]); out may alias x. Ops: UnaryOp
 *   binary(op, a, sa, b, sb, out, n)     out[i] = op(a[i*sa], b[i*sb]) — sa/sb 1 or 0 (scalar)
 *                                        are fast; other strides work (gathered)
 *   binaryBroadcast(op, a, b, out, desc) numpy broadcasting via a strided descriptor (below)
 *   where(c, sc, a, sa, b, sb, out, n)   out[i] = c[i*sc] != 0 ? a[i*sa] : b[i*sb] (c int32; a/b any 32-bit)
 *   whereBroadcast(c, a, b, out, desc)   operands 0,1,2 = c,a,b
 *   copy(src, dst, desc)                 N-d strided copy of 32-bit elements: operand 0 = src,
 *                                        output strides = dst (transpose, slice, broadcastTo, concat)
 *   reduce(op, x, out, outer, len, inner)  reduce the middle axis of [outer,len,inner] -> [outer,inner]
 *   cumsum(x, out, outer, len, inner, reverse, isInt)
 *                                        running sums along the middle axis (f64 accumulation for f32)
 *                                        Ops: ReduceOp (argmax/argmin and *_I32 write int32)
 *   softmax(x, out, rows, cols, mode, keep, group)
 *                                        row softmax (mode 0) or logSoftmax (1); out may alias x;
 *                                        mode | q << 2 masks causally (rows of [q, cols] blocks);
 *                                        keep (int32 [K, cols] or 0), group: row r masked by keep row r / group
 *   layerNorm(x, g, t, out, rows, cols, eps: f32, flags)
 *                                        out_r = (x_r - mean) / sqrt(var + eps) * g + t (t = b, [cols]);
 *                                        flags 1 rms: x_r / sqrt(mean(x_r²) + eps) * g + t; flags 2
 *                                        backward: x's cotangent for t = ct [rows, cols] (assembly/norm.ts)
 *   moments(x, out, rows, cols, scratch)  out [2, cols] = each column's mean and biased variance over
 *                                        the rows, one pass; scratch of momentsScratchBytes(cols) bytes
 *   softmaxBackward(y, dy, dx, rows, cols, log)
 *                                        softmax: dx = y*(dy - Σ dy*y); log: dx = dy - exp(y)*Σ dy
 *   softmaxXent(logits, labels, loss, probs, rows, cols)
 *                                        loss[r] = lse(x_r) - x_r[label_r] (NaN for a label out of
 *                                        range); probs = softmax (probs = 0 skips; loss = 0 skips)
 *   softmaxXentGrad(logits, labels, g, gStride, scale, dlogits, rows, cols)
 *                                        dlogits_r = (softmax(x_r) - onehot(label_r)) * g[r*gStride] * scale
 *                                        (g = 0 means g = 1; gStride 0 broadcasts one value)
 *   gather(x, idx, out, outer, axisLen, inner, nIdx)      out[o,j,i] = x[o,idx[j],i] (32-bit;
 *                                        negative idx wraps once; out of range gives 0)
 *   scatterAdd(src, idx, out, outer, axisLen, inner, nIdx) out[o,idx[j],i] += src[o,j,i] (f32)
 *   oneHot(idx, out, n, depth, on: f32, off: f32)          out f32 [n, depth]
 *   matmul(a, b, c, M, N, K, flags, batchDesc, m0, m1, scratch)
 *                                        C[M,N] (+)= op(A)[M,K]·op(B)[K,N], rows [m0,m1) only.
 *                                        flags: 1 transA (A stored K×M), 2 transB (B stored N×K),
 *                                        4 accumulate into C. batchDesc 0 = one matrix, else i32
 *                                        [nb<=4, shape[4], strideA[4], strideB[4], strideC[4]]
 *                                        (element strides, 0 = broadcast).
 *   matmulScratchBytes(M, N, K) -> bytes scratch needed by matmul (any m0/m1, any batch)
 *   matmulParam(i) -> MR, NR, KC, MC, NC for i = 0..4
 *   fused(program, scratch) -> 0 | -1    run a fused elementwise program (format below); -1 = malformed
 *   fusedScratchBytes(nSlots) -> bytes   fusedTile() -> tile length (512)
 *   conv(desc, u0, u1, scratch)          units [u0,u1) of conv2d / its input or filter gradient;
 *                                        desc: 20 i32 words (assembly/conv.ts)
 *   convUnits(desc) -> units             result rows, images (input gradient) or column panels
 *   convGrain(desc) -> units             ranges start at multiples of it (whole panels)
 *   convScratchBytes(desc) -> bytes      for any unit range
 *   pool(desc, u0, u1)                   units [u0,u1) of max/avg pooling or their gradients;
 *                                        desc: 16 i32 words (assembly/pool.ts)
 *   poolUnits(desc) -> units
 *
 * ## Strided descriptor (31 i32 words) for binaryBroadcast / whereBroadcast / copy
 *   [0] ndim (0..6)   [1..7) shape   [7..13) strides of operand 0   [13..19) operand 1
 *   [19..25) operand 2   [25..31) output strides.   Strides are in elements, 0 = broadcast,
 *   may be negative. The innermost dim is the vectorised run: keep it the longest contiguous one
 *   (the helpers below coalesce dims first).
 *
 * ## Fused program bytecode (i32 words)
 *   header (12):  [0] version = 1, [1] nIn, [2] nOut, [3] nTemp, [4] nInstr, [5] ndim (0..6),
 *                 [6..12) iteration (= output) shape, padded with anything
 *   inputs  (nIn × 8):  [ptr, kind, strides[6]]   kind 0 = contiguous over the output shape
 *                 (read in place), 1 = scalar (one element, splatted once), 2 = general strides
 *                 (gathered per tile; element strides, 0 = broadcast)
 *   outputs (nOut × 2): [ptr, slot]       output is written contiguously in iteration order
 *   instrs  (nInstr × 5): [code, dst, s0, s1, s2], code = kind << 8 | op
 *     kind 0 UNARY      dst = unary[op](slot s0)
 *     kind 1 BINARY     dst = binary[op](slot s0, slot s1)
 *     kind 2 BINARY_RS  dst = binary[op](slot s0, imm)    s1 = immediate bits (f32 or i32)
 *     kind 3 BINARY_LS  dst = binary[op](imm, slot s1)    s0 = immediate bits
 *     kind 4 WHERE      dst = slot s0 (int32) != 0 ? slot s1 : slot s2
 *     kind 5 CONST      dst = splat(s0 bits)
 *   Slots 0..nIn-1 are the inputs (read-only); nIn..nIn+nTemp-1 are temporaries of one tile
 *   (512 elements) each in scratch (fusedScratchBytes(nIn + nTemp)); at most 64 slots. The
 *   interpreter walks the output in tiles of 512; per tile it gathers general inputs, runs each
 *   instruction as one SIMD loop over the tile, then copies output slots out. An instruction may
 *   write a slot it reads (elementwise, same index). Op codes are UnaryOp / BinaryOp below.
 */

import {
  broadcastShapes as broadcastPair,
  broadcastStrides,
  stridesOf as contiguousStrides,
  sizeOf,
} from '../../shape';
import { BINARY_WRITES_INT32, type BinaryOpCode, type UnaryOpCode } from '../opcodes';
import type { WasmAllocator } from './memory';

export { broadcastStrides, contiguousStrides };

/** numpy broadcast of two or more shapes; a ShapeError names them. */
export function broadcastShapes(...shapes: ReadonlyArray<readonly number[]>): number[] {
  return shapes.reduce<number[]>((acc, s) => broadcastPair('kernels', acc, s), []);
}

// Op codes come from their one definition (src/backends/opcodes.json), shared with the kernels.
export {
  BinaryOp,
  type BinaryOpCode,
  ReduceOp,
  type ReduceOpCode,
  UnaryOp,
  type UnaryOpCode,
} from '../opcodes';

/** True when the binary op writes int32. */
export function binaryOutputIsInt(op: BinaryOpCode): boolean {
  return BINARY_WRITES_INT32.has(op);
}

/** Raw exports of the kernel module. */
export interface KernelExports {
  heapBase(): number;
  isRelaxed(): number;
  abiVersion(): number;
  fill(out: number, n: number, bits: number): void;
  unary(op: number, x: number, out: number, n: number): void;
  binary(op: number, a: number, sa: number, b: number, sb: number, out: number, n: number): void;
  binaryBroadcast(op: number, a: number, b: number, out: number, desc: number): void;
  where(c: number, sc: number, a: number, sa: number, b: number, sb: number, out: number, n: number): void;
  whereBroadcast(c: number, a: number, b: number, out: number, desc: number): void;
  copy(src: number, dst: number, desc: number): void;
  reduce(op: number, x: number, out: number, outer: number, len: number, inner: number): void;
  cumsum(
    x: number,
    out: number,
    outer: number,
    len: number,
    inner: number,
    reverse: number,
    isInt: number,
  ): void;
  softmax(
    x: number,
    out: number,
    rows: number,
    cols: number,
    mode: number,
    keep: number,
    group: number,
  ): void;
  softmaxBackward(y: number, dy: number, dx: number, rows: number, cols: number, logMode: number): void;
  layerNorm(
    x: number,
    g: number,
    t: number,
    out: number,
    rows: number,
    cols: number,
    eps: number,
    flags: number,
  ): void;
  moments(x: number, out: number, rows: number, cols: number, scratch: number): void;
  momentsScratchBytes(cols: number): number;
  softmaxXent(logits: number, labels: number, loss: number, probs: number, rows: number, cols: number): void;
  softmaxXentGrad(
    logits: number,
    labels: number,
    g: number,
    gStride: number,
    scale: number,
    dlogits: number,
    rows: number,
    cols: number,
  ): void;
  gather(
    x: number,
    idx: number,
    out: number,
    outer: number,
    axisLen: number,
    inner: number,
    nIdx: number,
  ): void;
  scatterAdd(
    src: number,
    idx: number,
    out: number,
    outer: number,
    axisLen: number,
    inner: number,
    nIdx: number,
  ): void;
  oneHot(idx: number, out: number, n: number, depth: number, on: number, off: number): void;
  matmul(
    a: number,
    b: number,
    c: number,
    M: number,
    N: number,
    K: number,
    flags: number,
    batchDesc: number,
    m0: number,
    m1: number,
    scratch: number,
  ): void;
  matmulScratchBytes(M: number, N: number, K: number): number;
  matmulParam(i: number): number;
  fused(program: number, scratch: number): number;
  fusedScratchBytes(nSlots: number): number;
  fusedTile(): number;
  conv(desc: number, u0: number, u1: number, scratch: number): void;
  convUnits(desc: number): number;
  convGrain(desc: number): number;
  convScratchBytes(desc: number): number;
  pool(desc: number, u0: number, u1: number): void;
  poolUnits(desc: number): number;
}

export const MAX_DIMS = 6;
const DESC_WORDS = 31;
const MATMUL_BATCH_DIMS = 4;

// ---- shape helpers ---------------------------------------------------------------

/**
 * Drops size-1 dims and merges adjacent dims that are contiguous for every operand, so the
 * innermost run is as long as possible. Returns the reduced shape and strides.
 */
export function coalesce(
  shape: readonly number[],
  strides: ReadonlyArray<readonly number[]>,
): { shape: number[]; strides: number[][] } {
  const sh: number[] = [];
  const st: number[][] = strides.map(() => []);
  for (let d = 0; d < shape.length; d++) {
    const n = shape[d]!;
    if (n === 1) continue;
    const last = sh.length - 1;
    if (last >= 0 && strides.every((s, k) => st[k]![last] === s[d]! * n)) {
      sh[last] = sh[last]! * n;
      for (let k = 0; k < strides.length; k++) st[k]![last] = strides[k]![d]!;
    } else {
      sh.push(n);
      for (let k = 0; k < strides.length; k++) st[k]!.push(strides[k]![d]!);
    }
  }
  return { shape: sh, strides: st };
}

const f32Scratch = new Float32Array(1);
const i32Scratch = new Int32Array(f32Scratch.buffer);
/** Bit pattern of a float32 as int32. */
export function f32Bits(x: number): number {
  f32Scratch[0] = x;
  return i32Scratch[0]!;
}

export interface MatmulArgs {
  a: number;
  b: number;
  c: number;
  M: number;
  N: number;
  K: number;
  transA?: boolean;
  transB?: boolean;
  accumulate?: boolean;
  /** Batch dims (<= 4 after coalescing) with element strides per operand (0 = broadcast). */
  batch?: {
    shape: readonly number[];
    strideA: readonly number[];
    strideB: readonly number[];
    strideC: readonly number[];
  };
  m0?: number;
  m1?: number;
  /** Scratch of matmulScratchBytes(M, N, K) bytes; allocated and freed per call when absent. */
  scratch?: number;
}

/** High-level wrapper: typed methods over the raw exports plus descriptor-writing helpers. */
export class Kernels {
  readonly exports: KernelExports;
  readonly memory: WebAssembly.Memory;
  readonly allocator: WasmAllocator;
  readonly shared: boolean;
  readonly relaxed: boolean;
  /** Descriptor area owned by this instance (not thread-safe: one Kernels per thread). */
  private readonly desc: number;

  constructor(
    exports: KernelExports,
    memory: WebAssembly.Memory,
    allocator: WasmAllocator,
    info: { shared: boolean; relaxed: boolean },
  ) {
    this.exports = exports;
    this.memory = memory;
    this.allocator = allocator;
    this.shared = info.shared;
    this.relaxed = info.relaxed;
    this.desc = allocator.alloc(256);
  }

  // ---- memory conveniences ----
  alloc(bytes: number): number {
    return this.allocator.alloc(bytes);
  }
  free(ptr: number): void {
    this.allocator.free(ptr);
  }
  f32(ptr: number, n: number): Float32Array {
    return this.allocator.f32(ptr, n);
  }
  i32(ptr: number, n: number): Int32Array {
    return this.allocator.i32(ptr, n);
  }
  /** Allocates and fills a buffer with the given data (Float32Array/Int32Array/number[] as f32). */
  upload(data: Float32Array | Int32Array | readonly number[]): number {
    const p = this.alloc(data.length * 4);
    if (data instanceof Int32Array) this.i32(p, data.length).set(data);
    else this.f32(p, data.length).set(data);
    return p;
  }

  // ---- elementwise ----
  fillF32(out: number, n: number, value: number): void {
    this.exports.fill(out, n, f32Bits(value));
  }
  fillI32(out: number, n: number, value: number): void {
    this.exports.fill(out, n, value | 0);
  }
  unary(op: UnaryOpCode, x: number, out: number, n: number): void {
    this.exports.unary(op, x, out, n);
  }
  /** Same-size elementwise binary; aScalar/bScalar read one element and broadcast it. */
  binary(
    op: BinaryOpCode,
    a: number,
    b: number,
    out: number,
    n: number,
    aScalar = false,
    bScalar = false,
  ): void {
    this.exports.binary(op, a, aScalar ? 0 : 1, b, bScalar ? 0 : 1, out, n);
  }

  private writeDesc(shape: readonly number[], strides: ReadonlyArray<readonly number[] | undefined>): void {
    if (shape.length > MAX_DIMS) throw new RangeError(`adjoint: more than ${MAX_DIMS} dims after coalescing`);
    const w = this.allocator.i32(this.desc, DESC_WORDS);
    w.fill(0);
    w[0] = shape.length;
    for (let d = 0; d < shape.length; d++) {
      w[1 + d] = shape[d]!;
      for (let k = 0; k < 4; k++) w[7 + 6 * k + d] = strides[k]?.[d] ?? 0;
    }
  }

  /**
   * Broadcasting binary op over contiguous inputs: out (contiguous, broadcast shape) = op(a, b).
   * Returns the output shape.
   */
  binaryBroadcast(
    op: BinaryOpCode,
    a: number,
    aShape: readonly number[],
    b: number,
    bShape: readonly number[],
    out: number,
  ): number[] {
    const outShape = broadcastShapes(aShape, bShape);
    if (sizeOf(outShape) === 0) return outShape;
    const c = coalesce(outShape, [
      broadcastStrides(aShape, outShape),
      broadcastStrides(bShape, outShape),
      contiguousStrides(outShape),
    ]);
    if (c.shape.length <= 1) {
      const n = c.shape[0] ?? 1;
      this.exports.binary(op, a, c.strides[0]![0] ?? 0, b, c.strides[1]![0] ?? 0, out, n);
    } else {
      this.writeDesc(c.shape, [c.strides[0], c.strides[1], undefined, c.strides[2]]);
      this.exports.binaryBroadcast(op, a, b, out, this.desc);
    }
    return outShape;
  }

  /** Broadcasting where(cond:int32, a, b) over contiguous inputs. Returns the output shape. */
  whereBroadcast(
    cond: number,
    cShape: readonly number[],
    a: number,
    aShape: readonly number[],
    b: number,
    bShape: readonly number[],
    out: number,
  ): number[] {
    const outShape = broadcastShapes(cShape, aShape, bShape);
    if (sizeOf(outShape) === 0) return outShape;
    const c = coalesce(outShape, [
      broadcastStrides(cShape, outShape),
      broadcastStrides(aShape, outShape),
      broadcastStrides(bShape, outShape),
      contiguousStrides(outShape),
    ]);
    if (c.shape.length <= 1) {
      const n = c.shape[0] ?? 1;
      const s = (k: number) => c.strides[k]![0] ?? 0;
      this.exports.where(cond, s(0), a, s(1), b, s(2), out, n);
    } else {
      this.writeDesc(c.shape, c.strides);
      this.exports.whereBroadcast(cond, a, b, out, this.desc);
    }
    return outShape;
  }

  /** General strided copy of 32-bit elements (strides in elements; dstStrides default contiguous). */
  copyStrided(
    src: number,
    dst: number,
    shape: readonly number[],
    srcStrides: readonly number[],
    dstStrides: readonly number[] = contiguousStrides(shape),
  ): void {
    if (sizeOf(shape) === 0) return;
    const c = coalesce(shape, [srcStrides, dstStrides]);
    this.writeDesc(c.shape, [c.strides[0], undefined, undefined, c.strides[1]]);
    this.exports.copy(src, dst, this.desc);
  }

  /** out = transpose(x, perm) for contiguous x of `shape`. */
  transpose(x: number, shape: readonly number[], perm: readonly number[], out: number): number[] {
    const cs = contiguousStrides(shape);
    const outShape = perm.map((p) => shape[p]!);
    this.copyStrided(
      x,
      out,
      outShape,
      perm.map((p) => cs[p]!),
    );
    return outShape;
  }

  /** out = broadcastTo(x, outShape) for contiguous x of inShape. */
  broadcastTo(x: number, inShape: readonly number[], outShape: readonly number[], out: number): void {
    this.copyStrided(x, out, outShape, broadcastStrides(inShape, outShape));
  }

  // ---- reductions ----
  cumsum(
    x: number,
    out: number,
    outer: number,
    len: number,
    inner: number,
    reverse: boolean,
    int: boolean,
  ): void {
    this.exports.cumsum(x, out, outer, len, inner, reverse ? 1 : 0, int ? 1 : 0);
  }

  // ---- softmax family ----
  /**
   * causal = q > 0: row i of each [q, cols] block keeps its first i + 1 + cols - q columns; keep
   * (an int32 [K, cols] mask, or 0) masks row r with keep row r / group.
   */
  softmax(
    x: number,
    out: number,
    rows: number,
    cols: number,
    log = false,
    causal = 0,
    keep = 0,
    group = 1,
  ): void {
    this.exports.softmax(x, out, rows, cols, (log ? 1 : 0) | (causal << 2), keep, group);
  }
  softmaxBackward(y: number, dy: number, dx: number, rows: number, cols: number, log = false): void {
    this.exports.softmaxBackward(y, dy, dx, rows, cols, log ? 1 : 0);
  }

  // ---- indexing ----
  gather(
    x: number,
    idx: number,
    out: number,
    outer: number,
    axisLen: number,
    inner: number,
    nIdx: number,
  ): void {
    this.exports.gather(x, idx, out, outer, axisLen, inner, nIdx);
  }
  scatterAdd(
    src: number,
    idx: number,
    out: number,
    outer: number,
    axisLen: number,
    inner: number,
    nIdx: number,
  ): void {
    this.exports.scatterAdd(src, idx, out, outer, axisLen, inner, nIdx);
  }
  oneHot(idx: number, out: number, n: number, depth: number, on = 1, off = 0): void {
    this.exports.oneHot(idx, out, n, depth, on, off);
  }

  // ---- matmul ----
  matmulScratchBytes(M: number, N: number, K: number): number {
    return this.exports.matmulScratchBytes(M, N, K);
  }

  matmul(args: MatmulArgs): void {
    const { a, b, c, M, N, K } = args;
    const flags = (args.transA ? 1 : 0) | (args.transB ? 2 : 0) | (args.accumulate ? 4 : 0);
    let batchDesc = 0;
    if (args.batch && args.batch.shape.length > 0) {
      const bt = args.batch;
      const cb = coalesce(bt.shape, [bt.strideA, bt.strideB, bt.strideC]);
      if (cb.shape.length > MATMUL_BATCH_DIMS) {
        throw new RangeError(
          `adjoint: matmul supports at most ${MATMUL_BATCH_DIMS} batch dims after coalescing`,
        );
      }
      if (cb.shape.length > 0) {
        const w = this.allocator.i32(this.desc, 17);
        w.fill(0);
        w[0] = cb.shape.length;
        for (let d = 0; d < cb.shape.length; d++) {
          w[1 + d] = cb.shape[d]!;
          w[5 + d] = cb.strides[0]![d]!;
          w[9 + d] = cb.strides[1]![d]!;
          w[13 + d] = cb.strides[2]![d]!;
        }
        batchDesc = this.desc;
      } else if (sizeOf(bt.shape) === 0) {
        return;
      }
    }
    let scratch = args.scratch;
    const own = scratch === undefined;
    if (own) scratch = this.alloc(this.exports.matmulScratchBytes(M, N, K));
    try {
      this.exports.matmul(a, b, c, M, N, K, flags, batchDesc, args.m0 ?? 0, args.m1 ?? M, scratch!);
    } finally {
      if (own) this.free(scratch!);
    }
  }

  // ---- convolution and pooling (descriptors: assembly/conv.ts, assembly/pool.ts) ----
  private descWords(words: ArrayLike<number>): number {
    this.allocator.i32(this.desc, words.length).set(words);
    return this.desc;
  }
  conv(words: ArrayLike<number>, u0: number, u1: number, scratch: number): void {
    this.exports.conv(this.descWords(words), u0, u1, scratch);
  }
  convUnits(words: ArrayLike<number>): number {
    return this.exports.convUnits(this.descWords(words));
  }
  convGrain(words: ArrayLike<number>): number {
    return this.exports.convGrain(this.descWords(words));
  }
  convScratchBytes(words: ArrayLike<number>): number {
    return this.exports.convScratchBytes(this.descWords(words));
  }
  pool(words: ArrayLike<number>, u0: number, u1: number): void {
    this.exports.pool(this.descWords(words), u0, u1);
  }

  // ---- fused ----
  fusedScratchBytes(nSlots: number): number {
    return this.exports.fusedScratchBytes(nSlots);
  }

  /** Runs a program built by FusedProgramBuilder (copied into wasm memory for the call). */
  fused(program: FusedProgram, scratch?: number): void {
    const words = program.words;
    const p = this.alloc(words.length * 4);
    const own = scratch === undefined;
    const s = own ? this.alloc(this.exports.fusedScratchBytes(program.nSlots)) : scratch;
    try {
      this.i32(p, words.length).set(words);
      const rc = this.exports.fused(p, s);
      if (rc !== 0) throw new Error('adjoint: malformed fused program');
    } finally {
      this.free(p);
      if (own) this.free(s);
    }
  }
}

// ---- fused program builder ----------------------------------------------------------

/** A value inside a fused program under construction. */
export interface FusedValue {
  readonly id: number;
}

type Instr =
  | { kind: 0; op: number; dst: number; a: number }
  | { kind: 1; op: number; dst: number; a: number; b: number }
  | { kind: 2; op: number; dst: number; a: number; imm: number }
  | { kind: 3; op: number; dst: number; imm: number; b: number }
  | { kind: 4; dst: number; c: number; a: number; b: number }
  | { kind: 5; dst: number; imm: number };

const HEADER_WORDS = 12;
const IN_WORDS = 8;
const OUT_WORDS = 2;
const INSTR_WORDS = 5;
export const FUSED_MAX_SLOTS = 64;

/** A built program: the words plus where to patch pointers for reuse with new buffers. */
export class FusedProgram {
  readonly words: Int32Array;
  readonly nIn: number;
  readonly nOut: number;
  readonly nSlots: number;
  constructor(words: Int32Array) {
    this.words = words;
    this.nIn = words[1]!;
    this.nOut = words[2]!;
    this.nSlots = words[1]! + words[3]!;
  }
  setInputPtr(i: number, ptr: number): void {
    this.words[HEADER_WORDS + i * IN_WORDS] = ptr;
  }
  setOutputPtr(i: number, ptr: number): void {
    this.words[HEADER_WORDS + this.nIn * IN_WORDS + i * OUT_WORDS] = ptr;
  }
}

/**
 * Builds fused elementwise programs. Values are SSA; temporaries get registers (tile slots) by
 * a linear-scan allocation that reuses a slot as soon as its value is dead.
 *
 *   const b = new FusedProgramBuilder([64, 128]);
 *   const x = b.input(xPtr, [64, 128]);
 *   const bias = b.input(biasPtr, [128]);            // broadcast
 *   const y = b.unary(UnaryOp.relu, b.binary(BinaryOp.add, x, bias));
 *   b.output(y, outPtr);
 *   kernels.fused(b.build());
 */
export class FusedProgramBuilder {
  readonly shape: number[];
  private inputs: { ptr: number; kind: number; strides: number[] }[] = [];
  private outputs: { ptr: number; value: number }[] = [];
  private instrs: Instr[] = [];
  private nValues = 0;
  /** value id -> input index, for input values */
  private inputOf = new Map<number, number>();

  constructor(shape: readonly number[]) {
    if (shape.length > MAX_DIMS)
      throw new RangeError(`adjoint: fused programs support up to ${MAX_DIMS} dims`);
    this.shape = [...shape];
  }

  /** A contiguous tensor of inShape, broadcast to the program shape; or explicit element strides. */
  input(ptr: number, inShape: readonly number[], strides?: readonly number[]): FusedValue {
    const st = strides ? [...strides] : broadcastStrides(inShape, this.shape);
    if (st.length !== this.shape.length) throw new RangeError('adjoint: fused input strides rank mismatch');
    const cs = contiguousStrides(this.shape);
    const contiguous = this.shape.every((n, d) => n === 1 || st[d] === cs[d]);
    const scalar = this.shape.every((n, d) => n === 1 || st[d] === 0);
    const kind = scalar ? 1 : contiguous ? 0 : 2;
    const id = this.nValues++;
    this.inputOf.set(id, this.inputs.length);
    this.inputs.push({ ptr, kind, strides: st });
    return { id };
  }

  unary(op: UnaryOpCode, x: FusedValue): FusedValue {
    const dst = this.nValues++;
    this.instrs.push({ kind: 0, op, dst, a: x.id });
    return { id: dst };
  }

  /** Either operand may be a number (a float32 immediate; use binaryI32Imm for int immediates). */
  binary(op: BinaryOpCode, a: FusedValue | number, b: FusedValue | number): FusedValue {
    const dst = this.nValues++;
    if (typeof a === 'number' && typeof b === 'number') {
      const c = this.constant(a);
      this.instrs.push({ kind: 2, op, dst, a: c.id, imm: f32Bits(b) });
    } else if (typeof b === 'number') {
      this.instrs.push({ kind: 2, op, dst, a: (a as FusedValue).id, imm: f32Bits(b) });
    } else if (typeof a === 'number') {
      this.instrs.push({ kind: 3, op, dst, imm: f32Bits(a), b: b.id });
    } else {
      this.instrs.push({ kind: 1, op, dst, a: a.id, b: b.id });
    }
    return { id: dst };
  }

  /** Binary op with an int32 immediate on the right. */
  binaryI32Imm(op: BinaryOpCode, a: FusedValue, imm: number): FusedValue {
    const dst = this.nValues++;
    this.instrs.push({ kind: 2, op, dst, a: a.id, imm: imm | 0 });
    return { id: dst };
  }

  where(cond: FusedValue, a: FusedValue, b: FusedValue): FusedValue {
    const dst = this.nValues++;
    this.instrs.push({ kind: 4, dst, c: cond.id, a: a.id, b: b.id });
    return { id: dst };
  }

  /** A float32 constant (or int32 with dtype 'int32'). */
  constant(value: number, dtype: 'float32' | 'int32' = 'float32'): FusedValue {
    const dst = this.nValues++;
    this.instrs.push({ kind: 5, dst, imm: dtype === 'int32' ? value | 0 : f32Bits(value) });
    return { id: dst };
  }

  output(value: FusedValue, ptr: number): void {
    this.outputs.push({ ptr, value: value.id });
  }

  build(): FusedProgram {
    const nIn = this.inputs.length;
    // liveness: last instruction index using each value; outputs live to the end
    const lastUse = new Map<number, number>();
    const END = this.instrs.length;
    this.instrs.forEach((ins, j) => {
      for (const v of operands(ins)) lastUse.set(v, j);
    });
    for (const o of this.outputs) lastUse.set(o.value, END);
    const slotOf = new Map<number, number>();
    for (const [id, i] of this.inputOf) slotOf.set(id, i);
    const free: number[] = [];
    let nTemp = 0;
    const encoded: number[] = [];
    this.instrs.forEach((ins, j) => {
      const ops = operands(ins).map((v) => {
        const s = slotOf.get(v);
        if (s === undefined) throw new Error('adjoint: fused value used before definition');
        return s;
      });
      // release dead operands first so dst may reuse one of them (safe: same-index elementwise)
      for (const v of new Set(operands(ins))) {
        if (lastUse.get(v) === j && !this.inputOf.has(v)) free.push(slotOf.get(v)!);
      }
      let dst: number;
      if (lastUse.get(ins.dst) === undefined) {
        // dead value: still needs a slot to write to
        dst = free.length > 0 ? free[free.length - 1]! : nIn + nTemp;
        if (free.length === 0) nTemp++;
        else free.pop();
        free.push(dst);
      } else if (free.length > 0) dst = free.pop()!;
      else dst = nIn + nTemp++;
      slotOf.set(ins.dst, dst);
      switch (ins.kind) {
        case 0:
          encoded.push(ins.op, dst, ops[0]!, 0, 0);
          break;
        case 1:
          encoded.push((1 << 8) | ins.op, dst, ops[0]!, ops[1]!, 0);
          break;
        case 2:
          encoded.push((2 << 8) | ins.op, dst, ops[0]!, ins.imm, 0);
          break;
        case 3:
          encoded.push((3 << 8) | ins.op, dst, ins.imm, ops[0]!, 0);
          break;
        case 4:
          encoded.push(4 << 8, dst, ops[0]!, ops[1]!, ops[2]!);
          break;
        case 5:
          encoded.push(5 << 8, dst, ins.imm, 0, 0);
          break;
      }
    });
    if (nIn + nTemp > FUSED_MAX_SLOTS) {
      throw new RangeError(`adjoint: fused program needs ${nIn + nTemp} slots (max ${FUSED_MAX_SLOTS})`);
    }
    const words = new Int32Array(
      HEADER_WORDS + nIn * IN_WORDS + this.outputs.length * OUT_WORDS + this.instrs.length * INSTR_WORDS,
    );
    words[0] = 1;
    words[1] = nIn;
    words[2] = this.outputs.length;
    words[3] = nTemp;
    words[4] = this.instrs.length;
    words[5] = this.shape.length;
    this.shape.forEach((n, d) => {
      words[6 + d] = n;
    });
    let w = HEADER_WORDS;
    for (const inp of this.inputs) {
      words[w] = inp.ptr;
      words[w + 1] = inp.kind;
      inp.strides.forEach((s, d) => {
        words[w + 2 + d] = s;
      });
      w += IN_WORDS;
    }
    for (const o of this.outputs) {
      words[w] = o.ptr;
      words[w + 1] = slotOf.get(o.value)!;
      w += OUT_WORDS;
    }
    words.set(encoded, w);
    return new FusedProgram(words);
  }
}

function operands(ins: Instr): number[] {
  switch (ins.kind) {
    case 0:
    case 2:
      return [ins.a];
    case 1:
      return [ins.a, ins.b];
    case 3:
      return [ins.b];
    case 4:
      return [ins.c, ins.a, ins.b];
    case 5:
      return [];
  }
}
