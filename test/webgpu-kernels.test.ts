/**
 * The compute-heavy WebGPU kernels (matmul, softmax family, gather / scatterAdd) run on a real
 * WebGPU implementation (Dawn from npm 'webgpu'; lavapipe here) through a small harness of this
 * file's own: a node comes from tracing the op, the builder's dispatches run with buffers for
 * the slots it asks for (outputs and scratch pre-filled with NaN bits, so an unwritten element
 * fails), and the result is compared with the registry's reference.
 *
 * Pipeline compilation dominates the run time on a CPU adapter (0.2–1.5 s per new WGSL source),
 * so shapes live in uniforms and the cases share a few sources.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { create, globals } from 'webgpu';
import { gatherKernels } from '../src/backends/webgpu/gather';
import type {
  GpuDispatch,
  GpuKernelBuilder,
  GpuKernelContext,
  GpuLimits,
} from '../src/backends/webgpu/kernel';
import { calibrateMatmul, type MatmulShape, matmulKernels } from '../src/backends/webgpu/matmul';
import { softmaxKernels } from '../src/backends/webgpu/softmax';
import type { GNode } from '../src/graph/graph';
import { tensor, trace } from '../src/index';
import * as o from '../src/ops/api';
import { apply } from '../src/ops/registry';
import type { Tensor } from '../src/tensor';
import { expectClose, randomTensor, rng, withReference } from './helpers';

const sizeOf = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

let gpu: GPU;
let device: GPUDevice;
let limits: GpuLimits;

beforeAll(async () => {
  Object.assign(globalThis, globals);
  process.env.XDG_RUNTIME_DIR ??= '/tmp';
  gpu = create([]);
  const adapter = await gpu.requestAdapter();
  if (!adapter)
    throw new Error(
      'no WebGPU adapter from Dawn (npm webgpu): these tests need a Vulkan driver; on Debian 12 install ' +
        "Mesa 25's lavapipe (mesa-vulkan-drivers from bookworm-backports, as .ci/run does)",
    );
  device = await adapter.requestDevice();
  const l = device.limits;
  limits = {
    maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
    maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
    maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
    maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
    maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
  };
});

afterAll(() => {
  device?.destroy();
});

const pipelines = new Map<string, Promise<GPUComputePipeline>>();

function pipeline(d: GpuDispatch): Promise<GPUComputePipeline> {
  const key = `${d.entry ?? 'main'}\n${d.wgsl}`;
  let p = pipelines.get(key);
  if (!p) {
    const module = device.createShaderModule({ code: d.wgsl });
    p = device
      .createComputePipelineAsync({ layout: 'auto', compute: { module, entryPoint: d.entry ?? 'main' } })
      .catch(async (e) => {
        const info = await module.getCompilationInfo();
        const msgs = info.messages.map((m) => `${m.lineNum}:${m.linePos} ${m.message}`).join('\n');
        throw new Error(`${e.message}\n${msgs}\n${d.wgsl.split('\n')[0]}`);
      });
    pipelines.set(key, p);
  }
  return p;
}

interface Run {
  data: Float32Array | Int32Array;
  dispatches: GpuDispatch[];
}

/**
 * Runs `builder` for node `n` with the given input values. `lim` overrides limits (to exercise
 * chunking and 2-D grids at small sizes). Returns null where the builder declines.
 */
