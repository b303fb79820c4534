import { GNode, Graph } from '../graph/graph';

/**
 * Rebuilds a graph in topological order. `fn` sees each node with its inputs already rewritten
 * and returns the node to use instead (itself, a new node, or one of its inputs), which may read
 * other new nodes. Unchanged nodes are kept as they are, so a pass that changes nothing returns
 * an equal graph.
 */
export function rewrite(g: Graph, fn: (n: GNode) => GNode): Graph {
  const map = new Map<GNode, GNode>();
  for (const n of g.nodes) {
    const inputs = n.inputs.map((i) => map.get(i)!);
    const same = inputs.every((x, k) => x === n.inputs[k]);
    const cur = same ? n : new GNode(n.op, inputs, n.attrs, n.shape, n.dtype, n.source);
    map.set(n, fn(cur));
  }
  // Replacements may bring new nodes of their own (e.g. a reshape feeding them): list those too.
  const nodes: GNode[] = [];
  const listed = new Set<GNode>();
  const list = (x: GNode): void => {
    if (listed.has(x)) return;
    listed.add(x);
    for (const i of x.inputs) list(i);
    nodes.push(x);
  };
  for (const n of g.nodes) list(map.get(n)!);
  return new Graph(
    nodes,
    g.outputs.map((n) => map.get(n)!),
  );
}

export function isFill(n: GNode, value?: number): boolean {
  return n.op === 'fill' && (value === undefined || n.attrs.value === value);
}

export function fill(shape: readonly number[], dtype: GNode['dtype'], value: number): GNode {
  return new GNode('fill', [], { shape: [...shape], value, dtype }, shape, dtype);
}
