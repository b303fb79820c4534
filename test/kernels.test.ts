import v8 from 'node:v8';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  BinaryOp,
  broadcastShapes,
  broadcastStrides,
  contiguousStrides,
  FusedProgramBuilder,
  type Kernels,
  ReduceOp,
  UnaryOp,
} from '../src/backends/wasm/kernels';
import {
  kernelFileName,
  loadKernels,
  loadKernelsSync,
  relaxedSimdSupported,
  resetFeatureCache,
} from '../src/backends/wasm/loader';
import { WasmAllocator, WasmOutOfMemoryError } from '../src/backends/wasm/memory';
import { expectClose, rng } from './helpers';

// Node 20 has relaxed SIMD behind a flag; turning it on lets the relaxed builds be tested too.
v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
resetFeatureCache();

// ---- helpers -------------------------------------------------------------------------

const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const f32 = Math.fround;

function randArray(r: () => number, n: number, lo = -3, hi = 3): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * r();
  return a;
}

function randShape(r: () => number, nd: number, maxDim = 6): number[] {
  return Array.from({ length: nd }, () => 1 + Math.floor(r() * maxDim));
}

/** Index helper: flat index -> multi index. */
function unravel(i: number, shape: readonly number[]): number[] {
  const idx = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    idx[d] = i % shape[d]!;
    i = Math.floor(i / shape[d]!);
  }
  return idx;
}

function broadcastRead(data: ArrayLike<number>, inShape: readonly number[], outShape: readonly number[]) {
  const st = broadcastStrides(inShape, outShape);
  return (i: number) => {
    const idx = unravel(i, outShape);
    let off = 0;
    for (let d = 0; d < idx.length; d++) off += idx[d]! * st[d]!;
    return data[off]!;
  };
}

// float64 references
const unaryRef: Record<string, (x: number) => number> = {
  copy: (x) => x,
  neg: (x) => -x,
  abs: Math.abs,
  sign: (x) => (x === 0 || Number.isNaN(x) ? x : Math.sign(x)),
  exp: Math.exp,
  log: Math.log,
  log1p: Math.log1p,
  sqrt: Math.sqrt,
  square: (x) => x * x,
  reciprocal: (x) => 1 / x,
  sin: Math.sin,
  cos: Math.cos,
  tanh: Math.tanh,
  sigmoid: (x) => 1 / (1 + Math.exp(-x)),
  relu: (x) => (Number.isNaN(x) ? x : Math.max(x, 0)),
  softplus: (x) => Math.max(x, 0) + Math.log1p(Math.exp(-Math.abs(x))),
  rsqrt: (x) => 1 / Math.sqrt(x),
  floor: Math.floor,
  ceil: Math.ceil,
};

const binaryRef: Record<string, (a: number, b: number) => number> = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
  pow: (a, b) => (a === 1 || b === 0 ? 1 : a ** b),
  maximum: (a, b) => (Number.isNaN(a) || Number.isNaN(b) ? NaN : Math.max(a, b)),
  minimum: (a, b) => (Number.isNaN(a) || Number.isNaN(b) ? NaN : Math.min(a, b)),
  greater: (a, b) => +(a > b),
  less: (a, b) => +(a < b),
  equal: (a, b) => +(a === b),
  greaterEqual: (a, b) => +(a >= b),
  lessEqual: (a, b) => +(a <= b),
  notEqual: (a, b) => +(a !== b),
};

const intBinaryRef: Record<string, (a: number, b: number) => number> = {
  addI32: (a, b) => (a + b) | 0,
  subI32: (a, b) => (a - b) | 0,
  mulI32: (a, b) => Math.imul(a, b),
  maximumI32: Math.max,
  minimumI32: Math.min,
  greaterI32: (a, b) => +(a > b),
  lessI32: (a, b) => +(a < b),
  equalI32: (a, b) => +(a === b),
  greaterEqualI32: (a, b) => +(a >= b),
  lessEqualI32: (a, b) => +(a <= b),
  notEqualI32: (a, b) => +(a !== b),
};

function unaryDomain(op: string): [number, number] {
  switch (op) {
    case 'log':
    case 'sqrt':
    case 'rsqrt':
      return [1e-3, 50];
    case 'log1p':
      return [-0.99, 50];
    case 'exp':
      return [-80, 80];
    case 'sin':
    case 'cos':
      return [-40, 40];
    case 'tanh':
    case 'sigmoid':
    case 'softplus':
      return [-30, 30];
    default:
      return [-10, 10];
  }
}

function unaryTol(op: string): [number, number] {
  if (op === 'sin' || op === 'cos') return [4e-6, 4e-6];
  if (op === 'softplus' || op === 'sigmoid' || op === 'tanh') return [3e-6, 1e-30];
  if (op === 'exp' || op === 'log' || op === 'log1p') return [2e-6, 1e-30];
  return [1e-6, 1e-30];
}

// ---- per-build suites -------------------------------------------------------------------

const builds: { name: string; relaxed: boolean }[] = [
  { name: 'simd', relaxed: false },
  { name: 'relaxed-simd', relaxed: true },
];

describe('relaxed-SIMD feature probe', () => {
  it('validates with the flag on and picks the right file names', () => {
    expect(relaxedSimdSupported()).toBe(true);
    expect(kernelFileName(true, false)).toBe('kernels-relaxed.wasm');
    expect(kernelFileName(false, true)).toBe('kernels-shared.wasm');
  });
});

