/** Turns lazy tensors into buffers: snapshot the graph, optimize it, run it on the active backend. */

import type { Backend } from '../backends/backend';
import { optimize } from '../compiler/compile';
import { ConcretizationError, DisposedError } from '../errors';
import { buildGraph } from '../graph/graph';
import { internKey, newWalk, runtimeHooks, shapeKey, type Tensor } from '../tensor';
import { activeBackend, devices, setBackend } from './devices';
import { place } from './placement';
import { lower, type Program, runAsync, runSync } from './program';
import { noteRead } from './residency';
import { placementCodes, StructureCache } from './structure-cache';

const state: {
  /** Installed by init.ts: the default initialization, sync (Node) and async (everywhere). */
  autoInit: { sync(): void; async(): Promise<void> } | null;
} = { autoInit: null };

export { activeBackend, setBackend };

export function setAutoInit(f: { sync(): void; async(): Promise<void> }): void {
  state.autoInit = f;
}

/** The primary backend, initializing the default one synchronously if none was chosen. */
export function backendSync(): Backend {
  if (!activeBackend()) {
    try {
      state.autoInit?.sync();
    } catch (e) {
      throw new ConcretizationError(
        `the wasm kernels cannot be loaded synchronously here; call 'await init()' first (${(e as Error).message})`,
      );
    }
  }
  const b = activeBackend();
  if (!b) throw new ConcretizationError("no backend: call 'await init()' first");
  return b;
}

export interface Compiled {
  /** The optimized graph, placed and lowered to segments and transfers. */
  program: Program;
  /** For each program leaf, its index among the snapshot's constants. */
  leafConst: number[];
}

/** Optimized graphs by structure, so a loop that rebuilds the same graph optimizes it once. */
const compiled = new StructureCache<Compiled>(256);

export interface Snapshot {
  /**
   * The structure as numbers, equal for graphs of equal structure (ops, attributes, shapes,
   * dtypes, wiring; constants by position, not value): per node its signature, input count and
   * input positions; then the positions of the outputs.
   */
  codes: number[];
  /** The realized leaves, in walk order. */
  consts: Tensor[];
  /** The tensors to compute: those asked for, then their pending siblings. */
  pending: Tensor[];
}

/**
 * One walk of the lazy DAG in post-order, roots in turn. Tensors made by the same transform call
 * as a node of the graph (a loss and its gradients) join the roots, so the shared work is done in
 * one run; a sibling that cannot be computed (it reads a disposed tensor) is left out. Marks on
 * the tensors (walkEpoch, walkIndex) and their cached signatures keep this cheap: it runs on
 * every eager read.
 */
export function snapshot(asked: readonly Tensor[]): Snapshot {
  const epoch = newWalk();
  const codes: number[] = [];
  let nodes = 0;
  const consts: Tensor[] = [];
  const pending = [...asked];
  const wanted = new Set(asked);
  const reached: Tensor[] = [];
  const stack: Tensor[] = [];
  const expanded: boolean[] = [];
  for (let r = 0; r < pending.length; r++) {
    const root = pending[r];
    if (root.walkEpoch === epoch) continue;
    const mark = [codes.length, nodes, consts.length, pending.length, reached.length];
    try {
      stack.push(root);
      expanded.push(false);
      while (stack.length > 0) {
        const t = stack.pop()!;
        if (expanded.pop()) {
          t.walkIndex = nodes++;
          visit(t);
          continue;
        }
        if (t.walkEpoch === epoch) continue;
        t.walkEpoch = epoch;
        t.walkIndex = -1;
        reached.push(t);
        t.checkAlive('realize');
        stack.push(t);
        expanded.push(true);
        if (t.storage === null)
          for (let i = t.inputs.length - 1; i >= 0; i--) {
            const x = t.inputs[i];
            if (x.walkEpoch !== epoch) {
              stack.push(x);
              expanded.push(false);
            }
          }
      }
    } catch (e) {
      if (r < asked.length || !(e instanceof DisposedError)) throw e;
      stack.length = 0;
      expanded.length = 0;
      codes.length = mark[0];
      nodes = mark[1];
      consts.length = mark[2];
      for (const s of pending.splice(mark[3])) wanted.delete(s);
      for (const t of reached.splice(mark[4])) t.walkEpoch = 0;
      pending.splice(r, 1);
      r--;
    }
  }
  codes.push(-1);
  for (const t of pending) codes.push(t.walkIndex);
  return { codes, consts, pending };

  function visit(t: Tensor): void {
    if (t.storage !== null) {
      consts.push(t);
      codes.push(internKey(`c${t.dtype[0]}${shapeKey(t.shape)}`), 0);
      return;
    }
    if (t.op === 'input')
      throw new ConcretizationError(
        t.attrs.vmap
          ? 'cannot read the value of a tensor that depends on a vmapped argument inside the vmapped function: it stands for every example at once; read the results of vmap instead'
          : `cannot read the value of a tensor that depends on symbolic input ${String(t.attrs.index)} of trace/jit; values exist only when the compiled function runs`,
      );
    if (t.siblings !== null)
      for (const ref of t.siblings) {
        const s = ref.deref();
        if (s && s.storage === null && !s.disposed && !wanted.has(s)) {
          wanted.add(s);
          pending.push(s);
        }
      }
    codes.push(t.signature(), t.inputs.length);
    for (const x of t.inputs) codes.push(x.walkIndex);
  }
}

