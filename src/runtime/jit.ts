/** jit and trace: trace a function once per input signature with symbolic inputs, optimize, reuse. */
import { optimize } from '../compiler/compile';
import type { Graph } from '../graph/graph';
import { buildGraph } from '../graph/graph';
import { apply } from '../ops/registry';
import { frozenShape, Tensor, traceState } from '../tensor';
import { flatten, treeKey, unflatten } from '../transforms/pytree';
import { tracing } from '../transforms/transforms';
import { devices } from './devices';
import { place } from './placement';
import { lower, type Program, runSync } from './program';
import { backendSync, realizeSync } from './realize';

type Fn = (...args: any[]) => any;

interface Traced {
  graph: Graph;
  /** The graph placed and lowered, for the devices of `epoch`. */
  program: Program | null;
  epoch: number;
  outDef: ReturnType<typeof flatten>['def'];
  /** Argument leaves whose buffers the function consumes (see donate). */
  donated: number[];
}

const donation: { active: Set<number> | null } = { active: null };

/**
 * Declares that a jit-compiled function consumes these arguments (JAX's buffer donation):
 * after each call, the tensors passed there are released, so a training loop's memory stays
 * flat without dispose(). Optimizer updates call this on the parameters and state they replace.
 * Outside a jit trace it does nothing. Reading a donated tensor afterwards is a DisposedError.
 */
export function donate(tree: unknown): void {
  if (!donation.active) return;
  const { leaves } = flatten(tree, 'donate', true);
  // (vmap's per-example stand-ins are input nodes too, but not arguments of the jit call)
  for (const t of leaves) if (t.op === 'input' && !t.attrs.vmap) donation.active.add(t.attrs.index as number);
}

function placeholders(leaves: readonly Tensor[]): Tensor[] {
  return leaves.map((t, index) => apply('input', [], { index, shape: [...t.shape], dtype: t.dtype }));
}

/** Traces f on symbolic stand-ins for the tensor leaves of args; other leaves are static. */
function traceOnce(f: Fn, args: unknown[]): Traced {
  const { leaves, def } = flatten(args, 'trace', true);
  const syms = placeholders(leaves);
  const outer = donation.active;
  const donated = new Set<number>();
  donation.active = donated;
  let out: unknown;
  try {
    out = tracing(() => f(...(unflatten(def, syms) as unknown[])));
  } finally {
    donation.active = outer;
  }
  const { leaves: outs, def: outDef } = flatten(out, 'trace: output', true);
  return {
    graph: optimize(buildGraph(outs, 'trace')),
    program: null,
    epoch: -1,
    outDef,
    donated: [...donated],
  };
}

/** The graph that will run for f(...args), after the compiler's passes. Tensor arguments become inputs. */
export function trace(f: Fn, ...args: unknown[]): Graph {
  return traceOnce(f, args).graph;
}

function signature(args: unknown[]): { key: string; leaves: Tensor[] } {
  const { leaves, def } = flatten(args, 'jit', true);
  return {
    key: `${treeKey(def)}|${leaves.map((t) => `${t.dtype}[${t.shape.join(',')}]`).join(';')}`,
    leaves,
  };
}

export type Jitted<F extends Fn> = F & { readonly cacheSize: number };

/**
 * Compiles f once per input signature (tree structure, shapes, dtypes, static leaf values) and
 * reuses the optimized plan. Tensors f closes over are baked in as constants, as in JAX. Inside
 * another transform the call is inlined so it stays differentiable.
 */
export function jit<F extends Fn>(f: F): Jitted<F> {
  const cache = new Map<string, Traced>();
  const jitted = (...args: unknown[]) => {
    if (traceState.depth > 0) return f(...args);
    const { key, leaves } = signature(args);
    let plan = cache.get(key);
    if (!plan) {
      plan = traceOnce(f, args);
      cache.set(key, plan);
    }
    realizeSync(leaves);
    backendSync();
    const { epoch } = devices();
    if (plan.epoch !== epoch) {
      plan.program = lower(place(plan.graph, { noReadback: true }));
      plan.epoch = epoch;
    }
    const program = plan.program!;
    // leaves: arguments by input index, and the tensors f closed over
    const bound = program.leaves.map((n) => (n.op === 'input' ? leaves[n.attrs.index as number] : n.source!));
    const out = runSync(program, bound);
    const results = plan.graph.outputs.map((n, i) => {
      const t = new Tensor('const', [], {}, frozenShape(n.shape), n.dtype);
      t.setStorage(out[i]);
      return t;
    });
    for (const i of plan.donated)
      leaves[i].dispose('it was donated to a jit-compiled update; use the value it returned');
    return unflatten(plan.outDef, results);
  };
  Object.defineProperty(jitted, 'cacheSize', { get: () => cache.size });
  return jitted as Jitted<F>;
}
