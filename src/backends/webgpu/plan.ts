/// <reference types="@webgpu/types" />
/**
 * Compiles an optimized graph into a WebGPU plan, once per graph structure: steps in dependency
 * order, each a list of compute dispatches (pipelines, buffer slots, an offset into the plan's
 * one uniform buffer) or a buffer copy, plus which slots each step allocates and frees.
 *
 * - Fusion: groups from findFusionGroups (the pass the wasm plan uses) run as one generated
 *   elementwise program each; every other node runs its builder from kernels.ts. A group whose
 *   storage bindings exceed maxStorageBuffersPerShaderStage runs as single ops.
 * - Values are slots; a reshape shares its input's slot (no copy). A fill gets a buffer (and a
 *   fill step just before its first reader) only when a non-elementwise kernel or the caller
 *   asks for it: elementwise programs read fills as uniform constants.
 * - Memory: intermediates are allocated from the pool at their first step and freed after their
 *   last (liveness in step order), so later steps of the same run reuse them; outputs are fresh
 *   buffers handed to the returned storages; constants and inputs are bound per run.
 * - Every value must fit one storage binding: larger ones are refused here with a typed error.
 */
import { findFusionGroups } from '../../compiler/passes/fuse';
import type { GNode, Graph } from '../../graph/graph';
import { keyOf } from '../../key';
import { fmt, sizeOf } from '../../shape';
import type { DType } from '../../tensor';
import { canElementwise, type ElementwiseProgram, programBindings, programDispatch } from './elementwise';
import { WebGPULimitError, WebGPUUnsupportedError } from './errors';
import type { GpuDispatch, GpuKernelBuilder, GpuKernelContext, GpuLimits, GpuTuning } from './kernel';

export interface PlanEnv {
  readonly device: GPUDevice;
  readonly limits: GpuLimits;
  readonly tuning: GpuTuning;
  readonly kernels: Readonly<Record<string, GpuKernelBuilder>>;
  /** The cached pipeline for a WGSL module and entry point. */
  pipeline(wgsl: string, entry: string): GPUComputePipeline;
}

export type SlotKind = 'const' | 'input' | 'output' | 'value' | 'temp';

export interface Slot {
  kind: SlotKind;
  readonly bytes: number;
}

export interface PlanDispatch {
  readonly pipeline: GPUComputePipeline;
  readonly layout: GPUBindGroupLayout;
  readonly slots: readonly number[];
  /** Byte offset and size in the plan's uniform buffer; size 0 = none. */
  readonly uniformOffset: number;
  readonly uniformBytes: number;
  readonly workgroups: readonly [number, number, number];
  /** The last bind group made, reused while the same buffers are bound. */
  last: { buffers: GPUBuffer[]; group: GPUBindGroup } | null;
}

export interface PlanStep {
  /** The op(s) it runs, for messages. */
  readonly label: string;
  readonly dispatches: PlanDispatch[];
  readonly copy: { from: number; to: number; bytes: number } | null;
  /** Slots to take from the pool before the step, and to give back after it. */
  readonly alloc: number[];
  readonly free: number[];
}

export interface GpuPlan {
  readonly slots: readonly Slot[];
  readonly steps: readonly PlanStep[];
  /** Const nodes by position in graph.nodes (equal in every graph of this structure). */
  readonly consts: readonly { slot: number; pos: number }[];
  readonly inputs: readonly { slot: number; index: number; dtype: DType }[];
  readonly outputs: readonly { slot: number; size: number; dtype: DType }[];
  readonly uniformBuffer: GPUBuffer | null;
  readonly uniformBytes: number;
  /** Rough work (element operations), for the read-back sleep estimate. */
  readonly work: number;
  readonly fusedGroups: number;
  readonly dispatchCount: number;
}

/** Upper bound on members + inputs of one fused group (keeps generated shaders small). */
const MAX_FUSED_SLOTS = 48;

