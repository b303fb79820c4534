/**
 * vmap: vectorizing map with JAX semantics. The function is called once on per-example stand-ins
 * (symbolic `input` nodes with the per-example shape); the nodes between them and the outputs are
 * then rebuilt in topological order with each op's batching rule from the registry, so the
 * result is an ordinary lazy graph over the whole batch, which grad, jvp, jit and vmap itself
 * transform like any other. Tensors the function closes over stay unbatched.
 */
import { zeros } from '../creation';
import { AxisError, PytreeError, TransformError } from '../errors';
import * as o from '../ops/api';
import { moveBatch } from '../ops/batching';
import { type CustomCall, callHooks, callOf, copyCall, wrapOutput } from '../ops/custom';
import { apply, type BatchDim, getOp } from '../ops/registry';
import { fmt, shapeEq } from '../shape';
import { type Attrs, linkSiblings, Tensor } from '../tensor';
import { recordTape } from './autodiff';
import { flatten, unflatten } from './pytree';
import { tracing } from './transforms';

type Fn = (...args: any[]) => any;

/** An axis spec: a number, null, or a tree of those matching (a prefix of) a pytree. */
export type AxisSpec = number | null | readonly AxisSpec[] | { readonly [k: string]: AxisSpec };

/** The batched value of a per-example leaf: the batched tensor (or a static leaf) and its batch axis. */
interface Batched {
  value: Tensor | unknown;
  dim: BatchDim;
}

/**
 * The core: runs `fn` on per-example stand-ins of `inputs` (those with a batch axis in `dims`)
 * and batches everything between them and the results. Returns each result leaf with its natural
 * batch axis (null where it does not depend on a batched input). Results may contain non-tensor
 * leaves (passed through, unbatched).
 */
export function batchCall(
  fn: (...leaves: Tensor[]) => unknown[],
  inputs: readonly Tensor[],
  dims: readonly BatchDim[],
  size: number,
): Batched[] {
  return tracing(() => {
    const stand = inputs.map((x, i) => {
      const d = dims[i];
      if (d === null) return x;
      const shape = x.shape.filter((_, k) => k !== d);
      return apply('input', [], { index: -1, shape, dtype: x.dtype, vmap: true });
    });
    const outs = fn(...stand);
    const vars = stand.filter((_, i) => dims[i] !== null);
    const batched = new Map<Tensor, [Tensor, BatchDim]>();
    stand.forEach((s, i) => {
      if (dims[i] !== null) batched.set(s, [inputs[i], dims[i]]);
    });
    const tensors = outs.filter((x): x is Tensor => x instanceof Tensor);
    const tape = recordTape(tensors, vars);
    for (const e of tape.entries) {
      if (tape.vars.has(e.node)) continue;
      const xs = e.inputs.map((x) => batched.get(x)?.[0] ?? x);
      const ds = e.inputs.map((x) => batched.get(x)?.[1] ?? null);
      const rule = getOp(e.op).batch ?? loopRule(e.op);
      const r = rule(xs, ds, e.attrs, e.node, size);
      checkRule(e.op, e.node, r, size);
      batched.set(e.node, r);
    }
    return outs.map((x): Batched => {
      if (!(x instanceof Tensor)) return { value: x, dim: null };
      const b = batched.get(x);
      return b ? { value: b[0], dim: b[1] } : { value: x, dim: null };
    });
  });
}

/** A rule's result must be the per-example node with a batch axis inserted (catches rule bugs early). */
function checkRule(op: string, node: Tensor, [t, d]: [Tensor, BatchDim], size: number): void {
  const want = d === null ? [...node.shape] : [...node.shape.slice(0, d), size, ...node.shape.slice(d)];
  if (!shapeEq(t.shape, want) || t.dtype !== node.dtype)
    throw new TransformError(
      `vmap: internal error in the batching rule of '${op}': got ${t.dtype}${fmt(t.shape)} for a ${node.dtype}${fmt(node.shape)} node batched at axis ${d} (size ${size})`,
    );
}

/**
 * The fallback for an op without a batching rule: one op per example, stacked. Correct for any
 * op but slow (a graph that grows with the batch); every op in the registry has a real rule, so
 * this serves only ops added without one.
 */
