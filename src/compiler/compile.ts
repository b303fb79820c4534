import type { Graph } from '../graph/graph';
import { eliminateCommonSubexpressions } from './passes/cse';
import { eliminateDeadCode } from './passes/dce';
import { foldConstants } from './passes/fold';
import { simplify } from './passes/simplify';

/** The optimization pipeline, repeated until the graph stops shrinking (a few rounds at most). */
export function optimize(g: Graph): Graph {
  let cur = eliminateDeadCode(g);
  for (let round = 0; round < 4; round++) {
    const before = cur.size;
    cur = eliminateDeadCode(eliminateCommonSubexpressions(foldConstants(simplify(cur))));
    if (cur.size === before) break;
  }
  return cur;
}
