/** Turns lazy tensors into buffers: snapshot the graph, optimize it, run it on the active backend. */

import type { Backend } from '../backends/backend';
import { optimize } from '../compiler/compile';
import { ConcretizationError, DisposedError } from '../errors';
import { buildGraph, postOrder } from '../graph/graph';
import { keyOf } from '../key';
import { runtimeHooks, type Tensor } from '../tensor';
import { activeBackend, devices, setBackend } from './devices';
import { place, placementPolicy } from './placement';
import { lower, type Program, runAsync, runSync } from './program';
import { noteRead } from './residency';

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

interface Compiled {
  /** The optimized graph, placed and lowered to segments and transfers. */
  program: Program;
  /** For each program leaf, its index among the snapshot's constants. */
  leafConst: number[];
}

const MAX_COMPILED = 256;
/** Optimized graphs by structure, so a loop that rebuilds the same graph optimizes it once. */
const compiled = new Map<string, Compiled>();

/**
 * One walk of the lazy DAG: a key equal for graphs of equal structure (ops, attributes,
 * shapes, dtypes, wiring; constants by position, not value), and the constants in order.
 */
function snapshot(pending: readonly Tensor[]): { key: string; consts: Tensor[]; siblings: Tensor[] } {
  const index = new Map<Tensor, number>();
  const parts: string[] = [];
  const consts: Tensor[] = [];
  const siblings: Tensor[] = [];
  const wanted = new Set(pending);
  postOrder(pending, 'realize', (t) => {
    index.set(t, parts.length);
    if (t.storage !== null) {
      consts.push(t);
      parts.push(`c${t.dtype[0]}${t.shape.join(',')}`);
      return;
    }
    if (t.op === 'input')
      throw new ConcretizationError(
        t.attrs.vmap
          ? 'cannot read the value of a tensor that depends on a vmapped argument inside the vmapped function: it stands for every example at once; read the results of vmap instead'
          : `cannot read the value of a tensor that depends on symbolic input ${String(t.attrs.index)} of trace/jit; values exist only when the compiled function runs`,
      );
    for (const r of t.siblings ?? []) {
      const s = r.deref();
      if (s && s.storage === null && !s.disposed && !wanted.has(s)) {
        wanted.add(s);
        siblings.push(s);
      }
    }
    let ins = '';
    for (const x of t.inputs) ins += `${index.get(x)},`;
    parts.push(`${t.op}${t.dtype[0]}${t.shape.join(',')}${keyOf(t.attrs)}${ins}`);
  });
  parts.push(`>${pending.map((t) => index.get(t)).join(',')}`);
  return { key: parts.join(';'), consts, siblings };
}

function compile(pending: readonly Tensor[], key: string): Compiled {
  // Placement depends on the devices in use: a new set (init) starts a new cache.
  const full = `${devices().epoch}|${placementPolicy.gpuMinWork}|${key}`;
  let c = compiled.get(full);
  if (c) {
    compiled.delete(full);
    compiled.set(full, c);
    return c;
  }
  const raw = buildGraph(pending);
  const rawConsts = raw.nodes.filter((n) => n.op === 'const');
  const program = lower(place(optimize(raw)));
  // Leaves are bound by position on every run: the cache must not keep this call's tensors.
  for (const n of rawConsts) n.source = null;
  c = { program, leafConst: program.leaves.map((n) => rawConsts.indexOf(n)) };
  compiled.set(full, c);
  if (compiled.size > MAX_COMPILED) compiled.delete(compiled.keys().next().value as string);
  return c;
}

/** Snapshot, siblings and the compiled program for a realization. */
function prepare(ts: readonly Tensor[]): { pending: Tensor[]; c: Compiled; leaves: Tensor[] } | null {
  let pending = [...new Set(ts.filter((t) => t.storage === null))];
  if (pending.length === 0) return null;
  // Tensors made by the same transform call as any node of this graph (a loss and its
  // gradients) are computed in the same run: the shared work is done once.
  let snap = snapshot(pending);
  for (let round = 0; round < 4 && snap.siblings.length > 0; round++) {
    // Best effort: a sibling that cannot be computed (it reads a disposed tensor) is left out.
    try {
      const more = snapshot([...pending, ...snap.siblings]);
      pending = [...pending, ...snap.siblings];
      snap = more;
    } catch (e) {
      if (!(e instanceof DisposedError)) throw e;
      snap = { ...snap, siblings: [] };
    }
  }
  backendSync();
  const c = compile(pending, snap.key);
  return { pending, c, leaves: c.leafConst.map((i) => snap.consts[i]) };
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
  const now = Date.now();
  const big = r?.c.program.outputSizes.some((n) => n >= BIG_RESULT);
  if (big || now - lastYield > 100) {
    lastYield = now;
    await macrotask();
  }
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
