import { GNode, type Graph } from '../../graph/graph';
import { shapeEq, sizeOf } from '../../shape';

/** Outputs from this many elements on make a matmul over a contracted dimension of 1 an outer product. */
const OUTER_PRODUCT_MIN = 256;

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
 * A matmul whose contracted dimension is 1 is an outer product: a broadcasting multiply of a
 * column by a row, which the elementwise kernels run at memory speed (and fuse) where the packed
 * matmul would pack panels for single products (about twice as fast here from a few thousand
 * outputs on). Weight gradients of one example (xᵀ·g of one row each, and their batch under
 * vmap) are exactly this. Tiny products stay matmuls. The reshapes only move size-1 axes.
 */
function outerProduct(n: GNode): GNode | null {
  const [a, b] = n.inputs;
  const ta = n.attrs.transA as boolean;
  const tb = n.attrs.transB as boolean;
  const k = ta ? a.shape[a.shape.length - 2] : a.shape[a.shape.length - 1];
  if (k !== 1 || sizeOf(n.shape) < OUTER_PRODUCT_MIN) return null;
  const m = ta ? a.shape[a.shape.length - 1] : a.shape[a.shape.length - 2];
  const nn = tb ? b.shape[b.shape.length - 2] : b.shape[b.shape.length - 1];
  const col = [...a.shape.slice(0, -2), m, 1];
  const row = [...b.shape.slice(0, -2), 1, nn];
  const reshape = (x: GNode, shape: number[]) =>
    shapeEq(x.shape, shape) ? x : new GNode('reshape', [x], { shape }, shape, x.dtype);
  return new GNode('mul', [reshape(a, col), reshape(b, row)], {}, n.shape, n.dtype);
}

/** Whether a permutation swaps the last two axes and keeps the others. */
const swapsLastTwo = (perm: readonly number[]) => {
  const r = perm.length;
  return (
    r >= 2 && perm[r - 1] === r - 2 && perm[r - 2] === r - 1 && perm.slice(0, -2).every((p, i) => p === i)
  );
};

/**
 * A matmul operand that is a transpose of its last two axes becomes the transpose flag: the
 * kernels read either layout, so the strided copy disappears (attention's q·kᵀ, gradients' aᵀ·g).
 */
function transposeIntoMatmul(n: GNode): GNode | null {
  const flip = n.inputs.map((x) => x.op === 'transpose' && swapsLastTwo(x.attrs.perm as number[]));
  if (!flip[0] && !flip[1]) return null;
  const [a, b] = n.inputs.map((x, i) => (flip[i] ? x.inputs[0] : x));
  const attrs = {
    transA: (n.attrs.transA as boolean) !== flip[0],
    transB: (n.attrs.transB as boolean) !== flip[1],
  };
  return new GNode('matmul', [a, b], attrs, n.shape, n.dtype);
}

/**
 * Algebraic simplification: drops no-op nodes (identity, stopGradient, custom-rule call wrappers, reshapes/broadcasts to the
 * same shape, identity permutations, casts to the same dtype, x+0, x·1, x/1, double negation),
 * merges chained reshapes and chained transposes, folds last-two-axes transposes into matmul's
 * transpose flags and turns matmuls over a contracted dimension of 1 into outer products. Value-preserving except that x+0 keeps a -0 that IEEE addition would
 * turn into +0 (as XLA's simplifier does); x·0 is never folded (NaN and ∞ would change).
 */
export function simplify(g: Graph): Graph {
  return rewrite(g, (n) => {
    const [x] = n.inputs;
    switch (n.op) {
      case 'identity':
      case 'stopGradient':
        return x;
      // a custom-rule call is its output's value; its rule mattered only to the transforms
      case 'customCall':
        return n.inputs[n.inputs.length - 1];
      case 'reshape':
      case 'broadcastTo':
        if (shapeEq(x.shape, n.shape)) return x;
        if (n.op === 'reshape' && x.op === 'reshape')
          return new GNode('reshape', x.inputs, n.attrs, n.shape, n.dtype);
        return n;
      case 'transpose': {
        const perm = n.attrs.perm as number[];
        if (perm.every((p, i) => p === i)) return x;
        // a transpose of a transpose is one transpose (or none)
        if (x.op !== 'transpose') return n;
        const inner = x.attrs.perm as number[];
        const composed = perm.map((p) => inner[p]);
        if (composed.every((p, i) => p === i)) return x.inputs[0];
        return new GNode('transpose', x.inputs, { perm: composed }, n.shape, n.dtype);
      }
      case 'cast':
        return x.dtype === n.dtype ? x : n;
      case 'neg':
        return x.op === 'neg' ? x.inputs[0] : n;
      case 'matmul':
        return outerProduct(n) ?? transposeIntoMatmul(n) ?? n;
      default:
        return identityOperand(n) ?? n;
    }
  });
}
