/**
 * Forward and reverse sweeps over the lazy graph. Both walk a Tape: the nodes between the
 * variables and the outputs, in topological order, snapshotted so that a pullback called later
 * still sees the graph as it was. Rules come from the op registry and are written with ops, so
 * every derivative is itself a graph that can be differentiated again.
 */
import { ones, zeros } from '../creation';
import { TransformError } from '../errors';
import { add } from '../ops/api';
import { type CustomCall, callOf, copyCall, wrapOutput } from '../ops/custom';
import { apply, getOp } from '../ops/registry';
import { fmt } from '../shape';
import { type Attrs, newWalk, type Tensor } from '../tensor';

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
  // Iterative post-order; tensors are stamped with this walk, and walkIndex notes (1) that a node
  // depends on a variable.
  const walk = newWalk();
  const order: Tensor[] = [];
  const stack = [...outputs];
  const expanded: boolean[] = outputs.map(() => false);
  while (stack.length > 0) {
    const t = stack.pop()!;
    if (expanded.pop()) {
      order.push(t);
      continue;
    }
    if (t.walkEpoch === walk) continue;
    t.walkEpoch = walk;
    stack.push(t);
    expanded.push(true);
    // Variables are where the sweep stops: their own history belongs to an outer transform.
    if (!varSet.has(t))
      for (let i = t.inputs.length - 1; i >= 0; i--) {
        stack.push(t.inputs[i]);
        expanded.push(false);
      }
  }
  const entries: TapeEntry[] = [];
  for (const t of order) {
    if (varSet.has(t)) {
      t.walkIndex = 1;
      entries.push({ node: t, op: t.op, inputs: [], attrs: t.attrs });
      continue;
    }
    t.walkIndex = 0;
    for (const i of t.inputs)
      if (i.walkIndex === 1) {
        t.walkIndex = 1;
        entries.push({ node: t, op: t.op, inputs: [...t.inputs], attrs: t.attrs });
        break;
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
    if (e.op === 'customCall') {
      customForward(e, tan);
      continue;
    }
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
  // A custom call runs once, at its first wrapper in tape order: by then the cotangents of all
  // its wrappers are complete (their consumers come later in the order).
  const firstOf = new Map<CustomCall, number>();
  tape.entries.forEach((e, k) => {
    if (e.op === 'customCall' && !tape.vars.has(e.node)) {
      const { call } = callOf(e.node);
      if (!firstOf.has(call)) firstOf.set(call, k);
    }
  });
  for (let k = tape.entries.length - 1; k >= 0; k--) {
    const e = tape.entries[k];
    if (e.op === 'customCall' && !tape.vars.has(e.node)) {
      const { call } = callOf(e.node);
      if (firstOf.get(call) !== k) continue;
      for (const [x, c] of customReverse(call, e.inputs, adj, inTape))
        if (c && inTape.has(x) && x.dtype === 'float32') accumulate(x, c);
      continue;
    }
    const ct = adj.get(e.node);
    if (!ct || tape.vars.has(e.node)) continue;
    const rule = getOp(e.op).vjp;
    if (!rule) continue;
    const needed = e.inputs.map((x) => x.dtype === 'float32' && inTape.has(x));
    const cts = rule(ct, e.inputs, e.node, e.attrs, needed);
    e.inputs.forEach((x, i) => {
      const c = cts[i];
      if (c && inTape.has(x) && x.dtype === 'float32') accumulate(x, c);
    });
  }
  return adj;
}

// ---------------------------------------------------------------- custom rules

/** Forward mode through a custom call: its jvp rule, or (customVjp, checkpoint) through f itself. */
function customForward(e: TapeEntry, tan: Map<Tensor, Tensor>): void {
  const { call } = callOf(e.node);
  if (call.kind !== 'jvp') {
    const t = tan.get(e.inputs[e.inputs.length - 1]);
    if (t) tan.set(e.node, t);
    return;
  }
  if (tan.has(e.node)) return; // set with the call's other outputs
  const args = e.inputs.slice(0, call.nargs);
  const ts = args.map((x) => tan.get(x) ?? null);
  if (ts.every((t) => t === null)) return;
  checkClosures(call, tan);
  const touts = call.jvp!(
    args,
    ts.map((t, i) => t ?? zeros(args[i].shape, args[i].dtype)),
  );
  call.wrappers.forEach((w, i) => {
    if (w) tan.set(w, touts[i]);
  });
}

function checkClosures(call: CustomCall, differentiated: { has(t: Tensor): boolean }): void {
  const c = call.closures.find((t) => differentiated.has(t));
  if (c)
    throw new TransformError(
      `${call.label}: the function closes over a ${c.dtype}${fmt(c.shape)} tensor that is being differentiated; pass it as an argument so the rule can give its derivative`,
    );
}

/**
 * Reverse mode through a custom call: [input, cotangent] pairs. customVjp calls bwd; customJvp
 * transposes its (linear) tangent rule by a reverse sweep over it; checkpoint recomputes the
 * region from barriers and differentiates the copy.
 */
function customReverse(
  call: CustomCall,
  inputs: readonly Tensor[],
  adj: Map<Tensor, Tensor>,
  inTape: Set<Tensor>,
): [Tensor, Tensor | null][] {
  const raw = call.wrappers.map((w) => (w ? (adj.get(w) ?? null) : null));
  if (raw.every((c) => c === null)) return [];
  const cts = raw.map((c, i) => c ?? zeros(call.outs[i].shape, call.outs[i].dtype));
  const args = inputs.slice(0, call.nargs);
  if (call.kind === 'vjp') {
    checkClosures(call, inTape);
    const g = call.bwd!(inputs.slice(call.nargs, call.nargs + call.nres), cts);
    return args.map((x, i) => [x, g[i]]);
  }
  if (call.kind === 'jvp') {
    checkClosures(call, inTape);
    // <ct, J t> is linear in t: its gradient with respect to t, at t = 0, is Jᵀ ct.
    const tvars = args.map((x) => apply('identity', [zeros(x.shape, x.dtype)]));
    const touts = call.jvp!(args, tvars);
    const back = reverseSweep(recordTape(touts, tvars), touts, cts);
    return args.map((x, i) => [x, back.get(tvars[i]) ?? null]);
  }
  return recompute(call, inputs, cts);
}

/**
 * checkpoint's backward: copies the region between the call's arguments and its outputs, reading
 * the arguments through barriers that wait for a cotangent of the outputs, and differentiates the
 * copy. Tensors the region reads from outside (parameters it closed over...) are variables of
 * that sweep too, so they get their cotangents. Nested custom calls are copied with their rules.
 */
function recompute(
  call: CustomCall,
  inputs: readonly Tensor[],
  cts: readonly Tensor[],
): [Tensor, Tensor | null][] {
  const args = inputs.slice(0, call.nargs);
  const outs = call.wrappers.map((w) => w?.inputs[w.inputs.length - 1] ?? null);
  const anchor = cts.find((c) => c.op !== 'fill') ?? cts[0];
  const region = recordTape(
    outs.filter((o): o is Tensor => o !== null),
    args,
  );
  const copy = new Map<Tensor, Tensor>();
  const barriers = args.map((x) => {
    const b = apply('rematBarrier', [x, anchor]);
    copy.set(x, b);
    return b;
  });
  const outside: Tensor[] = [];
  const seenOutside = new Set<Tensor>();
  const read = (x: Tensor): Tensor => {
    const c = copy.get(x);
    if (c) return c;
    if (!seenOutside.has(x)) {
      seenOutside.add(x);
      outside.push(x);
    }
    return x;
  };
  const calls = new Map<CustomCall, CustomCall>();
  for (const e of region.entries) {
    if (region.vars.has(e.node)) continue;
    const ins = e.inputs.map(read);
    let c: Tensor;
    if (e.op === 'customCall') {
      const { call: inner, index } = callOf(e.node);
      let twin = calls.get(inner);
      if (!twin) calls.set(inner, (twin = copyCall(inner)));
      c = wrapOutput(twin, index, ins);
    } else c = apply(e.op, ins, e.attrs);
    copy.set(e.node, c);
  }
  const outsR: Tensor[] = [];
  const ctsR: Tensor[] = [];
  outs.forEach((o, i) => {
    if (o === null) return;
    outsR.push(copy.get(o) ?? read(o));
    ctsR.push(cts[i]);
  });
  const vars = [...barriers, ...outside];
  const back = reverseSweep(recordTape(outsR, vars), outsR, ctsR);
  return [
    ...args.map((x, i): [Tensor, Tensor | null] => [x, back.get(barriers[i]) ?? null]),
    ...outside.map((x): [Tensor, Tensor | null] => [x, back.get(x) ?? null]),
  ];
}

export function zerosLike(t: Tensor): Tensor {
  return zeros(t.shape, t.dtype);
}

export function onesLike(t: Tensor): Tensor {
  return ones(t.shape, t.dtype);
}
