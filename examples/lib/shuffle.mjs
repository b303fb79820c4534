// Seeded shuffling for the demos, with no runtime imports: the Node demos and the browser page
// (served at /lib/shuffle.mjs by examples/web/serve.mjs) load the same file.

/**
 * mulberry32: a small 32-bit seeded PRNG. Returns a function yielding floats in [0, 1).
 * @param {number} seed
 * @returns {() => number}
 */
export function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A permutation of 0..n-1 by Fisher–Yates, drawing from `rand`.
 * @param {number} n
 * @param {() => number} rand
 * @returns {Int32Array}
 */
export function shuffled(n, rand) {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return p;
}
