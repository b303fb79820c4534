// adjoint WebAssembly kernels — entry point. The exported ABI is documented in
// src/backends/wasm/kernels.ts. All pointers are byte offsets into the imported memory.

import { unaryRun, binaryRun, fillRun, whereRun } from './ops';
import { binaryStrided, whereStrided, copyStrided } from './strided';
import { cumsumAxis, reduceAxis } from './reduce';
import { layerNormRows, momentsCols, momentsScratchBytes as momentsScratch } from './norm';
import { softmaxRows, softmaxBackwardRows, softmaxXentForward, softmaxXentBackward } from './softmax';
import { gather as gatherImpl, scatterAdd as scatterAddImpl, oneHot as oneHotImpl } from './gather';
import { matmul as matmulImpl, matmulScratchBytes as mmScratch, MR, NR, KC, MC, NC } from './matmul';
import { fused as fusedImpl, fusedScratchBytes as fScratch, TILE } from './fused';

/** First byte above the module's static data: the JS allocator starts here. */
export function heapBase(): usize {
  return __heap_base;
}

/** 1 when this build uses relaxed SIMD, else 0. */
export function isRelaxed(): i32 {
  return ASC_FEATURE_RELAXED_SIMD ? 1 : 0;
}

export function abiVersion(): i32 {
  return 1;
}

export function fill(out: usize, n: i32, bits: i32): void {
  fillRun(out, bits, n);
}

export function unary(op: i32, x: usize, out: usize, n: i32): void {
  if (n > 0) unaryRun(op, x, out, n);
}

/** Same-length / scalar-operand fast path: sa, sb are element strides (1 or 0). */
export function binary(op: i32, a: usize, sa: i32, b: usize, sb: i32, out: usize, n: i32): void {
  if (n > 0) binaryRun(op, a, sa, b, sb, out, n);
}

export function binaryBroadcast(op: i32, a: usize, b: usize, out: usize, desc: usize): void {
  binaryStrided(op, a, b, out, desc);
}

export function where(cond: usize, sc: i32, a: usize, sa: i32, b: usize, sb: i32, out: usize, n: i32): void {
  if (n > 0) whereRun(cond, sc, a, sa, b, sb, out, n);
}

export function whereBroadcast(cond: usize, a: usize, b: usize, out: usize, desc: usize): void {
  whereStrided(cond, a, b, out, desc);
}

export function copy(src: usize, dst: usize, desc: usize): void {
  copyStrided(src, dst, desc);
}

export function reduce(op: i32, x: usize, out: usize, outer: i32, len: i32, inner: i32): void {
  reduceAxis(op, x, out, outer, len, inner);
}

export function cumsum(x: usize, out: usize, outer: i32, len: i32, inner: i32, reverse: i32, isInt: i32): void {
  cumsumAxis(x, out, outer, len, inner, reverse != 0, isInt != 0);
}

export function softmax(x: usize, out: usize, rows: i32, cols: i32, mode: i32, keep: usize, group: i32): void {
  softmaxRows(x, out, rows, cols, mode, 0, keep, group);
}

export function moments(x: usize, out: usize, rows: i32, cols: i32, scratch: usize): void {
  momentsCols(x, out, rows, cols, scratch);
}

export function momentsScratchBytes(cols: i32): i32 {
  return momentsScratch(cols);
}

export function layerNorm(x: usize, g: usize, t: usize, out: usize, rows: i32, cols: i32, eps: f32, flags: i32): void {
  layerNormRows(x, g, t, out, rows, cols, eps, flags);
}

export function softmaxBackward(y: usize, dy: usize, dx: usize, rows: i32, cols: i32, logMode: i32): void {
  softmaxBackwardRows(y, dy, dx, rows, cols, logMode);
}

export function softmaxXent(logits: usize, labels: usize, loss: usize, probs: usize, rows: i32, cols: i32): void {
  softmaxXentForward(logits, labels, loss, probs, rows, cols);
}

