/** Seeded random tensors: the same seed gives the same values on every runtime. */
import { fromHost, hostArray } from './creation';
import { ValueError } from './errors';
import { checkShape, sizeOf } from './shape';
import { Tensor } from './tensor';

/**
 * A PRNG key: an int32 tensor of shape [2] (JAX style). Values drawn from a key are a pure function of
 * the key and the element index (counter-based), computed on the host, so they are the same for any
 * thread count, backend or device. Reusing a key gives the same numbers; use {@link split} for new ones.
 */
export type Key = Tensor;

/** 32-bit avalanche mix (murmur3 finalizer). */
function mix32(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * Counter-based block: a few rounds of a Philox/threefry-like mix of (k0, k1) with the counter, giving
 * two 32-bit words. Deterministic and independent of evaluation order.
 */
function block(k0: number, k1: number, ctr: number): [number, number] {
  let x0 = ctr >>> 0;
  let x1 = (ctr / 4294967296) >>> 0;
  let a = k0 >>> 0;
  let b = k1 >>> 0;
  for (let r = 0; r < 6; r++) {
    x0 = mix32((x0 + a) ^ Math.imul(x1 + 0x9e3779b9 * (r + 1), 0xd2511f53));
    x1 = mix32((x1 + b) ^ Math.imul(x0, 0xcd9e8d57));
    a = (a + 0x9e3779b9) >>> 0;
    b = (b + 0xbb67ae85) >>> 0;
  }
  return [x0 >>> 0, x1 >>> 0];
}

/** The two words of a key, or a ValueError naming `op` when `key` is not one. */
function keyWords(op: string, key: unknown): [number, number] {
  if (!(key instanceof Tensor) || key.dtype !== 'int32' || key.shape.length !== 1 || key.shape[0] !== 2)
    throw new ValueError(
      `${op}: key must be a PRNG key (an int32 tensor of shape [2] from random.key or random.split), got ${
        key instanceof Tensor ? `a ${key.dtype} tensor of shape [${key.shape.join(', ')}]` : typeof key
      }`,
    );
  const d = key.dataSync();
  return [d[0] >>> 0, d[1] >>> 0];
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
  const [k0, k1] = keyWords('random.split', k);
  if (!Number.isInteger(n) || n < 1)
    throw new ValueError(`random.split: n must be a positive integer, got ${String(n)}`);
  // Uses a key derived with a distinct tweak, so split words never coincide with drawn values.
  const t0 = mix32(k0 ^ 0x5bd1e995);
  const t1 = mix32(k1 ^ 0x27d4eb2f);
  const keys: Key[] = [];
  for (let i = 0; i < n; i++) {
    const [a, b] = block(t0, t1, i);
    const out = new Int32Array(2);
    out[0] = a | 0;
    out[1] = b | 0;
    keys.push(fromHost(out, [2], 'int32'));
  }
  return keys;
}

/** n uniform numbers in [0, 1) from key words, element i a function of (key, i) only. */
function keyedUniforms(k0: number, k1: number, n: number): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i += 2) {
    const [a, b] = block(k0, k1, i / 2);
    out[i] = a / 4294967296;
    if (i + 1 < n) out[i + 1] = b / 4294967296;
  }
  return out;
}

/** A uniform stream: from `key` when given (counter-based), else from the seeded generator. */
function stream(op: string, n: number, opts: { seed?: number; key?: Key }): () => number {
  if (opts.key !== undefined) {
    const [k0, k1] = keyWords(op, opts.key);
    const u = keyedUniforms(k0, k1, n);
    let i = 0;
    return () => u[i++];
  }
  return generator(opts.seed ?? 0);
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
  const next = stream('random.uniform', sizeOf(s), opts);
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
  const n = sizeOf(s);
  const next = stream('random.normal', n + (n % 2), opts);
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
