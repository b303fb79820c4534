/** Index arithmetic shared by the float64 reference implementations. Clarity over speed. */
import { broadcastStrides, type Shape, sizeOf, stridesOf } from '../shape';
import type { RefValue } from './registry';

export function mapUnary(x: RefValue, f: (v: number) => number): Float64Array {
  const out = new Float64Array(x.data.length);
  for (let i = 0; i < out.length; i++) out[i] = f(x.data[i]);
  return out;
}

/** Calls visit(outIndex, offsets[]) for every element of outShape with broadcast offsets into each input. */
export function forEachBroadcast(
  outShape: Shape,
  inputs: readonly Shape[],
  visit: (i: number, offsets: readonly number[]) => void,
): void {
  const n = sizeOf(outShape);
  const strides = inputs.map((s) => broadcastStrides(s, outShape));
  const nd = outShape.length;
  const idx = new Array<number>(nd).fill(0);
  const offs = new Array<number>(inputs.length).fill(0);
  for (let i = 0; i < n; i++) {
    visit(i, offs);
    for (let d = nd - 1; d >= 0; d--) {
      idx[d]++;
      for (let k = 0; k < offs.length; k++) offs[k] += strides[k][d];
      if (idx[d] < outShape[d]) break;
      for (let k = 0; k < offs.length; k++) offs[k] -= strides[k][d] * outShape[d];
      idx[d] = 0;
    }
  }
}

export function mapBroadcast(
  inputs: readonly RefValue[],
  outShape: Shape,
  f: (...v: number[]) => number,
): Float64Array {
  const out = new Float64Array(sizeOf(outShape));
  const args = new Array<number>(inputs.length);
  forEachBroadcast(
    outShape,
    inputs.map((x) => x.shape),
    (i, offs) => {
      for (let k = 0; k < inputs.length; k++) args[k] = inputs[k].data[offs[k]];
      out[i] = f(...args);
    },
  );
  return out;
}

/** Splits a shape around a set of reduced axes: visits each kept position with the flat indices reduced over. */
export function reduceAxes(
  x: RefValue,
  axes: readonly number[],
  init: number,
  combine: (acc: number, v: number) => number,
): Float64Array {
  const keptShape = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const out = new Float64Array(sizeOf(keptShape)).fill(init);
  const outStrides = broadcastStrides(keptShape, x.shape);
  forEachFlat(x.shape, outStrides, (i, o) => {
    out[o] = combine(out[o], x.data[i]);
  });
  return out;
}

/** Visits every element of `shape` in row-major order with an offset computed from `strides`. */
export function forEachFlat(
  shape: Shape,
  strides: readonly number[],
  visit: (i: number, off: number) => void,
): void {
  const n = sizeOf(shape);
  const nd = shape.length;
  const idx = new Array<number>(nd).fill(0);
  let off = 0;
  for (let i = 0; i < n; i++) {
    visit(i, off);
    for (let d = nd - 1; d >= 0; d--) {
      idx[d]++;
      off += strides[d];
      if (idx[d] < shape[d]) break;
      off -= strides[d] * shape[d];
      idx[d] = 0;
    }
  }
}

/** Gathers x (of xShape) into outShape where output element i reads x at offset(index) given by `strides`. */
export function stridedCopy(
  x: Float64Array,
  outShape: Shape,
  strides: readonly number[],
  base = 0,
): Float64Array {
  const out = new Float64Array(sizeOf(outShape));
  forEachFlat(outShape, strides, (i, off) => {
    out[i] = x[base + off];
  });
  return out;
}

export { stridesOf };
