/**
 * User-defined derivatives (customVjp, customJvp) and the call records behind them and behind
 * checkpoint. Inside a transform, a call of such a function records its result as usual, then
 * wraps each output leaf in a `customCall` node whose inputs are the call's arguments, its
 * residuals and that output. The node is the identity on the output (the compiler drops it), but
 * the sweeps in transforms/autodiff.ts stop there and ask the call record instead of looking
 * inside: bwd for reverse mode, the jvp rule for forward mode, recomputation for checkpoint.
 * Outside every transform nothing can differentiate the result, so the plain function runs.
 */
import { TransformError } from '../errors';
import { fmt, shapeEq } from '../shape';
import { type DType, nextTensorId, Tensor, traceState } from '../tensor';
import { flatten, type TreeDef, treeKey, unflatten } from '../transforms/pytree';
import { apply, type BatchDim, type BatchRule, defineOp } from './registry';

type Fn = (...args: any[]) => any;

export type CallKind = 'vjp' | 'jvp' | 'checkpoint';

/** One call of a function with a custom rule: what the sweeps need to differentiate through it. */
export interface CustomCall {
  readonly kind: CallKind;
  /** `customVjp(name)` etc., for error messages. */
  readonly label: string;
  /** Stable across calls of the same definition (part of the wrappers' attributes, so of cache keys). */
  readonly def: string;
  /** Tensor leaves of the arguments, then of the residuals (vjp only), lead every wrapper's inputs. */
  readonly nargs: number;
  readonly nres: number;
  /** Per output leaf. */
  readonly outs: readonly { shape: readonly number[]; dtype: DType }[];
  /** The wrapper node of each output leaf (a clone or batched copy may lack some). */
  readonly wrappers: (Tensor | undefined)[];
  /**
   * Tensors the function read without taking them as arguments (found at call time): the sweeps
   * refuse to differentiate a customVjp/customJvp call with respect to them.
   */
  readonly closures: readonly Tensor[];
  /** vjp: cotangent per argument leaf (null = zero) from residual and output-cotangent leaves. */
  readonly bwd?: (res: readonly Tensor[], cts: readonly Tensor[]) => (Tensor | null)[];
  /** jvp: tangent per output leaf from argument and tangent leaves. */
  readonly jvp?: (args: readonly Tensor[], tangents: readonly Tensor[]) => Tensor[];
}

const calls = new WeakMap<Tensor, { call: CustomCall; index: number }>();
let wrapped = 0;

/**
 * Definitions whose rules, like the registry's VJP rules, depend only on the graph's structure
 * (library functions: no values read, nothing closed over), so eager valueAndGrad may compile
 * a backward made with them once and reuse it; calls of these are not counted below.
 */
const structural = new Set<string>();

/** How many custom-call outputs of user-defined rules have been made so far: a change tells a caller its function made one. */
export function customCallCount(): number {
  return wrapped;
}

/** The call a `customCall` node belongs to, and which output leaf it is. */
export function callOf(node: Tensor): { call: CustomCall; index: number } {
  const c = calls.get(node);
  if (!c) throw new TransformError(`internal: customCall node #${node.id} has no call record`);
  return c;
}

/** Records the wrapper of output leaf `index` of `call`, with these inputs. */
export function wrapOutput(call: CustomCall, index: number, inputs: Tensor[]): Tensor {
  const w = apply('customCall', inputs, {
    kind: call.kind,
    def: call.def,
    index,
    nargs: call.nargs,
    nres: call.nres,
  });
  call.wrappers[index] = w;
  calls.set(w, { call, index });
  if (!structural.has(call.def)) wrapped++;
  return w;
}

/** A fresh record like `call` (same rules) for a copy of its wrappers, e.g. a recomputation. */
export function copyCall(call: CustomCall, changes: Partial<CustomCall> = {}): CustomCall {
  return { ...call, wrappers: [], ...changes };
}

/**
 * Tensors `outs` read that were made before `firstId` and are not arguments: what the function
 * closed over. Only nodes made during the call (ids from firstId) are walked.
 */