/** A key equal for graphs that can share a plan: ops, dtypes, shapes, attributes, wiring. */
export function planKey(g: Graph): string {
  const index = new Map<GNode, number>();
  let key = '';
  g.nodes.forEach((n, i) => {
    index.set(n, i);
    key += `${n.op}/${n.dtype}/${n.shape.join(',')}/${n.op === 'const' ? '' : keyOf(n.attrs)}/`;
    for (const x of n.inputs) key += `${index.get(x)},`;
    key += ';';
  });
  return `${key}->${g.outputs.map((o) => index.get(o)).join(',')}`;
}

/** Rough element operations of a node. */
function workOf(n: GNode): number {
  if (n.op === 'matmul') {
    const a = n.inputs[0].shape;
    const k = n.attrs.transA ? a[a.length - 2] : a[a.length - 1];
    return (sizeOf(n.shape) * k) / 4;
  }
  let w = sizeOf(n.shape);
  for (const x of n.inputs) w += sizeOf(x.shape);
  return w;
}

interface Unit {
  readonly nodes: readonly GNode[];
  readonly program: ElementwiseProgram | null;
  /** Position in graph order (of its last node), for a stable schedule. */
  readonly pos: number;
}

interface RawStep {
  label: string;
  dispatches: GpuDispatch[];
  copy: { from: number; to: number; bytes: number } | null;
  /** Every slot the step binds or defines (liveness is computed from these). */
  touches: number[];
}

/**
 * Nodes that share their first input's buffer: reshape, and checkpoint's rematBarrier (whose
 * second input, a cotangent, only orders the schedule: see `schedule`).
 */
const aliases = (n: GNode) => n.op === 'reshape' || n.op === 'rematBarrier';

