/**
 * A placed graph lowered to what the runtime executes: segments (maximal groups of nodes on one
 * device, each an ordinary graph its backend compiles and caches) and transfers between them.
 * Values are numbered: leaves first (constants and jit inputs, bound by the residency policy at
 * run time), then every computed value. Execution is synchronous unless a value must come back
 * from a device without a synchronous read (a GPU), which only the async path can do.
 */
import { ConcretizationError } from '../errors';
import { GNode, Graph } from '../graph/graph';
import { sizeOf } from '../shape';
import type { Device, Storage, Tensor } from '../tensor';
import { backendOn, devices } from './devices';
import type { Placed } from './placement';
import { bind, needsRead, pin, settle, unpin } from './residency';

export interface Segment {
  readonly device: Device;
  /** Its leaves are `input` nodes: input k reads value `reads[k]`. */
  readonly graph: Graph;
  readonly reads: readonly number[];
  /** The value each graph output defines. */
  readonly writes: readonly number[];
}

export type Step =
  | { readonly kind: 'run'; readonly segment: Segment }
  | {
      readonly kind: 'transfer';
      readonly from: number;
      readonly to: number;
      readonly device: Device;
      readonly dtype: Tensor['dtype'];
    };

export interface Program {
  /** The leaf nodes, in value order 0..leaves.length-1. */
  readonly leaves: readonly GNode[];
  readonly steps: readonly Step[];
  readonly outputs: readonly number[];
  readonly outputSizes: readonly number[];
  /** Number of values (leaves, then computed ones). */
  readonly valueCount: number;
  /** Per step: the computed values it reads last (freed after it), program outputs excepted. */
  readonly releases: readonly (readonly number[])[];
  /** The devices it runs on, in step order, without repeats (for stats and tests). */
  readonly devices: readonly Device[];
}

const isLeaf = (n: GNode) => n.op === 'const' || n.op === 'input';

