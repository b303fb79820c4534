/**
 * Wasm kernel steps of the convolution and pooling primitives (src/ops/defs/conv.ts). Each node
 * becomes one descriptor (assembly/conv.ts, assembly/pool.ts) whose pointer words are filled
 * from the plan's pointer table when the step runs; pool plans also get a task record holding
 * the same words, split by result rows (convolution: on micro-kernel panel boundaries) or by
 * images (the pooling gradients), so results are the same bits for any thread count.
 */
import type { GNode } from '../../graph/graph';
import { convGeoOf, convGeoWords, poolGeometry } from '../../ops/conv-geometry';
import { sizeOf } from '../../shape';
import { convBuilders, convMode, poolMode } from '../conv-modes';
import { PoolMode } from '../opcodes';
import type { KernelBuilder, ParSpec, PtrTable, StepContext, StepFn, TaskArg } from './ops';
import { TaskKind } from './scheduler/control';

const nothing: StepFn = () => {};

function withPar(fn: (p: PtrTable) => void, par: ParSpec, ctx: StepContext): StepFn {
  const f = fn as StepFn;
  if (ctx.parallel && par.units > 1) f.par = par;
  return f;
}

/** A step that patches words 1..3 (operands, result) of `words` and runs `run` on them. */
function descriptorStep(
  ctx: StepContext,
  kind: number,
  words: number[],
  slots: [number, number, number],
  units: number,
  grain: number,
  cost: number,
  run: (w: number[], p: PtrTable) => void,
): StepFn {
  const fn = (p: PtrTable) => {
    words[1] = p[slots[0]];
    words[2] = p[slots[1]];
    words[3] = p[slots[2]];
    run(words, p);
  };
  const args: TaskArg[] = words.map((w, i) => (i >= 1 && i <= 3 ? { slot: slots[i - 1] } : w));
  return withPar(fn, { kind, units, args, grain, cost }, ctx);
}

const conv: KernelBuilder = (n: GNode, ctx: StepContext) => {
  const mode = convMode(n.op);
  const g = convGeoOf(n.op, n.inputs, n.shape, n.attrs);
  if (sizeOf(n.shape) === 0) return nothing;
  const words = [mode, 0, 0, 0, ...convGeoWords(g), g.groups];
  const depthwise = g.cinG === 1 && g.coutG === 1;
  // result rows (split on micro-kernel panels), images (the input gradient's scatter) or panels
  // of output channels (a filter gradient with few rows)
  const units = ctx.k.convUnits(words);
  const grain = ctx.k.convGrain(words);
  const bytes = ctx.k.convScratchBytes(words);
  const scratch = bytes > 0 ? ctx.scratch(bytes) : -1;
  const macs = g.N * g.OH * g.OW * g.KH * g.KW * g.cinG * g.Cout;
  return descriptorStep(
    ctx,
    TaskKind.conv,
    words,
    [ctx.at(n.inputs[0]), ctx.at(n.inputs[1]), ctx.at(n)],
    units,
    grain,
    // ns: ~40 GFLOP/s on the micro-kernel, a few GFLOP/s direct
    depthwise ? macs * 0.5 : macs * 0.05,
    (w, p) => ctx.k.conv(w, 0, units, scratch >= 0 ? p[scratch] : 0),
  );
};

const pool: KernelBuilder = (n: GNode, ctx: StepContext) => {
  const mode = poolMode(n.op);
  const xShape = mode === PoolMode.avgPool2dGrad ? n.shape : n.inputs[0].shape;
  const g = poolGeometry(n.op, xShape, n.attrs);
  if (sizeOf(n.shape) === 0) return nothing;
  const words = [mode, 0, 0, 0, g.N, g.H, g.W, g.C, g.OH, g.OW, g.KH, g.KW, g.sh, g.sw, g.pt, g.pl];
  const scatter = mode === 2 || mode === 4;
  const units = scatter ? g.N : g.N * g.OH;
  const first = ctx.at(n.inputs[0]);
  const second = n.inputs.length > 1 ? ctx.at(n.inputs[1]) : first;
  return descriptorStep(
    ctx,
    TaskKind.pool,
    words,
    [first, second, ctx.at(n)],
    units,
    1,
    g.N * g.OH * g.OW * g.C * g.KH * g.KW * 0.3 + (scatter ? g.N * g.H * g.W * g.C * 0.2 : 0),
    (w) => ctx.k.pool(w, 0, units),
  );
};

/** Builders by op name (spread into wasmKernels by ops.ts). */
export const convKernels: Record<string, KernelBuilder> = convBuilders(conv, pool);
