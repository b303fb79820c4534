/// <reference types="@webgpu/types" />
/**
 * The WebGPU backend: runs optimized graphs on a GPUDevice. A plan is built once per graph
 * structure (plan.ts) and reused; pipelines are cached by WGSL source and entry point, so plans
 * of other shapes share them. A run binds constants and inputs, encodes every dispatch of the
 * graph into ONE command encoder and submits it once; intermediates come from a buffer pool and
 * go back to it after their last use, outputs are fresh pooled buffers owned by the returned
 * storages. `run` returns while the GPU may still be working: reads wait for it.
 *
 * GPU errors of a run (validation, out of memory, internal) are captured with error scopes and
 * surface as a WebGPUExecutionError when a result is read; a lost device makes every later call
 * fail with WebGPUDeviceLostError instead of hanging.
 */
import { ConcretizationError } from '../../errors';
import type { GNode, Graph } from '../../graph/graph';
import { sizeOf } from '../../shape';
import type { DType, HostArray, Storage } from '../../tensor';
import type { Backend } from '../backend';
import { type AcquiredDevice, type AdapterReport, acquireDevice, type DeviceHealth } from './device';
import {
  WebGPUDeviceLostError,
  WebGPUExecutionError,
  WebGPULimitError,
  WebGPUOutOfMemoryError,
} from './errors';
import type { GpuKernelContext, GpuLimits, GpuTuning } from './kernel';
import { gpuKernels } from './kernels';
import { calibrateMatmul } from './matmul';
import { buildPlan, type GpuPlan, planKey } from './plan';
import { BufferPool } from './pool';
import { type GpuOwner, WebGPUStorage } from './storage';

export interface WebGPUBackendOptions {
  /** A GPU (navigator.gpu; in Node `create([])` from npm 'webgpu') or a device. Default: navigator.gpu. */
  gpu?: GPU | GPUDevice;
  /**
   * Kernel shape choices. 'calibrate' (default) times the matmul shapes once per adapter (cached
   * for the process); 'guess' picks by adapter type without timing.
   */
  tuning?: GpuTuning | 'calibrate' | 'guess';
  /** Idle pooled bytes kept for reuse (default 256 MiB). */
  maxPooledBytes?: number;
  /**
   * Lowers the limits kernels size themselves by (never above the device's): tests use it to
   * exercise 2D grids and binding refusals without huge tensors.
   */
  limits?: Partial<GpuLimits>;
}

const MAX_PLANS = 128;

/** Pipelines per device, shared by every backend on it (keyed by entry point and WGSL source). */
const pipelineCache = new WeakMap<GPUDevice, Map<string, GPUComputePipeline>>();

/** Calibrated tuning per adapter, for the life of the process. */
const tuningCache = new Map<string, Promise<GpuTuning>>();

function guessTuning(adapter: AdapterReport): GpuTuning {
  return { matmul: adapter.isFallbackAdapter ? 'register' : 'tiled' };
}

