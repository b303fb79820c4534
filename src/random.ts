/** Seeded random tensors: the same seed gives the same values on every runtime. */
import { fromHost, hostArray } from './creation';
import { ValueError } from './errors';
import { checkShape, sizeOf } from './shape';
import type { Tensor } from './tensor';

/** splitmix32-style generator: small, fast, and good enough for initialization and tests. */
function generator(seed: number): () => number {
  if (!Number.isFinite(seed)) throw new ValueError(`random: seed must be a finite number, got ${seed}`);
  let s = Math.trunc(seed) >>> 0;
  return () => {
    s = (s + 0x9e3779b9) | 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    z ^= z >>> 16;
    return (z >>> 0) / 4294967296;
  };
}

export function uniform(
  shape: readonly number[],
  opts: { seed?: number; low?: number; high?: number } = {},
): Tensor {
  const s = checkShape(shape, 'random.uniform');
  const { seed = 0, low = 0, high = 1 } = opts;
  const next = generator(seed);
  const out = hostArray('float32', sizeOf(s));
  for (let i = 0; i < out.length; i++) out[i] = low + (high - low) * next();
  return fromHost(out, s, 'float32');
}

/** Standard normal (Box–Muller), optionally scaled: mean + std·z. */
export function normal(
  shape: readonly number[],
  opts: { seed?: number; mean?: number; std?: number } = {},
): Tensor {
  const s = checkShape(shape, 'random.normal');
  const { seed = 0, mean = 0, std = 1 } = opts;
  const next = generator(seed);
  const out = hostArray('float32', sizeOf(s));
  for (let i = 0; i < out.length; i += 2) {
    const u = 1 - next();
    const v = next();
    const r = Math.sqrt(-2 * Math.log(u));
    out[i] = mean + std * r * Math.cos(2 * Math.PI * v);
    if (i + 1 < out.length) out[i + 1] = mean + std * r * Math.sin(2 * Math.PI * v);
  }
  return fromHost(out, s, 'float32');
}
