/** The WebAssembly backend: caches one plan per graph structure and runs it on the kernels. */
import { AdjointError } from '../../errors';
import type { GNode, Graph } from '../../graph/graph';
import { sizeOf } from '../../shape';
import { HostStorage } from '../../storage';
import type { Storage, Tensor } from '../../tensor';
import type { Backend } from '../backend';
import type { Kernels } from './kernels';
import { WasmOutOfMemoryError } from './memory';
import { buildPlan, type Plan } from './plan';
import { bytesFor, WasmStorage } from './storage';

/** Wasm memory ran out; the tensors that existed before are intact. */
export class OutOfMemoryError extends AdjointError {
  override name = 'OutOfMemoryError';
}

const MAX_PLANS = 128;
/**
 * Results this small (losses, metrics, step counts) are handed back as host arrays: the JS
 * garbage collector reclaims them promptly, where wasm buffers wait for finalizers. They are
 * uploaded to a temporary buffer for each run that reads them.
 */
const HOST_MAX_ELEMENTS = 16;

/** A string that is equal for graphs that can share a plan: same ops, attrs, shapes, wiring. */
export function structureKey(g: Graph): string {
  const index = new Map<GNode, number>();
  const parts: string[] = [];
  g.nodes.forEach((n, i) => {
    index.set(n, i);
    const attrs = n.op === 'const' ? '' : JSON.stringify(n.attrs);
    parts.push(
      `${n.op}/${n.dtype}/${n.shape.join(',')}/${attrs}/${n.inputs.map((x) => index.get(x)).join(',')}`,
    );
  });
  parts.push(`->${g.outputs.map((o) => index.get(o)).join(',')}`);
  return parts.join(';');
}

function oom<T>(what: string, body: () => T): T {
  try {
    return body();
  } catch (e) {
    if (e instanceof WasmOutOfMemoryError) throw new OutOfMemoryError(`${what}: ${e.message}`);
    throw e;
  }
}

export class WasmBackend implements Backend {
  readonly name = 'wasm';
  private readonly plans = new Map<string, Plan>();
  private readonly byGraph = new WeakMap<Graph, { key: string; plan: Plan }>();
  planBuilds = 0;

  constructor(readonly kernels: Kernels) {}

  private planFor(g: Graph): Plan {
    const hit = this.byGraph.get(g);
    if (hit && this.plans.has(hit.key)) return hit.plan;
    const key = structureKey(g);
    let plan = this.plans.get(key);
    if (plan) {
      // Refresh LRU position.
      this.plans.delete(key);
      this.plans.set(key, plan);
    } else {
      plan = oom('compiling a plan', () => buildPlan(g, this.kernels));
      this.planBuilds++;
      this.plans.set(key, plan);
      if (this.plans.size > MAX_PLANS) {
        const [oldKey, old] = this.plans.entries().next().value as [string, Plan];
        this.plans.delete(oldKey);
        for (const p of old.owned) this.kernels.free(p);
      }
    }
    this.byGraph.set(g, { key, plan });
    return plan;
  }

  /** The tensor's buffer in wasm memory, uploading a host-side constant (once, unless it is small). */
  private resident(t: Tensor, temporaries: WasmStorage[]): number {
    const s = t.storage!;
    if (s instanceof WasmStorage && s.kernels === this.kernels) return s.address;
    const ws = this.upload(s, t.size, t.dtype);
    if (t.size <= HOST_MAX_ELEMENTS) temporaries.push(ws);
    else t.setStorage(ws);
    return ws.address;
  }

  private upload(s: Storage, size: number, dtype: Tensor['dtype']): WasmStorage {
    const host = s.toHost();
    const ptr = oom('uploading a constant', () => this.kernels.alloc(bytesFor(size)));
    if (dtype === 'int32') this.kernels.i32(ptr, size).set(host);
    else this.kernels.f32(ptr, size).set(host);
    return new WasmStorage(this.kernels, ptr, size, dtype);
  }

  run(g: Graph, inputs: readonly Storage[]): Storage[] {
    const plan = this.planFor(g);
    const p = plan.table;
    const temporaries: WasmStorage[] = [];
    const outs: WasmStorage[] = [];
    try {
      plan.constPositions.forEach((pos, i) => {
        p[plan.constSlots[i]] = this.resident(g.nodes[pos].source!, temporaries);
      });
      plan.inputSlots.forEach((slot, i) => {
        const s = inputs[i];
        if (s instanceof WasmStorage && s.kernels === this.kernels) p[slot] = s.address;
        else {
          const node = g.inputs[i];
          const up = this.upload(s ?? new HostStorage(new Float32Array(0)), sizeOf(node.shape), node.dtype);
          temporaries.push(up);
          p[slot] = up.address;
        }
      });
      for (const o of plan.outputs) {
        const ptr = oom('allocating an output', () => this.kernels.alloc(bytesFor(o.size)));
        const ws = new WasmStorage(this.kernels, ptr, o.size, o.dtype);
        outs.push(ws);
        p[o.slot] = ptr;
      }
      for (const step of plan.steps) step(p);
      return outs.map((o) => {
        if (o.size > HOST_MAX_ELEMENTS) return o;
        const host = new HostStorage(o.toHost().slice());
        o.release();
        return host;
      });
    } catch (e) {
      for (const o of outs) o.release();
      throw e;
    } finally {
      for (const t of temporaries) t.release();
    }
  }

  stats(): Record<string, number> {
    const s = this.kernels.allocator.stats();
    return {
      wasmBytes: s.wasmBytes,
      liveBuffers: s.liveBuffers,
      liveBytes: s.liveBytes,
      plans: this.plans.size,
    };
  }
}
