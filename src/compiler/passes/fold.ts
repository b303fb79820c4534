import type { GNode, Graph } from '../../graph/graph';
import { getOp } from '../../ops/registry';
import { sizeOf } from '../../shape';
import { fill, isFill, rewrite } from '../rewrite';

const f32 = new Float32Array(1);
function round(v: number, dtype: GNode['dtype']): number {
  if (dtype === 'int32') return v | 0;
  f32[0] = v;
  return f32[0];
}

/**
 * Constant folding over compile-time constants (fills: zeros, ones, scalars written as numbers).
 * An elementwise op of fills is a fill; moving, slicing or broadcasting a fill is a fill; a sum
 * of a fill is a fill. Buffers of realized tensors are runtime data and are not folded, so plans
 * stay reusable across steps whose parameter values change.
 */
export function foldConstants(g: Graph): Graph {
  return rewrite(g, (n) => {
    if (n.inputs.length === 0 || !n.inputs.every((i) => isFill(i))) return n;
    const def = getOp(n.op);
    const vals = n.inputs.map((i) => i.attrs.value as number);
    switch (def.kind) {
      case 'elementwise': {
        const r = def.reference(
          vals.map((v) => ({ data: Float64Array.of(v), shape: [] })),
          n.attrs,
          { shape: [], dtype: n.dtype },
        );
        return fill(n.shape, n.dtype, round(r[0], n.dtype));
      }
      case 'shape':
        if (n.op === 'pad' || n.op === 'concat')
          return vals.every((v) => v === vals[0]) && (n.op === 'concat' || vals[0] === 0)
            ? fill(n.shape, n.dtype, vals[0])
            : n;
        return fill(n.shape, n.dtype, vals[0]);
      case 'reduce':
        if (n.op === 'sum')
          return fill(
            n.shape,
            n.dtype,
            round(vals[0] * (sizeOf(n.inputs[0].shape) / Math.max(1, sizeOf(n.shape))), n.dtype),
          );
        if (n.op === 'max' || n.op === 'min') return fill(n.shape, n.dtype, vals[0]);
        return n;
      default:
        return n;
    }
  });
}
