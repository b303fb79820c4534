/**
 * The WebAssembly backend: caches one plan per graph structure and runs it on the kernels,
 * on the main thread alone or, given a worker pool, level by level with the pool sharing out
 * the large kernels (src/scheduler/).
 */

import { AdjointError } from '../../errors';
import type { GNode, Graph } from '../../graph/graph';
import { keyOf } from '../../key';
import { sizeOf } from '../../shape';
import type { DType, HostArray, Storage } from '../../tensor';
import type { Backend } from '../backend';
import type { Kernels } from './kernels';
import { WasmOutOfMemoryError } from './memory';
import type { PtrTable } from './ops';
import { buildPlan, type Plan } from './plan';
import { WorkerError, WorkerFault } from './scheduler/errors';
import type { WorkerPool } from './scheduler/pool';
import { bytesFor, WasmStorage } from './storage';

/** Wasm memory ran out; the tensors that existed before are intact. */
export class OutOfMemoryError extends AdjointError {
  override name = 'OutOfMemoryError';
}

const MAX_PLANS = 128;
/** A string that is equal for graphs that can share a plan: same ops, attrs, shapes, wiring. */
export function structureKey(g: Graph): string {
  const index = new Map<GNode, number>();
  const parts: string[] = [];
  g.nodes.forEach((n, i) => {
    index.set(n, i);
    const attrs = n.op === 'const' ? '' : keyOf(n.attrs);
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

export interface WasmBackendOptions {
  /** Workers sharing the kernels' memory; plans are then built for pool.threads threads. */
  pool?: WorkerPool;
  /**
   * Without `pool`: the threads plans are built for, a pool of that many to come (attachPool);
   * until it serves, runs stay on the calling thread.
   */
  threads?: number;
  /**
   * What a worker failure mid-run does: 'retry' runs the computation again on the main thread
   * (default); 'reject' throws a WorkerError. Either way the pool replaces the worker.
   */
  onWorkerFault?: 'retry' | 'reject';
}

export class WasmBackend implements Backend {
  readonly name = 'wasm';
  readonly device = 'wasm';
  private readonly plans = new Map<string, Plan>();
  private readonly byGraph = new WeakMap<Graph, { key: string; plan: Plan }>();
  private readonly keys = new WeakMap<Plan, string>();
  planBuilds = 0;
  workerFaults = 0;
  pool: WorkerPool | undefined;
  readonly threads: number;
  onWorkerFault: 'retry' | 'reject';

  constructor(
    readonly kernels: Kernels,
    opts: WasmBackendOptions = {},
  ) {
    this.pool = opts.pool;
    this.threads = opts.pool ? opts.pool.threads : (opts.threads ?? 1);
    this.onWorkerFault = opts.onWorkerFault ?? 'retry';
  }

  /** Gives a backend created with `threads` its pool (of as many threads) once the pool exists. */
  attachPool(pool: WorkerPool): void {
    if (this.pool || pool.threads !== this.threads)
      throw new Error(
        `adjoint internal error: a pool of ${pool.threads} threads for a ${this.threads}-thread backend`,
      );
    this.pool = pool;
  }

  private planFor(g: Graph): Plan {
    const hit = this.byGraph.get(g);
    if (hit && this.plans.get(hit.key) === hit.plan) return hit.plan;
    const key = structureKey(g);
    let plan = this.plans.get(key);
    if (plan) {
      // Refresh LRU position.
      this.plans.delete(key);
      this.plans.set(key, plan);
    } else {
      plan = oom('compiling a plan', () => buildPlan(g, this.kernels, { threads: this.threads }));
      this.planBuilds++;
      this.plans.set(key, plan);
      this.keys.set(plan, key);
      if (this.plans.size > MAX_PLANS) {
        const [oldKey, old] = this.plans.entries().next().value as [string, Plan];
        this.plans.delete(oldKey);
        for (const p of old.owned) this.kernels.free(p);
      }
    }
    this.byGraph.set(g, { key, plan });
    return plan;
  }

  /** Whether `s` is a buffer in this backend's memory (an earlier init() had other memory). */
  holds(s: Storage): boolean {
    return s instanceof WasmStorage && s.kernels === this.kernels;
  }

  /** The address of a leaf's value: its own buffer, or a copy for this run (the runtime normally binds leaves already). */
  private bindLeaf(s: Storage, temporaries: WasmStorage[]): number {
    if (this.holds(s)) return (s as WasmStorage).address;
    const copy = this.uploadFrom(s);
    temporaries.push(copy);
    return copy.address;
  }

  upload(data: HostArray, dtype: DType): WasmStorage {
    const size = data.length;
    const ptr = oom('uploading a constant', () => this.kernels.alloc(bytesFor(size)));
    if (dtype === 'int32') this.kernels.i32(ptr, size).set(data);
    else this.kernels.f32(ptr, size).set(data);
    return new WasmStorage(this.kernels, ptr, size, dtype);
  }

  /** A host-readable storage of another device copied in (the caller releases it). */
  private uploadFrom(s: Storage): WasmStorage {
    const v = s.view();
    if (v === null) throw new AdjointError(`wasm: cannot read a value on ${s.device} synchronously`);
    return this.upload(v, v instanceof Int32Array ? 'int32' : 'float32');
  }

  run(g: Graph, inputs: readonly Storage[]): Storage[] {
    const plan = this.planFor(g);
    try {
      return this.attempt(g, inputs, plan, false);
    } catch (e) {
      if (!(e instanceof WorkerFault)) throw e;
      this.workerFaults++;
      if (this.onWorkerFault === 'reject')
        throw new WorkerError(
          `${e.message}; the computation was abandoned (tensors are unchanged)`,
          e.threads,
        );
      // Once, on the main thread, with a fresh plan: the failed one stays quarantined.
      return this.attempt(g, inputs, this.planFor(g), true);
    }
  }

  /**
   * Runs the steps: sequentially, or level by level with the pool. After a worker fault the
   * plan is dropped from the cache and its memory, with this attempt's outputs, is freed only
   * when the failed workers have surely stopped (one that merely looked dead could still write).
   */
  private execute(plan: Plan, p: PtrTable, sequential: boolean, outs: WasmStorage[]): void {
    const pool = this.pool;
    if (sequential || !pool || !plan.levels || pool.serving === 0) {
      for (const step of plan.steps) step(p);
      return;
    }
    try {
      for (const level of plan.levels) {
        if (!level.job) {
          for (const step of level.steps) step(p);
          continue;
        }
        pool.runJob(level.job, p, this.kernels.allocator.views().i32, plan.scratchBase, plan.scratchStride);
      }
    } catch (e) {
      if (e instanceof WorkerFault) this.quarantine(plan, outs, e.settled);
      throw e;
    }
  }

  private quarantine(plan: Plan, outs: WasmStorage[], settled: Promise<void>): void {
    const key = this.keys.get(plan);
    if (key !== undefined && this.plans.get(key) === plan) this.plans.delete(key);
    const held = [...plan.owned, ...outs.map((o) => o.address)];
    outs.length = 0;
    void settled.then(() => {
      for (const ptr of held) this.kernels.free(ptr);
    });
  }

  private attempt(g: Graph, inputs: readonly Storage[], plan: Plan, sequential: boolean): Storage[] {
    const p = plan.table;
    const temporaries: WasmStorage[] = [];
    const outs: WasmStorage[] = [];
    // Sleeping workers take ~0.1 ms to wake: call them now, so that overlaps binding the run.
    if (!sequential && plan.hasJobs && this.pool && this.pool.serving > 0) this.pool.wake();
    try {
      plan.constPositions.forEach((pos, i) => {
        const source = g.nodes[pos].source!;
        source.checkAlive('run'); // e.g. a tensor a jitted function closed over, disposed since
        p[plan.constSlots[i]] = this.bindLeaf(source.storage!, temporaries);
      });
      plan.inputSlots.forEach((slot, i) => {
        const s = inputs[i];
        if (s) p[slot] = this.bindLeaf(s, temporaries);
        else {
          // a jit argument the caller did not pass: zeros (dead-code removal keeps input indices)
          const node = g.inputs.find((n) => n.attrs.index === i)!;
          const up = this.upload(new Float32Array(sizeOf(node.shape)), node.dtype);
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
      this.execute(plan, p, sequential, outs);
      return outs;
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
      threads: this.threads,
      workers: this.pool?.serving ?? 0,
      workerFaults: this.workerFaults,
    };
  }
}
