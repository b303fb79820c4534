/**
 * Compiles an optimized graph into a wasm execution plan: kernel steps in dependency order
 * (fused elementwise groups as single steps), a pointer table binding every value to a buffer,
 * and a memory plan that packs intermediates into one arena by liveness. A plan is built once
 * per graph structure and reused: each run only rebinds constants, inputs and outputs.
 *
 * Plans for a worker pool (threads > 1) are also cut into levels (wavefronts: every step of a
 * level depends only on earlier levels, so a level's steps may run at the same time), carry a
 * task record for each splittable step (src/scheduler/partition.ts decides chunks), give each
 * thread its own scratch, and compute liveness over levels instead of the sequential order, so
 * values of steps that may run concurrently never share arena space.
 */
import { type FusionGroup, findFusionGroups } from '../../compiler/passes/fuse';
import type { GNode, Graph } from '../../graph/graph';
import { sizeOf } from '../../shape';
import {
  BinaryOp,
  FUSED_MAX_SLOTS,
  type FusedProgram,
  FusedProgramBuilder,
  type FusedValue,
  type Kernels,
} from './kernels';
import {
  binaryCode,
  hostFallback,
  type PtrTable,
  type StepContext,
  type StepFn,
  unaryCode,
  wasmKernels,
} from './ops';
import { TASK_DESC_BYTES, TaskKind } from './scheduler/control';
import { type PlanLevel, partitionLevels } from './scheduler/partition';
import { bytesFor } from './storage';

export interface Plan {
  readonly table: PtrTable;
  /** Every step in an order one thread may run them (level by level for pool plans). */
  readonly steps: StepFn[];
  /** Table index for each const node, in the order consts appear in graph.nodes. */
  readonly constSlots: number[];
  readonly constPositions: number[];
  /** Table index for each graph input (by input index). */
  readonly inputSlots: number[];
  /** Per graph output: its table index, and the table index to copy from when it is not produced in place. */
  readonly outputs: { slot: number; copyFrom: number; size: number; dtype: GNode['dtype'] }[];
  /** Wasm memory owned by the plan (arena, fused programs), freed on eviction. */
  readonly owned: number[];
  readonly arenaBytes: number;
  readonly fallbacks: number;
  readonly fusedGroups: number;
  /** Worker-pool plans only: steps by level, with the jobs the pool may share out. */
  readonly levels?: PlanLevel[];
  /** Whether some level has a job for the pool. */
  readonly hasJobs: boolean;
  /** Worker-pool plans only: thread t's scratch region is scratchBase + t * scratchStride. */
  readonly scratchBase: number;
  readonly scratchStride: number;
  readonly threads: number;
}

export interface PlanOptions {
  /** Threads that may run the plan at once (main thread included); 1 = the sequential plan. */
  threads?: number;
}

/** Ops the fused kernel can evaluate (one instruction each). */
export function canFuse(n: GNode): boolean {
  if (n.op === 'where') return true;
  if (n.op === 'cast') return true;
  if (n.shape.length > 6) return false;
  return unaryCode(n) !== undefined || binaryCode(n) !== undefined;
}

const ALIGN = 16;

/**
 * Nodes whose value is their first input's buffer: reshape, and rematBarrier (checkpoint's
 * ordering barrier: its second input only orders the schedule, which the step order keeps).
 */
const aliases = (n: GNode) => n.op === 'reshape' || n.op === 'rematBarrier';

export function buildPlan(g: Graph, k: Kernels, opts: PlanOptions = {}): Plan {
  // Memory the plan owns is freed if building fails part way (e.g. the arena does not fit).
  const owned: number[] = [];
  try {
    return assemblePlan(g, k, opts, owned);
  } catch (e) {
    for (const p of owned) k.free(p);
    throw e;
  }
}