async function runNode(
  builder: GpuKernelBuilder,
  n: GNode,
  inputs: Map<GNode, Float32Array | Int32Array>,
  matmul: MatmulShape = 'register',
  lim: Partial<GpuLimits> = {},
): Promise<Run | null> {
  const slots = new Map<GNode, number>();
  const sizes: number[] = [];
  const ctx: GpuKernelContext = {
    at(node) {
      let s = slots.get(node);
      if (s === undefined) {
        s = sizes.length;
        slots.set(node, s);
        sizes.push(sizeOf(node.shape) * 4);
      }
      return s;
    },
    temp(bytes) {
      expect(bytes).toBeGreaterThanOrEqual(16);
      sizes.push(bytes);
      return sizes.length - 1;
    },
    limits: { ...limits, ...lim },
    tuning: { matmul },
  };
  const dispatches = builder(n, ctx);
  if (dispatches === null) return null;
  const out = ctx.at(n);
  const buffers = sizes.map((bytes, slot) => {
    const size = Math.max(16, Math.ceil(bytes / 4) * 4);
    const buf = device.createBuffer({
      size,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      mappedAtCreation: true,
    });
    const words = new Uint32Array(buf.getMappedRange());
    const node = [...slots].find(([, s]) => s === slot)?.[0];
    const init = node && inputs.get(node);
    if (init) words.set(new Uint32Array(init.buffer, init.byteOffset, init.length));
    else words.fill(0x7fc00000); // outputs and scratch start as NaN: an unwritten element shows
    buf.unmap();
    return buf;
  });
  device.pushErrorScope('validation');
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass();
  const uniforms: GPUBuffer[] = [];
  for (const d of dispatches) {
    expect(d.buffers.length).toBeLessThanOrEqual(limits.maxStorageBuffersPerShaderStage);
    for (const w of d.workgroups) expect(w).toBeLessThanOrEqual(ctx.limits.maxComputeWorkgroupsPerDimension);
    const entries: GPUBindGroupEntry[] = d.buffers.map((s, binding) => ({
      binding,
      resource: { buffer: buffers[s] },
    }));
    if (d.uniforms) {
      expect(d.uniforms.byteLength % 16).toBe(0);
      const ub = device.createBuffer({
        size: d.uniforms.byteLength,
        usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
      });
      device.queue.writeBuffer(ub, 0, d.uniforms);
      uniforms.push(ub);
      entries.push({ binding: d.buffers.length, resource: { buffer: ub } });
    }
    const p = await pipeline(d);
    pass.setPipeline(p);
    pass.setBindGroup(0, device.createBindGroup({ layout: p.getBindGroupLayout(0), entries }));
    pass.dispatchWorkgroups(...d.workgroups);
  }
  pass.end();
  const bytes = Math.max(16, sizes[out]);
  const read = device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  enc.copyBufferToBuffer(buffers[out], 0, read, 0, bytes);
  device.queue.submit([enc.finish()]);
  const err = await device.popErrorScope();
  if (err) throw new Error(`WebGPU validation: ${err.message}`);
  await read.mapAsync(GPUMapMode.READ);
  const copy = read.getMappedRange().slice(0, sizes[out]);
  read.unmap();
  for (const b of [...buffers, ...uniforms, read]) b.destroy();
  const data = n.dtype === 'int32' ? new Int32Array(copy) : new Float32Array(copy);
  return { data, dispatches };
}

/** Traces f on the arguments and returns the node of `op` plus the values of its inputs. */
function nodeOf(op: string, f: (...xs: Tensor[]) => Tensor, ...args: Tensor[]) {
  const g = trace(f, ...args);
  const n = g.nodes.find((x) => x.op === op);
  if (!n) throw new Error(`trace has no ${op} node:\n${g.toString()}`);
  const inputs = new Map<GNode, Float32Array | Int32Array>();
  for (const x of n.inputs) {
    if (x.op !== 'input') throw new Error(`${op}: input ${x.op} is not an argument`);
    inputs.set(x, args[x.attrs.index as number].dataSync());
  }
  return { n, inputs };
}

/** Runs op on the GPU (must not decline) and returns the result. */
async function gpuRun(
  builders: Record<string, GpuKernelBuilder>,
  op: string,
  f: (...xs: Tensor[]) => Tensor,
  args: Tensor[],
  matmul: MatmulShape = 'register',
  lim: Partial<GpuLimits> = {},
): Promise<Run> {
  const { n, inputs } = nodeOf(op, f, ...args);
  const r = await runNode(builders[op], n, inputs, matmul, lim);
  if (!r) throw new Error(`${op} declined`);
  return r;
}

