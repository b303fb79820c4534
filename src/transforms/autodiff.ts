/**
 * Forward and reverse sweeps over the lazy graph. Both walk a Tape: the nodes between the
 * variables and the outputs, in topological order, snapshotted so that a pullback called later
 * still sees the graph as it was. Rules come from the op registry and are written with ops, so
 * every derivative is itself a graph that can be differentiated again.
 */
import { ones, zeros } from '../creation';
import { add } from '../ops/api';
import { getOp } from '../ops/registry';
import type { Attrs, Tensor } from '../tensor';

interface TapeEntry {
  node: Tensor;
  op: string;
  inputs: Tensor[];
  attrs: Attrs;
}

export interface Tape {
  readonly entries: readonly TapeEntry[];
  readonly vars: ReadonlySet<Tensor>;
}

/** Nodes reachable from `outputs` that depend on some variable, in topological order. */
export function recordTape(outputs: readonly Tensor[], vars: readonly Tensor[]): Tape {
  const varSet = new Set(vars);
  const order: Tensor[] = [];
  const seen = new Set<Tensor>();
  const stack: [Tensor, boolean][] = outputs.map((t) => [t, false]);
  while (stack.length) {
    const [t, done] = stack.pop()!;
    if (done) {
      order.push(t);
      continue;
    }
    if (seen.has(t)) continue;
    seen.add(t);
    stack.push([t, true]);
    // Variables are where the sweep stops: their own history belongs to an outer transform.
    if (!varSet.has(t)) for (let i = t.inputs.length - 1; i >= 0; i--) stack.push([t.inputs[i], false]);
  }
  const depends = new Set<Tensor>(vars);
  const entries: TapeEntry[] = [];
  for (const t of order) {
    if (varSet.has(t)) {
      entries.push({ node: t, op: t.op, inputs: [], attrs: t.attrs });
      continue;
    }
    if (t.inputs.some((i) => depends.has(i))) {
      depends.add(t);
      entries.push({ node: t, op: t.op, inputs: [...t.inputs], attrs: t.attrs });
    }
  }
  return { entries, vars: varSet };
}

/** Forward mode: the tangent of every taped node, given tangents of the variables. */
export function forwardSweep(
  tape: Tape,
  vars: readonly Tensor[],
  tangents: readonly Tensor[],
): Map<Tensor, Tensor> {
  const tan = new Map<Tensor, Tensor>();
  vars.forEach((v, i) => {
    tan.set(v, tangents[i]);
  });
  for (const e of tape.entries) {
    if (tape.vars.has(e.node)) continue;
    const ts = e.inputs.map((x) => tan.get(x) ?? null);
    if (ts.every((t) => t === null)) continue;
    const rule = getOp(e.op).jvp;
    const t = rule ? rule(ts, e.inputs, e.node, e.attrs) : null;
    if (t) tan.set(e.node, t);
  }
  return tan;
}

/** Reverse mode: the adjoint (∂out/∂node, contracted with the cotangents) of every taped node. */
export function reverseSweep(
  tape: Tape,
  outputs: readonly Tensor[],
  cotangents: readonly Tensor[],
): Map<Tensor, Tensor> {
  const adj = new Map<Tensor, Tensor>();
  const inTape = new Set(tape.entries.map((e) => e.node));
  const accumulate = (t: Tensor, ct: Tensor) => {
    const prev = adj.get(t);
    adj.set(t, prev ? add(prev, ct) : ct);
  };
  outputs.forEach((o, i) => {
    if (inTape.has(o)) accumulate(o, cotangents[i]);
  });
  for (let k = tape.entries.length - 1; k >= 0; k--) {
    const e = tape.entries[k];
    const ct = adj.get(e.node);
    if (!ct || tape.vars.has(e.node)) continue;
    const rule = getOp(e.op).vjp;
    if (!rule) continue;
    const cts = rule(ct, e.inputs, e.node, e.attrs);
    e.inputs.forEach((x, i) => {
      const c = cts[i];
      if (c && inTape.has(x) && x.dtype === 'float32') accumulate(x, c);
    });
  }
  return adj;
}

export function zerosLike(t: Tensor): Tensor {
  return zeros(t.shape, t.dtype);
}

export function onesLike(t: Tensor): Tensor {
  return ones(t.shape, t.dtype);
}