function assemblePlan(g: Graph, k: Kernels, opts: PlanOptions, owned: number[]): Plan {
  const threads = Math.max(1, Math.floor(opts.threads ?? 1));
  const parallel = threads > 1;
  const groups = findFusionGroups(g, { canFuse, maxSlots: FUSED_MAX_SLOTS - 8 });
  const groupOf = new Map<GNode, FusionGroup>();
  for (const gr of groups) for (const m of gr.members) groupOf.set(m, gr);
  const groupOutputs = new Set(groups.flatMap((gr) => gr.outputs));

  // ---- values: reshape (and checkpoint's barrier) aliases its input; fused temporaries have no buffer
  const root = (n: GNode): GNode => (aliases(n) ? root(n.inputs[0]) : n);
  const table: PtrTable = [];
  const slotOf = new Map<GNode, number>();
  const at = (n: GNode): number => {
    const r = root(n);
    let s = slotOf.get(r);
    if (s === undefined) {
      s = table.length;
      table.push(0);
      slotOf.set(r, s);
    }
    return s;
  };

  // ---- units in dependency order (a group runs where all its inputs are ready)
  type Unit = { group: FusionGroup } | { node: GNode };
  const units: Unit[] = [];
  const done = new Set<GNode>();
  const pendingGroups = new Map<FusionGroup, number>();
  for (const gr of groups) pendingGroups.set(gr, gr.members.length);
  const ready = (x: GNode) => done.has(x) || x.op === 'fill';
  const queue: GNode[] = [...g.nodes];
  // Members complete their group; a group is emitted when every member is reached and its inputs are done.
  const waitingGroups: FusionGroup[] = [];
  const flushGroups = () => {
    let progress = true;
    while (progress) {
      progress = false;
      for (let i = 0; i < waitingGroups.length; i++) {
        const gr = waitingGroups[i];
        if (gr.inputs.every(ready)) {
          units.push({ group: gr });
          for (const m of gr.members) done.add(m);
          waitingGroups.splice(i, 1);
          progress = true;
          break;
        }
      }
    }
  };
  const deferred: GNode[] = [];
  const tryNode = (n: GNode): boolean => {
    if (!n.inputs.every(ready)) return false;
    units.push({ node: n });
    done.add(n);
    return true;
  };
  for (const n of queue) {
    const gr = groupOf.get(n);
    if (gr) {
      const left = pendingGroups.get(gr)! - 1;
      pendingGroups.set(gr, left);
      if (left === 0) waitingGroups.push(gr);
    } else if (!tryNode(n)) deferred.push(n);
    flushGroups();
    for (let i = 0; i < deferred.length; i++) {
      if (tryNode(deferred[i])) {
        deferred.splice(i, 1);
        i = -1;
        flushGroups();
      }
    }
  }
  if (deferred.length || waitingGroups.length)
    throw new Error('adjoint internal error: fusion produced a cycle');

  // ---- which values need a buffer, and which outputs are written in place
  const consumedOutsideGroups = new Set<GNode>();
  for (const n of g.nodes) {
    if (groupOf.has(n)) continue;
    for (const x of n.inputs) consumedOutsideGroups.add(root(x));
  }
  for (const gr of groups) for (const x of gr.inputs) consumedOutsideGroups.add(root(x));

  const external = new Set<number>(); // slots bound per run (consts, inputs, in-place outputs)
  const outputs: Plan['outputs'] = [];
  const claimed = new Set<GNode>();
  const produced = (n: GNode) =>
    n.op !== 'const' && n.op !== 'input' && !aliases(n) && (!groupOf.has(n) || groupOutputs.has(n));
  for (const n of g.outputs) {
    if (produced(n) && !claimed.has(n)) {
      claimed.add(n);
      const s = at(n);
      external.add(s);
      outputs.push({ slot: s, copyFrom: -1, size: sizeOf(n.shape), dtype: n.dtype });
    } else {
      const s = table.length;
      table.push(0);
      external.add(s);
      outputs.push({ slot: s, copyFrom: at(n), size: sizeOf(n.shape), dtype: n.dtype });
    }
  }

  // ---- steps, with the slots each reads and writes for liveness
  const steps: StepFn[] = [];
  const reads: number[][] = [];
  // Values a step must wait for without reading them: the cotangents behind checkpoint barriers
  // among its inputs (the barrier itself is an alias, so its wait would be lost otherwise).
  const after: number[][] = [];
  const waits = (xs: readonly GNode[]): number[] => {
    const out: number[] = [];
    for (let x of xs)
      while (aliases(x)) {
        if (x.op === 'rematBarrier') out.push(at(x.inputs[1]), ...waits([x.inputs[1]]));
        x = x.inputs[0];
      }
    return out;
  };
  const writes: number[][] = [];
  const temps: { slot: number; bytes: number; step: number }[] = [];
  let scratchBytes = 0;
  const scratchSlot = table.length;
  table.push(0);
  let fallbacks = 0;

  const ctxFor = (stepIndex: number): StepContext => ({
    k,
    at,
    parallel,
    temp(elements: number) {
      const s = table.length;
      table.push(0);
      temps.push({ slot: s, bytes: bytesFor(elements), step: stepIndex });
      return s;
    },
    scratch(bytes: number) {
      scratchBytes = Math.max(scratchBytes, bytes);
      return scratchSlot;
    },
  });

  for (const u of units) {
    const stepIndex = steps.length;
    if ('group' in u) {
      const { step, patch, program, total } = fusedStep(u.group, k, at, scratchSlot);
      scratchBytes = Math.max(scratchBytes, k.fusedScratchBytes(program.nSlots));
      const ptr = k.alloc(program.words.length * 4);
      owned.push(ptr);
      k.i32(ptr, program.words.length).set(program.words);
      const fn: StepFn = (p) => step(p, ptr);
      const tiles = Math.ceil(total / k.exports.fusedTile());
      if (parallel && tiles > 1)
        fn.par = {
          kind: TaskKind.fused,
          units: tiles,
          args: [ptr],
          grain: 1,
          cost: total * (0.3 + 0.3 * program.words[4]),
          prepare: (p) => patch(p, ptr),
        };
      steps.push(fn);
      reads.push(u.group.inputs.map(at));
      after.push(waits(u.group.inputs));
      writes.push(u.group.outputs.map(at));
      continue;
    }
    const n = u.node;
    if (n.op === 'const' || n.op === 'input' || aliases(n)) continue;
    if (n.op === 'fill' && !consumedOutsideGroups.has(n) && !claimed.has(n)) continue;
    if (groupOf.has(n)) continue;
    const ctx = ctxFor(stepIndex);
    const fast = wasmKernels[n.op]?.(n, ctx);
    if (!fast) fallbacks++;
    steps.push(fast ?? hostFallback(n, ctx));
    reads.push(n.inputs.map(at));
    after.push(waits(n.inputs));
    writes.push([at(n)]);
  }
  for (const o of outputs) {
    if (o.copyFrom < 0) continue;
    const { slot, copyFrom, size } = o;
    steps.push((p) => k.allocator.u8(p[slot], size * 4).set(k.allocator.u8(p[copyFrom], size * 4)));
    reads.push([copyFrom]);
    after.push([]);
    writes.push([slot]);
  }

  // ---- constants and inputs are bound per run
  const constPositions: number[] = [];
  const constSlots: number[] = [];
  const inputSlots: number[] = [];
  g.nodes.forEach((n, i) => {
    if (n.op === 'const') {
      constPositions.push(i);
      constSlots.push(at(n));
      external.add(at(n));
    } else if (n.op === 'input') {
      inputSlots[n.attrs.index as number] = at(n);
      external.add(at(n));
    }
  });

  // ---- pool plans: levels (wavefronts); lifetimes below are in levels, not steps
  let levelOf: number[] | null = null;
  if (parallel) {
    const producer = new Map<number, number>();
    writes.forEach((ws, i) => {
      for (const s of ws) producer.set(s, i);
    });
    levelOf = new Array<number>(steps.length).fill(0);
    for (let i = 0; i < steps.length; i++) {
      let lv = 0;
      for (const s of [...reads[i], ...after[i]]) {
        const j = producer.get(s);
        if (j !== undefined && j < i) lv = Math.max(lv, levelOf[j] + 1);
      }
      levelOf[i] = lv;
    }
  }
  const when = (i: number) => (levelOf ? levelOf[i] : i);

  // ---- memory plan: first fit by address among values whose lifetimes overlap
  const life = new Map<number, { def: number; last: number; bytes: number }>();
  const sizeOfSlot = new Map<number, number>();
  for (const [n, s] of slotOf) sizeOfSlot.set(s, bytesFor(sizeOf(n.shape)));
  writes.forEach((ws, i) => {
    for (const s of ws) {
      if (external.has(s)) continue;
      const l = life.get(s);
      if (!l) life.set(s, { def: when(i), last: when(i), bytes: sizeOfSlot.get(s) ?? 16 });
    }
  });
  reads.forEach((rs, i) => {
    for (const s of rs) {
      const l = life.get(s);
      if (l) l.last = Math.max(l.last, when(i));
    }
  });
  for (const t of temps) life.set(t.slot, { def: when(t.step), last: when(t.step), bytes: t.bytes });
  const blocks: { offset: number; bytes: number; def: number; last: number }[] = [];
  // Pool plans: one scratch region per thread, a descriptor area first (runTask's), then kernel scratch.
  const scratchStride = parallel ? align(TASK_DESC_BYTES + scratchBytes) : align(scratchBytes);
  const scratchTotal = parallel ? scratchStride * threads : scratchBytes > 0 ? align(scratchBytes) : 0;
  if (scratchTotal > 0)
    blocks.push({ offset: 0, bytes: scratchTotal, def: 0, last: Number.MAX_SAFE_INTEGER });
  const offsets = new Map<number, number>();
  const order = [...life.entries()].sort((a, b) => a[1].def - b[1].def || b[1].bytes - a[1].bytes);
  for (const [slot, l] of order) {
    const overlapping = blocks
      .filter((b) => b.def <= l.last && l.def <= b.last)
      .sort((a, b) => a.offset - b.offset);
    let offset = 0;
    for (const b of overlapping) {
      if (offset + l.bytes <= b.offset) break;
      offset = Math.max(offset, align(b.offset + b.bytes));
    }
    blocks.push({ offset, bytes: l.bytes, def: l.def, last: l.last });
    offsets.set(slot, offset);
  }
  const arenaBytes = blocks.reduce((m, b) => Math.max(m, b.offset + b.bytes), 0);
  let scratchBase = 0;
  if (arenaBytes > 0) {
    const base = k.alloc(arenaBytes);
    owned.push(base);
    for (const [slot, off] of offsets) table[slot] = base + off;
    scratchBase = base;
    if (scratchTotal > 0) table[scratchSlot] = parallel ? base + TASK_DESC_BYTES : base;
  }

  const levels = levelOf ? partitionLevels(k, steps, levelOf, threads, owned) : undefined;

  return {
    table,
    // Pool plans pack memory by level, so even run on one thread they must go level by level.
    steps: levels ? levels.flatMap((l) => l.steps) : steps,
    constSlots,
    constPositions,
    inputSlots,
    outputs,
    owned,
    arenaBytes,
    fallbacks,
    fusedGroups: groups.length,
    levels,
    hasJobs: levels?.some((l) => l.job !== null) ?? false,
    scratchBase,
    scratchStride,
    threads,
  };
}