export function lower(placed: Placed): Program {
  const { graph: g, device } = placed;
  const deviceOf = new Map<GNode, Device | null>(g.nodes.map((n, i) => [n, device[i]]));
  const id = new Map<GNode, number>();
  const leaves = g.nodes.filter(isLeaf);
  leaves.forEach((n, i) => {
    id.set(n, i);
  });
  let next = leaves.length;

  // Order: a topological order that stays on one device as long as it can.
  const pending = new Map<GNode, number>();
  const users = new Map<GNode, GNode[]>();
  const ready: GNode[] = [];
  for (const n of g.nodes) {
    if (isLeaf(n)) continue;
    const deps = n.inputs.filter((x) => !isLeaf(x));
    pending.set(n, deps.length);
    for (const x of deps) users.set(x, [...(users.get(x) ?? []), n]);
    if (deps.length === 0) ready.push(n);
  }
  const order: GNode[] = [];
  let current: Device | null = null;
  while (ready.length > 0) {
    let k = ready.findIndex((n) => n.op !== 'transfer' && deviceOf.get(n) === current);
    if (k < 0) k = ready.findIndex((n) => n.op === 'transfer');
    if (k < 0) k = 0;
    const n = ready.splice(k, 1)[0];
    if (n.op !== 'transfer') current = deviceOf.get(n)!;
    order.push(n);
    for (const u of users.get(n) ?? []) {
      const left = pending.get(u)! - 1;
      pending.set(u, left);
      if (left === 0) ready.push(u);
    }
  }
  for (const n of order) id.set(n, next++);

  // Outputs that a segment must produce afresh: leaves, and a value returned twice.
  const outputs: number[] = [];
  const passthrough: { value: number; out: number; device: Device; node: GNode }[] = [];
  const handedOut = new Set<number>();
  for (const o of g.outputs) {
    const v = id.get(o)!;
    if (isLeaf(o) || handedOut.has(v)) {
      const out = next++;
      passthrough.push({ value: v, out, device: deviceOf.get(o) ?? devices().primary!.device, node: o });
      outputs.push(out);
    } else outputs.push(v);
    handedOut.add(v);
  }

  const steps: Step[] = [];
  const usedLater = (n: GNode, from: number) => order.slice(from).some((u) => u.inputs.includes(n));
  const outputSet = new Set(g.outputs);
  for (let i = 0; i < order.length; ) {
    const n = order[i];
    if (n.op === 'transfer') {
      // placement puts transfers on computed values only: leaves are bound where consumed
      steps.push({
        kind: 'transfer',
        from: id.get(n.inputs[0])!,
        to: id.get(n)!,
        device: deviceOf.get(n)!,
        dtype: n.dtype,
      });
      i++;
      continue;
    }
    const d = deviceOf.get(n)!;
    let j = i;
    while (j < order.length && order[j].op !== 'transfer' && deviceOf.get(order[j]) === d) j++;
    const members = order.slice(i, j);
    steps.push({
      kind: 'run',
      segment: segmentOf(
        members,
        d,
        id,
        (m) => outputSet.has(m) || usedLater(m, j) || passthrough.some((p) => p.node === m),
      ),
    });
    i = j;
  }
  for (const p of passthrough) {
    const { shape, dtype } = p.node;
    const input = new GNode('input', [], { index: 0, shape: [...shape], dtype }, shape, dtype);
    const graph = new Graph([input], [input]); // the backend copies an input returned as an output
    steps.push({ kind: 'run', segment: { device: p.device, graph, reads: [p.value], writes: [p.out] } });
  }

  const lastUse = new Array<number>(next).fill(-1);
  steps.forEach((s, k) => {
    const reads = s.kind === 'run' ? s.segment.reads : [s.from];
    for (const v of reads) lastUse[v] = k;
  });
  const releases: number[][] = steps.map(() => []);
  const kept = new Set(outputs);
  for (let v = leaves.length; v < next; v++)
    if (lastUse[v] >= 0 && !kept.has(v)) releases[lastUse[v]].push(v);
  const used: Device[] = [];
  for (const s of steps) {
    const d = s.kind === 'run' ? s.segment.device : s.device;
    if (!used.includes(d)) used.push(d);
  }
  return {
    leaves,
    steps,
    outputs,
    outputSizes: g.outputs.map((o) => sizeOf(o.shape)),
    valueCount: next,
    releases,
    devices: used,
  };
}

/** A segment's graph: its members, with every value from outside read through an input node. */
function segmentOf(
  members: GNode[],
  device: Device,
  id: Map<GNode, number>,
  exported: (n: GNode) => boolean,
): Segment {
  const inside = new Set(members);
  const map = new Map<GNode, GNode>();
  const reads: number[] = [];
  const nodes: GNode[] = [];
  const inputFor = (x: GNode): GNode => {
    let m = map.get(x);
    if (m) return m;
    m = new GNode(
      'input',
      [],
      { index: reads.length, shape: [...x.shape], dtype: x.dtype },
      x.shape,
      x.dtype,
    );
    reads.push(id.get(x)!);
    map.set(x, m);
    nodes.push(m);
    return m;
  };
  for (const n of members) {
    const inputs = n.inputs.map((x) => (inside.has(x) ? map.get(x)! : inputFor(x)));
    const m = new GNode(n.op, inputs, n.attrs, n.shape, n.dtype);
    map.set(n, m);
    nodes.push(m);
  }
  const outs = members.filter(exported);
  return {
    device,
    graph: new Graph(
      nodes,
      outs.map((n) => map.get(n)!),
    ),
    reads,
    writes: outs.map((n) => id.get(n)!),
  };
}

/** Values in flight: leaves borrowed from tensors, the rest owned until handed out or released. */
class Run {
  readonly values: (Storage | null)[];
  readonly temps: Storage[] = [];
  constructor(
    readonly p: Program,
    readonly leaves: readonly Tensor[],
  ) {
    this.values = new Array(p.valueCount).fill(null);
    // e.g. a tensor a jitted function closed over, disposed since
    for (const t of leaves) t.checkAlive('run');
    pin(leaves);
  }

