import type { GNode, Graph } from '../graph/graph';
import type { Device, DType, HostArray, Storage } from '../tensor';

/**
 * Runs optimized graphs on one device. `inputs` are the buffers bound to the graph's `input`
 * nodes (jit plans); const nodes read their source tensor's storage. Returns one fresh buffer
 * per output, and leaves no buffer behind if it throws. `run` is synchronous: on a GPU the work
 * may still be in flight when it returns (reads wait for it).
 */
export interface Backend {
  readonly name: string;
  /** Where the buffers `run` returns live. */
  readonly device: Device;
  run(graph: Graph, inputs: readonly Storage[]): Storage[];
  /** A new buffer on this device holding a copy of `data`. */
  upload?(data: HostArray, dtype: DType): Storage;
  /** Whether this backend has a kernel for node `n` (placement keeps other nodes elsewhere). Default: all. */
  supports?(n: GNode): boolean;
  stats?(): Record<string, number>;
  /** Whether `s` is one of this backend's own buffers (default: any storage on its device). */
  holds?(s: Storage): boolean;
  /** Releases everything the backend holds (a GPU device, worker pools). */
  dispose?(): void | Promise<void>;
}