function loopRule(op: string) {
  return (xs: readonly Tensor[], dims: readonly BatchDim[], attrs: Attrs, node: Tensor, size: number) => {
    if (size === 0) return [zeros([0, ...node.shape], node.dtype), 0] as [Tensor, BatchDim];
    const rows: Tensor[] = [];
    for (let b = 0; b < size; b++) {
      const ins = xs.map((x, i) => {
        const d = dims[i];
        if (d === null) return x;
        const begin = x.shape.map((_, k) => (k === d ? b : 0));
        const sz = x.shape.map((n, k) => (k === d ? 1 : n));
        return o.reshape(
          o.slice(x, begin, sz),
          x.shape.filter((_, k) => k !== d),
        );
      });
      rows.push(apply(op, ins, attrs));
    }
    return [o.stack(rows, 0), 0] as [Tensor, BatchDim];
  };
}

/** Axis specs per tensor leaf of `tree` (a spec that is a number or null covers a whole subtree). */
function specLeaves(spec: unknown, tree: unknown, where: string, path = ''): (number | null)[] {
  if (spec === null || typeof spec === 'number') {
    if (typeof spec === 'number' && !Number.isInteger(spec))
      throw new TransformError(`${where}: axis ${spec}${path ? ` at ${path}` : ''} is not an integer`);
    return flatten(tree, where, true).leaves.map(() => spec);
  }
  if (Array.isArray(spec)) {
    if (!Array.isArray(tree) || tree.length !== spec.length)
      throw new PytreeError(
        `${where}: the spec${path ? ` at ${path}` : ''} is an array of ${spec.length}, but the value there is ${describe(tree)}`,
      );
    return spec.flatMap((s, i) => specLeaves(s, tree[i], where, `${path}[${i}]`));
  }
  if (spec !== undefined && typeof spec === 'object') {
    const keys = Object.keys(spec);
    if (tree === null || typeof tree !== 'object' || Array.isArray(tree) || tree instanceof Tensor)
      throw new PytreeError(
        `${where}: the spec${path ? ` at ${path}` : ''} is an object, but the value there is ${describe(tree)}`,
      );
    const tkeys = Object.keys(tree);
    if (tkeys.length !== keys.length || keys.some((k) => !(k in tree)))
      throw new PytreeError(
        `${where}: the spec${path ? ` at ${path}` : ''} has keys ${JSON.stringify(keys)}, the value ${JSON.stringify(tkeys)}`,
      );
    // leaves come in the value's key order, as flatten visits them
    return tkeys.flatMap((k) =>
      specLeaves(
        (spec as Record<string, unknown>)[k],
        (tree as Record<string, unknown>)[k],
        where,
        `${path}.${k}`,
      ),
    );
  }
  throw new TransformError(`${where}: an axis spec must be a number, null, or an array or object of those`);
}

function describe(x: unknown): string {
  if (x instanceof Tensor) return `a Tensor of shape ${fmt(x.shape)}`;
  if (Array.isArray(x)) return `an array of ${x.length}`;
  return x === null ? 'null' : typeof x;
}

const nameOf = (f: Fn) => f.name || 'anonymous';

/**
 * Vectorizing map (JAX's vmap): `vmap(f, inAxes, outAxes)(...args)` computes f for every
 * example along the batch axes of the arguments at once, as one graph built from each op's
 * batching rule. `inAxes` is a number, null (not batched) or a tree of those matching the
 * argument list (an array with one entry per argument; a number or null covers a whole
 * subtree); `outAxes` likewise for the result. Axes may be negative. Results that do not depend
 * on a batched argument are broadcast along the batch (unless their out axis is null).
 */
