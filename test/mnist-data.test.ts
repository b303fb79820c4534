import { describe, expect, it } from 'vitest';
import {
  batches,
  IMAGE_SIZE,
  image,
  loadMnist,
  mnistInfo,
  mulberry32,
  slice,
} from '../examples/lib/mnist-data.mjs';
import { progressBar, renderDigit, sideBySide } from '../examples/lib/terminal.mjs';

/** Byte-equality of two typed arrays (toEqual walks elements one by one and is slow on millions). */
function same(a: ArrayBufferView, b: ArrayBufferView): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(
    Buffer.from(b.buffer, b.byteOffset, b.byteLength),
  );
}

describe('mnist-data', () => {
  it('loads the whole package and reports its counts', () => {
    const info = mnistInfo();
    expect(info.perDigit).toHaveLength(10);
    expect(info.perDigit.reduce((a, b) => a + b, 0)).toBe(info.total);
    expect(info.total).toBe(10000);
    for (const n of info.perDigit) expect(n).toBeGreaterThan(800);
  });

  it('splits into train and test with the requested sizes and valid values', () => {
    const { train, test, total } = loadMnist({ testSize: 2000, seed: 0 });
    expect(test.count).toBe(2000);
    expect(train.count).toBe(total - 2000);
    for (const s of [train, test]) {
      expect(s.images).toBeInstanceOf(Float32Array);
      expect(s.labels).toBeInstanceOf(Int32Array);
      expect(s.images.length).toBe(s.count * IMAGE_SIZE);
      expect(s.labels.length).toBe(s.count);
      let min = Infinity;
      let max = -Infinity;
      for (const v of s.images) {
        if (v < min) min = v;
        if (v > max) max = v;
      }
      expect(min).toBe(0);
      expect(max).toBe(1);
      const hist = new Array(10).fill(0);
      for (const l of s.labels) hist[l]++;
      // Every digit present, and roughly balanced (the split is a uniform shuffle).
      for (const n of hist) expect(n).toBeGreaterThan(s.count / 20);
    }
  });

  it('never puts the same image in train and test', () => {
    const { train, test, total } = loadMnist({ testSize: 1500, seed: 3 });
    const seen = new Uint8Array(total);
    for (const i of test.indices) seen[i] |= 1;
    for (const i of train.indices) seen[i] |= 2;
    expect(seen.every((v) => v === 1 || v === 2)).toBe(true);
    // Exactly a partition of the package.
    expect(seen.filter((v) => v === 1).length).toBe(1500);
    // Pixels match the source position: same index in two different splits gives equal data.
    const other = loadMnist({ testSize: 1500, seed: 4 });
    const where = new Map<number, number>();
    for (const [k, src] of other.train.indices.entries()) where.set(src, k);
    const k = where.get(test.indices[0]);
    if (k !== undefined) expect(image(other.train, k)).toEqual(image(test, 0));
  });

  it('is deterministic in the seed', () => {
    const a = loadMnist({ seed: 7 });
    const b = loadMnist({ seed: 7 });
    const c = loadMnist({ seed: 8 });
    expect(same(a.test.indices, b.test.indices)).toBe(true);
    expect(same(a.test.images, b.test.images)).toBe(true);
    expect(same(a.train.images, b.train.images)).toBe(true);
    expect(same(a.train.labels, b.train.labels)).toBe(true);
    expect(same(c.test.indices, a.test.indices)).toBe(false);
    expect(same(c.train.images, a.train.images)).toBe(false);
  });

  it('rejects a bad testSize', () => {
    expect(() => loadMnist({ testSize: -1 })).toThrow(RangeError);
    expect(() => loadMnist({ testSize: 1e9 })).toThrow(RangeError);
  });

  it('batches cover an epoch once, shuffled per epoch', () => {
    const { test } = loadMnist({ testSize: 1000 });
    const seen = new Uint8Array(test.count);
    const pos = new Map<number, number>();
    for (const [k, src] of test.indices.entries()) pos.set(src, k);
    let n = 0;
    for (const b of batches(test, 64, { seed: 1, epoch: 0, dropLast: false })) {
      expect(b.images.length).toBe(b.labels.length * IMAGE_SIZE);
      for (let j = 0; j < b.count; j++) {
        const k = pos.get(b.indices[j])!;
        seen[k]++;
        expect(b.labels[j]).toBe(test.labels[k]);
      }
      n++;
    }
    expect(n).toBe(Math.ceil(1000 / 64));
    expect(seen.every((v) => v === 1)).toBe(true);

    const dropped = [...batches(test, 64, { seed: 1, epoch: 0 })];
    expect(dropped).toHaveLength(Math.floor(1000 / 64));
    for (const b of dropped) expect(b.count).toBe(64);

    const again = [...batches(test, 64, { seed: 1, epoch: 0 })];
    const next = [...batches(test, 64, { seed: 1, epoch: 1 })];
    expect(again[0].indices).toEqual(dropped[0].indices);
    expect(next[0].indices).not.toEqual(dropped[0].indices);
    expect(() => batches(test, 0).next()).toThrow(RangeError);
  });

  it('slice takes a sub-range', () => {
    const { train } = loadMnist();
    const s = slice(train, 100, 300);
    expect(s.count).toBe(200);
    expect(s.labels).toEqual(train.labels.slice(100, 300));
    expect(image(s, 0)).toEqual(image(train, 100));
    expect(slice(train, -50).count).toBe(50);
    expect(slice(train, 10, 5).count).toBe(0);
  });

  it('mulberry32 is deterministic and in [0, 1)', () => {
    const a = mulberry32(42);
    const b = mulberry32(42);
    for (let i = 0; i < 100; i++) {
      const x = a();
      expect(x).toBe(b());
      expect(x >= 0 && x < 1).toBe(true);
    }
  });
});

