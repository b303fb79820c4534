/**
 * The TensorFlow.js backend: TF.js data ids mapped onto adjoint tensors.
 *
 * Kernels record adjoint ops lazily; nothing runs until a value is read (`read`, `readSync`) or
 * the pending graph reaches its bound (`maxPending` kernels since the last run). Then every
 * pending tensor TF.js still holds is computed in ONE adjoint graph run, so chains of TF.js
 * kernels (an optimizer's update, an activation after a matmul, a loss) fuse like any adjoint
 * graph, and a training loop repeats the same graph structure, whose compiled plan is cached.
 * Tensors TF.js disposes before that run are never computed at all.
 */
import type * as tfc from '@tensorflow/tfjs-core';
import { fromHost } from '../creation';
import { memoryStats, type Tensor, tensor } from '../index';
import { TfjsBackendError } from './errors';

export type TF = typeof tfc;
type TfDType = tfc.DataType;
type DataId = object;

/** What a TF.js data id holds: an adjoint tensor (lazy or realized) and TF.js's reference count. */
interface Entry {
  t: Tensor;
  /** The TF.js dtype: 'bool' values are stored as int32 0/1. */
  dtype: TfDType;
  refCount: number;
}

export interface AdjointBackendOptions {
  /** Kernels recorded since the last run before a run is forced (bounds the pending graph). 0: run every kernel at once. Default 1024. */
  maxPending?: number;
}

/** The class TF.js instantiates, built on the KernelBackend of the tfjs-core instance the app passed in. */
export type AdjointBackend = InstanceType<ReturnType<typeof makeBackendClass>>;

const sameShape = (a: readonly number[], b: readonly number[]) =>
  a.length === b.length && a.every((d, i) => d === b[i]);

