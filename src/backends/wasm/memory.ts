/**
 * Allocator over an imported WebAssembly.Memory.
 *
 * Bookkeeping lives in JS (no headers inside linear memory, so a kernel overrun can
 * never corrupt the allocator). Blocks are 16-byte aligned. Free blocks are kept sorted
 * by address, coalesced with their neighbours on free, and chosen best-fit; the region
 * above `top` is the untouched wilderness, grown with `memory.grow` up to `maxBytes`.
 */

const ALIGN = 16;
const PAGE = 65536;

export class WasmOutOfMemoryError extends Error {
  readonly requestedBytes: number;
  readonly limitBytes: number;
  constructor(requested: number, limit: number, inUse: number) {
    super(
      `adjoint: WebAssembly memory exhausted: could not allocate ${requested} bytes ` +
        `(${inUse} bytes in use, limit ${limit} bytes)`,
    );
    this.name = 'WasmOutOfMemoryError';
    this.requestedBytes = requested;
    this.limitBytes = limit;
  }
}

export interface AllocatorStats {
  /** Current size of linear memory in bytes. */
  wasmBytes: number;
  liveBuffers: number;
  liveBytes: number;
  /** Bytes held in the free list (reusable without growing). */
  freeBytes: number;
  /** The most bytes live at once since the last resetPeak() (a high-water mark of liveBytes). */
  peakBytes: number;
}

export interface AllocatorOptions {
  /** First usable byte (the module's heap base); rounded up to 16. */
  base: number;
  /** Upper bound on linear memory size; defaults to the memory's maximum or 4 GiB. */
  maxBytes?: number;
}

function alignUp(x: number, a: number): number {
  return Math.ceil(x / a) * a;
}

export class WasmAllocator {
  readonly memory: WebAssembly.Memory;
  readonly base: number;
  readonly maxBytes: number;
  private top: number;
  // free blocks sorted by address
  private freeStart: number[] = [];
  private freeSize: number[] = [];
  private readonly live = new Map<number, number>();
  private liveBytes = 0;
  private peakBytes = 0;
  private buf: ArrayBuffer | SharedArrayBuffer;
  private f32view: Float32Array;
  private i32view: Int32Array;
  private u8view: Uint8Array;
  /**
   * Called before memory grows for an allocation of `bytes` (`memoryBytes`: its size now): the
   * runtime may free buffers of values it can move elsewhere (its residency policy). Returns
   * whether it freed anything.
   */
  onPressure: ((bytes: number, memoryBytes: number) => boolean) | null = null;
  private relieving = false;

  constructor(memory: WebAssembly.Memory, opts: AllocatorOptions) {
    this.memory = memory;
    this.base = alignUp(Math.max(opts.base, ALIGN), 64);
    this.top = this.base;
    this.maxBytes = Math.min(opts.maxBytes ?? 4 * 1024 * 1024 * 1024, 65536 * PAGE);
    this.buf = memory.buffer;
    this.f32view = new Float32Array(this.buf);
    this.i32view = new Int32Array(this.buf);
    this.u8view = new Uint8Array(this.buf);
  }

  /** Allocates `bytes` (>= 0) and returns a 16-byte aligned pointer. Throws WasmOutOfMemoryError. */
  alloc(bytes: number): number {
    if (!(bytes >= 0) || !Number.isFinite(bytes))
      throw new RangeError(`adjoint: invalid allocation size ${bytes}`);
    const size = alignUp(Math.max(bytes, 1), ALIGN);
    let best = this.bestFit(size);
    if (best < 0 && this.onPressure && !this.relieving && !this.fitsWithoutGrowing(size)) {
      this.relieving = true;
      try {
        if (this.onPressure(size, this.memory.buffer.byteLength)) best = this.bestFit(size);
      } finally {
        this.relieving = false;
      }
    }
    let ptr: number;
    if (best >= 0) {
      ptr = this.freeStart[best]!;
      const bestSize = this.freeSize[best]!;
      if (bestSize === size) {
        this.freeStart.splice(best, 1);
        this.freeSize.splice(best, 1);
      } else {
        this.freeStart[best] = ptr + size;
        this.freeSize[best] = bestSize - size;
      }
    } else {
      // extend from the top; a free block ending at top is absorbed first
      let start = this.top;
      const n = this.freeStart.length;
      let absorb = false;
      if (n > 0 && this.freeStart[n - 1]! + this.freeSize[n - 1]! === this.top) {
        start = this.freeStart[n - 1]!;
        absorb = true;
      }
      const end = start + size;
      this.ensure(end, bytes);
      if (absorb) {
        this.freeStart.pop();
        this.freeSize.pop();
      }
      ptr = start;
      this.top = end;
    }
    this.live.set(ptr, size);
    this.liveBytes += size;
    if (this.liveBytes > this.peakBytes) this.peakBytes = this.liveBytes;
    return ptr;
  }