describe.each(builds)('kernels ($name)', ({ relaxed }) => {
  let k: Kernels;
  beforeAll(async () => {
    k = await loadKernels({ relaxed });
    expect(k.relaxed).toBe(relaxed);
  });

  const put = (data: Float32Array | Int32Array | number[]) =>
    k.upload(Array.isArray(data) ? new Float32Array(data) : data);
  const getF = (p: number, n: number) => Float32Array.from(k.f32(p, n));
  const getI = (p: number, n: number) => Int32Array.from(k.i32(p, n));

  it('unary ops match float64 references on random data and odd sizes', () => {
    const r = rng(1);
    for (const [name, ref] of Object.entries(unaryRef)) {
      const op = UnaryOp[name as keyof typeof UnaryOp];
      const [lo, hi] = unaryDomain(name);
      const [rtol, atol] = unaryTol(name);
      for (const n of [0, 1, 3, 4, 5, 8, 17, 1001]) {
        const x = randArray(r, n, lo, hi);
        const px = put(x);
        const po = k.alloc(n * 4);
        k.unary(op, px, po, n);
        const want = Array.from(x, (v) => f32(ref(v)));
        if (name === 'sin' || name === 'cos') expectClose(getF(po, n), want, { rtol: 0, atol, what: name });
        else expectClose(getF(po, n), want, { rtol, atol, what: name });
        k.free(px);
        k.free(po);
      }
    }
  });

  it('transcendentals are accurate over wide ranges (a few ulps)', () => {
    const cases: [string, number, number, number][] = [
      ['exp', -87, 88.7, 2e-6],
      ['exp', -103, -87, 2e-6],
      ['tanh', -9, 9, 3e-6],
      ['sigmoid', -80, 80, 3e-6],
      ['softplus', -80, 80, 3e-6],
      ['log1p', -0.999, 1e6, 2e-6],
    ];
    for (const [name, lo, hi, rtol] of cases) {
      const n = 4096;
      const x = new Float32Array(n);
      for (let i = 0; i < n; i++) x[i] = lo + ((hi - lo) * i) / (n - 1);
      const px = put(x);
      k.unary(UnaryOp[name as keyof typeof UnaryOp], px, px, n);
      const want = Array.from(x, (v) => f32(unaryRef[name]!(v)));
      // exp below -87 lands in subnormals: absolute tolerance of one subnormal step
      expectClose(getF(px, n), want, { rtol, atol: name === 'exp' ? 2e-45 : 1e-37, what: name });
      k.free(px);
    }
    // log over many binades including subnormals
    const xs: number[] = [];
    for (let e = -149; e < 128; e += 0.37) xs.push(f32(2 ** e));
    const px = put(xs);
    k.unary(UnaryOp.log, px, px, xs.length);
    expectClose(getF(px, xs.length), xs.map(Math.log), { rtol: 2e-6, atol: 1e-6, what: 'log binades' });
    k.free(px);
    // sin/cos, absolute error
    const t = Array.from({ length: 2000 }, (_, i) => f32(-1000 + i * 1.0007));
    for (const name of ['sin', 'cos']) {
      const p = put(t);
      k.unary(UnaryOp[name as 'sin' | 'cos'], p, p, t.length);
      expectClose(getF(p, t.length), t.map(unaryRef[name]!), { rtol: 0, atol: 4e-6, what: name });
      k.free(p);
    }
  });

  it('special values: inf, nan, overflow, saturation', () => {
    const check = (name: keyof typeof UnaryOp, x: number[], want: number[]) => {
      const p = put(x);
      k.unary(UnaryOp[name], p, p, x.length);
      expectClose(getF(p, x.length), want, { rtol: 1e-6, atol: 0, what: name });
      k.free(p);
    };
    check(
      'exp',
      [100, -200, Infinity, -Infinity, NaN, 0, 88.7],
      [Infinity, 0, Infinity, 0, NaN, 1, f32(Math.exp(f32(88.7)))],
    );
    check('log', [0, -1, Infinity, NaN, 1, -0], [-Infinity, NaN, Infinity, NaN, 0, -Infinity]);
    check('log1p', [-1, -2, Infinity, 0, 1e-10], [-Infinity, NaN, Infinity, 0, 1e-10]);
    check('sigmoid', [100, -100, 0, Infinity, -Infinity], [1, 0, 0.5, 1, 0]);
    check('softplus', [100, -100, 0, Infinity], [100, f32(Math.exp(-100)), f32(Math.LN2), Infinity]);
    check('tanh', [20, -20, 1e-8, Infinity, -Infinity, NaN], [1, -1, 1e-8, 1, -1, NaN]);
    check('sin', [Infinity, NaN, 0], [NaN, NaN, 0]);
    check('cos', [-Infinity, 0], [NaN, 1]);
    check('sign', [-3, 0, 2, NaN], [-1, 0, 1, NaN]);
    check('relu', [-1, 2, NaN], [0, 2, NaN]);
    check('sqrt', [-1, 0, 4], [NaN, 0, 2]);
  });

  it('int32 unary ops and casts', () => {
    const x = new Int32Array([-5, 0, 7, -2147483647, 3]);
    const p = put(x);
    const o = k.alloc(x.length * 4);
    k.unary(UnaryOp.negI32, p, o, x.length);
    expect(Array.from(getI(o, 5))).toEqual([5, 0, -7, 2147483647, -3]);
    k.unary(UnaryOp.absI32, p, o, x.length);
    expect(Array.from(getI(o, 5))).toEqual([5, 0, 7, 2147483647, 3]);
    k.unary(UnaryOp.castI32ToF32, p, o, x.length);
    expect(Array.from(getF(o, 5))).toEqual([-5, 0, 7, f32(-2147483647), 3]);
    const fx = put([1.7, -2.7, 1e10, NaN]);
    k.unary(UnaryOp.castF32ToI32, fx, o, 4);
    expect(Array.from(getI(o, 4))).toEqual([1, -2, 2147483647, 0]);
  });

  it('binary ops with numpy broadcasting (random shapes, fast paths and general)', () => {
    const r = rng(2);
    const shapePairs: [number[], number[]][] = [
      [[7], [7]],
      [[1001], [1]],
      [[1], [13]],
      [[], [5]],
      [[], []],
      [[0, 3], [3]],
      [
        [4, 1, 3],
        [5, 1],
      ],
      [
        [2, 3, 4, 5],
        [3, 1, 5],
      ],
      [
        [6, 1],
        [1, 9],
      ],
    ];
    for (let t = 0; t < 12; t++) {
      const nd = 1 + Math.floor(r() * 6);
      const s = randShape(r, nd, 5);
      const a = s.map((d) => (r() < 0.3 ? 1 : d));
      const b = s.slice(Math.floor(r() * nd)).map((d) => (r() < 0.3 ? 1 : d));
      shapePairs.push(r() < 0.5 ? [a, b] : [b, a]);
    }
    for (const [as, bs] of shapePairs) {
      const os = broadcastShapes(as, bs);
      const n = size(os);
      const A = randArray(r, size(as), 0.1, 3);
      const B = randArray(r, size(bs), -3, 3);
      const pa = put(A);
      const pb = put(B);
      const po = k.alloc(n * 4);
      const ra = broadcastRead(A, as, os);
      const rb = broadcastRead(B, bs, os);
      for (const [name, ref] of Object.entries(binaryRef)) {
        const op = BinaryOp[name as keyof typeof BinaryOp];
        expect(k.binaryBroadcast(op, pa, as, pb, bs, po)).toEqual(os);
        const want = Array.from({ length: n }, (_, i) => f32(ref(ra(i), rb(i))));
        const isCmp = name.startsWith('greater') || name.startsWith('less') || name.endsWith('qual');
        const got = isCmp ? getI(po, n) : getF(po, n);
        expectClose(got, want, {
          rtol: name === 'pow' ? 1e-5 : 1e-6,
          atol: 1e-30,
          what: `${name} ${JSON.stringify([as, bs])}`,
        });
      }
      k.free(pa);
      k.free(pb);
      k.free(po);
    }
  });

  it('pow edge cases and comparisons with equal values', () => {
    const a = [-2, -2, -2, 0, 0, 0, 4, 1, NaN, -8, 2.5];
    const b = [3, 2, 0.5, 0, 2, -1, 0.5, NaN, 0, 1 / 3, -1.5];
    const pa = put(a);
    const pb = put(b);
    const po = k.alloc(a.length * 4);
    k.binary(BinaryOp.pow, pa, pb, po, a.length);
    expectClose(
      getF(po, a.length),
      a.map((x, i) => f32(binaryRef.pow!(x, b[i]!))),
      { rtol: 2e-6, atol: 1e-30, what: 'pow' },
    );
    const pe = put([1, 2, 3]);
    const pf = put([1, 3, 3]);
    k.binary(BinaryOp.equal, pe, pf, po, 3);
    expect(Array.from(getI(po, 3))).toEqual([1, 0, 1]);
  });

  it('int32 binary ops with broadcasting', () => {
    const r = rng(3);
    const as = [3, 1, 5];
    const bs = [4, 1];
    const os = broadcastShapes(as, bs);
    const A = Int32Array.from({ length: size(as) }, () => Math.floor(r() * 200 - 100));
    const B = Int32Array.from({ length: size(bs) }, () => Math.floor(r() * 200 - 100));
    const pa = put(A);
    const pb = put(B);
    const po = k.alloc(size(os) * 4);
    const ra = broadcastRead(A, as, os);
    const rb = broadcastRead(B, bs, os);
    for (const [name, ref] of Object.entries(intBinaryRef)) {
      k.binaryBroadcast(BinaryOp[name as keyof typeof BinaryOp], pa, as, pb, bs, po);
      expect(Array.from(getI(po, size(os))), name).toEqual(
        Array.from({ length: size(os) }, (_, i) => ref(ra(i), rb(i))),
      );
    }
  });

  it('where with broadcasting', () => {
    const r = rng(4);
    for (const [cs, as, bs] of [
      [[10], [10], [10]],
      [[1], [7], [1]],
      [[3, 1], [1, 4], [4]],
      [[2, 3, 1, 5], [3, 4, 1], [1]],
    ] as number[][][]) {
      const os = broadcastShapes(cs!, as!, bs!);
      const C = Int32Array.from({ length: size(cs!) }, () => (r() < 0.5 ? 0 : Math.floor(r() * 5) - 2));
      const A = randArray(r, size(as!));
      const B = randArray(r, size(bs!));
      const pc = put(C);
      const pa = put(A);
      const pb = put(B);
      const po = k.alloc(size(os) * 4);
      k.whereBroadcast(pc, cs!, pa, as!, pb, bs!, po);
      const rc = broadcastRead(C, cs!, os);
      const ra = broadcastRead(A, as!, os);
      const rb = broadcastRead(B, bs!, os);
      expect(Array.from(getF(po, size(os)))).toEqual(
        Array.from({ length: size(os) }, (_, i) => (rc(i) ? ra(i) : rb(i))),
      );
    }
  });

  it('strided copy: transpose, broadcastTo, slice and concat into an offset', () => {
    const r = rng(5);
    for (let t = 0; t < 20; t++) {
      const nd = 1 + Math.floor(r() * 6);
      const shape = randShape(r, nd, 5);
      const perm = Array.from({ length: nd }, (_, i) => i).sort(() => r() - 0.5);
      const X = Int32Array.from({ length: size(shape) }, (_, i) => i * 7 + 1);
      const px = put(X);
      const po = k.alloc(size(shape) * 4);
      const outShape = k.transpose(px, shape, perm, po);
      const xs = contiguousStrides(shape);
      const want = Array.from({ length: size(outShape) }, (_, i) => {
        const idx = unravel(i, outShape);
        return X[idx.reduce((acc, v, d) => acc + v * xs[perm[d]!]!, 0)]!;
      });
      expect(Array.from(getI(po, size(outShape)))).toEqual(want);
      k.free(px);
      k.free(po);
    }
    // broadcastTo
    const px = put(new Float32Array([1, 2, 3]));
    const po = k.alloc(4 * 2 * 3 * 4);
    k.broadcastTo(px, [3], [4, 2, 3], po);
    expect(Array.from(getF(po, 24))).toEqual(Array.from({ length: 24 }, (_, i) => (i % 3) + 1));
    // slice x[1:3, 2:5] of a 4x6 matrix
    const M = Float32Array.from({ length: 24 }, (_, i) => i);
    const pm = put(M);
    const ps = k.alloc(2 * 3 * 4);
    k.copyStrided(pm + (1 * 6 + 2) * 4, ps, [2, 3], [6, 1]);
    expect(Array.from(getF(ps, 6))).toEqual([8, 9, 10, 14, 15, 16]);
    // concat [2,2] and [2,3] along axis 1 into [2,5]
    const pc = k.alloc(10 * 4);
    const p1 = put([1, 2, 3, 4]);
    const p2 = put([5, 6, 7, 8, 9, 10]);
    k.copyStrided(p1, pc, [2, 2], [2, 1], [5, 1]);
    k.copyStrided(p2, pc + 2 * 4, [2, 3], [3, 1], [5, 1]);
    expect(Array.from(getF(pc, 10))).toEqual([1, 2, 5, 6, 7, 3, 4, 8, 9, 10]);
    // zero-size is a no-op
    k.copyStrided(p1, pc, [0, 3], [3, 1]);
  });

  it('reductions over [outer, len, inner] views', () => {
    const r = rng(6);
    const shapes: [number, number, number][] = [
      [1, 1, 1],
      [3, 7, 1],
      [2, 1030, 1],
      [1, 5, 3],
      [4, 9, 17],
      [2, 3, 40],
      [5, 0, 1],
      [0, 4, 2],
    ];
    for (const [outer, len, inner] of shapes) {
      const X = randArray(r, outer * len * inner, -5, 5);
      const px = put(X);
      const n = outer * inner;
      const po = k.alloc(n * 4);
      const at = (o: number, l: number, i: number) => X[(o * len + l) * inner + i]!;
      const refReduce = (f: (vals: number[]) => number) =>
        Array.from({ length: n }, (_, j) => {
          const o = Math.floor(j / inner);
          const i = j % inner;
          return f(Array.from({ length: len }, (_, l) => at(o, l, i)));
        });
      const refs: [keyof typeof ReduceOp, (v: number[]) => number, number][] = [
        ['sum', (v) => v.reduce((a, b) => a + b, 0), 1e-5],
        ['max', (v) => Math.max(...v), 0],
        ['min', (v) => Math.min(...v), 0],
      ];
      if (len > 0) {
        refs.push(['prod', (v) => v.slice(0, 20).reduce((a, b) => a * b, 1), 1e-5]);
      }
      for (const [name, f, tol] of refs) {
        if (name === 'prod' && len > 20) continue;
        k.exports.reduce(ReduceOp[name], px, po, outer, len, inner);
        expectClose(getF(po, n), refReduce(f).map(f32), {
          rtol: tol,
          atol: 1e-5 * Math.sqrt(len + 1),
          what: `${name} ${[outer, len, inner]}`,
        });
      }
      if (len > 0) {
        k.exports.reduce(ReduceOp.argmax, px, po, outer, len, inner);
        expect(Array.from(getI(po, n))).toEqual(refReduce((v) => v.indexOf(Math.max(...v))));
        k.exports.reduce(ReduceOp.argmin, px, po, outer, len, inner);
        expect(Array.from(getI(po, n))).toEqual(refReduce((v) => v.indexOf(Math.min(...v))));
      }
      k.free(px);
      k.free(po);
    }
  });

  it('cumsum along the middle axis of [outer, len, inner], forward and reversed, float32 and int32', () => {
    const [outer, len, inner] = [2, 5, 3];
    const n = outer * len * inner;
    const x = Float32Array.from({ length: n }, (_, i) => ((i * 7) % 11) - 4.5);
    const xi = Int32Array.from({ length: n }, (_, i) => (i % 2 ? 2147483000 : -3 * i));
    const want = (v: ArrayLike<number>, reverse: boolean, int: boolean) => {
      const r = new Array<number>(n).fill(0);
      for (let o = 0; o < outer; o++)
        for (let q = 0; q < inner; q++) {
          let acc = 0;
          for (let j = 0; j < len; j++) {
            const l = reverse ? len - 1 - j : j;
            const at = (o * len + l) * inner + q;
            acc = int ? (acc + v[at]) | 0 : acc + v[at];
            r[at] = acc;
          }
        }
      return r;
    };
    const [px, pi, po] = [put(x), put(xi), k.alloc(n * 4)];
    for (const reverse of [false, true]) {
      k.cumsum(px, po, outer, len, inner, reverse, false);
      expectClose(getF(po, n), want(x, reverse, false), { rtol: 1e-6, what: `float32 reverse=${reverse}` });
      k.cumsum(pi, po, outer, len, inner, reverse, true);
      expect(Array.from(getI(po, n))).toEqual(want(xi, reverse, true));
    }
    k.free(px);
    k.free(pi);
    k.free(po);
  });

  it('argmax ties/nan, int32 reductions', () => {
    const p = put([1, 5, 5, 2, 3, NaN, 9, NaN, -Infinity, -Infinity, -Infinity]);
    const o = k.alloc(16);
    k.exports.reduce(ReduceOp.argmax, p, o, 1, 4, 1);
    expect(getI(o, 1)[0]).toBe(1);
    k.exports.reduce(ReduceOp.argmax, p + 16, o, 1, 4, 1);
    expect(getI(o, 1)[0]).toBe(1);
    k.exports.reduce(ReduceOp.argmax, p + 32, o, 1, 3, 1);
    expect(getI(o, 1)[0]).toBe(0);
    const ints = put(new Int32Array([3, -4, 10, 7, 1, 1]));
    k.exports.reduce(ReduceOp.sumI32, ints, o, 2, 3, 1);
    expect(Array.from(getI(o, 2))).toEqual([9, 9]);
    k.exports.reduce(ReduceOp.maxI32, ints, o, 1, 2, 3);
    expect(Array.from(getI(o, 3))).toEqual([7, 1, 10]);
    k.exports.reduce(ReduceOp.minI32, ints, o, 1, 6, 1);
    expect(getI(o, 1)[0]).toBe(-4);
  });

  it('softmax / logSoftmax forward and backward, stable for large logits', () => {
    const r = rng(8);
    for (const [rows, cols, offset] of [
      [1, 1, 0],
      [3, 5, 0],
      [4, 37, 1e4],
      [2, 1000, -3e4],
    ]) {
      const X = randArray(r, rows! * cols!, -8, 8).map((v) => v + offset!);
      const dY = randArray(r, rows! * cols!);
      const px = put(X);
      const pdy = put(dY);
      const py = k.alloc(X.length * 4);
      const pdx = k.alloc(X.length * 4);
      for (const log of [false, true]) {
        k.softmax(px, py, rows!, cols!, log);
        const Y = getF(py, X.length);
        const wantY: number[] = [];
        const wantDx: number[] = [];
        for (let i = 0; i < rows!; i++) {
          const row = Array.from(X.subarray(i * cols!, (i + 1) * cols!));
          const m = Math.max(...row);
          const s = row.reduce((a, v) => a + Math.exp(v - m), 0);
          const sm = row.map((v) => Math.exp(v - m) / s);
          const dy = Array.from(dY.subarray(i * cols!, (i + 1) * cols!));
          if (log) {
            wantY.push(...row.map((v) => v - m - Math.log(s)));
            const sd = dy.reduce((a, b) => a + b, 0);
            wantDx.push(...dy.map((d, j) => d - sm[j]! * sd));
          } else {
            wantY.push(...sm);
            const dot = dy.reduce((a, d, j) => a + d * sm[j]!, 0);
            wantDx.push(...sm.map((y, j) => y * (dy[j]! - dot)));
          }
        }
        expectClose(Y, wantY, { rtol: 1e-5, atol: 1e-6, what: `softmax log=${log}` });
        k.softmaxBackward(py, pdy, pdx, rows!, cols!, log);
        expectClose(getF(pdx, X.length), wantDx, {
          rtol: 1e-4,
          atol: 1e-5,
          what: `softmaxBackward log=${log}`,
        });
      }
    }
  });

  it('layer and RMS normalization of rows and their x-cotangent, accurate far from zero', () => {
    const r = rng(10);
    for (const [rows, cols, offset, eps] of [
      [1, 1, 0, 1e-5],
      [3, 5, 0, 1e-5],
      [4, 37, 1e3, 1e-5],
      [2, 1000, -50, 0.1],
      [5, 13, 0, 0],
    ]) {
      const X = randArray(r, rows! * cols!, -3, 3).map((v) => v + offset!);
      const G = randArray(r, cols!);
      const B = randArray(r, cols!);
      const CT = randArray(r, rows! * cols!);
      const [px, pg, pb, pct] = [put(X), put(G), put(B), put(CT)];
      const py = k.alloc(X.length * 4);
      for (const rms of [false, true]) {
        const want: number[] = [];
        const wantDx: number[] = [];
        for (let i = 0; i < rows!; i++) {
          const row = Array.from(X.subarray(i * cols!, (i + 1) * cols!));
          const mu = rms ? 0 : row.reduce((a, v) => a + v, 0) / cols!;
          const rr = 1 / Math.sqrt(row.reduce((a, x) => a + (x - mu) ** 2, 0) / cols! + eps!);
          const xh = row.map((x) => (x - mu) * rr);
          want.push(...xh.map((v, j) => v * G[j]! + B[j]!));
          const h = xh.map((_, j) => CT[i * cols! + j]! * G[j]!);
          const mh = rms ? 0 : h.reduce((a, v) => a + v, 0) / cols!;
          const mhx = h.reduce((a, v, j) => a + v * xh[j]!, 0) / cols!;
          wantDx.push(...h.map((v, j) => rr * (v - mh - xh[j]! * mhx)));
        }
        const what = `rms=${rms} [${rows}, ${cols}]`;
        k.exports.layerNorm(px, pg, pb, py, rows!, cols!, eps!, rms ? 1 : 0);
        expectClose(getF(py, X.length), want, { rtol: 1e-4, atol: 1e-4, what: `layerNorm ${what}` });
        k.exports.layerNorm(px, pg, pct, py, rows!, cols!, eps!, (rms ? 1 : 0) | 2);
        expectClose(getF(py, X.length), wantDx, {
          rtol: 1e-3,
          atol: 1e-3,
          scale: 'max',
          what: `layerNormGrad ${what}`,
        });
      }
    }
  });

  it('softmax cross-entropy forward/backward with int32 labels', () => {
    const r = rng(9);
    for (const [rows, cols, offset] of [
      [1, 1, 0],
      [5, 3, 0],
      [7, 10, 500],
      [3, 33, -1e4],
    ]) {
      const X = randArray(r, rows! * cols!, -10, 10).map((v) => v + offset!);
      const L = Int32Array.from({ length: rows! }, () => Math.floor(r() * cols!));
      const G = randArray(r, rows!);
      const px = put(X);
      const pl = put(L);
      const pg = put(G);
      const ploss = k.alloc(rows! * 4);
      const pprob = k.alloc(X.length * 4);
      const pd = k.alloc(X.length * 4);
      k.exports.softmaxXent(px, pl, ploss, pprob, rows!, cols!);
      const loss: number[] = [];
      const probs: number[] = [];
      for (let i = 0; i < rows!; i++) {
        const row = Array.from(X.subarray(i * cols!, (i + 1) * cols!));
        const m = Math.max(...row);
        const lse = m + Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0));
        loss.push(lse - row[L[i]!]!);
        probs.push(...row.map((v) => Math.exp(v - lse)));
      }
      expectClose(getF(ploss, rows!), loss, { rtol: 1e-5, atol: 1e-5, what: 'xent loss' });
      expectClose(getF(pprob, X.length), probs, { rtol: 1e-5, atol: 1e-7, what: 'xent probs' });
      const scale = 1 / rows!;
      for (const [g, gStride] of [
        [pg, 1],
        [pg, 0],
        [0, 0],
      ]) {
        k.exports.softmaxXentGrad(px, pl, g!, gStride!, scale, pd, rows!, cols!);
        const want = probs.map((p, j) => {
          const i = Math.floor(j / cols!);
          const gi = g === 0 ? 1 : G[gStride ? i : 0]!;
          return (p - (j % cols! === L[i] ? 1 : 0)) * gi * scale;
        });
        expectClose(getF(pd, X.length), want, {
          rtol: 1e-5,
          atol: 1e-7,
          what: `xent grad gStride=${gStride}`,
        });
      }
    }
    // invalid label -> NaN loss, no one-hot term
    const px = put([1, 2]);
    const pl = put(new Int32Array([5]));
    const po = k.alloc(8);
    k.exports.softmaxXent(px, pl, po, 0, 1, 2);
    expect(getF(po, 1)[0]).toBeNaN();
  });

  it('gather, scatterAdd, oneHot', () => {
    const r = rng(10);
    for (const [outer, axisLen, inner, nIdx] of [
      [1, 5, 1, 3],
      [2, 4, 3, 6],
      [3, 7, 9, 0],
      [1, 10, 130, 4],
    ]) {
      const X = randArray(r, outer! * axisLen! * inner!);
      const I = Int32Array.from({ length: nIdx! }, () => Math.floor(r() * axisLen! * 2) - axisLen!);
      const px = put(X);
      const pi = put(I);
      const n = outer! * nIdx! * inner!;
      const po = k.alloc(n * 4);
      k.gather(px, pi, po, outer!, axisLen!, inner!, nIdx!);
      const want: number[] = [];
      for (let o = 0; o < outer!; o++)
        for (let j = 0; j < nIdx!; j++) {
          const kk = I[j]! < 0 ? I[j]! + axisLen! : I[j]!;
          for (let i = 0; i < inner!; i++) want.push(X[(o * axisLen! + kk) * inner! + i]!);
        }
      expect(Array.from(getF(po, n))).toEqual(want);
      // scatterAdd is the adjoint: <gather(x), y> == <x, scatterAdd(y)>
      const Y = randArray(r, n);
      const py = put(Y);
      const ps = k.alloc(X.length * 4);
      k.fillF32(ps, X.length, 0);
      k.scatterAdd(py, pi, ps, outer!, axisLen!, inner!, nIdx!);
      const S = getF(ps, X.length);
      const lhs = want.reduce((a, v, i) => a + v * Y[i]!, 0);
      const rhs = Array.from(X).reduce((a, v, i) => a + v * S[i]!, 0);
      expectClose(lhs, rhs, { rtol: 0, atol: 5e-4 });
    }
    const pi = put(new Int32Array([2, 0, -1, 3]));
    const po = k.alloc(4 * 3 * 4);
    k.oneHot(pi, po, 4, 3);
    expect(Array.from(getF(po, 12))).toEqual([0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
    k.oneHot(pi, po, 4, 3, 5, -1);
    expect(Array.from(getF(po, 12))).toEqual([-1, -1, 5, 5, -1, -1, -1, -1, -1, -1, -1, -1]);
  });

  function refMatmul(
    A: Float32Array,
    B: Float32Array,
    M: number,
    N: number,
    K: number,
    tA: boolean,
    tB: boolean,
  ): Float64Array {
    const C = new Float64Array(M * N);
    for (let i = 0; i < M; i++)
      for (let kk = 0; kk < K; kk++) {
        const a = tA ? A[kk * M + i]! : A[i * K + kk]!;
        if (a === 0) continue;
        for (let j = 0; j < N; j++) C[i * N + j]! += a * (tB ? B[j * K + kk]! : B[kk * N + j]!);
      }
    return C;
  }

  it('matmul: odd sizes, both transposes, accumulate, row ranges, blocking edges', () => {
    const r = rng(11);
    const dims: [number, number, number][] = [
      [1, 1, 1],
      [3, 5, 7],
      [6, 8, 4],
      [13, 17, 1],
      [1, 33, 9],
      [31, 1, 300],
      [0, 4, 4],
      [4, 0, 4],
      [5, 6, 0],
      [250, 37, 270],
      [7, 2100, 3],
    ];
    for (const [M, N, K] of dims) {
      for (const tA of [false, true]) {
        for (const tB of [false, true]) {
          const A = randArray(r, M * K, -1, 1);
          const B = randArray(r, K * N, -1, 1);
          const pa = put(A);
          const pb = put(B);
          const pc = k.alloc(M * N * 4);
          k.fillF32(pc, M * N, NaN);
          k.matmul({ a: pa, b: pb, c: pc, M, N, K, transA: tA, transB: tB });
          const want = refMatmul(A, B, M, N, K, tA, tB);
          const tol = 1e-6 * Math.sqrt(K + 1) * 4;
          expectClose(getF(pc, M * N), want, { rtol: 1e-5, atol: tol, what: `matmul ${[M, N, K, tA, tB]}` });
          // accumulate: C += A·B
          k.matmul({ a: pa, b: pb, c: pc, M, N, K, transA: tA, transB: tB, accumulate: true });
          expectClose(
            getF(pc, M * N),
            want.map((v) => 2 * v),
            { rtol: 1e-5, atol: 2 * tol, what: 'matmul accumulate' },
          );
          // row range [m0, m1) leaves other rows alone
          if (M >= 3) {
            k.fillF32(pc, M * N, -7);
            const m0 = 1;
            const m1 = M - 1;
            k.matmul({ a: pa, b: pb, c: pc, M, N, K, transA: tA, transB: tB, m0, m1 });
            const got = getF(pc, M * N);
            const w2 = Array.from(want, (v, i) => {
              const row = Math.floor(i / N);
              return row >= m0 && row < m1 ? v : -7;
            });
            expectClose(got, w2, { rtol: 1e-5, atol: tol, what: 'matmul rows' });
          }
          k.free(pa);
          k.free(pb);
          k.free(pc);
        }
      }
    }
  });

  it('batched matmul with broadcast batch dims and a caller scratch', () => {
    const r = rng(12);
    const M = 5;
    const N = 9;
    const K = 6;
    const aBatch = [2, 1, 3];
    const bBatch = [4, 1];
    const cBatch = broadcastShapes(aBatch, bBatch);
    const A = randArray(r, size(aBatch) * M * K);
    const B = randArray(r, size(bBatch) * K * N);
    const pa = put(A);
    const pb = put(B);
    const pc = k.alloc(size(cBatch) * M * N * 4);
    const scratch = k.alloc(k.matmulScratchBytes(M, N, K));
    for (const tB of [false, true]) {
      k.matmul({
        a: pa,
        b: pb,
        c: pc,
        M,
        N,
        K,
        transB: tB,
        scratch,
        batch: {
          shape: cBatch,
          strideA: broadcastStrides(aBatch, cBatch).map((s) => s * M * K),
          strideB: broadcastStrides(bBatch, cBatch).map((s) => s * K * N),
          strideC: contiguousStrides(cBatch).map((s) => s * M * N),
        },
      });
      const got = getF(pc, size(cBatch) * M * N);
      const ra = broadcastStrides(aBatch, cBatch);
      const rb = broadcastStrides(bBatch, cBatch);
      for (let bi = 0; bi < size(cBatch); bi++) {
        const idx = unravel(bi, cBatch);
        const oa = idx.reduce((acc, v, d) => acc + v * ra[d]!, 0);
        const ob = idx.reduce((acc, v, d) => acc + v * rb[d]!, 0);
        const want = refMatmul(
          A.subarray(oa * M * K, (oa + 1) * M * K),
          B.subarray(ob * K * N, (ob + 1) * K * N),
          M,
          N,
          K,
          false,
          tB,
        );
        expectClose(got.subarray(bi * M * N, (bi + 1) * M * N), want, {
          rtol: 1e-5,
          atol: 1e-5,
          what: `batch ${bi}`,
        });
      }
    }
  });

  it('fused programs: broadcast inputs, constants, where, several outputs, tile edges', () => {
    const r = rng(13);
    // a bias whose length divides the tile (32, 256) is gathered once per run; one that does not
    // (101, 700, 7) tile by tile
    for (const shape of [[13, 101], [1], [3, 1, 700], [2, 3, 4, 5, 6, 7], [0, 5], [41, 32], [3, 3, 256]]) {
      const n = size(shape);
      const xs = shape;
      const bs = [shape[shape.length - 1]!];
      const cs = shape.map((d, i) => (i === 0 ? d : 1));
      const X = randArray(r, size(xs));
      const Bv = randArray(r, size(bs));
      const Cv = randArray(r, size(cs));
      const S = new Float32Array([0.75]);
      const px = put(X);
      const pb = put(Bv);
      const pcv = put(Cv);
      const ps = put(S);
      const po1 = k.alloc(n * 4);
      const po2 = k.alloc(n * 4);
      const po3 = k.alloc(n * 4);
      const b = new FusedProgramBuilder(shape);
      const x = b.input(px, xs);
      const bias = b.input(pb, bs);
      const col = b.input(pcv, cs);
      const s = b.input(ps, [1]);
      // y1 = tanh(x * s + bias) ; y2 = where(x > col, exp(-x^2), 2 - col) ; y3 = int32 (y1 < 0)
      const t = b.binary(BinaryOp.add, b.binary(BinaryOp.mul, x, s), bias);
      const y1 = b.unary(UnaryOp.tanh, t);
      const m = b.binary(BinaryOp.greater, x, col);
      const e = b.unary(UnaryOp.exp, b.unary(UnaryOp.neg, b.unary(UnaryOp.square, x)));
      const y2 = b.where(m, e, b.binary(BinaryOp.sub, 2, col));
      const y3 = b.binary(BinaryOp.less, y1, 0);
      b.constant(3); // dead value
      b.output(y1, po1);
      b.output(y2, po2);
      b.output(y3, po3);
      const prog = b.build();
      k.fused(prog);
      const rx = broadcastRead(X, xs, shape);
      const rb = broadcastRead(Bv, bs, shape);
      const rc = broadcastRead(Cv, cs, shape);
      const w1 = Array.from({ length: n }, (_, i) => Math.tanh(f32(f32(rx(i) * 0.75) + rb(i))));
      const w2 = Array.from({ length: n }, (_, i) =>
        rx(i) > rc(i) ? Math.exp(-f32(rx(i) * rx(i))) : 2 - rc(i),
      );
      expectClose(getF(po1, n), w1, { rtol: 3e-6, atol: 1e-7, what: `fused y1 ${shape}` });
      expectClose(getF(po2, n), w2, { rtol: 2e-6, atol: 1e-7, what: `fused y2 ${shape}` });
      const g1 = getF(po1, n);
      expect(Array.from(getI(po3, n))).toEqual(Array.from(g1, (v) => +(v < 0)));
      for (const p of [px, pb, pcv, ps, po1, po2, po3]) k.free(p);
    }
  });

  it('fused: register reuse keeps live values, general strides, malformed programs are rejected', () => {
    // a long chain with a value reused at the end forces slot reuse around a live value
    const n = 1500;
    const X = randArray(rng(14), n, -1, 1);
    const px = put(X);
    const po = k.alloc(n * 4);
    const b = new FusedProgramBuilder([n]);
    const x = b.input(px, [n]);
    let v = b.unary(UnaryOp.sin, x);
    const keep = b.binary(BinaryOp.mul, v, 2);
    for (let i = 0; i < 30; i++) v = b.binary(BinaryOp.add, b.unary(UnaryOp.neg, v), i % 2 ? 0.5 : -0.25);
    b.output(b.binary(BinaryOp.sub, v, keep), po);
    const prog = b.build();
    expect(prog.nSlots).toBeLessThanOrEqual(4);
    k.fused(prog);
    const want = Array.from(X, (xv) => {
      let w = f32(Math.sin(xv));
      const kk = 2 * w;
      for (let i = 0; i < 30; i++) w = f32(-w + (i % 2 ? 0.5 : -0.25));
      return w - kk;
    });
    expectClose(getF(po, n), want, { rtol: 1e-5, atol: 1e-5, what: 'fused chain' });
    // transposed input via explicit strides
    const T = Float32Array.from({ length: 12 }, (_, i) => i);
    const pt = put(T);
    const pout = k.alloc(12 * 4);
    const b2 = new FusedProgramBuilder([4, 3]);
    b2.output(b2.unary(UnaryOp.copy, b2.input(pt, [3, 4], [1, 4])), pout);
    k.fused(b2.build());
    expect(Array.from(getF(pout, 12))).toEqual([0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]);
    const bad = b2.build();
    bad.words[12 + 8 + 2 + 1] = 99; // dst slot out of range
    expect(() => k.fused(bad)).toThrow(/malformed/);
  });
});