export function softmaxXentGrad(
  logits: usize, labels: usize, g: usize, gStride: i32, scale: f32, dlogits: usize, rows: i32, cols: i32,
): void {
  softmaxXentBackward(logits, labels, g, gStride, scale, dlogits, rows, cols);
}

export function gather(x: usize, idx: usize, out: usize, outer: i32, axisLen: i32, inner: i32, nIdx: i32): void {
  gatherImpl(x, idx, out, outer, axisLen, inner, nIdx);
}

export function scatterAdd(src: usize, idx: usize, out: usize, outer: i32, axisLen: i32, inner: i32, nIdx: i32): void {
  scatterAddImpl(src, idx, out, outer, axisLen, inner, nIdx);
}

export function oneHot(idx: usize, out: usize, n: i32, depth: i32, on: f32, off: f32): void {
  oneHotImpl(idx, out, n, depth, on, off);
}

export function matmul(
  a: usize, b: usize, c: usize, M: i32, N: i32, K: i32, flags: i32, batchDesc: usize, m0: i32, m1: i32, scratch: usize,
): void {
  matmulImpl(a, b, c, M, N, K, flags, batchDesc, m0, m1, scratch);
}

export function matmulScratchBytes(M: i32, N: i32, K: i32): i32 {
  return mmScratch(M, N, K);
}

/** Blocking parameters: [MR, NR, KC, MC, NC] packed as the return of five calls. */
export function matmulParam(i: i32): i32 {
  if (i == 0) return MR;
  if (i == 1) return NR;
  if (i == 2) return KC;
  if (i == 3) return MC;
  return NC;
}

export function fused(program: usize, scratch: usize): i32 {
  return fusedImpl(program, scratch);
}

export function fusedScratchBytes(nSlots: i32): i32 {
  return fScratch(nSlots);
}

export function fusedTile(): i32 {
  return TILE;
}

// ---- worker pools ----------------------------------------------------------------

import { runTask as runTaskImpl } from './task';
import { setProgress as setProgressImpl } from './matmul';
import { fusedRange as fusedRangeImpl } from './fused';

/** Runs fused-program output elements [start, end); start a multiple of fusedTile(). */
export function fusedRange(program: usize, scratch: usize, start: i32, end: i32): i32 {
  return fusedRangeImpl(program, scratch, start, end);
}

/** Runs work units [u0, u1) of a task record (assembly/task.ts) with this thread's scratch. */
export function runTask(rec: usize, u0: i32, u1: i32, scratch: usize): i32 {
  return runTaskImpl(rec, u0, u1, scratch);
}

/** This instance bumps the i32 at addr while it runs long kernels (0 = off). */
export function setProgress(addr: usize): void {
  setProgressImpl(addr);
}

// ---- convolution and pooling (assembly/conv.ts, assembly/pool.ts) --------------------

import { conv as convImpl, convGrain as convGrainImpl, convUnits as convUnitsImpl, convScratchBytes as convScratchImpl } from './conv';
import { pool as poolImpl, poolUnits as poolUnitsImpl } from './pool';

/** Work units [u0, u1) of a convolution or one of its gradients (descriptor: assembly/conv.ts). */
export function conv(desc: usize, u0: i32, u1: i32, scratch: usize): void {
  convImpl(desc, u0, u1, scratch);
}

/** Units a split hands out: result rows, images (input gradient) or output-channel panels. */
export function convUnits(desc: usize): i32 {
  return convUnitsImpl(desc);
}

export function convScratchBytes(desc: usize): i32 {
  return convScratchImpl(desc);
}

/** Ranges of units should start at multiples of this (whole micro-kernel panels). */
export function convGrain(desc: usize): i32 {
  return convGrainImpl(desc);
}

/** Units [u0, u1) of a pooling op (descriptor: assembly/pool.ts). */
export function pool(desc: usize, u0: i32, u1: i32): void {
  poolImpl(desc, u0, u1);
}

export function poolUnits(desc: usize): i32 {
  return poolUnitsImpl(desc);
}
