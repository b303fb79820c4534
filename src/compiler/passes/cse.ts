import type { GNode, Graph } from '../../graph/graph';
import { keyOf } from '../../key';
import { rewrite } from '../rewrite';

/**
 * Common-subexpression elimination: nodes with the same op, attributes and (already merged)
 * inputs become one. Constants merge when they are the same buffer, fills when equal.
 */
export function eliminateCommonSubexpressions(g: Graph): Graph {
  const seen = new Map<string, GNode>();
  const ids = new Map<GNode, number>();
  let next = 0;
  return rewrite(g, (n) => {
    if (n.op === 'input') {
      // Distinct inputs are distinct values: give each an id of its own.
      ids.set(n, next++);
      return n;
    }
    const key =
      n.op === 'const'
        ? `const#${n.source!.id}`
        : `${n.op}|${n.dtype}|${n.shape.join(',')}|${keyOf(n.attrs)}|${n.inputs.map((i) => ids.get(i)).join(',')}`;
    const hit = seen.get(key);
    if (hit) return hit;
    seen.set(key, n);
    ids.set(n, next++);
    return n;
  });
}