async function tuningFor(acq: AcquiredDevice, opt: WebGPUBackendOptions['tuning']): Promise<GpuTuning> {
  if (opt && typeof opt === 'object') return opt;
  if (opt === 'guess') return guessTuning(acq.adapter);
  const a = acq.adapter;
  const key = [a.vendor, a.architecture, a.device, a.description].join('|');
  let t = tuningCache.get(key);
  if (!t) {
    t = calibrateMatmul(acq.device).then(
      (matmul) => ({ matmul }),
      () => guessTuning(a),
    );
    tuningCache.set(key, t);
  }
  return t;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class WebGPUBackend implements Backend {
  readonly name = 'webgpu';
  readonly device = 'webgpu';
  readonly gpu: GPUDevice;
  readonly adapter: AdapterReport;
  readonly limits: GpuLimits;
  readonly tuning: GpuTuning;
  readonly pool: BufferPool;
  readonly health: DeviceHealth;
  private readonly owned: boolean;
  /** Held while the device is in use (see AcquiredDevice.instance); dropped by dispose() so the process can exit. */
  private instance: GPU | null;
  private readonly plans = new Map<string, GpuPlan>();
  private readonly byGraph = new WeakMap<Graph, { key: string; plan: GpuPlan }>();
  private readonly pipelines: Map<string, GPUComputePipeline>;
  private disposed = false;
  private counters = { runs: 0, planBuilds: 0, uploads: 0, dispatches: 0 };
  /** When the queued work is expected to finish (performance.now() ms), and the rate behind it. */
  private busyUntil = 0;
  private msPerWork: number;
  /** What storages of this backend hold on to (the device itself is `gpu`; `device` names where values live). */
  private readonly owner: GpuOwner;

  private constructor(acq: AcquiredDevice, tuning: GpuTuning, opts: WebGPUBackendOptions) {
    this.gpu = acq.device;
    this.adapter = acq.adapter;
    const lower = opts.limits ?? {};
    this.limits = Object.fromEntries(
      Object.entries(acq.limits).map(([k, v]) => [k, Math.min(v, lower[k as keyof GpuLimits] ?? v)]),
    ) as unknown as GpuLimits;
    let pipelines = pipelineCache.get(acq.device);
    if (!pipelines) pipelineCache.set(acq.device, (pipelines = new Map()));
    this.pipelines = pipelines;
    this.health = acq.health;
    this.owned = acq.owned;
    this.instance = acq.instance;
    this.tuning = tuning;
    this.pool = new BufferPool(acq.device, opts.maxPooledBytes);
    // Element operations per ms, a starting guess refined by each read (see settle()).
    this.msPerWork = acq.adapter.isFallbackAdapter ? 1 / 2e5 : 1 / 2e7;
    this.owner = { device: this.gpu, pool: this.pool, health: this.health, settle: () => this.settle() };
  }

  /** Acquires a device (see device.ts) and builds the backend. Throws WebGPUUnavailableError when there is no adapter. */
  static async create(opts: WebGPUBackendOptions = {}): Promise<WebGPUBackend> {
    const acq = await acquireDevice(opts.gpu);
    try {
      return new WebGPUBackend(acq, await tuningFor(acq, opts.tuning), opts);
    } catch (e) {
      if (acq.owned) acq.device.destroy();
      throw e;
    }
  }

  /** Whether the backend can still run work (not disposed, device not lost). */
  get alive(): boolean {
    return !this.disposed && !this.health.lost;
  }

  private usable(what: string): void {
    if (this.disposed) throw new WebGPUDeviceLostError(`webgpu: ${what}: the backend was disposed`);
    this.health.check(what);
  }

  // ---------------------------------------------------------------- plans and pipelines

  private pipeline(wgsl: string, entry: string): GPUComputePipeline {
    const key = `${entry}\n${wgsl}`;
    let p = this.pipelines.get(key);
    if (!p) {
      const module = this.gpu.createShaderModule({ code: wgsl });
      p = this.gpu.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: entry } });
      this.pipelines.set(key, p);
    }
    return p;
  }

  private planFor(g: Graph): { key: string; plan: GpuPlan } {
    const hit = this.byGraph.get(g);
    if (hit && this.plans.get(hit.key) === hit.plan) return hit;
    const key = planKey(g);
    let plan = this.plans.get(key);
    if (plan) {
      this.plans.delete(key); // refresh LRU position
      this.plans.set(key, plan);
    } else {
      plan = buildPlan(g, {
        device: this.gpu,
        limits: this.limits,
        tuning: this.tuning,
        kernels: gpuKernels,
        pipeline: (w, e) => this.pipeline(w, e),
      });
      this.counters.planBuilds++;
      this.plans.set(key, plan);
      if (this.plans.size > MAX_PLANS) {
        const [oldKey, old] = this.plans.entries().next().value as [string, GpuPlan];
        this.plans.delete(oldKey);
        old.uniformBuffer?.destroy();
      }
    }
    const entry = { key, plan };
    this.byGraph.set(g, entry);
    return entry;
  }

  private evict(key: string, plan: GpuPlan): void {
    if (this.plans.get(key) !== plan) return;
    this.plans.delete(key);
    plan.uniformBuffer?.destroy();
  }

  // ---------------------------------------------------------------- data in and out

  upload(data: HostArray, dtype: DType): WebGPUStorage {
    this.usable('upload');
    const arr =
      dtype === 'int32'
        ? data instanceof Int32Array
          ? data
          : Int32Array.from(data)
        : data instanceof Float32Array
          ? data
          : Float32Array.from(data);
    const bytes = arr.length * 4;
    if (bytes > this.limits.maxStorageBufferBindingSize)
      throw new WebGPULimitError(
        `webgpu: a value of ${arr.length} elements (${bytes} bytes) exceeds this device's ` +
          `maxStorageBufferBindingSize (${this.limits.maxStorageBufferBindingSize} bytes)`,
      );
    const buf = this.pool.acquire(bytes);
    // A view of shared wasm memory (a worker pool's) is copied out first: Dawn's writeBuffer
    // takes no SharedArrayBuffer
    const src = arr.buffer instanceof ArrayBuffer ? arr : arr.slice();
    if (bytes > 0) this.gpu.queue.writeBuffer(buf, 0, src.buffer, src.byteOffset, bytes);
    this.counters.uploads++;
    return new WebGPUStorage(this.owner, buf, arr.length, dtype);
  }

  /**
   * The GPU buffer holding a storage's value for one run: the storage's own buffer when it lives
   * on this device, else a temporary upload of its host view, pushed to `temps` for the caller
   * to release after the submit. (The runtime's residency layer is to take this over.)
   */
  bindForeign(s: Storage, dtype: DType, temps: Storage[]): GPUBuffer {
    if (s instanceof WebGPUStorage && s.owner.device === this.gpu) return s.buffer;
    const v = s.view();
    if (v === null)
      throw new ConcretizationError(
        `webgpu: a value on ${s.device} has no synchronous read, so it cannot be bound here; read it first with 'await tensor.data()'`,
      );
    const up = this.upload(v, dtype);
    temps.push(up);
    return up.buffer;
  }

  /** Expected time of the queued work, refined by what reads observe. */
  private noteSubmitted(work: number): void {
    const now = performance.now();
    this.busyUntil = Math.max(now, this.busyUntil) + work * this.msPerWork;
  }

  /**
   * Sleeps through most of the queued work's expected time, so Dawn's polling (while a map is
   * pending) does not compete with a software adapter's threads. The estimate adapts: a map
   * that still waits long after the sleep raises it, one that is ready at once lowers it.
   */
  async settle(): Promise<void> {
    const left = this.busyUntil - performance.now();
    if (left <= 4) return;
    await sleep(left * 0.8);
    const t = performance.now();
    await Promise.race([this.gpu.queue.onSubmittedWorkDone(), this.health.whenLost]);
    const waited = performance.now() - t;
    if (waited > 2) this.msPerWork = Math.min(this.msPerWork * 1.25, 1e-2);
    else if (waited < 0.5) this.msPerWork = Math.max(this.msPerWork * 0.9, 1e-9);
  }

  // ---------------------------------------------------------------- running

  run(g: Graph, inputs: readonly Storage[]): Storage[] {
    this.usable('run');
    const device = this.gpu;
    device.pushErrorScope('internal');
    device.pushErrorScope('out-of-memory');
    device.pushErrorScope('validation');
    let popped = false;
    const pop = (): Promise<GPUError | null>[] => {
      popped = true;
      return [0, 1, 2].map(() => device.popErrorScope().catch(() => null));
    };
    const held = new Set<GPUBuffer>();
    const temps: Storage[] = [];
    try {
      const { key, plan } = this.planFor(g);
      const bufs: (GPUBuffer | null)[] = new Array(plan.slots.length).fill(null);
      for (const c of plan.consts) {
        const t = g.nodes[c.pos].source;
        if (!t?.storage) throw new ConcretizationError('webgpu: a constant node has no value bound');
        t.checkAlive('run');
        bufs[c.slot] = this.bindForeign(t.storage, t.dtype, temps);
      }
      for (const inp of plan.inputs) {
        const s = inputs[inp.index];
        if (!s) throw new ConcretizationError(`webgpu: input ${inp.index} has no value bound`);
        bufs[inp.slot] = this.bindForeign(s, inp.dtype, temps);
      }
      const enc = device.createCommandEncoder();
      let pass: GPUComputePassEncoder | null = null;
      for (const step of plan.steps) {
        for (const s of step.alloc) {
          const b = this.pool.acquire(plan.slots[s].bytes);
          held.add(b);
          bufs[s] = b;
        }
        if (step.copy) {
          pass?.end();
          pass = null;
          const { from, to, bytes } = step.copy;
          if (bytes > 0) enc.copyBufferToBuffer(bufs[from]!, 0, bufs[to]!, 0, bytes);
        }
        for (const d of step.dispatches) {
          pass ??= enc.beginComputePass();
          pass.setPipeline(d.pipeline);
          pass.setBindGroup(0, this.bindGroup(d, bufs, plan));
          pass.dispatchWorkgroups(d.workgroups[0], d.workgroups[1], d.workgroups[2]);
        }
        for (const s of step.free) {
          const b = bufs[s]!;
          held.delete(b);
          this.pool.release(b);
        }
      }
      pass?.end();
      device.queue.submit([enc.finish()]);
      this.noteSubmitted(plan.work);
      this.counters.runs++;
      this.counters.dispatches += plan.dispatchCount;
      // scopes pop in reverse: validation, out-of-memory, internal
      const ready = Promise.all(pop()).then(([validation, oom, internal]) => {
        if (oom) {
          // what the pool holds unused goes back, so smaller work can still fit
          this.pool.trim();
          throw new WebGPUOutOfMemoryError(
            `webgpu: out of GPU memory in a run (${this.pool.stats().liveBytes} bytes in use by adjoint): ${oom.message}; dispose tensors you no longer need or use smaller batches`,
          );
        }
        const e = validation ?? internal;
        if (e) {
          this.evict(key, plan);
          throw new WebGPUExecutionError(`webgpu: the GPU rejected work of a run: ${e.message}`);
        }
      });
      ready.catch(() => {}); // observed by reads; never unhandled on its own
      const owner = this.owner;
      return plan.outputs.map((o) => {
        const b = bufs[o.slot]!;
        held.delete(b);
        return new WebGPUStorage(owner, b, o.size, o.dtype, ready);
      });
    } catch (e) {
      for (const b of held) this.pool.release(b);
      throw e;
    } finally {
      if (!popped) pop();
      for (const t of temps) t.release();
    }
  }

  private bindGroup(
    d: GpuPlan['steps'][number]['dispatches'][number],
    bufs: (GPUBuffer | null)[],
    plan: GpuPlan,
  ) {
    const buffers = d.slots.map((s) => bufs[s]!);
    const last = d.last;
    if (last?.buffers.every((b, i) => b === buffers[i])) return last.group;
    const entries: GPUBindGroupEntry[] = buffers.map((buffer, binding) => ({
      binding,
      resource: { buffer },
    }));
    if (d.uniformBytes > 0)
      entries.push({
        binding: buffers.length,
        resource: { buffer: plan.uniformBuffer!, offset: d.uniformOffset, size: d.uniformBytes },
      });
    const group = this.gpu.createBindGroup({ layout: d.layout, entries });
    d.last = { buffers, group };
    return group;
  }

  // ---------------------------------------------------------------- placement and bookkeeping

  /** Whether a kernel exists for `n` and accepts it (shapes within one binding and the kernels' rank limits). */
  supports(n: GNode): boolean {
    const b = gpuKernels[n.op];
    if (!b) return false;
    const limit = this.limits.maxStorageBufferBindingSize;
    if (sizeOf(n.shape) * 4 > limit || n.inputs.some((x) => sizeOf(x.shape) * 4 > limit)) return false;
    const probe: GpuKernelContext = { at: () => 0, temp: () => 0, limits: this.limits, tuning: this.tuning };
    try {
      return b(n, probe) !== null;
    } catch {
      return false;
    }
  }

  stats(): Record<string, number> {
    const p = this.pool.stats();
    let uniformBytes = 0;
    for (const plan of this.plans.values()) uniformBytes += plan.uniformBytes;
    return {
      gpuBytes: p.liveBytes,
      liveBuffers: p.liveBuffers,
      pooledBytes: p.pooledBytes,
      pooledBuffers: p.pooledBuffers,
      buffersCreated: p.created,
      uniformBytes,
      plans: this.plans.size,
      planBuilds: this.counters.planBuilds,
      /** Pipelines compiled on this device (shared by every backend on it). */
      pipelines: this.pipelines.size,
      runs: this.counters.runs,
      dispatches: this.counters.dispatches,
      uploads: this.counters.uploads,
      fallbackAdapter: this.adapter.isFallbackAdapter ? 1 : 0,
    };
  }

  /** Releases every buffer and pipeline; destroys the device if this backend created it. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const plan of this.plans.values()) plan.uniformBuffer?.destroy();
    this.plans.clear();
    this.pool.destroy();
    if (this.owned) {
      this.pipelines.clear();
      this.gpu.destroy();
    }
    this.instance = null;
  }
}
