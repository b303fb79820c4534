import { referenceConfig } from '../../config';
import { ConcretizationError } from '../../errors';
import type { GNode, Graph } from '../../graph/graph';
import { getOp, type RefValue } from '../../ops/registry';
import { HostStorage } from '../../storage';
import type { DType, HostArray, Storage } from '../../tensor';
import type { Backend } from '../backend';

function toF64(h: HostArray): Float64Array {
  return h instanceof Float64Array ? h : Float64Array.from(h);
}

function store(data: Float64Array, dtype: DType): HostArray {
  if (dtype === 'int32') return Int32Array.from(data);
  return referenceConfig.precision === 'float64' ? data : Float32Array.from(data);
}

/**
 * Evaluates a graph node by node with each op's float64 reference implementation. Results are
 * rounded to float32 after every op (like a real backend) unless the float64 precision mode is
 * on. Slow and simple: it is the oracle the kernels are tested against.
 */
export class ReferenceBackend implements Backend {
  readonly name = 'reference';
  readonly device = 'host';

  upload(data: HostArray): Storage {
    return new HostStorage(data.slice());
  }

  run(graph: Graph, inputs: readonly Storage[]): Storage[] {
    const values = new Map<GNode, RefValue>();
    const uses = new Map<GNode, number>();
    for (const n of graph.nodes) for (const i of n.inputs) uses.set(i, (uses.get(i) ?? 0) + 1);
    const keep = new Set(graph.outputs);
    for (const n of graph.nodes) {
      let data: Float64Array;
      if (n.op === 'const') {
        n.source!.checkAlive('run');
        data = toF64(n.source!.storage!.view()!);
      } else if (n.op === 'input') {
        const s = inputs[n.attrs.index as number];
        if (!s) throw new ConcretizationError(`input ${String(n.attrs.index)} has no value bound`);
        data = toF64(s.view()!);
      } else {
        const args = n.inputs.map((i) => values.get(i)!);
        data = getOp(n.op).reference(args, n.attrs, n);
        // Round like storage would, so every backend sees the same intermediate values.
        data = toF64(store(data, n.dtype));
      }
      values.set(n, { data, shape: n.shape });
      for (const i of n.inputs) {
        const left = uses.get(i)! - 1;
        uses.set(i, left);
        if (left === 0 && !keep.has(i)) values.delete(i);
      }
    }
    return graph.outputs.map((n) => new HostStorage(store(values.get(n)!.data.slice(), n.dtype)));
  }
}