function closuresOf(outs: readonly Tensor[], args: readonly Tensor[], firstId: number): Tensor[] {
  const argSet = new Set(args);
  const seen = new Set<Tensor>();
  const found = new Set<Tensor>();
  const stack = [...outs];
  while (stack.length) {
    const t = stack.pop()!;
    if (seen.has(t)) continue;
    seen.add(t);
    if (argSet.has(t)) continue;
    if (t.id < firstId) {
      if (t.op !== 'const' && t.op !== 'fill') found.add(t);
      continue;
    }
    stack.push(...t.inputs);
  }
  return [...found];
}

export const nameOf = (f: Fn) => f.name || 'anonymous';

function describe(x: unknown): string {
  if (x instanceof Tensor) return `a Tensor of shape ${fmt(x.shape)}`;
  if (Array.isArray(x)) return `an array of ${x.length}`;
  return x === null ? 'null' : typeof x;
}

/** Checks that `got` (a tree a rule returned) has the tensor leaves of `want`, shape for shape. */
function checkLike(label: string, what: string, got: unknown, want: readonly Tensor[], wantDef: TreeDef) {
  const { leaves, def } = flatten(got, `${label}: ${what}`, true);
  if (leaves.length !== want.length || treeKey(stripStatic(def)) !== treeKey(stripStatic(wantDef)))
    throw new TransformError(
      `${label}: ${what} must have the structure of ${want.length} tensor leaves like the function's, got ${describe(got)} with ${leaves.length}`,
    );
  leaves.forEach((l, i) => {
    if (!shapeEq(l.shape, want[i].shape) || l.dtype !== want[i].dtype)
      throw new TransformError(
        `${label}: ${what}${want.length > 1 ? ` leaf ${i}` : ''} is ${l.dtype} of shape ${fmt(l.shape)}, expected ${want[i].dtype} of shape ${fmt(want[i].shape)}`,
      );
  });
  return leaves;
}

/** A tree def with static leaves made equal, so structures compare by their tensor leaves. */
function stripStatic(d: TreeDef): TreeDef {
  switch (d.kind) {
    case 'static':
      return { kind: 'static', value: null };
    case 'array':
      return { kind: 'array', children: d.children.map(stripStatic) };
    case 'object':
      return { kind: 'object', keys: d.keys, children: d.children.map(stripStatic) };
    default:
      return d;
  }
}

let nextDef = 1;

/** A tag unique to one customVjp/customJvp/checkpoint definition. */
export function newDef(prefix: string): string {
  return `${prefix}${nextDef++}`;
}

interface CallSite {
  args: unknown[];
  argLeaves: Tensor[];
  argDefs: TreeDef[];
  /** Tensor leaves per argument. */
  argCounts: number[];
  out: unknown;
  outLeaves: Tensor[];
  outDef: TreeDef;
  closures: Tensor[];
}

/** Runs f and flattens what the record needs; `closures` false skips looking for what f closed over (library rules close over nothing). */
export function runCall(label: string, f: Fn, args: unknown[], closures = true): CallSite {
  const first = nextTensorId();
  const out = f(...args);
  const argDefs: TreeDef[] = [];
  const argLeaves: Tensor[] = [];
  const argCounts: number[] = [];
  args.forEach((a, i) => {
    const { leaves, def } = flatten(a, `${label}: argument ${i}`, true);
    argLeaves.push(...leaves);
    argDefs.push(def);
    argCounts.push(leaves.length);
  });
  const { leaves: outLeaves, def: outDef } = flatten(out, `${label}: output`);
  return {
    args,
    argLeaves,
    argDefs,
    argCounts,
    out,
    outLeaves,
    outDef,
    closures: closures ? closuresOf(outLeaves, argLeaves, first) : [],
  };
}

