/** Pytree helpers for the optimizers: trees are matched by key path, not by leaf order. */
import { PytreeError, ShapeError } from '../errors';
import { fmt, shapeEq } from '../shape';
import { Tensor } from '../tensor';
import { flatten, type TreeDef, unflatten } from '../transforms/pytree';

export interface Flat {
  leaves: Tensor[];
  def: TreeDef;
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  if (x === null || typeof x !== 'object') return false;
  const proto = Object.getPrototypeOf(x);
  return proto === Object.prototype || proto === null;
}

function describe(x: unknown): string {
  if (x instanceof Tensor) return `a Tensor of shape ${fmt(x.shape)}`;
  if (Array.isArray(x)) return `an array of length ${x.length}`;
  if (x === null) return 'null';
  if (typeof x === 'object') return isPlainObject(x) ? 'an object' : (x.constructor?.name ?? 'an object');
  return typeof x;
}

export function flat(tree: unknown, where: string): Flat {
  return flatten(tree, where);
}

export function rebuild<P>(ref: Flat, leaves: Tensor[]): P {
  return unflatten(ref.def, leaves) as P;
}

/**
 * The leaves of `tree` in the order of `ref`'s leaves, matched by key path (so `{ b, w }` lines up with
 * `{ w, b }`, as happens after a checkpoint round trip), each checked to have its reference leaf's shape.
 */
export function alignLeaves(ref: Flat, tree: unknown, where: string): Tensor[] {
  const out: Tensor[] = [];
  let i = 0;
  const at = (path: string) => (path === '' ? 'the root' : `'${path}'`);
  const go = (d: TreeDef, x: unknown, path: string): void => {
    switch (d.kind) {
      case 'leaf': {
        const r = ref.leaves[i++];
        if (!(x instanceof Tensor))
          throw new PytreeError(
            `${where}: ${at(path)} is ${describe(x)}; expected a Tensor of shape ${fmt(r.shape)} like the parameter there`,
          );
        if (!shapeEq(x.shape, r.shape))
          throw new ShapeError(
            `${where}: ${at(path)} has shape ${fmt(x.shape)} but the parameter there has shape ${fmt(r.shape)}`,
          );
        out.push(x);
        return;
      }
      case 'array': {
        if (!Array.isArray(x) || x.length !== d.children.length)
          throw new PytreeError(
            `${where}: ${at(path)} is ${describe(x)}; expected an array of length ${d.children.length} like the parameters`,
          );
        d.children.forEach((c, j) => {
          go(c, x[j], path === '' ? String(j) : `${path}.${j}`);
        });
        return;
      }
      case 'object': {
        if (!isPlainObject(x))
          throw new PytreeError(
            `${where}: ${at(path)} is ${describe(x)}; expected an object with keys ${JSON.stringify(d.keys)} like the parameters`,
          );
        for (const k of Object.keys(x))
          if (!d.keys.includes(k))
            throw new PytreeError(`${where}: ${at(path)} has key '${k}' that the parameters do not have`);
        d.keys.forEach((k, j) => {
          if (!Object.hasOwn(x, k))
            throw new PytreeError(`${where}: ${at(path)} lacks key '${k}' that the parameters have`);
          go(d.children[j], x[k], path === '' ? k : `${path}.${k}`);
        });
        return;
      }
      case 'static':
        return;
    }
  };
  go(ref.def, tree, '');
  return out;
}