export function compile(pending: readonly Tensor[], structure: readonly number[]): Compiled {
  // Placement depends on the devices in use: a new set (init) starts a new cache.
  const codes = [...placementCodes(), ...structure];
  const hit = compiled.get(codes);
  if (hit) return hit;
  const raw = buildGraph(pending);
  const rawConsts = raw.nodes.filter((n) => n.op === 'const');
  const program = lower(place(optimize(raw)));
  // Leaves are bound by position on every run: the cache must not keep this call's tensors.
  for (const n of rawConsts) n.source = null;
  const entry: Compiled = { program, leafConst: program.leaves.map((n) => rawConsts.indexOf(n)) };
  compiled.set(codes, entry);
  return entry;
}

/** Snapshot, siblings and the compiled program for a realization. */
function prepare(ts: readonly Tensor[]): { pending: Tensor[]; c: Compiled; leaves: Tensor[] } | null {
  const asked = [...new Set(ts.filter((t) => t.storage === null))];
  if (asked.length === 0) return null;
  const snap = snapshot(asked);
  backendSync();
  const c = compile(snap.pending, snap.codes);
  return { pending: snap.pending, c, leaves: c.leafConst.map((i) => snap.consts[i]) };
}

/** Computes every unrealized tensor in `ts` in one graph run. Nothing is assigned if the run throws. */
export function realizeSync(ts: readonly Tensor[]): void {
  const r = prepare(ts);
  if (!r) return;
  const out = runSync(r.c.program, r.leaves);
  r.pending.forEach((t, i) => {
    t.setStorage(out[i]);
  });
}

let lastYield = 0;

/**
 * Async realization reads values back from a GPU where a later step needs them elsewhere, and
 * gives the event loop a turn now and then (at most every 100 ms), so FinalizationRegistry
 * callbacks run and free the buffers of unreachable tensors even in a tight
 * `await x.data()` loop, which otherwise only ever runs microtasks.
 */
export async function realize(ts: readonly Tensor[]): Promise<void> {
  if (!activeBackend()) await state.autoInit?.async();
  const r = prepare(ts);
  if (r) {
    // with a GPU in play a step may have to wait for a value to come back from it
    const gpu =
      devices().gpu !== null ||
      activeBackend()?.device === 'webgpu' ||
      r.leaves.some((t) => t.storage!.device === 'webgpu');
    const out = gpu ? await runAsync(r.c.program, r.leaves) : runSync(r.c.program, r.leaves);
    r.pending.forEach((t, i) => {
      t.setStorage(out[i]);
    });
  }
  await turn(r?.c.program.outputSizes.some((n) => n >= BIG_RESULT) ?? false);
}

/** A macrotask now if `big`, else at most every 100 ms (see realize). */
function turn(big: boolean): Promise<void> | undefined {
  const now = Date.now();
  if (!big && now - lastYield <= 100) return undefined;
  lastYield = now;
  return macrotask();
}

/** Results this large are likely garbage soon (a value read in a loop): let finalizers run now. */
const BIG_RESULT = 1 << 18;

const macrotask: () => Promise<void> =
  typeof setImmediate === 'function'
    ? () => new Promise((resolve) => setImmediate(resolve))
    : () => new Promise((resolve) => setTimeout(resolve, 0));
runtimeHooks.realize = realize;
runtimeHooks.read = noteRead;
runtimeHooks.realizeSync = realizeSync;
runtimeHooks.turn = turn;
