/** Turns lazy tensors into buffers: snapshot the graph, optimize it, run it on the active backend. */

import type { Backend } from '../backends/backend';
import { optimize } from '../compiler/compile';
import { ConcretizationError, DisposedError } from '../errors';
import { buildGraph, type GNode, type Graph, postOrder } from '../graph/graph';
import { keyOf } from '../key';
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

interface Compiled {
  graph: Graph;
  /** The optimized graph's const nodes and, for each, its index among the snapshot's constants. */
  consts: GNode[];
  constIndex: number[];
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
        `cannot read the value of a tensor that depends on symbolic input ${String(t.attrs.index)} of trace/jit; values exist only when the compiled function runs`,
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
  let c = compiled.get(key);
  if (c) {
    compiled.delete(key);
    compiled.set(key, c);
    return c;
  }
  const raw = buildGraph(pending);
  const rawConsts = raw.nodes.filter((n) => n.op === 'const');
  const graph = optimize(raw);
  const consts = graph.nodes.filter((n) => n.op === 'const');
  c = { graph, consts, constIndex: consts.map((n) => rawConsts.indexOf(n)) };
  compiled.set(key, c);
  if (compiled.size > MAX_COMPILED) compiled.delete(compiled.keys().next().value as string);
  return c;
}

/** Computes every unrealized tensor in `ts` in one graph run. Nothing is assigned if the run throws. */
export function realizeSync(ts: readonly Tensor[]): void {
  let pending = [...new Set(ts.filter((t) => t.storage === null))];
  if (pending.length === 0) return;
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
  const backend = backendSync();
  const c = compile(pending, snap.key);
  // Bind this call's constants into the cached graph for the (synchronous) run, then unbind
  // so the cache does not keep tensors alive.
  c.consts.forEach((n, i) => {
    n.source = snap.consts[c.constIndex[i]];
  });
  let out: Storage[];
  try {
    out = backend.run(c.graph, []);
  } finally {
    for (const n of c.consts) n.source = null;
  }
  pending.forEach((t, i) => {
    t.setStorage(out[i]);
  });
}

let lastYield = 0;

/**
 * Async realization also gives the event loop a turn now and then (at most every 100 ms), so
 * FinalizationRegistry callbacks run and free the buffers of unreachable tensors even in a
 * tight `await x.data()` loop, which otherwise only ever runs microtasks.
 */
export async function realize(ts: readonly Tensor[]): Promise<void> {
  if (!state.backend) await state.autoInit?.async();
  realizeSync(ts);
  const now = Date.now();
  if (now - lastYield > 100) {
    lastYield = now;
    await new Promise<void>((resolve) => setTimeout(resolve, 0));
  }
}

runtimeHooks.realize = realize;
runtimeHooks.realizeSync = realizeSync;
