/// <reference types="@webgpu/types" />
/**
 * A tensor's value in a GPU buffer. There is no synchronous read (`view()` is null, so
 * `dataSync()` names `await tensor.data()`); `read()` copies the buffer into a staging buffer in
 * its own submit and maps it. Dawn in Node busy-polls the main thread while a GPU promise is
 * pending, taking CPU from a software adapter's threads, so a read first sleeps through most of
 * the time the queued work is expected to take (`owner.settle()`), then awaits the map — raced
 * against device loss, so it never hangs. `release()` gives the buffer back to the pool.
 */
import { DisposedError } from '../../errors';
import type { DType, HostArray, Storage } from '../../tensor';
import type { DeviceHealth } from './device';
import { WebGPUExecutionError } from './errors';
import type { BufferPool } from './pool';

/** What a storage needs from the backend that made it. */
export interface GpuOwner {
  readonly device: GPUDevice;
  readonly pool: BufferPool;
  readonly health: DeviceHealth;
  /** Sleeps (with no GPU promise pending) through most of the expected time of the queued work. */
  settle(): Promise<void>;
}

export class WebGPUStorage implements Storage {
  readonly device = 'webgpu';
  private buf: GPUBuffer | null;

  constructor(
    readonly owner: GpuOwner,
    buffer: GPUBuffer,
    /** Elements. */
    readonly size: number,
    readonly dtype: DType,
    /** Settles when the GPU has validated the work that writes this value; rejects with its error. */
    readonly ready: Promise<void> = Promise.resolve(),
  ) {
    this.buf = buffer;
  }

  /** The buffer; throws once released. */
  get buffer(): GPUBuffer {
    if (!this.buf) throw new DisposedError('webgpu: this buffer was released');
    return this.buf;
  }

  get released(): boolean {
    return this.buf === null;
  }

  /** No synchronous read on a GPU. */
  view(): null {
    return null;
  }

  async read(): Promise<HostArray> {
    const bytes = this.size * 4;
    const make = (b: ArrayBuffer) => (this.dtype === 'int32' ? new Int32Array(b) : new Float32Array(b));
    if (this.size === 0) return make(new ArrayBuffer(0));
    const { device, health } = this.owner;
    health.check('reading a value');
    await this.ready;
    const staging = device.createBuffer({
      size: bytes,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    try {
      device.pushErrorScope('validation');
      const enc = device.createCommandEncoder();
      enc.copyBufferToBuffer(this.buffer, 0, staging, 0, bytes);
      device.queue.submit([enc.finish()]);
      const err = device.popErrorScope().catch(() => null);
      await this.owner.settle();
      try {
        await Promise.race([staging.mapAsync(GPUMapMode.READ), health.whenLost]);
      } catch (e) {
        // A map aborted by a destroyed device may reject before the loss is reported.
        await Promise.race([health.whenLost.catch(() => {}), new Promise((r) => setTimeout(r, 50))]);
        if (health.lost) throw health.error('reading a value');
        throw new WebGPUExecutionError(`webgpu: reading a value failed: ${(e as Error).message}`);
      }
      const e = await err;
      if (e) throw new WebGPUExecutionError(`webgpu: reading a value failed: ${e.message}`);
      return make(staging.getMappedRange(0, bytes).slice(0));
    } finally {
      staging.destroy();
    }
  }

  release(): void {
    if (!this.buf) return;
    this.owner.pool.release(this.buf);
    this.buf = null;
  }
}
