/// <reference types="@webgpu/types" />
/**
 * GPU buffers reused by size class. Creating a GPUBuffer costs a driver allocation, so buffers
 * freed by a plan (intermediates after their last use, outputs when their tensor is released)
 * go back here and serve later requests of the same class. Classes are 16-byte multiples up to
 * 256 bytes, then four per power of two (at most 25% waste). Idle buffers beyond
 * `maxPooledBytes` are destroyed, oldest first.
 *
 * Reuse is safe without waiting for the GPU: a buffer handed out again is only written by
 * commands submitted (or queue writes issued) after the work that last used it, and the queue
 * runs those in order.
 */

const USAGE_BITS = () => GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

/** Bytes of the class holding `bytes` (at least 16). */
export function sizeClass(bytes: number): number {
  const b = Math.max(16, Math.ceil(bytes));
  if (b <= 256) return Math.ceil(b / 16) * 16;
  const p = 2 ** Math.floor(Math.log2(b));
  const step = p / 4;
  return Math.ceil(b / step) * step;
}

export interface PoolStats {
  /** Bytes of buffers in use (held by storages or by a plan during a run). */
  liveBytes: number;
  liveBuffers: number;
  /** Bytes of idle buffers kept for reuse. */
  pooledBytes: number;
  pooledBuffers: number;
  /** Buffers created since the pool started (reuse keeps this flat in a loop). */
  created: number;
}

export class BufferPool {
  /** Idle buffers by class (last released first out). */
  private readonly idle = new Map<number, GPUBuffer[]>();
  /** Every idle buffer in release order (oldest first), for trimming. */
  private readonly idleOrder = new Set<GPUBuffer>();
  private readonly live = new Set<GPUBuffer>();
  private liveBytes = 0;
  private pooledBytes = 0;
  private created = 0;

  constructor(
    private readonly device: GPUDevice,
    public maxPooledBytes = 256 * 2 ** 20,
  ) {}

  /** A buffer of at least `bytes` bytes (storage, copy source and destination). */
  acquire(bytes: number): GPUBuffer {
    const cls = sizeClass(bytes);
    const list = this.idle.get(cls);
    let buf = list?.pop();
    if (buf) {
      this.idleOrder.delete(buf);
      this.pooledBytes -= buf.size;
    } else {
      buf = this.device.createBuffer({ size: cls, usage: USAGE_BITS() });
      this.created++;
    }
    this.live.add(buf);
    this.liveBytes += buf.size;
    return buf;
  }

  /** Returns a buffer from `acquire` (a second release of the same buffer is ignored). */
  release(buf: GPUBuffer): void {
    if (!this.live.delete(buf)) return;
    this.liveBytes -= buf.size;
    const cls = buf.size;
    let list = this.idle.get(cls);
    if (!list) this.idle.set(cls, (list = []));
    list.push(buf);
    this.idleOrder.add(buf);
    this.pooledBytes += buf.size;
    if (this.pooledBytes > this.maxPooledBytes) this.trim(this.maxPooledBytes);
  }

  /** Destroys idle buffers, oldest first, until at most `keepBytes` stay pooled. */
  trim(keepBytes = 0): void {
    for (const buf of this.idleOrder) {
      if (this.pooledBytes <= keepBytes) break;
      this.idleOrder.delete(buf);
      const list = this.idle.get(buf.size)!;
      list.splice(list.indexOf(buf), 1);
      this.pooledBytes -= buf.size;
      buf.destroy();
    }
  }

  stats(): PoolStats {
    return {
      liveBytes: this.liveBytes,
      liveBuffers: this.live.size,
      pooledBytes: this.pooledBytes,
      pooledBuffers: this.idleOrder.size,
      created: this.created,
    };
  }

  /** Destroys every buffer, live ones included (the device is going away). */
  destroy(): void {
    this.trim(0);
    for (const buf of this.live) buf.destroy();
    this.live.clear();
    this.liveBytes = 0;
  }
}