/** The fields every custom call takes from its call site; the caller adds its rule. */
export function callAt(kind: CallKind, label: string, def: string, site: CallSite, nres = 0) {
  return {
    kind,
    label,
    def,
    nargs: site.argLeaves.length,
    nres,
    outs: site.outLeaves.map((y) => ({ shape: y.shape, dtype: y.dtype })),
    wrappers: [],
    closures: site.closures,
  };
}

/** Wraps every output leaf of a call site in its customCall node and returns the output tree. */
export function finishCall(call: CustomCall, site: CallSite, res: readonly Tensor[] = []): unknown {
  const wrapped = site.outLeaves.map((y, i) => wrapOutput(call, i, [...site.argLeaves, ...res, y]));
  return unflatten(site.outDef, wrapped);
}

/**
 * f with a custom reverse-mode rule (JAX's custom_vjp). `fwd(...args)` returns
 * `[output, residuals]` (residuals: any pytree, e.g. values bwd needs); `bwd(residuals,
 * cotangent)` returns one cotangent per argument (a tree like the argument, or null for zero).
 * grad, vjp and everything built on them use bwd instead of differentiating f; the value is
 * f's. Differentiating the gradient again differentiates bwd's computation (as in JAX).
 * Forward mode (jvp, jacfwd) differentiates f itself, where JAX raises an error. Tensors f
 * closes over cannot be differentiated through the call: pass them as arguments.
 */
export function customVjp<F extends Fn>(...rule: VjpRule<F>): F {
  return makeCustomVjp(false, ...rule);
}

/** customVjp for library functions, whose rules depend only on structure (see `structural`). */
export function libraryVjp<F extends Fn>(...rule: VjpRule<F>): F {
  return makeCustomVjp(true, ...rule);
}

type VjpRule<F extends Fn> = [
  f: F,
  fwd: (...args: Parameters<F>) => [ReturnType<F>, unknown],
  bwd: (residuals: any, cotangent: any) => readonly unknown[],
];

function makeCustomVjp<F extends Fn>(isStructural: boolean, ...[f, fwd, bwd]: VjpRule<F>): F {
  const label = `customVjp(${nameOf(f)})`;
  const def = newDef('vjp');
  if (isStructural) structural.add(def);
  const wrapped = (...args: unknown[]) => {
    if (traceState.depth === 0) return f(...args);
    // a library rule's fwd gives f's value: trace it once and take the output from it
    let r: unknown[] = [];
    const site = isStructural
      ? runCall(label, (...a: unknown[]) => (r = fwd(...(a as Parameters<F>)))[0], args, false)
      : runCall(label, f, args);
    if (!isStructural) {
      r = fwd(...(args as Parameters<F>));
      if (!Array.isArray(r) || r.length !== 2)
        throw new TransformError(`${label}: fwd must return [output, residuals], got ${describe(r)}`);
      checkLike(label, "fwd's output", r[0], site.outLeaves, site.outDef);
    }
    const { leaves: res, def: resDef } = flatten(r[1], `${label}: residuals`, true);
    const call: CustomCall = {
      ...callAt('vjp', label, def, site, res.length),
      bwd: (resLeaves, cts) => {
        const g = bwd(unflatten(resDef, resLeaves), unflatten(site.outDef, cts)) as unknown;
        return checkCotangents(label, g, site);
      },
    };
    return finishCall(call, site, res);
  };
  Object.defineProperty(wrapped, 'name', { value: nameOf(f) });
  return wrapped as F;
}

/** bwd's result as one cotangent (or null) per argument leaf, after checking it fits. */
function checkCotangents(label: string, g: unknown, site: CallSite): (Tensor | null)[] {
  if (!Array.isArray(g))
    throw new TransformError(
      `${label}: bwd must return an array with one cotangent per argument (${site.args.length}), got ${describe(g)}`,
    );
  if (g.length !== site.args.length)
    throw new TransformError(
      `${label}: bwd returned ${g.length} cotangent${g.length === 1 ? '' : 's'} for ${site.args.length} argument${site.args.length === 1 ? '' : 's'}`,
    );
  const out: (Tensor | null)[] = [];
  let at = 0;
  site.args.forEach((_, i) => {
    const n = site.argCounts[i];
    const want = site.argLeaves.slice(at, at + n);
    at += n;
    if (g[i] === null || g[i] === undefined) {
      out.push(...want.map(() => null));
      return;
    }
    const got = checkLike(label, `bwd's cotangent for argument ${i}`, g[i], want, site.argDefs[i]);
    out.push(...got);
  });
  return out;
}

