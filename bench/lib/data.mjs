// Deterministic inputs shared by every implementation: each child process regenerates them
// from the same seeds, so adjoint and the peers see bit-identical Float32Arrays.

/** mulberry32: small, fast 32-bit PRNG; returns floats in [0, 1). */
export function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function uniform(n, seed, lo = -1, hi = 1) {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * r();
  return out;
}

/** Normal(0, std) by Box-Muller. */
export function normal(n, seed, std = 1) {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = 1 - r();
    const v = r();
    const m = std * Math.sqrt(-2 * Math.log(u));
    out[i] = m * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) out[i + 1] = m * Math.sin(2 * Math.PI * v);
  }
  return out;
}

export function intsBelow(n, k, seed) {
  const r = rng(seed);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.floor(r() * k);
  return out;
}

export function oneHot(labels, depth) {
  const out = new Float32Array(labels.length * depth);
  for (let i = 0; i < labels.length; i++) out[i * depth + labels[i]] = 1;
  return out;
}