export function makeBackendClass(tf: TF) {
  return class AdjointTfjsBackend extends tf.KernelBackend {
    readonly entries = new Map<DataId, Entry>();
    /** Lazy tensors TF.js still holds, computed together by the next run. */
    /** @internal */ pending = new Set<Tensor>();
    /** Tensors TF.js released while lazy graphs may still read them: disposed after the next run. */
    /** @internal */ released: Tensor[] = [];
    /** @internal */ recorded = 0;
    /** Data ids holding each tensor (a kernel may return an input unchanged). */
    /** @internal */ holders = new Map<Tensor, number>();
    /** Tensors a flush is computing (an async one may be awaiting the GPU). */
    /** @internal */ inFlight = new Set<Tensor>();
    readonly maxPending: number;
    /** Graph runs forced by reads or by the bound (for tests and tuning). */
    runs = 0;

    constructor(opts: AdjointBackendOptions = {}) {
      super();
      this.maxPending = opts.maxPending ?? 1024;
    }

    // ---------------------------------------------------------------- storage

    /** @internal */ entry(dataId: DataId, where: string): Entry {
      let e = this.entries.get(dataId);
      if (!e) {
        // A tensor of another backend: TF.js's engine moves it here (it calls move()).
        tf.engine().moveData(this as unknown as tfc.KernelBackend, dataId as tfc.DataId);
        e = this.entries.get(dataId);
        if (!e) throw new TfjsBackendError(`adjoint backend ${where}: unknown data id`);
      }
      return e;
    }

    /** @internal */ fromValues(
      values: tfc.BackendValues,
      shape: number[],
      dtype: TfDType,
      where: string,
    ): Tensor {
      // TF.js hands over arrays it no longer writes: float32 and int32 ones are wrapped, not copied.
      if (dtype === 'float32')
        return values instanceof Float32Array
          ? fromHost(values, shape, 'float32')
          : tensor(values as unknown as Float32Array, { shape, dtype: 'float32' });
      if (dtype === 'int32' || dtype === 'bool')
        return values instanceof Int32Array
          ? fromHost(values, shape, 'int32')
          : tensor(values as unknown as Int32Array, { shape, dtype: 'int32' });
      throw new TfjsBackendError(
        `adjoint backend ${where}: dtype '${dtype}' is not supported (float32, int32 and bool are)`,
      );
    }

    override write(values: tfc.BackendValues, shape: number[], dtype: TfDType): DataId {
      const dataId = {};
      this.hold(dataId, { t: this.fromValues(values, shape, dtype, 'write'), dtype, refCount: 1 });
      return dataId;
    }

    override move(
      dataId: DataId,
      values: tfc.BackendValues,
      shape: number[],
      dtype: TfDType,
      refCount: number,
    ): void {
      this.hold(dataId, { t: this.fromValues(values, shape, dtype, 'move'), dtype, refCount });
    }

    /** @internal */ hold(dataId: DataId, e: Entry): void {
      this.entries.set(dataId, e);
      this.holders.set(e.t, (this.holders.get(e.t) ?? 0) + 1);
    }

    /** @internal */ release(t: Tensor): void {
      const n = (this.holders.get(t) ?? 1) - 1;
      if (n > 0) {
        this.holders.set(t, n);
        return;
      }
      this.holders.delete(t);
      this.pending.delete(t);
      // Only a pending tensor TF.js still holds may read t later (dead lazy ones are never run).
      if (this.pending.size === 0 && !this.inFlight.has(t)) t.dispose();
      else this.released.push(t);
    }

    override refCount(dataId: DataId): number {
      return this.entries.get(dataId)?.refCount ?? 0;
    }

    override incRef(dataId: DataId): void {
      const e = this.entries.get(dataId);
      if (e) e.refCount++;
    }

    decRef(dataId: DataId): void {
      const e = this.entries.get(dataId);
      if (e) e.refCount--;
    }

    override disposeData(dataId: DataId, force = false): boolean {
      const e = this.entries.get(dataId);
      if (!e) return true;
      e.refCount--;
      if (!force && e.refCount > 0) return false;
      this.entries.delete(dataId);
      this.release(e.t);
      return true;
    }

    disposeIntermediateTensorInfo(info: tfc.TensorInfo): void {
      this.disposeData(info.dataId);
    }

    override numDataIds(): number {
      return this.entries.size;
    }

    override readSync(dataId: DataId): tfc.BackendValues {
      const e = this.entry(dataId, 'readSync');
      if (!e.t.isRealized) this.flush();
      return this.toTf(e.t.dataSync(), e.dtype);
    }

    override async read(dataId: DataId): Promise<tfc.BackendValues> {
      const e = this.entry(dataId, 'read');
      if (!e.t.isRealized) await this.flushAsync();
      return this.toTf(await e.t.data(), e.dtype);
    }

    /** @internal */ toTf(v: Float32Array | Int32Array, dtype: TfDType): tfc.BackendValues {
      if (dtype === 'bool') return Uint8Array.from(v);
      if (dtype === 'float32' && !(v instanceof Float32Array)) return Float32Array.from(v);
      return v;
    }

    override memory(): { unreliable: boolean; reasons?: string[] } {
      const s = memoryStats();
      return { unreliable: false, ...s } as { unreliable: boolean };
    }

    override async time(f: () => void): Promise<tfc.BackendTimingInfo> {
      const start = performance.now();
      f();
      this.flush();
      return { kernelMs: performance.now() - start };
    }

    override timerAvailable(): boolean {
      return true;
    }

    override floatPrecision(): 32 {
      return 32;
    }

    override epsilon(): number {
      return 1e-7;
    }

    override dispose(): void {
      for (const e of this.entries.values()) e.t.dispose();
      this.entries.clear();
      this.holders.clear();
      this.pending.clear();
      this.inFlight.clear();
      for (const t of this.released) t.dispose();
      this.released = [];
      this.recorded = 0;
    }

    // ---------------------------------------------------------------- kernels' side

    /** The adjoint tensor behind a kernel input, in the shape TF.js gives it (a reshape may share a data id). */
    input(info: tfc.TensorInfo): Tensor {
      const e = this.entry(info.dataId, 'kernel input');
      return sameShape(e.t.shape, info.shape) ? e.t : e.t.reshape(info.shape);
    }

    /** TF.js dtype of a kernel input. */
    dtypeOf(info: tfc.TensorInfo): TfDType {
      return this.entries.get(info.dataId)?.dtype ?? info.dtype;
    }

    /** A kernel's result: a new data id (refCount 1) holding `t`; bool results hold int32 0/1. */
    output(t: Tensor, dtype?: TfDType): tfc.TensorInfo {
      const d: TfDType = dtype ?? (t.dtype === 'int32' ? 'int32' : 'float32');
      const want = d === 'float32' ? 'float32' : 'int32';
      const v = t.dtype === want ? t : t.cast(want);
      const dataId = {};
      this.hold(dataId, { t: v, dtype: d, refCount: 1 });
      if (!v.isRealized) {
        this.pending.add(v);
        if (++this.recorded >= this.maxPending) this.flush();
      }
      return { dataId, shape: [...v.shape], dtype: d };
    }

    /** Computes every pending tensor TF.js still holds, in one graph run (on this thread). */
    flush(): void {
      const job = this.beginFlush();
      if (!job) return;
      try {
        job.root?.dataSync();
      } finally {
        this.endFlush(job);
      }
    }

    /** The same, awaiting the run (a value on the GPU is read with mapAsync). */
    async flushAsync(): Promise<void> {
      const job = this.beginFlush();
      if (!job) return;
      try {
        await job.root?.data();
      } finally {
        this.endFlush(job);
      }
    }

    /** @internal */ beginFlush(): { root: Tensor | null; live: Tensor[]; released: Tensor[] } | null {
      if (this.recorded === 0 && this.pending.size === 0 && this.released.length === 0) return null;
      const live = [...this.pending].filter((t) => !t.isRealized && !t.disposed);
      this.pending.clear();
      this.recorded = 0;
      const released = this.released;
      this.released = [];
      if (live.length === 0) return { root: null, live, released };
      this.runs++;
      // Realizing one tensor computes its pending siblings in the same run: ask for the smallest.
      let root = live[0];
      for (const t of live) if (t.size < root.size) root = t;
      if (live.length > 1 && typeof WeakRef !== 'undefined')
        root.siblings = live.filter((t) => t !== root).map((t) => new WeakRef(t));
      for (const t of live) this.inFlight.add(t);
      return { root, live, released };
    }

    /** @internal */ endFlush(job: { root: Tensor | null; live: Tensor[]; released: Tensor[] }): void {
      if (job.root) job.root.siblings = null;
      for (const t of job.live) this.inFlight.delete(t);
      // Released before the run: whatever could read them has been computed now.
      for (const t of job.released) t.dispose();
    }
  };
}