const reference = (f: (...xs: Tensor[]) => Tensor, args: Tensor[]) =>
  withReference(() => f(...args).dataSync());

// ---------------------------------------------------------------------------- matmul

describe('webgpu matmul', () => {
  const r = rng(9);
  const mm = (ta: boolean, tb: boolean) => (a: Tensor, b: Tensor) => o.matmulT(a, b, ta, tb);
  /** Operands for op(A) [.., m, k] and op(B) [.., k, n]. */
  const operands = (
    m: number,
    k: number,
    n: number,
    ta: boolean,
    tb: boolean,
    ba: number[] = [],
    bb: number[] = [],
  ) => [
    randomTensor([...ba, ...(ta ? [k, m] : [m, k])], r),
    randomTensor([...bb, ...(tb ? [n, k] : [k, n])], r),
  ];
  const check = async (
    shape: MatmulShape,
    m: number,
    k: number,
    n: number,
    ta: boolean,
    tb: boolean,
    ba: number[] = [],
    bb: number[] = [],
  ) => {
    const args = operands(m, k, n, ta, tb, ba, bb);
    const got = await gpuRun(matmulKernels, 'matmul', mm(ta, tb), args, shape);
    expectClose(got.data, reference(mm(ta, tb), args), {
      rtol: 2e-6,
      atol: 2e-6 * Math.max(1, k),
      what: `${shape} ${m}x${k}x${n} transA=${ta} transB=${tb} batch ${JSON.stringify([ba, bb])}`,
    });
    return got;
  };

  for (const shape of ['register', 'tiled'] as const) {
    // 'tiled' runs the two mixed pairs only: they cover its four tile loaders (each pipeline costs
    // a second or more of compilation on a CPU adapter).
    const pairs =
      shape === 'register'
        ? ([
            [false, false],
            [true, false],
            [false, true],
            [true, true],
          ] as const)
        : ([
            [true, false],
            [false, true],
          ] as const);
    it(`${shape}: odd sizes, ${shape === 'register' ? 'every transpose pair' : 'mixed transposes'}`, async () => {
      for (const [ta, tb] of pairs) {
        for (const [m, k, n] of [
          [1, 1, 1],
          [3, 3, 3],
          [37, 53, 29],
          [64, 64, 64],
          [129, 3, 65],
          [5, 70, 9],
        ])
          await check(shape, m, k, n, ta, tb);
      }
    });

    it(`${shape}: broadcast batches`, async () => {
      const [p, q] = [pairs[0], pairs[pairs.length - 1]];
      await check(shape, 5, 7, 6, p[0], p[1], [2, 1], [3]);
      await check(shape, 6, 8, 5, q[0], q[1], [4], []);
      await check(shape, 4, 3, 9, p[0], p[1], [1, 3], [2, 1]);
      await check(shape, 9, 12, 8, q[0], q[1], [2, 3], [2, 3]);
      await check(shape, 3, 5, 4, p[0], p[1], [2, 1, 3, 2], [1, 2, 1, 2]); // 4 batch dims, none merge
    });
  }

  it('infinities and NaNs propagate as in the reference', async () => {
    for (const shape of ['register', 'tiled'] as const) {
      const [a, b] = operands(37, 53, 29, false, true);
      const av = a.dataSync().slice();
      const bv = b.dataSync().slice();
      av[5 * 53 + 7] = Number.POSITIVE_INFINITY; // row 5 of C: ±Infinity
      av[52] = Number.NEGATIVE_INFINITY; // row 0, the last k (the padded vec4)
      bv[11 * 53 + 20] = Number.NaN; // column 11 of C: NaN
      const args = [tensor(av, { shape: [37, 53] }), tensor(bv, { shape: [29, 53] })];
      const got = await gpuRun(matmulKernels, 'matmul', mm(false, true), args, shape);
      const want = reference(mm(false, true), args);
      expect(want.filter(Number.isNaN).length).toBeGreaterThan(36);
      expectClose(got.data, want, { rtol: 2e-6, atol: 1e-4, what: shape });
      // Infinities in the second matrix of a batch must not leak into the first past its K (5):
      // k-major operands, where a tile or vec4 reaching past K would read the next matrix.
      for (const [ta, tb] of [
        [true, false],
        [false, false],
      ] as const) {
        const [x, y] = operands(6, 5, 8, ta, tb, [2], [2]);
        const xv = x.dataSync().slice();
        const yv = y.dataSync().slice();
        xv.fill(Number.POSITIVE_INFINITY, 30, 36); // batch 1, first stored row
        yv.fill(Number.NEGATIVE_INFINITY, 40, 48);
        const inf = [tensor(xv, { shape: [...x.shape] }), tensor(yv, { shape: [...y.shape] })];
        const r2 = await gpuRun(matmulKernels, 'matmul', mm(ta, tb), inf, shape);
        expectClose(r2.data, reference(mm(ta, tb), inf), { rtol: 2e-6, atol: 1e-4, what: `${shape} batch` });
      }
    }
  });

  it('K = 0 gives zeros; empty outputs need no dispatch', async () => {
    for (const shape of ['register', 'tiled'] as const) {
      const z = await check(shape, 3, 0, 4, true, false);
      expect(Array.from(z.data)).toEqual(new Array(12).fill(0));
      for (const [m, n, ba] of [
        [0, 3, []],
        [4, 0, []],
        [2, 3, [0]],
      ] as const) {
        const args = operands(m, 5, n, false, false, [...ba], []);
        const { n: node } = nodeOf('matmul', mm(false, false), ...args);
        const ds = matmulKernels.matmul(node, {
          at: () => 0,
          temp: () => 1,
          limits,
          tuning: { matmul: shape },
        });
        expect(ds).toEqual([]);
      }
    }
  });

  it('batch beyond the per-dimension workgroup limit is split into dispatches', async () => {
    for (const shape of ['register', 'tiled'] as const) {
      const args = operands(3, 5, 4, false, true, [5], [5]);
      const got = await gpuRun(matmulKernels, 'matmul', mm(false, true), args, shape, {
        maxComputeWorkgroupsPerDimension: 2,
      });
      expect(got.dispatches.filter((d) => d.wgsl.includes('adjoint matmul')).length).toBe(3);
      expectClose(got.data, reference(mm(false, true), args), { rtol: 2e-6, atol: 1e-5 });
    }
  });

  it('five batch dims that do not merge are declined', async () => {
    const args = operands(2, 3, 2, false, false, [2, 1, 3, 1, 2], [1, 2, 1, 2, 1]);
    const { n, inputs } = nodeOf('matmul', mm(false, false), ...args);
    expect(await runNode(matmulKernels.matmul, n, inputs)).toBeNull();
    // ...while the same count of dims that coalesce runs
    const ok = operands(2, 3, 2, false, false, [2, 1, 3, 2, 2], [2, 1, 3, 2, 2]);
    const got = await gpuRun(matmulKernels, 'matmul', mm(false, false), ok);
    expectClose(got.data, reference(mm(false, false), ok), { rtol: 2e-6, atol: 1e-5 });
  });

  it('int32 matmul is declined', async () => {
    const a = tensor([[1, 2]], { dtype: 'int32' });
    const b = tensor([[3], [4]], { dtype: 'int32' });
    const { n, inputs } = nodeOf('matmul', mm(false, false), a, b);
    expect(await runNode(matmulKernels.matmul, n, inputs)).toBeNull();
  });

  it('calibrateMatmul picks a kernel shape', async () => {
    // through the harness's pipeline cache, as the backend would pass its own
    const build = (wgsl: string) => pipeline({ wgsl, buffers: [], workgroups: [1, 1, 1] });
    expect(['register', 'tiled']).toContain(await calibrateMatmul(device, { pipeline: build }));
  });
});

