/**
 * Partitioning a pool plan: steps are grouped by level (wavefront: a step's level is one more
 * than the deepest level it reads from, so the steps of one level are independent and may run
 * at the same time — the weight gradients of different layers, the branches of a function of
 * several inputs). In each level with enough work, the splittable steps become tasks cut into
 * chunks of work units (matmul row panels, fused-program tiles, element ranges, reduction and
 * softmax rows, strided ops along their first dim); the other steps of the level stay on the
 * main thread and run while the workers take chunks. Small levels run on the main thread as a
 * whole: a dispatch costs microseconds, a 1,000-element op less than that.
 */

import { envVar } from '../../../platform/node';
import type { Kernels } from '../kernels';
import type { ParSpec, PtrTable, StepFn } from '../ops';
import { CTL, MAX_CHUNKS, TaskKind } from './control';

/** One task of a job: its record in wasm memory and how it is cut. */
export interface JobTask {
  /** Byte address of the task record (assembly/task.ts). */
  readonly rec: number;
  readonly chunks: number;
  /** Work units per chunk. */
  readonly grain: number;
  readonly cost: number;
  /** Pointer words to fill before each run: triples (i32 index in memory, table slot, byte offset). */
  readonly patch: Int32Array;
  readonly prepare?: (p: PtrTable) => void;
  readonly step: StepFn;
}

/** What one level hands the pool: tasks to share out and steps the main thread runs meanwhile. */
export interface Job {
  readonly tasks: JobTask[];
  readonly main: StepFn[];
  readonly chunks: number;
  readonly cost: number;
}

export interface PlanLevel {
  /** Every step of the level (any order is valid: they are independent). */
  readonly steps: StepFn[];
  /** null: run the level on the main thread. */
  readonly job: Job | null;
}

/** A non-negative number from the environment (Node), for stress tests: 0 splits everything. */
function envNumber(name: string, fallback: number): number {
  const v = envVar(name);
  const n = v === undefined || v === '' ? Number.NaN : Number(v);
  return Number.isFinite(n) && n >= 0 ? n : fallback;
}

/**
 * Split policy (estimated single-thread nanoseconds). Exported, and mutable, for benchmarks
 * and tests; the defaults suit a dispatch that costs a few microseconds when workers are awake
 * and up to ~100 µs when they sleep.
 */
export const splitPolicy = {
  /** A level whose splittable work is below this runs on the main thread. */
  dispatchMinNs: envNumber('ADJOINT_DISPATCH_MIN_NS', 50_000),
  /** No chunk is made smaller than this. */
  chunkMinNs: envNumber('ADJOINT_CHUNK_MIN_NS', 20_000),
  /** Chunks per thread a level aims for (more balance dynamically, but each costs a claim). */
  chunksPerThread: 3,
  /** Matmul chunks repack the whole of B, so it gets fewer, larger chunks. */
  matmulChunksPerThread: 2,
};

interface Draft {
  spec: ParSpec;
  step: StepFn;
  chunks: number;
  grain: number;
}

function cut(spec: ParSpec, target: number, threads: number): { chunks: number; grain: number } {
  const maxChunks = Math.max(1, Math.ceil(spec.units / spec.grain));
  let n = Math.min(maxChunks, Math.max(1, Math.round(spec.cost / target)));
  // Matmul and convolution chunks each repack a whole operand panel: fewer, larger chunks.
  if (spec.kind === TaskKind.matmul || spec.kind === TaskKind.conv)
    n = Math.min(n, threads * splitPolicy.matmulChunksPerThread);
  const grain = Math.ceil(Math.ceil(spec.units / n) / spec.grain) * spec.grain;
  return { chunks: Math.ceil(spec.units / grain), grain };
}

/**
 * Groups steps by level and builds the jobs. Task records are written into one block of wasm
 * memory, pushed to `owned` (freed with the plan).
 */
export function partitionLevels(
  k: Kernels,
  steps: StepFn[],
  levelOf: number[],
  threads: number,
  owned: number[],
): PlanLevel[] {
  const nLevels = levelOf.reduce((m, l) => Math.max(m, l + 1), 0);
  const byLevel: StepFn[][] = Array.from({ length: nLevels }, () => []);
  steps.forEach((s, i) => {
    byLevel[levelOf[i]].push(s);
  });

  const drafts: { steps: StepFn[]; tasks: Draft[]; main: StepFn[]; cost: number }[] = [];
  for (const lv of byLevel) {
    const par = lv.filter((s) => s.par !== undefined).sort((a, b) => b.par!.cost - a.par!.cost);
    const cost = par.reduce((c, s) => c + s.par!.cost, 0);
    if (cost < splitPolicy.dispatchMinNs) {
      drafts.push({ steps: lv, tasks: [], main: [], cost: 0 });
      continue;
    }
    const target = Math.max(splitPolicy.chunkMinNs, cost / (threads * splitPolicy.chunksPerThread));
    const tasks: Draft[] = [];
    const main: StepFn[] = lv.filter((s) => s.par === undefined);
    let total = 0;
    for (const s of par) {
      const c = cut(s.par!, target, threads);
      if (tasks.length >= CTL.MAX_TASKS || total + c.chunks > MAX_CHUNKS) main.push(s);
      else {
        tasks.push({ spec: s.par!, step: s, ...c });
        total += c.chunks;
      }
    }
    if (total < 2 && main.length === 0) drafts.push({ steps: lv, tasks: [], main: [], cost: 0 });
    else drafts.push({ steps: lv, tasks, main, cost });
  }

  // one block of records for the whole plan
  let words = 0;
  for (const d of drafts) for (const t of d.tasks) words += 2 + t.spec.args.length;
  const base = words > 0 ? k.alloc(words * 4) : 0;
  if (words > 0) owned.push(base);
  const mem = words > 0 ? k.i32(base, words) : new Int32Array(0);
  let at = 0;
  return drafts.map((d): PlanLevel => {
    if (d.tasks.length === 0) return { steps: d.steps, job: null };
    const tasks = d.tasks.map((t): JobTask => {
      const rec = base + at * 4;
      mem[at++] = t.spec.kind;
      mem[at++] = t.spec.units;
      const patch: number[] = [];
      for (const a of t.spec.args) {
        if (typeof a === 'number') mem[at] = a;
        else if ('self' in a) mem[at] = rec + a.self * 4;
        else {
          mem[at] = 0;
          patch.push((base >> 2) + at, a.slot, a.bytes ?? 0);
        }
        at++;
      }
      return {
        rec,
        chunks: t.chunks,
        grain: t.grain,
        cost: t.spec.cost,
        patch: Int32Array.from(patch),
        prepare: t.spec.prepare,
        step: t.step,
      };
    });
    const chunks = tasks.reduce((c, t) => c + t.chunks, 0);
    return { steps: d.steps, job: { tasks, main: d.main, chunks, cost: d.cost } };
  });
}