  /** Index of the smallest free block of at least `size` bytes, or -1. */
  private bestFit(size: number): number {
    let best = -1;
    let bestSize = Infinity;
    const fs = this.freeSize;
    for (let i = 0; i < fs.length; i++) {
      const s = fs[i]!;
      if (s >= size && s < bestSize) {
        best = i;
        bestSize = s;
        if (s === size) break;
      }
    }
    return best;
  }

  /** Whether extending from the top fits in memory as it is (no grow). */
  private fitsWithoutGrowing(size: number): boolean {
    const n = this.freeStart.length;
    const start =
      n > 0 && this.freeStart[n - 1]! + this.freeSize[n - 1]! === this.top
        ? this.freeStart[n - 1]!
        : this.top;
    return start + size <= this.memory.buffer.byteLength;
  }

  /** Releases a pointer returned by alloc. Throws on unknown pointers (double free). */
  free(ptr: number): void {
    const size = this.live.get(ptr);
    if (size === undefined) throw new Error(`adjoint: free of unknown pointer ${ptr}`);
    this.live.delete(ptr);
    this.liveBytes -= size;
    if (ptr + size === this.top) {
      this.top = ptr;
      // merge a free block now adjacent to the top
      const n = this.freeStart.length;
      if (n > 0 && this.freeStart[n - 1]! + this.freeSize[n - 1]! === this.top) {
        this.top = this.freeStart[n - 1]!;
        this.freeStart.pop();
        this.freeSize.pop();
      }
      return;
    }
    // insert sorted by address and coalesce
    const fsStart = this.freeStart;
    let lo = 0;
    let hi = fsStart.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (fsStart[mid]! < ptr) lo = mid + 1;
      else hi = mid;
    }
    let start = ptr;
    let sz = size;
    let idx = lo;
    const prevEnd = idx > 0 ? fsStart[idx - 1]! + this.freeSize[idx - 1]! : -1;
    if (prevEnd === start) {
      idx--;
      start = fsStart[idx]!;
      sz += this.freeSize[idx]!;
      fsStart.splice(idx, 1);
      this.freeSize.splice(idx, 1);
    }
    if (idx < fsStart.length && fsStart[idx] === start + sz) {
      sz += this.freeSize[idx]!;
      fsStart.splice(idx, 1);
      this.freeSize.splice(idx, 1);
    }
    fsStart.splice(idx, 0, start);
    this.freeSize.splice(idx, 0, sz);
  }

  /** Size in bytes of a live allocation (rounded to 16), or undefined. */
  sizeOf(ptr: number): number | undefined {
    return this.live.get(ptr);
  }

  stats(): AllocatorStats {
    let freeBytes = 0;
    for (const s of this.freeSize) freeBytes += s;
    return {
      wasmBytes: this.memory.buffer.byteLength,
      liveBuffers: this.live.size,
      liveBytes: this.liveBytes,
      freeBytes,
      peakBytes: this.peakBytes,
    };
  }

  /** Starts a new high-water mark from the bytes live now (see peakBytes). */
  resetPeak(): void {
    this.peakBytes = this.liveBytes;
  }

  /** Float32Array view of n floats at ptr (re-created after memory growth). */
  f32(ptr: number, n: number): Float32Array {
    this.refresh();
    return this.f32view.subarray(ptr >>> 2, (ptr >>> 2) + n);
  }

  i32(ptr: number, n: number): Int32Array {
    this.refresh();
    return this.i32view.subarray(ptr >>> 2, (ptr >>> 2) + n);
  }

  u8(ptr: number, n: number): Uint8Array {
    this.refresh();
    return this.u8view.subarray(ptr, ptr + n);
  }

  /** Whole-memory views, valid until the next allocation that grows memory. */
  views(): { f32: Float32Array; i32: Int32Array; u8: Uint8Array } {
    this.refresh();
    return { f32: this.f32view, i32: this.i32view, u8: this.u8view };
  }

  private refresh(): void {
    const b = this.memory.buffer;
    if (b !== this.buf || b.byteLength !== this.u8view.byteLength) {
      this.buf = b;
      this.f32view = new Float32Array(b);
      this.i32view = new Int32Array(b);
      this.u8view = new Uint8Array(b);
    }
  }

  /** Grows memory so that [0, end) is addressable, or throws leaving all state unchanged. */
  private ensure(end: number, requested: number): void {
    const cur = this.memory.buffer.byteLength;
    if (end <= cur) return;
    if (end > this.maxBytes) throw new WasmOutOfMemoryError(requested, this.maxBytes, this.liveBytes);
    const needPages = Math.ceil((end - cur) / PAGE);
    const maxPages = Math.floor((this.maxBytes - cur) / PAGE);
    // grow geometrically (25%) to amortise, but never past the limit
    const want = Math.min(maxPages, Math.max(needPages, Math.ceil(cur / PAGE / 4)));
    try {
      this.memory.grow(want);
    } catch {
      try {
        this.memory.grow(needPages);
      } catch {
        throw new WasmOutOfMemoryError(requested, Math.min(this.maxBytes, cur), this.liveBytes);
      }
    }
  }
}