// ---------------------------------------------------------------------------- softmax family

describe('webgpu softmax family', () => {
  const r = rng(17);
  const NaN_ = Number.NaN;
  const inf = Number.POSITIVE_INFINITY;
  /** Rows exercising the reference's special cases, padded with random values. */
  const special = (cols: number): Tensor => {
    const rows = [
      [-inf, 1, 2, -inf],
      [-inf, -inf, -inf, -inf],
      [inf, 1, -inf, 0],
      [NaN_, 1, 2, 3],
      [1e30, -1e30, 88, 100],
      [3.5, 3.5, 3.5, 3.5],
    ];
    const data: number[] = [];
    for (const row of rows) for (let i = 0; i < cols; i++) data.push(i < row.length ? row[i] : r() * 20 - 10);
    for (let i = 0; i < 4 * cols; i++) data.push(r() * 6 - 3);
    return tensor(Float32Array.from(data), { shape: [10, cols] });
  };
  const tol = { rtol: 2e-5, atol: 2e-6 };

  for (const op of ['softmax', 'logSoftmax'] as const) {
    it(`${op}: -Infinity, +Infinity, NaN and large values; short and long rows; other axes`, async () => {
      const f = (axis: number) => (x: Tensor) =>
        op === 'softmax' ? o.softmax(x, axis) : o.logSoftmax(x, axis);
      for (const x of [special(5), special(300)]) {
        const got = await gpuRun(softmaxKernels, op, f(-1), [x]);
        expectClose(got.data, reference(f(-1), [x]), { ...tol, what: `${op} ${x.shape}` });
      }
      // Whole tensors along another axis: short lanes (one invocation each) and long (a workgroup).
      for (const [shape, axis] of [
        [[3, 7, 70], 1],
        [[3, 200, 4], 1],
        [[130, 3], 0],
        [[2, 3, 4, 5], 2],
      ] as const) {
        const x = randomTensor([...shape], r);
        const got = await gpuRun(softmaxKernels, op, f(axis), [x]);
        expectClose(got.data, reference(f(axis), [x]), { ...tol, what: `${op} ${shape} axis ${axis}` });
      }
    });
  }

  it('many rows fold into a 2-D grid', async () => {
    const x = randomTensor([300, 200], r);
    for (const cols of [200, 20]) {
      const xs = cols === 200 ? x : randomTensor([3000, cols], r);
      const got = await gpuRun(softmaxKernels, 'softmax', (t) => o.softmax(t), [xs], 'register', {
        maxComputeWorkgroupsPerDimension: 32,
      });
      expect(got.dispatches[0].workgroups[1]).toBeGreaterThan(1);
      expectClose(
        got.data,
        reference((t) => o.softmax(t), [xs]),
        tol,
      );
    }
  });

  const labelsFor = (rows: number[], cols: number, bad: number[]) => {
    const n = sizeOf(rows);
    const data = Int32Array.from({ length: n }, (_, i) => (i < bad.length ? bad[i] : Math.floor(r() * cols)));
    return tensor(data, { shape: rows, dtype: 'int32' });
  };
  const xent = (x: Tensor, y: Tensor) => o.softmaxCrossEntropyRows(x, y);
  const xentGrad = (x: Tensor, y: Tensor, g: Tensor) => apply('softmaxCrossEntropyGrad', [x, y, g]);

  it('softmaxCrossEntropy and its gradient: int32 labels, out-of-range labels, -Infinity logits', async () => {
    for (const cols of [5, 300]) {
      const x = special(cols);
      // labels: -Infinity logit at the label, out of range both ways, +Infinity row, NaN row
      const y = labelsFor([10], cols, [0, 2, 0, 1, cols, -1]);
      const g = randomTensor([10], r);
      const loss = await gpuRun(softmaxKernels, 'softmaxCrossEntropy', xent, [x, y]);
      const want = reference(xent, [x, y]);
      expect(Number.isNaN(want[4]) && Number.isNaN(want[5]) && want[0] === inf).toBe(true);
      expectClose(loss.data, want, { ...tol, what: `xent cols ${cols}` });
      const grad = await gpuRun(softmaxKernels, 'softmaxCrossEntropyGrad', xentGrad, [x, y, g]);
      expectClose(grad.data, reference(xentGrad, [x, y, g]), { ...tol, what: `xent grad cols ${cols}` });
    }
    // No classes: every label is out of range.
    const none = [tensor(new Float32Array(0), { shape: [3, 0] }), labelsFor([3], 1, [])];
    const nan = await gpuRun(softmaxKernels, 'softmaxCrossEntropy', xent, none);
    expectClose(nan.data, reference(xent, none), { rtol: 0, atol: 0 });
    // Labels of rank 2 (logits [2, 3, 7]).
    const x = randomTensor([2, 3, 7], r);
    const y = labelsFor([2, 3], 7, [6, 7]);
    const g = randomTensor([2, 3], r);
    expectClose(
      (await gpuRun(softmaxKernels, 'softmaxCrossEntropy', xent, [x, y])).data,
      reference(xent, [x, y]),
      tol,
    );
    expectClose(
      (await gpuRun(softmaxKernels, 'softmaxCrossEntropyGrad', xentGrad, [x, y, g])).data,
      reference(xentGrad, [x, y, g]),
      tol,
    );
  });
});

