/** JAX-style transforms over functions of tensors and pytrees. They compose: grad(grad(f)), jvp of grad... */
import { fromHost, ones, zeros } from '../creation';
import { DTypeError, PytreeError, ShapeError, TransformError } from '../errors';
import { reshape, stack } from '../ops/api';
import { customCallCount } from '../ops/custom';
import { apply } from '../ops/registry';
import { fmt, shapeEq } from '../shape';
import { linkSiblings, runtimeHooks, Tensor, traceState } from '../tensor';
import { forwardSweep, recordTape, reverseSweep } from './autodiff';
import { flatten, type Pytree, type TreeDef, treeKey, unflatten } from './pytree';

type Fn = (...args: any[]) => any;

/** Runs body with history kept on realization, so values read mid-transform stay differentiable. */
export function tracing<T>(body: () => T): T {
  traceState.depth++;
  try {
    return body();
  } finally {
    traceState.depth--;
  }
}

/** Fresh nodes standing for the variables, so a transform differentiates with respect to exactly them. */
function variables(leaves: readonly Tensor[]): Tensor[] {
  return leaves.map((t) => apply('identity', [t]));
}

function checkFloat(leaves: readonly Tensor[], where: string, argnum: number): void {
  leaves.forEach((t, i) => {
    if (t.dtype !== 'float32')
      throw new DTypeError(
        `${where}: argument ${argnum}${leaves.length > 1 ? ` leaf ${i}` : ''} is ${t.dtype}; derivatives need float32 inputs (cast it, or leave it out of argnums)`,
      );
  });
}

function normalizeArgnums(argnums: number | readonly number[], nargs: number, where: string): number[] {
  const list = typeof argnums === 'number' ? [argnums] : [...argnums];
  if (list.length === 0) throw new TransformError(`${where}: argnums is empty`);
  return list.map((a) => {
    const k = a < 0 ? a + nargs : a;
    if (!Number.isInteger(a) || k < 0 || k >= nargs)
      throw new TransformError(`${where}: argnums ${a} is out of range for a call with ${nargs} arguments`);
    return k;
  });
}

/** Replaces args[k] (k in argnums) by trees of fresh variables. */
function bindVariables(args: unknown[], nums: readonly number[], where: string) {
  const newArgs = [...args];
  const vars: Tensor[][] = [];
  const defs: TreeDef[] = [];
  for (const k of nums) {
    const { leaves, def } = flatten(args[k], `${where}: argument ${k}`);
    checkFloat(leaves, where, k);
    const v = variables(leaves);
    vars.push(v);
    defs.push(def);
    newArgs[k] = unflatten(def, v);
  }
  return { newArgs, vars, defs };
}

export function valueAndGrad(f: Fn, argnums: number | readonly number[] = 0) {
  return (...args: unknown[]): [Tensor, any] =>
    tracing(() => {
      const nums = normalizeArgnums(argnums, args.length, 'grad');
      const { newArgs, vars, defs } = bindVariables(args, nums, 'grad');
      const customBefore = customCallCount();
      const out = f(...newArgs);
      if (!(out instanceof Tensor))
        throw new TransformError(`grad: the function must return a scalar Tensor, got ${describe(out)}`);
      if (out.ndim !== 0)
        throw new TransformError(
          `grad: the function must return a scalar (shape []), got shape ${fmt(out.shape)}; use vjp or jacrev for non-scalar outputs`,
        );
      if (out.dtype !== 'float32')
        throw new DTypeError(`grad: the function returned ${out.dtype}; it must be float32`);
      const all = vars.flat();
      const backward = (): Tensor[] => {
        const adj = reverseSweep(recordTape([out], all), [out], [ones([])]);
        return all.map((v) => adj.get(v) ?? zeros(v.shape));
      };
      // At top level the runtime may run a program compiled for this forward structure instead.
      const flat =
        traceState.depth === 1 && runtimeHooks.eagerGrad
          ? runtimeHooks.eagerGrad(out, all, backward, customCallCount() !== customBefore)
          : backward();
      let at = 0;
      const grads = nums.map((_, j) => unflatten(defs[j], flat.slice(at, (at += vars[j].length))));
      linkSiblings([out, ...flatten(grads, 'grad').leaves]);
      return [out, typeof argnums === 'number' ? grads[0] : grads];
    });
}

export function grad(f: Fn, argnums: number | readonly number[] = 0) {
  const vg = valueAndGrad(f, argnums);
  return (...args: unknown[]): any => vg(...args)[1];
}

function describe(x: unknown): string {
  if (x instanceof Tensor) return `a Tensor of shape ${fmt(x.shape)}`;
  if (Array.isArray(x)) return 'an array';
  return x === null ? 'null' : typeof x;
}

