import { type GNode, Graph } from '../../graph/graph';

/** Dead-code removal: keeps only the nodes the outputs depend on, in topological order. */
export function eliminateDeadCode(g: Graph): Graph {
  const live = new Set<GNode>();
  const stack = [...g.outputs];
  while (stack.length) {
    const n = stack.pop()!;
    if (live.has(n)) continue;
    live.add(n);
    stack.push(...n.inputs);
  }
  // g.nodes may list rewritten-away nodes after their replacements; re-sort topologically.
  const order: GNode[] = [];
  const seen = new Set<GNode>();
  const visit = (root: GNode) => {
    const st: [GNode, boolean][] = [[root, false]];
    while (st.length) {
      const [n, done] = st.pop()!;
      if (done) {
        order.push(n);
        continue;
      }
      if (seen.has(n)) continue;
      seen.add(n);
      st.push([n, true]);
      for (let i = n.inputs.length - 1; i >= 0; i--)
        if (!seen.has(n.inputs[i])) st.push([n.inputs[i], false]);
    }
  };
  for (const n of g.nodes) if (live.has(n)) visit(n);
  for (const n of g.outputs) visit(n);
  return new Graph(order, g.outputs);
}