// ---------------------------------------------------------------------------- gather / scatterAdd

describe('webgpu gather and scatterAdd', () => {
  const r = rng(23);
  const ints = (n: number, hi: number, shape: number[]) =>
    tensor(
      Int32Array.from({ length: n }, () => Math.floor(r() * hi)),
      { shape, dtype: 'int32' },
    );
  const gather = (axis: number) => (x: Tensor, i: Tensor) => o.gather(x, i, axis);
  const scatter = (axis: number, dim: number) => (u: Tensor, i: Tensor) => o.scatterAdd(u, i, axis, dim);

  it('gather along each axis, repeated indices, float32 and int32: exact', async () => {
    const x = randomTensor([4, 5, 3], r);
    for (const axis of [0, 1, 2]) {
      const idx = ints(6, x.shape[axis], [2, 3]);
      const got = await gpuRun(gatherKernels, 'gather', gather(axis), [x, idx]);
      expectClose(got.data, reference(gather(axis), [x, idx]), { rtol: 0, atol: 0, what: `axis ${axis}` });
    }
    const xi = tensor(
      Int32Array.from({ length: 20 }, (_, i) => i * 7 - 50),
      { shape: [5, 4], dtype: 'int32' },
    );
    const idx = tensor([4, 0, 4, 2], { dtype: 'int32' });
    const got = await gpuRun(gatherKernels, 'gather', gather(0), [xi, idx]);
    expect(got.data).toBeInstanceOf(Int32Array);
    expect(Array.from(got.data)).toEqual(Array.from(reference(gather(0), [xi, idx])));
  });

  it('gather with an out-of-range index poisons the slices read through it', async () => {
    const x = randomTensor([3, 4], r);
    const idx = tensor([1, 4, -1, 0], { dtype: 'int32' });
    const got = await gpuRun(gatherKernels, 'gather', gather(1), [x, idx]);
    const xv = x.dataSync();
    const want = Array.from({ length: 12 }, (_, e) => {
      const [p, j] = [Math.floor(e / 4), e % 4];
      const k = [1, 4, -1, 0][j];
      return k >= 0 && k < 4 ? xv[p * 4 + k] : Number.NaN;
    });
    expectClose(got.data, want, { rtol: 0, atol: 0 });
    const xi = tensor([[1, 2]], { dtype: 'int32' });
    const gi = await gpuRun(gatherKernels, 'gather', gather(0), [xi, tensor([1], { dtype: 'int32' })]);
    expect(Array.from(gi.data)).toEqual([-2147483648, -2147483648]);
    // an empty axis: every index is out of range
    const empty = tensor(new Float32Array(0), { shape: [2, 0] });
    const ge = await gpuRun(gatherKernels, 'gather', gather(1), [
      empty,
      tensor([0, 0, 0], { dtype: 'int32' }),
    ]);
    expect(Array.from(ge.data).every(Number.isNaN)).toBe(true);
    expect(ge.data.length).toBe(6);
  });

  /** scatterAdd in float32 adding in increasing j: what the kernel must reproduce bit for bit. */
  function scatterF32(u: Float32Array, idx: Int32Array, outer: number, len: number, inner: number) {
    const n = idx.length;
    const res = new Float32Array(outer * len * inner);
    for (let j = 0; j < n; j++)
      for (let p = 0; p < outer; p++)
        for (let q = 0; q < inner; q++) {
          const at = (p * len + idx[j]) * inner + q;
          res[at] = Math.fround(res[at] + u[(p * n + j) * inner + q]);
        }
    return res;
  }

  it('scatterAdd: repeated indices, every axis, bit-identical across runs and in index order', async () => {
    for (const [ushape, axis, dim, count] of [
      [[6, 2], 0, 4, 6],
      [[3, 10, 2], 1, 3, 10],
      [[2, 3, 700], 2, 5, 700], // 700 indices: the sort takes global merge passes
      [[3000], 0, 7, 3000],
    ] as const) {
      const idx = ints(count, dim, [count]);
      const u = randomTensor([...ushape], r);
      const f = scatter(axis, dim);
      const a = await gpuRun(gatherKernels, 'scatterAdd', f, [u, idx]);
      const b = await gpuRun(gatherKernels, 'scatterAdd', f, [u, idx]);
      expect(new Uint32Array(b.data.buffer)).toEqual(new Uint32Array(a.data.buffer));
      const outer = sizeOf(ushape.slice(0, axis));
      const inner = sizeOf(ushape.slice(axis + 1));
      const exact = scatterF32(u.dataSync() as Float32Array, idx.dataSync() as Int32Array, outer, dim, inner);
      expect(new Uint32Array(a.data.buffer)).toEqual(new Uint32Array(exact.buffer));
      expectClose(a.data, reference(f, [u, idx]), { rtol: 1e-5, atol: 1e-5, scale: 'max' });
    }
  });

  it('scatterAdd: indices of rank 2, small dispatch limits (2-D grids), no indices, an out-of-range index', async () => {
    const lim = { maxComputeWorkgroupsPerDimension: 4 };
    const idx = ints(700, 40, [35, 20]);
    const u = randomTensor([5, 35, 20, 3], r);
    const f = scatter(1, 40);
    const got = await gpuRun(gatherKernels, 'scatterAdd', f, [u, idx], 'register', lim);
    expect(got.dispatches.some((d) => d.workgroups[1] > 1)).toBe(true);
    expectClose(got.data, reference(f, [u, idx]), { rtol: 1e-5, atol: 1e-5, scale: 'max' });
    const x = randomTensor([5, 40, 3], r);
    const few = ints(40, 40, [8, 5]);
    const g = await gpuRun(gatherKernels, 'gather', gather(1), [x, few], 'register', lim);
    expect(g.dispatches[0].workgroups[1]).toBeGreaterThan(1);
    expectClose(g.data, reference(gather(1), [x, few]), { rtol: 0, atol: 0 });
    // past what a 2-D grid can hold: declined, not dispatched out of bounds
    const { n, inputs } = nodeOf('gather', gather(1), x, idx);
    expect(await runNode(gatherKernels.gather, n, inputs, 'register', lim)).toBeNull();
    const none = await gpuRun(gatherKernels, 'scatterAdd', scatter(0, 3), [
      randomTensor([0, 2], r),
      tensor(new Int32Array(0), { shape: [0], dtype: 'int32' }),
    ]);
    expect(Array.from(none.data)).toEqual([0, 0, 0, 0, 0, 0]);
    const bad = await gpuRun(gatherKernels, 'scatterAdd', scatter(0, 3), [
      randomTensor([4, 2], r),
      tensor([0, 2, 3, 1], { dtype: 'int32' }),
    ]);
    expect(Array.from(bad.data).every(Number.isNaN)).toBe(true);
  });
});
