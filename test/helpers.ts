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

export interface Tolerance {
  /** Relative tolerance (default 2e-6). */
  rtol?: number;
  /** Absolute tolerance (default 1e-6). */
  atol?: number;
  /**
   * What rtol is relative to: each expected element ('element', default) or the largest finite
   * expected magnitude ('max': for values that cancel to near zero, like gradients and FD).
   */
  scale?: 'element' | 'max';
  /** Names the compared thing in the failure message. */
  what?: string;
}

type Numeric = number | ArrayLike<number> | Tensor;

function numbers(x: Numeric): ArrayLike<number> {
  if (typeof x === 'number') return [x];
  if ('dataSync' in x) return x.dataSync();
  return x;
}

/**
 * The one comparison of every numeric test: |got - want| <= atol + rtol * scale, elementwise.
 * NaN matches only NaN and an infinity only itself, so a kernel that writes nothing (NaN-filled
 * output) or a NaN where a number belongs always fails. Reports the worst element.
 */
export function expectClose(got: Numeric, want: Numeric, tol: Tolerance = {}): void {
  const { rtol = 2e-6, atol = 1e-6, scale = 'element', what = 'value' } = tol;
  const g = numbers(got);
  const w = numbers(want);
  if (g.length !== w.length) throw new Error(`${what}: length ${g.length}, want ${w.length}`);
  let peak = 0;
  if (scale === 'max')
    for (let i = 0; i < w.length; i++) if (Number.isFinite(w[i])) peak = Math.max(peak, Math.abs(w[i]));
  let worst = 0;
  let worstAt = -1;
  for (let i = 0; i < w.length; i++) {
    const a = g[i];
    const b = w[i];
    if (Number.isNaN(a) || Number.isNaN(b) || !Number.isFinite(b)) {
      const same = Number.isNaN(a) ? Number.isNaN(b) : a === b;
      if (!same) throw new Error(`${what}[${i}]: got ${a}, want ${b}`);
      continue;
    }
    const diff = Math.abs(a - b);
    // a zero tolerance means exact: 0/0 must not read as a pass
    const err = diff === 0 ? 0 : diff / (atol + rtol * (scale === 'max' ? peak : Math.abs(b)));
    if (err > worst) {
      worst = err;
      worstAt = i;
    }
  }
  if (worst > 1)
    throw new Error(
      `${what}[${worstAt}]: got ${g[worstAt]}, want ${w[worstAt]} ` +
        `(error ${worst.toPrecision(3)}x the tolerance rtol=${rtol} atol=${atol}, ${scale})`,
    );
}