/** Reverse mode: [f(...primals), pullback]; pullback(cotangent tree) returns one gradient tree per primal. */
export function vjp(f: Fn, ...primals: unknown[]): [any, (ct: unknown) => any[]] {
  return tracing(() => {
    const nums = primals.map((_, i) => i);
    const { newArgs, vars, defs } = bindVariables(primals, nums, 'vjp');
    const out = f(...newArgs);
    const { leaves: outs, def: outDef } = flatten(out, 'vjp: output');
    const all = vars.flat();
    const tape = recordTape(outs, all);
    const pullback = (ct: unknown): any[] =>
      tracing(() => {
        const { leaves: cts, def } = flatten(ct, 'vjp: cotangent');
        if (treeKey(def) !== treeKey(outDef))
          throw new PytreeError('vjp: the cotangent tree does not have the structure of the output');
        cts.forEach((c, i) => {
          if (!shapeEq(c.shape, outs[i].shape))
            throw new ShapeError(
              `vjp: cotangent shape ${fmt(c.shape)} does not match output shape ${fmt(outs[i].shape)}`,
            );
        });
        const adj = reverseSweep(tape, outs, cts);
        return defs.map((d, j) =>
          unflatten(
            d,
            vars[j].map((v) => adj.get(v) ?? zeros(v.shape)),
          ),
        );
      });
    return [out, pullback];
  });
}

/** Forward mode: [f(...primals), the directional derivative along tangents]. */
export function jvp(f: Fn, primals: readonly unknown[], tangents: readonly unknown[]): [any, any] {
  return tracing(() => {
    if (!Array.isArray(primals) || !Array.isArray(tangents) || primals.length !== tangents.length)
      throw new TransformError('jvp: primals and tangents must be arrays of the same length');
    const nums = primals.map((_, i) => i);
    const { newArgs, vars, defs } = bindVariables(primals, nums, 'jvp');
    const tans = tangents.map((t, i) => {
      const { leaves, def } = flatten(t, `jvp: tangent ${i}`);
      if (treeKey(def) !== treeKey(defs[i]))
        throw new PytreeError(`jvp: tangent ${i} does not have the structure of primal ${i}`);
      leaves.forEach((l, j) => {
        if (!shapeEq(l.shape, vars[i][j].shape))
          throw new ShapeError(
            `jvp: tangent shape ${fmt(l.shape)} does not match primal shape ${fmt(vars[i][j].shape)}`,
          );
      });
      return leaves;
    });
    const out = f(...newArgs);
    const { leaves: outs, def: outDef } = flatten(out, 'jvp: output');
    const all = vars.flat();
    const tan = forwardSweep(recordTape(outs, all), all, tans.flat());
    return [
      out,
      unflatten(
        outDef,
        outs.map((o) => tan.get(o) ?? zeros(o.shape)),
      ),
    ];
  });
}

function basis(shape: readonly number[], i: number): Tensor {
  const data = new Float32Array(shape.reduce((a, d) => a * d, 1));
  data[i] = 1;
  return fromHost(data, shape, 'float32');
}

function jacobianInput(x: unknown, where: string): Tensor {
  if (!(x instanceof Tensor)) throw new PytreeError(`${where}: the argument must be a Tensor`);
  checkFloat([x], where, 0);
  return x;
}

function jacobianOutput(out: unknown, where: string): Tensor {
  if (!(out instanceof Tensor))
    throw new TransformError(`${where}: the function must return a Tensor, got ${describe(out)}`);
  return out;
}

/** Jacobian by forward mode, one JVP per input element: shape out.shape ++ x.shape. */
export function jacfwd(f: Fn) {
  return (x: unknown, ...rest: unknown[]): Tensor =>
    tracing(() => {
      const xt = jacobianInput(x, 'jacfwd');
      const [v] = variables([xt]);
      const out = jacobianOutput(f(v, ...rest), 'jacfwd');
      const tape = recordTape([out], [v]);
      const cols: Tensor[] = [];
      for (let i = 0; i < xt.size; i++) {
        const t = forwardSweep(tape, [v], [basis(xt.shape, i)]).get(out) ?? zeros(out.shape);
        cols.push(reshape(t, [out.size]));
      }
      const shape = [...out.shape, ...xt.shape];
      return cols.length && out.size ? reshape(stack(cols, 1), shape) : zeros(shape);
    });
}

/** Jacobian by reverse mode, one VJP per output element: shape out.shape ++ x.shape. */
export function jacrev(f: Fn) {
  return (x: unknown, ...rest: unknown[]): Tensor =>
    tracing(() => {
      const xt = jacobianInput(x, 'jacrev');
      const [v] = variables([xt]);
      const out = jacobianOutput(f(v, ...rest), 'jacrev');
      const tape = recordTape([out], [v]);
      const rows: Tensor[] = [];
      for (let j = 0; j < out.size; j++) {
        const g = reverseSweep(tape, [out], [basis(out.shape, j)]).get(v) ?? zeros(xt.shape);
        rows.push(reshape(g, [xt.size]));
      }
      const shape = [...out.shape, ...xt.shape];
      return rows.length && xt.size ? reshape(stack(rows, 0), shape) : zeros(shape);
    });
}

/** Forward-over-reverse, as in JAX. */
export function hessian(f: Fn) {
  return jacfwd(jacrev(f));
}

export type { Pytree };
