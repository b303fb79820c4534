/**
 * Keyed random numbers as graph ops, so drawing from a key traces under jit and batches under vmap
 * (a batch of keys draws a batch of independent streams). A key is an int32 pair; these ops take
 * keys of shape [..., 2] and draw per key.
 *
 * The numbers are a pure function of the key words and the element index (counter-based), computed
 * in float64 by the reference below and rounded once to float32. No backend has a kernel for them:
 * every device runs the reference on the host (the declared fallback), so the same key gives the
 * same bits on any thread count and device.
 */
import { ShapeError, ValueError } from '../../errors';
import { fmt, sizeOf } from '../../shape';
import type { Attrs } from '../../tensor';
import { moveBatch } from '../batching';
import { apply, type BatchRule, defineOp, type TensorInfo } from '../registry';

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

/** `n` uniform numbers in [0, 1) from key words into out[at..], element i a function of (key, i) only. */
function uniforms(k0: number, k1: number, n: number): Float64Array {
  const u = new Float64Array(n);
  for (let i = 0; i < n; i += 2) {
    const [a, b] = block(k0, k1, i / 2);
    u[i] = a / 4294967296;
    if (i + 1 < n) u[i + 1] = b / 4294967296;
  }
  return u;
}

/** The batch of keys: [..., 2] int32; `extra` is the per-key part of the output shape. */
function inferKeyed(op: string, key: TensorInfo, extra: readonly number[]): readonly number[] {
  if (key.dtype !== 'int32' || key.shape.length === 0 || key.shape[key.shape.length - 1] !== 2)
    throw new ValueError(
      `${op}: keys must be int32 with a last axis of 2 (from random.key or random.split), got ${key.dtype}${fmt(key.shape)}`,
    );
  return [...key.shape.slice(0, -1), ...extra];
}

/** A batched key moves its batch axis to the front: the output then has it at 0. */
const keyedRule =
  (name: string): BatchRule =>
  ([key], [d], attrs, _out, size) => [apply(name, [moveBatch(key, d, 0, size)], attrs), 0];

/** Each key's words, as unsigned numbers. */
function eachKey(keys: Float64Array, f: (k0: number, k1: number, index: number) => void): void {
  for (let i = 0; i < keys.length / 2; i++) f(keys[2 * i] >>> 0, keys[2 * i + 1] >>> 0, i);
}

/**
 * Draws of shape attrs.shape per key: 'uniform' in [a, b) (low, high) or 'normal' with mean a and
 * standard deviation b (Box–Muller on pairs of uniforms).
 */
defineOp({
  name: 'randomDraw',
  kind: 'other',
  infer: ([key], attrs) => {
    const shape = attrs.shape as number[];
    if (attrs.dist !== 'uniform' && attrs.dist !== 'normal')
      throw new ValueError(`randomDraw: unknown distribution ${String(attrs.dist)}`);
    return { shape: inferKeyed(`random.${attrs.dist}`, key, shape), dtype: 'float32' };
  },
  reference: ([keys], attrs) => {
    const n = sizeOf(attrs.shape as number[]);
    const a = attrs.a as number;
    const b = attrs.b as number;
    const out = new Float64Array((keys.data.length / 2) * n);
    eachKey(keys.data, (k0, k1, j) => {
      const at = j * n;
      if (attrs.dist === 'uniform') {
        const u = uniforms(k0, k1, n);
        for (let i = 0; i < n; i++) out[at + i] = a + (b - a) * u[i];
        return;
      }
      const u = uniforms(k0, k1, n + (n % 2));
      for (let i = 0; i < n; i += 2) {
        const r = Math.sqrt(-2 * Math.log(1 - u[i]));
        out[at + i] = a + b * r * Math.cos(2 * Math.PI * u[i + 1]);
        if (i + 1 < n) out[at + i + 1] = a + b * r * Math.sin(2 * Math.PI * u[i + 1]);
      }
    });
    return out;
  },
  // the draws do not depend differentiably on the key (integers)
  jvp: () => null,
  vjp: () => [null],
  batch: keyedRule('randomDraw'),
});

/** attrs.n new keys per key: [..., 2] -> [..., n, 2], independent of each other and of the key's own draws. */
defineOp({
  name: 'randomSplit',
  kind: 'other',
  infer: ([key], attrs) => {
    const n = attrs.n as number;
    if (!Number.isInteger(n) || n < 1)
      throw new ShapeError(`random.split: n must be a positive integer, got ${n}`);
    return { shape: inferKeyed('random.split', key, [n, 2]), dtype: 'int32' };
  },
  reference: ([keys], attrs: Attrs) => {
    const n = attrs.n as number;
    const out = new Float64Array(keys.data.length * n);
    eachKey(keys.data, (k0, k1, j) => {
      // a key derived with a distinct tweak, so split words never coincide with drawn values
      const t0 = mix32(k0 ^ 0x5bd1e995);
      const t1 = mix32(k1 ^ 0x27d4eb2f);
      for (let i = 0; i < n; i++) {
        const [a, b] = block(t0, t1, i);
        out[2 * (j * n + i)] = a | 0;
        out[2 * (j * n + i) + 1] = b | 0;
      }
    });
    return out;
  },
  jvp: () => null,
  vjp: () => [null],
  batch: keyedRule('randomSplit'),
});
