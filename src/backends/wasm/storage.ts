import type { DType, HostArray, Storage } from '../../tensor';
import type { Kernels } from './kernels';

/** A tensor's buffer in wasm linear memory. The pointer is stable across memory.grow. */
export class WasmStorage implements Storage {
  readonly device = 'wasm';
  constructor(
    readonly kernels: Kernels,
    private ptr: number,
    readonly size: number,
    readonly dtype: DType,
  ) {}

  get address(): number {
    return this.ptr;
  }

  /** A view of the live memory: copy it before memory can grow. */
  view(): HostArray {
    return this.dtype === 'int32'
      ? this.kernels.i32(this.ptr, this.size)
      : this.kernels.f32(this.ptr, this.size);
  }

  read(): Promise<HostArray> {
    return Promise.resolve(this.view().slice());
  }

  release(): void {
    if (this.ptr < 0) return;
    this.kernels.free(this.ptr);
    this.ptr = -1;
  }
}

/** Bytes for n 32-bit elements, never 0 (so every buffer has an address of its own). */
export function bytesFor(n: number): number {
  return Math.max(16, Math.ceil((n * 4) / 16) * 16);
}
