import { referenceConfig } from './config';
import { ValueError } from './errors';
import { apply } from './ops/registry';
import { checkShape, fmt, sizeOf } from './shape';
import { HostStorage } from './storage';
import { type DType, frozenShape, type HostArray, type NestedArray, Tensor } from './tensor';

export type TensorData = number | NestedArray | Float32Array | Int32Array | Float64Array | readonly number[];

/** Wraps a host array as a realized constant tensor (no copy). */
export function fromHost(data: HostArray, shape: readonly number[], dtype: DType): Tensor {
  const t = new Tensor('const', [], {}, frozenShape(shape), dtype);
  t.setStorage(new HostStorage(data));
  return t;
}

/** Allocates the host array a value of this dtype is stored in (float64 in the reference-precision mode). */
export function hostArray(dtype: DType, n: number): HostArray {
  if (dtype === 'int32') return new Int32Array(n);
  return referenceConfig.precision === 'float64' ? new Float64Array(n) : new Float32Array(n);
}

function inferShape(data: unknown, where: string): number[] {
  const shape: number[] = [];
  let cur: unknown = data;
  while (Array.isArray(cur)) {
    shape.push(cur.length);
    cur = cur[0];
  }
  // Check the nesting is rectangular.
  const check = (x: unknown, d: number): void => {
    if (d === shape.length) {
      if (typeof x !== 'number' && typeof x !== 'boolean')
        throw new ValueError(`${where}: expected a number at depth ${d}, got ${typeof x}`);
      return;
    }
    if (!Array.isArray(x) || x.length !== shape[d])
      throw new ValueError(`${where}: ragged nested array (expected length ${shape[d]} at depth ${d})`);
    for (const y of x) check(y, d + 1);
  };
  check(data, 0);
  return shape;
}

export function tensor(data: TensorData, opts: { shape?: number[]; dtype?: DType } = {}): Tensor {
  const dtype: DType = opts.dtype ?? (data instanceof Int32Array ? 'int32' : 'float32');
  if (dtype !== 'float32' && dtype !== 'int32')
    throw new ValueError(`tensor: dtype must be 'float32' or 'int32', got ${String(dtype)}`);
  let flat: ArrayLike<number>;
  let shape: number[];
  if (typeof data === 'number') {
    flat = [data];
    shape = [];
  } else if (ArrayBuffer.isView(data)) {
    flat = data as ArrayLike<number>;
    shape = [flat.length];
  } else {
    shape = inferShape(data, 'tensor');
    flat = (data as unknown[]).flat(Number.POSITIVE_INFINITY) as number[];
  }
  if (opts.shape) {
    const s = checkShape(opts.shape, 'tensor');
    if (sizeOf(s) !== flat.length)
      throw new ValueError(
        `tensor: ${flat.length} values do not fill shape ${fmt(s)} (${sizeOf(s)} elements)`,
      );
    shape = s;
  }
  const out = hostArray(dtype, flat.length);
  for (let i = 0; i < flat.length; i++)
    out[i] = dtype === 'int32' ? Math.trunc(Number(flat[i])) : Number(flat[i]);
  return fromHost(out, shape, dtype);
}

export function full(shape: readonly number[], value: number, dtype: DType = 'float32'): Tensor {
  const s = checkShape(shape, 'full');
  if (typeof value !== 'number') throw new ValueError(`full: value must be a number, got ${typeof value}`);
  return apply('fill', [], { shape: s, value: dtype === 'int32' ? Math.trunc(value) : value, dtype });
}

export function zeros(shape: readonly number[], dtype: DType = 'float32'): Tensor {
  return full(shape, 0, dtype);
}

export function ones(shape: readonly number[], dtype: DType = 'float32'): Tensor {
  return full(shape, 1, dtype);
}

/** numpy arange: int32 when every argument is an integer, else float32. */
export function arange(start: number, stop?: number, step = 1, dtype?: DType): Tensor {
  if (stop === undefined) {
    stop = start;
    start = 0;
  }
  if (!Number.isFinite(start) || !Number.isFinite(stop) || !Number.isFinite(step) || step === 0)
    throw new ValueError(`arange: start, stop and step must be finite and step non-zero`);
  const dt: DType =
    dtype ??
    (Number.isInteger(start) && Number.isInteger(stop) && Number.isInteger(step) ? 'int32' : 'float32');
  const n = Math.max(0, Math.ceil((stop - start) / step));
  const out = hostArray(dt, n);
  for (let i = 0; i < n; i++) out[i] = start + i * step;
  return fromHost(out, [n], dt);
}

export function eye(n: number, dtype: DType = 'float32'): Tensor {
  if (!Number.isInteger(n) || n < 0) throw new ValueError(`eye: n must be a non-negative integer, got ${n}`);
  const out = hostArray(dtype, n * n);
  for (let i = 0; i < n; i++) out[i * n + i] = 1;
  return fromHost(out, [n, n], dtype);
}