describe('terminal', () => {
  it('renderDigit draws 14 lines of width 28', () => {
    const { test } = loadMnist();
    for (const style of ['blocks', 'shade'] as const) {
      const lines = renderDigit(image(test, 0), { style });
      expect(lines).toHaveLength(14);
      for (const l of lines) expect([...l]).toHaveLength(28);
      expect(lines.join('').trim().length).toBeGreaterThan(0);
    }
    const blank = renderDigit(new Array(784).fill(0));
    expect(blank.every((l) => l === ' '.repeat(28))).toBe(true);
    const full = renderDigit(new Array(784).fill(1));
    expect(full.every((l) => l === '█'.repeat(28))).toBe(true);
  });

  it('sideBySide lays blocks out with captions underneath', () => {
    const a = ['ab', 'cd'];
    const b = ['x'];
    const out = sideBySide([a, b], 2, ['pred 7 (true 7)', 'c']);
    expect(out).toEqual([`ab${' '.repeat(15)}x`, 'cd', 'pred 7 (true 7)  c']);
    expect(sideBySide([a, b], 1)).toEqual(['ab x', 'cd']);
  });

  it('progressBar prints plain lines when not a TTY and redraws in place on a TTY', () => {
    let plain = '';
    const p = progressBar({ total: 20, logEvery: 5, stream: { write: (s) => (plain += s), isTTY: false } });
    for (let s = 1; s <= 20; s++) p.update({ epoch: 1, step: s, loss: 1 / s, examplesPerSec: 1000 });
    p.done();
    expect(plain.includes('\r') || plain.includes('\u001b')).toBe(false);
    expect(plain.trim().split('\n')).toHaveLength(4);
    expect(plain).toContain('20/20');

    let tty = '';
    const q = progressBar({ total: 3, minIntervalMs: 0, stream: { write: (s) => (tty += s), isTTY: true } });
    for (let s = 1; s <= 3; s++) q.update({ step: s, loss: 0.5 });
    q.done();
    expect(tty.split('\r')).toHaveLength(4);
    expect(tty.endsWith('\n')).toBe(true);
    expect(tty.split('\n')).toHaveLength(2);
  });
});
