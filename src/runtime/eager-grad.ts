/**
 * Eager valueAndGrad, compiled by structure. Outside jit, each call traces f, builds the backward
 * graph with the VJP rules and realizes it; in a loop the graph is the same every time, and
 * building and walking its backward half costs as much as running it. So the forward graph's
 * structure (the codes realize's snapshot makes, plus where the variables sit) keys a compiled
 * program for the value and every gradient: the second call with a structure builds the backward
 * once more and compiles it, later calls run that program on the new forward's constants without
 * building the backward at all, and return realized tensors, as jit does.
 *
 * Sound because the backward graph is a function of the forward structure: VJP rules see ops,
 * attributes, shapes, dtypes and wiring, never values; the constants they make themselves (a
 * weak scalar such as the 2 in d(x²)) depend only on that, and are kept with the program. Custom
 * rules (customVjp, checkpoint) run user code, so forward graphs made with them are left to the
 * lazy path, as are those where f read a value (it keeps its history, and the backward walks
 * past it) and anything that must wait for a GPU.
 */
import { frozenShape, runtimeHooks, Tensor } from '../tensor';
import { activeBackend, devices } from './devices';
import { runSync } from './program';
import { type Compiled, compile, type Snapshot, snapshot } from './realize';
import { placementCodes, StructureCache } from './structure-cache';

interface GradPlan {
  c: Compiled;
  /** Per program leaf: its index among the forward snapshot's constants, or a constant the backward made. */
  leaves: (number | Tensor)[];
}

/** 'seen': met once (a one-off call stays lazy); null: cannot be compiled this way. */
const plans = new StructureCache<GradPlan | 'seen' | null>(64);

/**
 * Gradients of `out` with respect to `vars`: realized by a cached program where the forward
 * structure has been met before, else `backward()`'s lazy tensors. Called by valueAndGrad at
 * top level (no transform around it) with `custom` true when f made custom-rule calls.
 */
export function eagerGrad(
  out: Tensor,
  vars: readonly Tensor[],
  backward: () => Tensor[],
  custom: boolean,
): Tensor[] {
  if (custom || out.storage !== null || devices().gpu !== null || activeBackend()?.device !== 'wasm')
    return backward();
  let fwd: Snapshot;
  try {
    fwd = snapshot([out]);
  } catch {
    return backward(); // e.g. a disposed input: the lazy path reports it when the value is read
  }
  // A value f read mid-function is realized but keeps its history, and the backward reaches past
  // it to what the walk from `out` did not see: such graphs stay lazy.
  if (
    fwd.pending.length !== 1 ||
    fwd.consts.some((t) => t.inputs.length > 0 || t.storage!.device === 'webgpu')
  )
    return backward();
  const key = [...placementCodes(), ...fwd.codes, -2];
  for (const v of vars) key.push(v.walkEpoch === out.walkEpoch ? v.walkIndex : -1);
  let plan = plans.get(key);
  if (plan === undefined) plans.set(key, 'seen');
  if (!plan) return backward();
  let results: Tensor[];
  if (plan === 'seen') {
    results = [out, ...backward()];
    plan = compileGrad(results, fwd.consts);
    plans.set(key, plan);
    if (!plan) return results.slice(1);
  } else results = [out, ...vars.map((v) => new Tensor('const', [], {}, frozenShape(v.shape), 'float32'))];
  const storages = runSync(
    plan.c.program,
    plan.leaves.map((l) => (typeof l === 'number' ? fwd.consts[l] : l)),
  );
  // nothing will differentiate these: keep no history
  results.forEach((t, i) => {
    t.setStorage(storages[i]);
    t.dropHistory();
  });
  return results.slice(1);
}

/** The program computing `outs` (value, then gradients) from the forward's constants and the backward's own; null where it cannot be made. */
function compileGrad(outs: Tensor[], fwdConsts: readonly Tensor[]): GradPlan | null {
  if (new Set(outs).size !== outs.length || outs.some((g) => g.storage !== null)) return null;
  const snap = snapshot(outs);
  if (snap.pending.length !== outs.length) return null;
  const c = compile(snap.pending, snap.codes);
  const fwdIndex = new Map(fwdConsts.map((t, i) => [t, i]));
  return { c, leaves: c.leafConst.map((i) => fwdIndex.get(snap.consts[i]) ?? snap.consts[i]) };
}

runtimeHooks.eagerGrad = eagerGrad;