function align(x: number): number {
  return Math.ceil(x / ALIGN) * ALIGN;
}

/**
 * One fused group as a bytecode program. Input and output pointers are patched into the
 * program's words in wasm memory before each call, so the program is built once.
 */
function fusedStep(gr: FusionGroup, k: Kernels, at: (n: GNode) => number, scratchSlot: number) {
  const shape = gr.members[gr.members.length - 1].shape;
  const b = new FusedProgramBuilder(shape);
  const vals = new Map<GNode, FusedValue>();
  const inputSlots = gr.inputs.map((x) => {
    vals.set(x, b.input(0, x.shape));
    return at(x);
  });
  const value = (x: GNode): FusedValue => {
    const v = vals.get(x);
    if (v) return v;
    // Only fills reach here: they become constants.
    const c = b.constant(x.attrs.value as number, x.dtype);
    vals.set(x, c);
    return c;
  };
  for (const m of gr.members) {
    let v: FusedValue;
    if (m.op === 'where') v = b.where(value(m.inputs[0]), value(m.inputs[1]), value(m.inputs[2]));
    else if (m.inputs.length === 1) v = b.unary(unaryCode(m)!, value(m.inputs[0]));
    else v = b.binary(binaryCode(m) ?? BinaryOp.add, value(m.inputs[0]), value(m.inputs[1]));
    vals.set(m, v);
  }
  const outputSlots = gr.outputs.map((o) => {
    b.output(vals.get(o)!, 0);
    return at(o);
  });
  const program: FusedProgram = b.build();
  const HEADER = 12;
  const inWord = inputSlots.map((_, i) => HEADER + i * 8);
  const outWord = outputSlots.map((_, i) => HEADER + program.nIn * 8 + i * 2);
  const e = k.exports;
  const patch = (p: PtrTable, prog: number) => {
    const w = k.i32(prog, program.words.length);
    for (let i = 0; i < inputSlots.length; i++) w[inWord[i]] = p[inputSlots[i]];
    for (let i = 0; i < outputSlots.length; i++) w[outWord[i]] = p[outputSlots[i]];
  };
  const step = (p: PtrTable, prog: number) => {
    patch(p, prog);
    if (e.fused(prog, p[scratchSlot]) !== 0)
      throw new Error('adjoint internal error: malformed fused program');
  };
  let total = 1;
  for (const d of shape) total *= d;
  return { step, patch, program, total };
}
