/** Shared test utilities: float64 reference mode, random data, finite differences. */
import { ReferenceBackend } from '../src/backends/reference/interpreter';
import { referenceConfig } from '../src/config';
import { tensor } from '../src/creation';
import { activeBackend, setBackend } from '../src/runtime/realize';
import type { Tensor } from '../src/tensor';
import '../src/index';

/** Runs body on the reference interpreter keeping float64 everywhere (the FD oracle). */
export function withFloat64<T>(body: () => T): T {
  const prevPrecision = referenceConfig.precision;
  const prevBackend = activeBackend();
  referenceConfig.precision = 'float64';
  setBackend(new ReferenceBackend());
  try {
    return body();
  } finally {
    referenceConfig.precision = prevPrecision;
    setBackend(prevBackend);
  }
}

export function values(t: Tensor): Float64Array {
  return Float64Array.from(t.dataSync());
}

/** Deterministic generator for test data (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export type Domain = 'real' | 'positive' | 'nonzero' | 'unit';

export function sample(r: () => number, domain: Domain): number {
  switch (domain) {
    case 'real':
      return r() * 4 - 2;
    case 'positive':
      return 0.5 + r() * 1.5;
    case 'nonzero':
      return (0.5 + r() * 1.5) * (r() < 0.5 ? -1 : 1);
    case 'unit':
      return r() * 1.6 - 0.8;
  }
}

export function randomTensor(shape: readonly number[], r: () => number, domain: Domain = 'real'): Tensor {
  const n = shape.reduce((a, d) => a * d, 1);
  const data = new Float64Array(n);
  for (let i = 0; i < n; i++) data[i] = sample(r, domain);
  return tensor(data, { shape: [...shape] });
}

export function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

export function norm(a: Float64Array): number {
  return Math.sqrt(dot(a, a));
}

/** max |a-b| / max(1, |b|) style relative error over whole arrays. */
export function relErr(a: Float64Array, b: Float64Array): number {
  if (a.length !== b.length) return Number.POSITIVE_INFINITY;
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  let m = 0;
  for (let i = 0; i < b.length; i++) m = Math.max(m, Math.abs(b[i]));
  return d / Math.max(m, 1e-3);
}

export function axpy(x: Tensor, h: number, u: Tensor): Tensor {
  const a = values(x);
  const b = values(u);
  return tensor(
    a.map((v, i) => v + h * b[i]),
    { shape: [...x.shape] },
  );
}

/** Central difference of f along direction us at xs: (f(x+hu) - f(x-hu)) / 2h, flattened. */
export function centralDifference(
  f: (...xs: Tensor[]) => Tensor,
  xs: Tensor[],
  us: Tensor[],
  h = 1e-6,
): Float64Array {
  const plus = values(f(...xs.map((x, i) => axpy(x, h, us[i]))));
  const minus = values(f(...xs.map((x, i) => axpy(x, -h, us[i]))));
  return plus.map((p, i) => (p - minus[i]) / (2 * h));
}

/** Runs body on the float32 reference interpreter (what the kernels are compared against). */
export function withReference<T>(body: () => T): T {
  const prevBackend = activeBackend();
  setBackend(new ReferenceBackend());
  try {
    return body();
  } finally {
    setBackend(prevBackend);
  }
}

/** max |a - b| relative to the largest magnitude in b (at least 1): float32 kernel tolerance checks. */
export function maxRelDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Number.POSITIVE_INFINITY;
  let d = 0;
  let m = 1;
  for (let i = 0; i < b.length; i++) {
    m = Math.max(m, Math.abs(b[i]));
    const x = a[i];
    const y = b[i];
    if (Number.isNaN(x) !== Number.isNaN(y)) return Number.POSITIVE_INFINITY;
    if (!Number.isNaN(x) && x !== y) d = Math.max(d, Math.abs(x - y));
  }
  return d / m;
}
