import type { Graph } from '../graph/graph';
import type { Storage, Tensor } from '../tensor';

/**
 * Runs optimized graphs. `inputs` are the buffers bound to the graph's `input` nodes (jit plans);
 * const nodes read their source tensor's storage. Returns one fresh buffer per output, and
 * leaves no buffer behind if it throws.
 */
export interface Backend {
  readonly name: string;
  run(graph: Graph, inputs: readonly Storage[]): Storage[];
  stats?(): Record<string, number>;
  /** Optionally moves a realized tensor's value into backend memory ahead of repeated use. */
  adopt?(t: Tensor): void;
}
