/** Seeded random tensors: the same seed gives the same values on every runtime. */
import { fromHost, hostArray } from './creation';
import { ValueError } from './errors';
import { reshape, slice } from './ops/api';
import { apply } from './ops/registry';
import { checkShape, sizeOf } from './shape';
import { Tensor } from './tensor';

/**
 * A PRNG key: an int32 tensor of shape [2] (JAX style). Values drawn from a key are a pure function of
 * the key and the element index (counter-based; the randomDraw and randomSplit ops, so keyed draws
 * trace under jit and batch under vmap), the same for any thread count, backend or device. Reusing a
 * key gives the same numbers; use {@link split} for new ones.
 */
export type Key = Tensor;

/** `key` when it is one PRNG key, else a ValueError naming `op`. */
function checkKey(op: string, key: unknown): Tensor {
  if (!(key instanceof Tensor) || key.dtype !== 'int32' || key.shape.length !== 1 || key.shape[0] !== 2)
    throw new ValueError(
      `${op}: key must be a PRNG key (an int32 tensor of shape [2] from random.key or random.split), got ${
        key instanceof Tensor ? `a ${key.dtype} tensor of shape [${key.shape.join(', ')}]` : typeof key
      }`,
    );
  return key;
}

/** A PRNG key from an integer seed: an int32 tensor of shape [2]. */
export function key(seed: number): Key {
  if (typeof seed !== 'number' || !Number.isFinite(seed))
    throw new ValueError(`random.key: seed must be a finite number, got ${String(seed)}`);
  const t = Math.trunc(seed);
  const lo = t >>> 0;
  const hi = Math.floor(t / 4294967296) >>> 0;
  const out = new Int32Array(2);
  out[0] = hi | 0;
  out[1] = lo | 0;
  return fromHost(out, [2], 'int32');
}

/** `n` new keys derived from `key` (default 2), independent of each other and of `key`'s own stream. */
export function split(k: Key, n = 2): Key[] {
  checkKey('random.split', k);
  if (!Number.isInteger(n) || n < 1)
    throw new ValueError(`random.split: n must be a positive integer, got ${String(n)}`);
  const keys = apply('randomSplit', [k], { n });
  return Array.from({ length: n }, (_, i) => reshape(slice(keys, [i, 0], [1, 2]), [2]));
}

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
  opts: { seed?: number; key?: Key; low?: number; high?: number } = {},
): Tensor {
  const s = checkShape(shape, 'random.uniform');
  const { low = 0, high = 1 } = opts;
  if (opts.key !== undefined)
    return apply('randomDraw', [checkKey('random.uniform', opts.key)], {
      dist: 'uniform',
      shape: s,
      a: low,
      b: high,
    });
  const next = generator(opts.seed ?? 0);
  const out = hostArray('float32', sizeOf(s));
  for (let i = 0; i < out.length; i++) out[i] = low + (high - low) * next();
  return fromHost(out, s, 'float32');
}

/** Standard normal (Box–Muller), optionally scaled: mean + std·z. */
export function normal(
  shape: readonly number[],
  opts: { seed?: number; key?: Key; mean?: number; std?: number } = {},
): Tensor {
  const s = checkShape(shape, 'random.normal');
  const { mean = 0, std = 1 } = opts;
  if (opts.key !== undefined)
    return apply('randomDraw', [checkKey('random.normal', opts.key)], {
      dist: 'normal',
      shape: s,
      a: mean,
      b: std,
    });
  const next = generator(opts.seed ?? 0);
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
