/** Turns lazy tensors into buffers: snapshot the graph, optimize it, run it on the active backend. */

import type { Backend } from '../backends/backend';
import { optimize } from '../compiler/compile';
import { ConcretizationError } from '../errors';
import { buildGraph } from '../graph/graph';
import { runtimeHooks, type Storage, type Tensor } from '../tensor';

const state: {
  backend: Backend | null;
  /** Installed by init.ts: the default initialization, sync (Node) and async (everywhere). */
  autoInit: { sync(): void; async(): Promise<void> } | null;
} = { backend: null, autoInit: null };

export function activeBackend(): Backend | null {
  return state.backend;
}

export function setBackend(b: Backend | null): void {
  state.backend = b;
}

export function setAutoInit(f: { sync(): void; async(): Promise<void> }): void {
  state.autoInit = f;
}

/** The active backend, initializing the default one synchronously if none was chosen. */
export function backendSync(): Backend {
  if (!state.backend) {
    try {
      state.autoInit?.sync();
    } catch (e) {
      throw new ConcretizationError(
        `the wasm kernels cannot be loaded synchronously here; call 'await init()' first (${(e as Error).message})`,
      );
    }
  }
  if (!state.backend) throw new ConcretizationError("no backend: call 'await init()' first");
  return state.backend;
}

/** Computes every unrealized tensor in `ts` in one graph run. Nothing is assigned if the run throws. */
export function realizeSync(ts: readonly Tensor[]): void {
  const pending = [...new Set(ts.filter((t) => t.storage === null))];
  if (pending.length === 0) return;
  const g = optimize(buildGraph(pending));
  const symbolic = g.nodes.find((n) => n.op === 'input');
  if (symbolic)
    throw new ConcretizationError(
      `cannot read the value of a tensor that depends on symbolic input ${String(symbolic.attrs.index)} of trace/jit; values exist only when the compiled function runs`,
    );
  const out: Storage[] = backendSync().run(g, []);
  pending.forEach((t, i) => {
    t.setStorage(out[i]);
  });
}

let lastYield = 0;

/**
 * Async realization also gives the event loop a turn now and then (at most every 20 ms), so
 * FinalizationRegistry callbacks run and free the buffers of unreachable tensors even in a
 * tight `await x.data()` loop, which otherwise only ever runs microtasks.
 */
export async function realize(ts: readonly Tensor[]): Promise<void> {
  if (!state.backend) await state.autoInit?.async();
  realizeSync(ts);
  const now = Date.now();
  if (now - lastYield > 20) {
    lastYield = now;
    await new Promise<void>((resolve) => setTimeout(resolve, 0));
  }
}

runtimeHooks.realize = realize;
runtimeHooks.realizeSync = realizeSync;
