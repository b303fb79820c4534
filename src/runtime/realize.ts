/** Turns lazy tensors into buffers: snapshot the graph, optimize it, run it on the active backend. */

import type { Backend } from '../backends/backend';
import { ReferenceBackend } from '../backends/reference/interpreter';
import { optimize } from '../compiler/compile';
import { ConcretizationError } from '../errors';
import { buildGraph } from '../graph/graph';
import { runtimeHooks, type Storage, type Tensor } from '../tensor';

const state: { backend: Backend } = { backend: new ReferenceBackend() };

export function activeBackend(): Backend {
  return state.backend;
}

export function setBackend(b: Backend): void {
  state.backend = b;
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
  const out: Storage[] = state.backend.run(g, []);
  pending.forEach((t, i) => {
    t.setStorage(out[i]);
  });
}

export async function realize(ts: readonly Tensor[]): Promise<void> {
  realizeSync(ts);
}

runtimeHooks.realize = realize;
runtimeHooks.realizeSync = realizeSync;