/**
 * f with a custom forward-mode rule (JAX's custom_jvp): `rule(primals, tangents)` returns
 * `[output, tangentOut]`, where primals and tangents are arrays with one entry per argument.
 * jvp and jacfwd use it; reverse mode (grad, vjp) transposes it, so the rule must be linear
 * in the tangents, as in JAX. The value is f's. Tensors f closes over cannot be differentiated
 * through the call: pass them as arguments.
 */
export function customJvp<F extends Fn>(
  f: F,
  rule: (primals: any[], tangents: any[]) => readonly [unknown, unknown],
): F {
  const label = `customJvp(${nameOf(f)})`;
  const def = newDef('jvp');
  const wrapped = (...args: unknown[]) => {
    if (traceState.depth === 0) return f(...args);
    const site = runCall(label, f, args);
    const call: CustomCall = {
      ...callAt('jvp', label, def, site),
      jvp: (argLeaves, tanLeaves) => {
        const primals = regroup(site, argLeaves);
        const tangents = regroup(site, tanLeaves);
        const r = rule(primals, tangents) as unknown;
        if (!Array.isArray(r) || r.length !== 2)
          throw new TransformError(`${label}: the rule must return [output, tangentOut], got ${describe(r)}`);
        checkLike(label, "the rule's output", r[0], site.outLeaves, site.outDef);
        return checkLike(label, "the rule's tangent output", r[1], site.outLeaves, site.outDef);
      },
    };
    return finishCall(call, site);
  };
  Object.defineProperty(wrapped, 'name', { value: nameOf(f) });
  return wrapped as F;
}

/** The argument array rebuilt around new tensor leaves (static leaves kept). */
function regroup(site: CallSite, leaves: readonly Tensor[]): unknown[] {
  let at = 0;
  return site.argDefs.map((d, i) => {
    const part = leaves.slice(at, at + site.argCounts[i]);
    at += site.argCounts[i];
    return unflatten(d, part);
  });
}

/** Installed by transforms/vmap.ts: the batching rule of customCall (it runs vmap on the rules). */
export const callHooks: { batch: BatchRule | null } = { batch: null };

/**
 * The wrapper of one output leaf of a custom-rule call. Its value is its last input; the
 * compiler removes it. Derivatives and batching go through the call record (see above).
 */
defineOp({
  name: 'customCall',
  kind: 'other',
  infer: (inputs) => {
    const y = inputs[inputs.length - 1];
    return { shape: y.shape, dtype: y.dtype };
  },
  reference: (inputs) => inputs[inputs.length - 1].data.slice(),
  batch: (xs, dims, attrs, y, size) => {
    if (!callHooks.batch) throw new TransformError('internal: vmap is not loaded');
    return callHooks.batch(xs, dims, attrs, y, size);
  },
});

/**
 * checkpoint's barrier: the value of its first input, available only once its second input (a
 * cotangent of the checkpointed outputs) is. The backward's recomputation starts from these,
 * so CSE cannot merge it into the forward (different inputs) and every schedule runs it after
 * that cotangent exists, when the backward reaches the region. Backends alias it to its first
 * input (no copy, no kernel).
 */
defineOp({
  name: 'rematBarrier',
  kind: 'other',
  infer: ([x]) => ({ shape: x.shape, dtype: x.dtype }),
  reference: ([x]) => x.data.slice(),
  jvp: ([t]) => t,
  vjp: (ct) => [ct, null],
  batch: (xs, dims: readonly BatchDim[]) => [apply('rematBarrier', [...xs]), dims[0]],
});
