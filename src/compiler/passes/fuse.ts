import type { GNode, Graph } from '../../graph/graph';
import { getOp } from '../../ops/registry';
import { shapeEq } from '../../shape';

/** A set of elementwise nodes of one shape run as one tile-by-tile kernel. */
export interface FusionGroup {
  /** Members in topological order. */
  readonly members: GNode[];
  /** Values read from outside the group (fills excepted: they become immediates). */
  readonly inputs: GNode[];
  /** Members whose values are needed outside the group. */
  readonly outputs: GNode[];
}

export interface FusionOptions {
  /** Whether the backend's fused kernel can evaluate this node. */
  canFuse(n: GNode): boolean;
  /** Upper bound on members + inputs of one group (the kernel's slot count). */
  maxSlots: number;
}

/**
 * Elementwise fusion: partitions fusable nodes of equal shape into groups, so a chain such as
 * relu(a·b + c) or a gradient's elementwise tail runs as one pass over memory. A node joins the
 * group of one of its inputs unless that would create a cycle (another input of the node that
 * must run after the group), so groups can always be scheduled as single steps. Groups of a
 * single node are left out: the plain kernels are faster for them.
 */
export function findFusionGroups(g: Graph, opts: FusionOptions): FusionGroup[] {
  const groupOf = new Map<GNode, number>();
  const groups: GNode[][] = [];
  const slots: number[] = [];

  // Whether x must run after group t once groups run as single steps: a search over the
  // step graph, where a group's inputs are all its members' inputs.
  const dependsOn = (x: GNode, t: number): boolean => {
    const seen = new Set<GNode>();
    const stack = [x];
    while (stack.length) {
      const y = stack.pop()!;
      if (seen.has(y)) continue;
      seen.add(y);
      const gy = groupOf.get(y);
      if (gy === t) return true;
      if (gy === undefined) stack.push(...y.inputs);
      else for (const m of groups[gy]) stack.push(...m.inputs);
    }
    return false;
  };

  for (const n of g.nodes) {
    if (getOp(n.op).kind !== 'elementwise' || n.op === 'fill' || !opts.canFuse(n)) continue;
    let joined = -1;
    for (const i of n.inputs) {
      const gi = groupOf.get(i);
      if (gi === undefined || joined >= 0 || !shapeEq(i.shape, n.shape)) continue;
      if (slots[gi] + n.inputs.length + 1 > opts.maxSlots) continue;
      if (!n.inputs.some((x) => groupOf.get(x) !== gi && dependsOn(x, gi))) joined = gi;
    }
    if (joined < 0) {
      joined = groups.length;
      groups.push([]);
      slots.push(0);
    }
    groups[joined].push(n);
    groupOf.set(n, joined);
    slots[joined] += n.inputs.length + 1;
  }

  const used = new Map<GNode, GNode[]>();
  for (const n of g.nodes) for (const i of n.inputs) used.set(i, [...(used.get(i) ?? []), n]);
  const outputs = new Set(g.outputs);
  const result: FusionGroup[] = [];
  groups.forEach((members, gi) => {
    if (members.length < 2) return;
    const inside = new Set(members);
    const inputs = [
      ...new Set(members.flatMap((m) => m.inputs.filter((x) => !inside.has(x) && x.op !== 'fill'))),
    ];
    const outs = members.filter(
      (m) => outputs.has(m) || (used.get(m) ?? []).some((u) => groupOf.get(u) !== gi),
    );
    result.push({ members, inputs, outputs: outs });
  });
  return result;
}