describe('shared-memory build', () => {
  it('instantiates over a shared memory and runs kernels', async () => {
    const k = await loadKernels({ shared: true, maxBytes: 64 * 1024 * 1024 });
    expect(k.shared).toBe(true);
    expect(k.memory.buffer).toBeInstanceOf(SharedArrayBuffer);
    const a = k.upload(new Float32Array([1, 2, 3, 4]));
    const b = k.upload(new Float32Array([5, 6, 7, 8]));
    const c = k.alloc(16);
    k.matmul({ a, b, c, M: 2, N: 2, K: 2 });
    expect(Array.from(k.f32(c, 4))).toEqual([19, 22, 43, 50]);
    // growth keeps data and views fresh
    const big = k.alloc(40 * 1024 * 1024);
    k.fillF32(big, 10, 1.5);
    expect(k.f32(big, 10)[9]).toBe(1.5);
    expect(Array.from(k.f32(c, 4))).toEqual([19, 22, 43, 50]);
  });

  it('loads synchronously and with the relaxed shared build', () => {
    const k = loadKernelsSync({ shared: true, relaxed: true, maxBytes: 32 * 1024 * 1024 });
    expect(k.relaxed).toBe(true);
    const x = k.upload(new Float32Array([0, 1]));
    k.unary(UnaryOp.exp, x, x, 2);
    expectClose(k.f32(x, 2)[1], Math.E, { rtol: 0, atol: 5e-6 });
  });
});

