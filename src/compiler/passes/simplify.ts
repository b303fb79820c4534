import { GNode, type Graph } from '../../graph/graph';
import { shapeEq } from '../../shape';
import { isFill, rewrite } from '../rewrite';

/** The operand x of `x op c` if the op with fill c is an identity and leaves x's shape and dtype. */
function identityOperand(n: GNode): GNode | null {
  const [a, b] = n.inputs;
  const keeps = (x: GNode) => shapeEq(x.shape, n.shape) && x.dtype === n.dtype;
  switch (n.op) {
    case 'add':
      if (isFill(b, 0) && keeps(a)) return a;
      if (isFill(a, 0) && keeps(b)) return b;
      return null;
    case 'sub':
      return isFill(b, 0) && keeps(a) ? a : null;
    case 'mul':
      if (isFill(b, 1) && keeps(a)) return a;
      if (isFill(a, 1) && keeps(b)) return b;
      return null;
    case 'div':
      return isFill(b, 1) && keeps(a) ? a : null;
    default:
      return null;
  }
}

/**
 * Algebraic simplification: drops no-op nodes (identity, stopGradient, reshapes/broadcasts to the
 * same shape, identity permutations, casts to the same dtype, x+0, x·1, x/1, double negation) and
 * merges chained reshapes. Value-preserving except that x+0 keeps a -0 that IEEE addition would
 * turn into +0 (as XLA's simplifier does); x·0 is never folded (NaN and ∞ would change).
 */
export function simplify(g: Graph): Graph {
  return rewrite(g, (n) => {
    const [x] = n.inputs;
    switch (n.op) {
      case 'identity':
      case 'stopGradient':
        return x;
      case 'reshape':
      case 'broadcastTo':
        if (shapeEq(x.shape, n.shape)) return x;
        if (n.op === 'reshape' && x.op === 'reshape')
          return new GNode('reshape', x.inputs, n.attrs, n.shape, n.dtype);
        return n;
      case 'transpose':
        return (n.attrs.perm as number[]).every((p, i) => p === i) ? x : n;
      case 'cast':
        return x.dtype === n.dtype ? x : n;
      case 'neg':
        return x.op === 'neg' ? x.inputs[0] : n;
      default:
        return identityOperand(n) ?? n;
    }
  });
}