export function buildPlan(g: Graph, env: PlanEnv): GpuPlan {
  const limit = env.limits.maxStorageBufferBindingSize;
  // reshape and checkpoint's barrier share their input's buffer
  const root = (n: GNode): GNode => (aliases(n) ? root(n.inputs[0]) : n);

  // ---- fusion groups; a group past the binding limit runs as single ops
  const groups = findFusionGroups(g, { canFuse: canElementwise, maxSlots: MAX_FUSED_SLOTS }).filter(
    (gr) => programBindings(gr) <= env.limits.maxStorageBuffersPerShaderStage,
  );

  // ---- slots
  const slots: Slot[] = [];
  const slotOf = new Map<GNode, number>();
  const newSlot = (kind: SlotKind, bytes: number, what: string): number => {
    if (bytes > limit)
      throw new WebGPULimitError(
        `webgpu: ${what} takes ${bytes} bytes, more than this device's maxStorageBufferBindingSize ` +
          `(${limit} bytes); run it on another backend or split it`,
      );
    slots.push({ kind, bytes: Math.max(16, bytes) });
    return slots.length - 1;
  };
  const at = (n: GNode): number => {
    const r = root(n);
    let s = slotOf.get(r);
    if (s === undefined) {
      const kind: SlotKind = r.op === 'const' ? 'const' : r.op === 'input' ? 'input' : 'value';
      s = newSlot(kind, sizeOf(r.shape) * 4, `${r.op} of shape ${fmt(r.shape)} (${r.dtype})`);
      slotOf.set(r, s);
    }
    return s;
  };

  // ---- units: fused groups and single nodes, in dependency order
  const units: Unit[] = [];
  const unitOf = new Map<GNode, Unit>();
  const pos = new Map<GNode, number>(g.nodes.map((n, i) => [n, i]));
  for (const gr of groups) {
    const u: Unit = {
      nodes: gr.members,
      program: gr,
      pos: Math.max(...gr.members.map((m) => pos.get(m)!)),
    };
    units.push(u);
    for (const m of gr.members) unitOf.set(m, u);
  }
  const fills: GNode[] = [];
  for (const n of g.nodes) {
    if (unitOf.has(n) || n.op === 'const' || n.op === 'input' || aliases(n)) continue;
    if (n.op === 'fill') {
      fills.push(n);
      continue;
    }
    const u: Unit = { nodes: [n], program: null, pos: pos.get(n)! };
    units.push(u);
    unitOf.set(n, u);
  }
  const order = schedule(units, unitOf, root);

  // ---- steps
  const raw: RawStep[] = [];
  let touched: Set<number>;
  const ctx: GpuKernelContext = {
    at(n) {
      const s = at(n);
      touched.add(s);
      return s;
    },
    temp(bytes) {
      const s = newSlot('temp', bytes, `a scratch buffer of ${bytes} bytes`);
      touched.add(s);
      return s;
    },
    limits: env.limits,
    tuning: env.tuning,
  };
  const build = (u: Unit): GpuDispatch[] => {
    const n = u.nodes[0];
    const d = u.program ? programDispatch(u.program, ctx) : env.kernels[n.op]?.(n, ctx);
    if (!d)
      throw new WebGPUUnsupportedError(
        `webgpu: no kernel for ${u.nodes.map((m) => m.op).join('+')} of shape ${fmt(n.shape)} (${n.dtype}); ` +
          'run it on another backend',
      );
    return d;
  };
  for (const u of order) {
    touched = new Set();
    const dispatches = build(u);
    const produced = (u.program ? u.program.outputs : u.nodes).map(at);
    for (const s of produced) touched.add(s);
    raw.push({
      label: u.nodes.map((m) => m.op).join('+'),
      dispatches,
      copy: null,
      touches: [...touched],
    });
  }

  // ---- outputs: produced values are written in place; others (constants, inputs, a value
  // returned twice) are copied into a buffer of their own
  const outputs: { slot: number; size: number; dtype: DType }[] = [];
  const fillOutputs = new Set<GNode>();
  const claimed = new Set<number>();
  for (const n of g.outputs) {
    const r = root(n);
    const size = sizeOf(n.shape);
    if (r.op === 'fill' && !slotOf.has(r)) fillOutputs.add(r);
    const s = at(r);
    if (slots[s].kind === 'value' && !claimed.has(s)) {
      slots[s].kind = 'output';
      claimed.add(s);
      outputs.push({ slot: s, size, dtype: n.dtype });
    } else {
      const o = newSlot('output', size * 4, `output of shape ${fmt(n.shape)}`);
      outputs.push({ slot: o, size, dtype: n.dtype });
      raw.push({
        label: 'copy',
        dispatches: [],
        copy: { from: s, to: o, bytes: size * 4 },
        touches: [s, o],
      });
    }
  }

  // ---- fills that need a buffer, each just before its first reader
  for (const f of fills) {
    const s = slotOf.get(f);
    if (s === undefined && !fillOutputs.has(f)) continue;
    touched = new Set();
    const dispatches = env.kernels.fill(f, ctx)!;
    const step: RawStep = { label: 'fill', dispatches, copy: null, touches: [...touched, at(f)] };
    const first = raw.findIndex((r) => r.touches.includes(at(f)));
    raw.splice(first < 0 ? raw.length : first, 0, step);
  }

  // ---- liveness: values live from their first step to their last; temps for one step
  const firstUse = new Map<number, number>();
  const lastUse = new Map<number, number>();
  raw.forEach((r, i) => {
    for (const s of r.touches) {
      if (!firstUse.has(s)) firstUse.set(s, i);
      lastUse.set(s, i);
    }
  });
  const alloc: number[][] = raw.map(() => []);
  const free: number[][] = raw.map(() => []);
  for (const [s, i] of firstUse) {
    const kind = slots[s].kind;
    if (kind === 'value' || kind === 'output' || kind === 'temp') alloc[i].push(s);
    if (kind === 'value' || kind === 'temp') free[lastUse.get(s)!].push(s);
  }

  // ---- pipelines and one uniform buffer for the plan
  const align = env.device.limits.minUniformBufferOffsetAlignment;
  let uniformBytes = 0;
  const pending: { offset: number; data: Uint32Array }[] = [];
  let dispatchCount = 0;
  const steps: PlanStep[] = raw.map((r, i) => {
    const dispatches: PlanDispatch[] = [];
    for (const d of r.dispatches) {
      if (d.workgroups.some((w) => w === 0)) continue;
      const pipeline = env.pipeline(d.wgsl, d.entry ?? 'main');
      let uniformOffset = 0;
      let bytes = 0;
      if (d.uniforms) {
        uniformOffset = Math.ceil(uniformBytes / align) * align;
        bytes = Math.max(16, Math.ceil(d.uniforms.byteLength / 16) * 16);
        uniformBytes = uniformOffset + bytes;
        pending.push({ offset: uniformOffset, data: d.uniforms });
      }
      dispatches.push({
        pipeline,
        layout: pipeline.getBindGroupLayout(0),
        slots: d.buffers,
        uniformOffset,
        uniformBytes: bytes,
        workgroups: [d.workgroups[0], d.workgroups[1], d.workgroups[2]],
        last: null,
      });
      dispatchCount++;
    }
    return { label: r.label, dispatches, copy: r.copy, alloc: alloc[i], free: free[i] };
  });
  let uniformBuffer: GPUBuffer | null = null;
  if (uniformBytes > 0) {
    const data = new Uint32Array(uniformBytes / 4);
    for (const p of pending) data.set(p.data, p.offset / 4);
    uniformBuffer = env.device.createBuffer({
      size: uniformBytes,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    env.device.queue.writeBuffer(uniformBuffer, 0, data);
  }

  const consts: { slot: number; pos: number }[] = [];
  const inputs: { slot: number; index: number; dtype: DType }[] = [];
  g.nodes.forEach((n, i) => {
    const s = slotOf.get(n);
    if (s === undefined) return;
    if (n.op === 'const') consts.push({ slot: s, pos: i });
    else if (n.op === 'input') inputs.push({ slot: s, index: n.attrs.index as number, dtype: n.dtype });
  });

  let work = 0;
  for (const n of g.nodes) if (n.op !== 'const' && n.op !== 'input' && !aliases(n)) work += workOf(n);

  return {
    slots,
    steps,
    consts,
    inputs,
    outputs,
    uniformBuffer,
    uniformBytes,
    work,
    fusedGroups: groups.length,
    dispatchCount,
  };
}

/** Units in an order where each follows the units producing its inputs; graph order otherwise. */
function schedule(units: Unit[], unitOf: Map<GNode, Unit>, root: (n: GNode) => GNode): Unit[] {
  const deps = new Map<Unit, Set<Unit>>();
  const users = new Map<Unit, Unit[]>();
  for (const u of units) {
    const d = new Set<Unit>();
    for (const m of u.nodes)
      for (let x of m.inputs) {
        const p = unitOf.get(root(x));
        if (p && p !== u) d.add(p);
        // a checkpoint barrier on the way: also wait for the unit making its cotangent
        for (; aliases(x); x = x.inputs[0]) {
          const q = x.op === 'rematBarrier' ? unitOf.get(root(x.inputs[1])) : undefined;
          if (q && q !== u) d.add(q);
        }
      }
    deps.set(u, d);
    for (const p of d) users.set(p, [...(users.get(p) ?? []), u]);
  }
  const left = new Map<Unit, number>(units.map((u) => [u, deps.get(u)!.size]));
  const ready = units.filter((u) => left.get(u) === 0);
  const out: Unit[] = [];
  while (ready.length) {
    let k = 0;
    for (let i = 1; i < ready.length; i++) if (ready[i].pos < ready[k].pos) k = i;
    const u = ready.splice(k, 1)[0];
    out.push(u);
    for (const v of users.get(u) ?? []) {
      const l = left.get(v)! - 1;
      left.set(v, l);
      if (l === 0) ready.push(v);
    }
  }
  if (out.length !== units.length) throw new Error('adjoint internal error: fusion produced a cycle');
  return out;
}
