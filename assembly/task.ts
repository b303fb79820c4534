// Task records: one kernel call in a serializable form, so any thread's instance can run any
// contiguous range of its work units. Worker pools (src/backends/wasm/scheduler/) write a record once per
// plan step into shared memory, patch its pointers before each run, and hand out unit ranges;
// the main thread and the workers all execute them through runTask.
//
// Record (i32 words at `rec`):
//   [0] kind   [1] units (total)   [2..] arguments by kind (below)
//   T_MATMUL   a b c M N K flags batchDesc      units = rows of C (every batch); batchDesc 0 or
//                                               a pointer (usually into this record)
//   T_FUSED    program                          units = tiles of TILE output elements
//   T_UNARY    op x out                         units = elements
//   T_BINARY   op a sa b sb out                 units = elements (sa/sb element strides, 0 = scalar)
//   T_WHERE    c sc a sa b sb out               units = elements
//   T_FILL     out bits                         units = elements
//   T_REDUCE   op x out len inner               units = rows of the outer dim
//   T_SOFTMAX  x out cols mode [dy]             units = rows; mode 1 log, 2 backward (x = y, then dy)
//   T_STRIDED  which(0 binary, 1 where, 2 copy) op p0 p1 p2 out desc[31]
//                                               units = the descriptor's first dim
//   T_CONV     the 20 words of a conv descriptor (assembly/conv.ts)
//                                               units = convUnits: result rows, images (input
//                                               gradient) or output-channel panels
//   T_POOL     the 16 words of a pool descriptor (assembly/pool.ts)
//                                               units = result rows (n, oh), or images for the gradients
//   T_NORM     x g t out cols epsBits flags      units = rows (assembly/norm.ts: t is b, or ct backward)
//
// `scratch` is the calling thread's own region: 256 bytes for a descriptor copy, then kernel
// scratch (matmul packing, fused tiles).

import { T_BINARY, T_CONV, T_FILL, T_FUSED, T_MATMUL, T_NORM, T_POOL, T_REDUCE, T_SOFTMAX, T_STRIDED, T_UNARY, T_WHERE } from './opcodes';
import { matmul } from './matmul';
import { fusedRange, TILE } from './fused';
import { unaryRun, binaryRun, whereRun, fillRun } from './ops';
import { reduceAxis } from './reduce';
import { softmaxBackwardRows, softmaxRows } from './softmax';
import { layerNormRows, NORM_BACKWARD } from './norm';
import { binaryStrided, whereStrided, copyStrided, DESC_WORDS } from './strided';
import { conv } from './conv';
import { pool } from './pool';


export const TASK_DESC_BYTES: i32 = 256;

@inline function arg(rec: usize, i: i32): i32 {
  return load<i32>(rec + ((2 + <usize>i) << 2));
}

@inline function off(p: i32, elements: i32, stride: i32): usize {
  return <usize>p + ((<usize>elements * <usize>stride) << 2);
}

/** Runs units [u0, u1) of the task at `rec`. Returns 0, or -1 for an unknown kind. */
export function runTask(rec: usize, u0: i32, u1: i32, scratch: usize): i32 {
  const kind = load<i32>(rec);
  u1 = min(u1, load<i32>(rec + 4));
  if (u0 < 0) u0 = 0;
  if (u1 <= u0) return 0;
  const n = u1 - u0;
  const ks = scratch + <usize>TASK_DESC_BYTES;
  switch (kind) {
    case T_MATMUL: {
      matmul(<usize>arg(rec, 0), <usize>arg(rec, 1), <usize>arg(rec, 2), arg(rec, 3), arg(rec, 4), arg(rec, 5),
        arg(rec, 6), <usize>arg(rec, 7), u0, u1, ks);
      return 0;
    }
    case T_FUSED: {
      return fusedRange(<usize>arg(rec, 0), ks, u0 * TILE, u1 * TILE);
    }
    case T_UNARY: {
      unaryRun(arg(rec, 0), off(arg(rec, 1), u0, 1), off(arg(rec, 2), u0, 1), n);
      return 0;
    }
    case T_BINARY: {
      const sa = arg(rec, 2);
      const sb = arg(rec, 4);
      binaryRun(arg(rec, 0), off(arg(rec, 1), u0, sa), sa, off(arg(rec, 3), u0, sb), sb, off(arg(rec, 5), u0, 1), n);
      return 0;
    }
    case T_WHERE: {
      const sc = arg(rec, 1);
      const sa = arg(rec, 3);
      const sb = arg(rec, 5);
      whereRun(off(arg(rec, 0), u0, sc), sc, off(arg(rec, 2), u0, sa), sa, off(arg(rec, 4), u0, sb), sb,
        off(arg(rec, 6), u0, 1), n);
      return 0;
    }
    case T_FILL: {
      fillRun(off(arg(rec, 0), u0, 1), arg(rec, 1), n);
      return 0;
    }
    case T_REDUCE: {
      const len = arg(rec, 3);
      const inner = arg(rec, 4);
      reduceAxis(arg(rec, 0), off(arg(rec, 1), u0, len * inner), off(arg(rec, 2), u0, inner), n, len, inner);
      return 0;
    }
    case T_SOFTMAX: {
      const cols = arg(rec, 2);
      const mode = arg(rec, 3);
      if ((mode & 2) != 0)
        softmaxBackwardRows(off(arg(rec, 0), u0, cols), off(arg(rec, 4), u0, cols), off(arg(rec, 1), u0, cols), n, cols,
          mode & 1);
      else softmaxRows(off(arg(rec, 0), u0, cols), off(arg(rec, 1), u0, cols), n, cols, mode, u0, <usize>arg(rec, 4), arg(rec, 5));
      return 0;
    }
    case T_STRIDED: {
      // A copy of the descriptor with the first dim narrowed to [u0, u1); pointers advance by
      // u0 steps of that dim's stride for each operand and the output.
      const which = arg(rec, 0);
      const src = rec + (<usize>8 << 2);
      memory.copy(scratch, src, <usize>DESC_WORDS << 2);
      store<i32>(scratch + 4, n);
      const s0 = load<i32>(src + (<usize>7 << 2));
      const s1 = load<i32>(src + (<usize>13 << 2));
      const s2 = load<i32>(src + (<usize>19 << 2));
      const so = load<i32>(src + (<usize>25 << 2));
      const p0 = off(arg(rec, 2), u0, s0);
      const p1 = off(arg(rec, 3), u0, s1);
      const p2 = off(arg(rec, 4), u0, s2);
      const po = off(arg(rec, 5), u0, so);
      if (which == 0) binaryStrided(arg(rec, 1), p0, p1, po, scratch);
      else if (which == 1) whereStrided(p0, p1, p2, po, scratch);
      else copyStrided(p0, po, scratch);
      return 0;
    }
    case T_CONV: {
      conv(rec + 8, u0, u1, ks);
      return 0;
    }
    case T_POOL: {
      pool(rec + 8, u0, u1);
      return 0;
    }
    case T_NORM: {
      const cols = arg(rec, 4);
      const flags = arg(rec, 6);
      // the shift b is one row shared by all; the cotangent has a row per row of x
      const t = (flags & NORM_BACKWARD) != 0 ? off(arg(rec, 2), u0, cols) : <usize>arg(rec, 2);
      layerNormRows(off(arg(rec, 0), u0, cols), <usize>arg(rec, 1), t, off(arg(rec, 3), u0, cols),
        n, cols, reinterpret<f32>(arg(rec, 5)), flags);
      return 0;
    }
  }
  return -1;
}