  leafOn(v: number, device: Device, host?: Float32Array | Int32Array): Storage {
    return bind(this.leaves[v], device, this.temps, host);
  }

  /** Whether reading value v on `device` needs an async read first. */
  needsRead(v: number, device: Device): boolean {
    if (v < this.leaves.length) return needsRead(this.leaves[v], device);
    return this.values[v]!.device !== device && this.values[v]!.view() === null;
  }

  exec(k: number, hosts: Map<number, Float32Array | Int32Array>): void {
    const s = this.p.steps[k];
    if (s.kind === 'transfer') {
      const from = this.values[s.from]!;
      const data = from.view() ?? hosts.get(s.from)!;
      this.values[s.to] = backendOn(s.device).upload!(data, s.dtype);
    } else {
      const seg = s.segment;
      const args = seg.reads.map((v) =>
        v < this.leaves.length ? this.leafOn(v, seg.device, hosts.get(v)) : this.values[v]!,
      );
      const outs = backendOn(seg.device).run(seg.graph, args);
      seg.writes.forEach((v, i) => {
        this.values[v] = outs[i];
      });
    }
    this.releaseAfter(k);
  }

  private releaseAfter(k: number): void {
    for (const v of this.p.releases[k]) {
      this.values[v]?.release();
      this.values[v] = null;
    }
    if (k === this.p.steps.length - 1) this.releaseTemps();
  }

  /** Ends the run: its leaves may move again. */
  finish(): void {
    unpin(this.leaves);
  }

  releaseTemps(): void {
    for (const t of this.temps) t.release();
    this.temps.length = 0;
  }

  results(): Storage[] {
    return this.p.outputs.map((v, i) => {
      const s = this.values[v]!;
      this.values[v] = null;
      return settle(s, this.p.outputSizes[i]);
    });
  }

  abandon(): void {
    for (let v = this.leaves.length; v < this.values.length; v++) this.values[v]?.release();
    this.values.fill(null);
    this.releaseTemps();
  }

  /** Values step k reads from devices that have no synchronous read. */
  asyncReads(k: number): number[] {
    const s = this.p.steps[k];
    const device = s.kind === 'run' ? s.segment.device : s.device;
    const reads = s.kind === 'run' ? s.segment.reads : [s.from];
    return reads.filter((v) => this.needsRead(v, device));
  }
}

/** Runs a program synchronously; a value that must come back from a GPU is an error naming the async call. */
export function runSync(p: Program, leaves: readonly Tensor[]): Storage[] {
  const run = new Run(p, leaves);
  try {
    const none = new Map<number, Float32Array | Int32Array>();
    for (let k = 0; k < p.steps.length; k++) {
      if (run.asyncReads(k).length > 0)
        throw new ConcretizationError(
          "this computation reads a value back from the GPU, which only the async path can do: use 'await tensor.data()' (or await a jit call's results)",
        );
      run.exec(k, none);
    }
    return run.results();
  } catch (e) {
    run.abandon();
    throw e;
  } finally {
    run.finish();
  }
}

/** Runs a program, reading values back from the GPU where a later step needs them elsewhere. */
export async function runAsync(p: Program, leaves: readonly Tensor[]): Promise<Storage[]> {
  const run = new Run(p, leaves);
  try {
    for (let k = 0; k < p.steps.length; k++) {
      const hosts = new Map<number, Float32Array | Int32Array>();
      for (const v of run.asyncReads(k)) {
        const s = v < leaves.length ? leaves[v].storage! : run.values[v]!;
        hosts.set(v, (await s.read()) as Float32Array | Int32Array);
      }
      run.exec(k, hosts);
    }
    return run.results();
  } catch (e) {
    run.abandon();
    throw e;
  } finally {
    run.finish();
  }
}
