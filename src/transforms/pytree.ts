/** Pytrees: nested plain objects and arrays whose leaves are tensors (JAX's term). */

import { PytreeError } from '../errors';
import { keyOf } from '../key';
import { Tensor } from '../tensor';

export type Pytree<T = Tensor> = T | readonly Pytree<T>[] | { readonly [k: string]: Pytree<T> };

/** The structure of a tree without its leaves; `key` is a stable string for caching. */
export type TreeDef =
  | { kind: 'leaf' }
  | { kind: 'static'; value: unknown }
  | { kind: 'array'; children: TreeDef[] }
  | { kind: 'object'; keys: string[]; children: TreeDef[] };

function isPlainObject(x: unknown): x is Record<string, unknown> {
  if (x === null || typeof x !== 'object') return false;
  const proto = Object.getPrototypeOf(x);
  return proto === Object.prototype || proto === null;
}

/**
 * Flattens a tree into its tensor leaves (depth first, object keys in insertion order).
 * With `allowStatic`, non-tensor leaves (numbers, strings, null...) are kept in the TreeDef as
 * static values instead of raising, as jit and trace need.
 */
export function flatten(
  tree: unknown,
  where: string,
  allowStatic = false,
): { leaves: Tensor[]; def: TreeDef } {
  const leaves: Tensor[] = [];
  const go = (x: unknown, path: string): TreeDef => {
    if (x instanceof Tensor) {
      leaves.push(x);
      return { kind: 'leaf' };
    }
    if (Array.isArray(x)) return { kind: 'array', children: x.map((c, i) => go(c, `${path}[${i}]`)) };
    if (isPlainObject(x)) {
      const keys = Object.keys(x);
      return { kind: 'object', keys, children: keys.map((k) => go(x[k], path ? `${path}.${k}` : k)) };
    }
    if (allowStatic && (x === null || x === undefined || ['number', 'string', 'boolean'].includes(typeof x)))
      return { kind: 'static', value: x };
    const what = x === null ? 'null' : typeof x === 'object' ? (x.constructor?.name ?? 'object') : typeof x;
    throw new PytreeError(`${where}: leaf ${path ? `'${path}'` : '(root)'} is a ${what}, not a Tensor`);
  };
  const def = go(tree, '');
  return { leaves, def };
}

export function unflatten<T = Tensor>(def: TreeDef, leaves: readonly T[]): Pytree<T> {
  let i = 0;
  const go = (d: TreeDef): any => {
    switch (d.kind) {
      case 'leaf':
        return leaves[i++];
      case 'static':
        return d.value;
      case 'array':
        return d.children.map(go);
      case 'object': {
        const o: Record<string, unknown> = {};
        d.keys.forEach((k, j) => {
          o[k] = go(d.children[j]);
        });
        return o;
      }
    }
  };
  return go(def);
}

export function treeKey(def: TreeDef): string {
  switch (def.kind) {
    case 'leaf':
      return '*';
    case 'static':
      return `=${keyOf(def.value)}`;
    case 'array':
      return `[${def.children.map(treeKey).join(',')}]`;
    case 'object':
      return `{${def.keys.map((k, i) => `${JSON.stringify(k)}:${treeKey(def.children[i])}`).join(',')}}`;
  }
}

/** Applies f to every tensor leaf. */
export function treeMap<T>(tree: unknown, f: (t: Tensor, i: number) => T, where = 'treeMap'): Pytree<T> {
  const { leaves, def } = flatten(tree, where);
  return unflatten(
    def,
    leaves.map((t, i) => f(t, i)),
  );
}