describe('WasmAllocator', () => {
  const PAGE = 65536;
  function make(maxPages = 8) {
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 64 });
    return new WasmAllocator(memory, { base: 1000, maxBytes: maxPages * PAGE });
  }

  it('aligns, reuses freed blocks best-fit and coalesces neighbours', () => {
    const al = make();
    const a = al.alloc(10);
    const b = al.alloc(100);
    const c = al.alloc(30);
    const d = al.alloc(0);
    for (const p of [a, b, c, d]) expect(p % 16).toBe(0);
    expect(a).toBeGreaterThanOrEqual(1000);
    expect(new Set([a, b, c, d]).size).toBe(4);
    expect(al.stats()).toMatchObject({ liveBuffers: 4, liveBytes: 16 + 112 + 32 + 16 });
    al.free(b);
    const e = al.alloc(20); // best fit inside b's hole
    expect(e).toBe(b);
    al.free(e);
    al.free(a);
    al.free(c); // a, b, c coalesce into one block
    const f = al.alloc(16 + 112 + 32);
    expect(f).toBe(a);
    expect(() => al.free(12345)).toThrow(/unknown pointer/);
    al.free(f);
    expect(() => al.free(f)).toThrow(/unknown pointer/);
    al.free(d);
    expect(al.stats()).toMatchObject({ liveBuffers: 0, liveBytes: 0, freeBytes: 0 });
    // after everything is freed the next allocation starts at the base again
    expect(al.alloc(8)).toBe(a);
  });

  it('grows memory on demand and refreshes views', () => {
    const al = make();
    const a = al.alloc(1000);
    al.f32(a, 4).set([1, 2, 3, 4]);
    const view = al.f32(a, 4);
    const big = al.alloc(3 * PAGE);
    expect(al.stats().wasmBytes).toBeGreaterThanOrEqual(4 * PAGE);
    expect(view.length).toBe(0); // old non-shared view detached by grow
    expect(Array.from(al.f32(a, 4))).toEqual([1, 2, 3, 4]);
    al.f32(big, 3 * 16384).fill(2);
    expect(al.f32(big + 4 * (3 * 16384 - 1), 1)[0]).toBe(2);
  });

  it('throws WasmOutOfMemoryError past the limit and leaves its state intact', () => {
    const al = make(4);
    const a = al.alloc(PAGE);
    const before = al.stats();
    let err: unknown;
    try {
      al.alloc(10 * PAGE);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(WasmOutOfMemoryError);
    expect((err as Error).name).toBe('WasmOutOfMemoryError');
    expect((err as Error).message).toMatch(/655360 bytes/);
    expect((err as Error).message).toMatch(/limit 262144/);
    expect(al.stats()).toEqual(before);
    const b = al.alloc(PAGE);
    expect(b).toBeGreaterThan(a);
    al.free(a);
    al.free(b);
    expect(al.stats().liveBuffers).toBe(0);
    expect(() => al.alloc(-1)).toThrow(RangeError);
  });
});