export function vmap<F extends Fn>(f: F, inAxes: AxisSpec = 0, outAxes: AxisSpec = 0) {
  const where = `vmap(${nameOf(f)})`;
  return (...args: Parameters<F>): any =>
    tracing(() => {
      const { leaves, def } = flatten(args, `${where}: arguments`, true);
      const specs = specLeaves(inAxes, args, `${where}: inAxes`);
      let size = -1;
      let sizeFrom = '';
      const dims = leaves.map((x, i): BatchDim => {
        const a = specs[i];
        if (a === null) return null;
        if (a < -x.ndim || a >= x.ndim)
          throw new AxisError(
            `${where}: inAxes ${a} is out of range for argument leaf ${i} of shape ${fmt(x.shape)} (valid: ${-x.ndim}..${x.ndim - 1})`,
          );
        const d = a < 0 ? a + x.ndim : a;
        if (size < 0) {
          size = x.shape[d];
          sizeFrom = `leaf ${i} of shape ${fmt(x.shape)} (axis ${d})`;
        } else if (x.shape[d] !== size)
          throw new TransformError(
            `${where}: batch sizes differ: ${size} from ${sizeFrom}, ${x.shape[d]} from leaf ${i} of shape ${fmt(x.shape)} (axis ${d})`,
          );
        return d;
      });
      if (size < 0)
        throw new TransformError(
          `${where}: no argument is batched (every inAxes entry is null or covers no tensor)`,
        );
      let outDef: ReturnType<typeof flatten>['def'] | null = null;
      const outs = batchCall(
        (...stand) => {
          const r = flatten(f(...(unflatten(def, stand) as unknown[])), `${where}: output`, true);
          outDef = r.def;
          return r.leaves;
        },
        leaves,
        dims,
        size,
      );
      const out = unflatten(
        outDef!,
        outs.map((b) => b.value),
      );
      const outSpecs = specLeaves(outAxes, out, `${where}: outAxes`);
      const results = outs.map((b, i) => {
        const t = b.value as Tensor;
        const a = outSpecs[i];
        if (a === null) {
          if (b.dim !== null)
            throw new TransformError(
              `${where}: output leaf ${i} depends on a batched argument, but its outAxes entry is null`,
            );
          return t;
        }
        const rank = t.ndim + (b.dim === null ? 1 : 0);
        if (a < -rank || a >= rank)
          throw new AxisError(
            `${where}: outAxes ${a} is out of range for output leaf ${i} of batched rank ${rank} (valid: ${-rank}..${rank - 1})`,
          );
        return moveBatch(t, b.dim, a < 0 ? a + rank : a, size);
      });
      linkSiblings(results);
      return unflatten(outDef!, results);
    });
}

// ---------------------------------------------------------------- custom calls under vmap

/**
 * Batching a customVjp/customJvp/checkpoint call keeps its rule: the batched call's bwd (or jvp
 * rule) is the original one vmapped over the residuals and cotangents (or primals and tangents),
 * with cotangents of unbatched arguments summed over the batch. Its outputs have the batch at 0.
 */
const batchedCalls = new WeakMap<CustomCall, { inputs: Tensor[]; call: CustomCall }>();

callHooks.batch = (xs, dims, _attrs, node, size) => {
  const { call, index } = callOf(node);
  const nIn = call.nargs + call.nres;
  const shared = xs.slice(0, nIn);
  const sharedDims = dims.slice(0, nIn);
  let entry = batchedCalls.get(call);
  if (!entry || entry.inputs.length !== nIn || entry.inputs.some((x, i) => x !== shared[i])) {
    entry = { inputs: shared, call: batchedCall(call, sharedDims, size) };
    batchedCalls.set(call, entry);
  }
  const y = moveBatch(xs[nIn], dims[nIn], 0, size);
  return [wrapOutput(entry.call, index, [...shared, y]), 0];
};

function batchedCall(call: CustomCall, dims: readonly BatchDim[], size: number): CustomCall {
  const argDims = dims.slice(0, call.nargs);
  const resDims = dims.slice(call.nargs);
  const sig = dims.map((d) => (d === null ? 'n' : d)).join(',');
  const outs = call.outs.map((s) => ({ shape: [size, ...s.shape], dtype: s.dtype }));
  const base = { def: `${call.def}|${size}:${sig}`, outs, closures: [] as Tensor[] };
  if (call.kind === 'vjp') {
    const bwd = call.bwd!;
    return copyCall(call, {
      ...base,
      bwd: (res, cts) => {
        const g = batchCall(
          (...ls) => bwd(ls.slice(0, res.length), ls.slice(res.length)),
          [...res, ...cts],
          [...resDims, ...cts.map(() => 0)],
          size,
        );
        return g.map((b, i) => toArgDim(b, argDims[i], size));
      },
    });
  }
  if (call.kind === 'jvp') {
    const jvp = call.jvp!;
    return copyCall(call, {
      ...base,
      jvp: (args, tans) => {
        const t = batchCall(
          (...ls) => jvp(ls.slice(0, args.length), ls.slice(args.length)),
          [...args, ...tans],
          [...argDims, ...argDims],
          size,
        );
        return t.map((b) => moveBatch(b.value as Tensor, b.dim, 0, size));
      },
    });
  }
  return copyCall(call, base);
}

/** A cotangent computed per example, as the cotangent of an argument batched at `d` (or shared: summed). */
function toArgDim(b: Batched, d: BatchDim, size: number): Tensor | null {
  if (!(b.value instanceof Tensor)) return null;
  if (d === null) return b.dim === null ? o.mul(b.value, size) : o.sum(b.value, b.dim);
  return moveBatch(b.value, b.dim, d, size);
}
