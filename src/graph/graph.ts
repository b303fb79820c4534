/**
 * The graph IR the compiler and backends work on: a snapshot of the lazy tensor DAG behind some
 * outputs, in topological order. Realized tensors enter as `const` leaves (their buffers are the
 * plan's runtime data, so two graphs that differ only in those values share a plan); symbolic
 * arguments of trace/jit enter as `input` leaves.
 */
import { ConcretizationError } from '../errors';
import type { Attrs, DType, Tensor } from '../tensor';

let nextNodeId = 1;

export class GNode {
  readonly id = nextNodeId++;
  constructor(
    readonly op: string,
    readonly inputs: readonly GNode[],
    readonly attrs: Attrs,
    readonly shape: readonly number[],
    readonly dtype: DType,
    /**
     * For `const` nodes: the realized tensor whose buffer holds the value. Rebound before each
     * run of a cached graph (see runtime/realize.ts), so it is the one mutable field.
     */
    public source: Tensor | null = null,
  ) {}
}

export class Graph {
  constructor(
    /** Topological order: every node after its inputs. */
    readonly nodes: readonly GNode[],
    readonly outputs: readonly GNode[],
  ) {}

  get size(): number {
    return this.nodes.length;
  }

  /** Edges as [from, to] node ids: from's result feeds to. One per use, so a node used twice shows twice. */
  get edges(): [number, number][] {
    return this.nodes.flatMap((n) => n.inputs.map((i) => [i.id, n.id] as [number, number]));
  }

  get inputs(): GNode[] {
    return this.nodes
      .filter((n) => n.op === 'input')
      .sort((a, b) => (a.attrs.index as number) - (b.attrs.index as number));
  }

  /** Numbering local to this graph (%0, %1, ...) so printouts are stable. */
  private names(): Map<GNode, string> {
    return new Map(this.nodes.map((n, i) => [n, `%${i}`]));
  }

  toString(): string {
    const name = this.names();
    const lines = this.nodes.map(
      (n) => `${name.get(n)} = ${describe(n, name)} : ${n.dtype}[${n.shape.join(', ')}]`,
    );
    lines.push(`return ${this.outputs.map((n) => name.get(n)).join(', ')}`);
    return lines.join('\n');
  }

  /** Graphviz source; `dot -Tsvg` renders it. */
  toDot(): string {
    const name = this.names();
    const out = ['digraph adjoint {', '  rankdir=LR;', '  node [shape=box, fontname="monospace"];'];
    for (const n of this.nodes) {
      const label = `${name.get(n)} ${describe(n, name, false)}\\n${n.dtype}[${n.shape.join(',')}]`;
      const style = this.outputs.includes(n)
        ? ', style=bold'
        : n.inputs.length === 0
          ? ', style=rounded'
          : '';
      out.push(`  n${n.id} [label="${label.replace(/"/g, '\\"')}"${style}];`);
    }
    for (const [a, b] of this.edges) out.push(`  n${a} -> n${b};`);
    out.push('}');
    return out.join('\n');
  }
}

function describe(n: GNode, name: Map<GNode, string>, withArgs = true): string {
  const attrs = Object.entries(n.attrs)
    .filter(([k]) => k !== 'shape' || n.op === 'reshape' || n.op === 'broadcastTo')
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`);
  if (n.op === 'const') attrs.push(`#${n.source?.id}`);
  const args = withArgs ? n.inputs.map((i) => name.get(i)) : [];
  return `${n.op}(${[...args, ...attrs].join(', ')})`;
}

/**
 * Post-order walk of the lazy DAG behind `outputs`, each tensor once; realized tensors are
 * leaves. Iterative, so deep chains are fine. buildGraph and the plan-cache key share it, so
 * both see constants in the same order.
 */
export function postOrder(outputs: readonly Tensor[], where: string, visit: (t: Tensor) => void): void {
  const seen = new Set<Tensor>();
  const stack: [Tensor, boolean][] = [];
  for (let k = outputs.length - 1; k >= 0; k--) stack.push([outputs[k], false]);
  while (stack.length) {
    const [t, expanded] = stack.pop()!;
    if (expanded) {
      visit(t);
      continue;
    }
    if (seen.has(t)) continue;
    seen.add(t);
    t.checkAlive(where);
    stack.push([t, true]);
    if (t.storage === null)
      for (let i = t.inputs.length - 1; i >= 0; i--)
        if (!seen.has(t.inputs[i])) stack.push([t.inputs[i], false]);
  }
}

/**
 * Snapshots the DAG behind `outputs` into a Graph. Realized tensors become leaves; shared
 * subexpressions stay shared (each tensor maps to one node). Iterative, so deep chains are fine.
 */
export function buildGraph(outputs: readonly Tensor[], where = 'realize'): Graph {
  const map = new Map<Tensor, GNode>();
  const order: GNode[] = [];
  postOrder(outputs, where, (t) => {
    let n: GNode;
    if (t.storage !== null) n = new GNode('const', [], {}, t.shape, t.dtype, t);
    else if (t.op === 'const')
      throw new ConcretizationError(`${where}: tensor #${t.id} has neither a value nor a history`);
    else
      n = new GNode(
        t.op,
        t.inputs.map((i) => map.get(i)!),
        t.attrs,
        t.shape,
        t.dtype,
      );
    map.set(t, n);
    order.push(n);
  });
  return new Graph(
    order,
    outputs.map((t) => map.get(t)!),
  );
}
