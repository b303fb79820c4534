/**
 * The adjoint TF.js backend's contract: registration, storage with TF.js's reference counts,
 * bool storage, sync and async reads of lazy results, the pending-graph bound, typed errors, and
 * TF.js's own "not registered" error for kernels it does not provide.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { init, memoryStats, shutdown } from '../src/index';
import { registerTfjsBackend, TfjsBackendError, tfjsKernelNames } from '../src/tfjs/index';

beforeAll(async () => {
  expect(await registerTfjsBackend(tf, { init: { threads: 1 } })).toBe('adjoint');
  expect(await registerTfjsBackend(tf, { name: 'adjoint-eager', maxPending: 0 })).toBe('adjoint-eager');
  expect(await tf.setBackend('adjoint')).toBe(true);
});

afterAll(async () => {
  await tf.setBackend('cpu');
  shutdown();
});

/** The backend object TF.js holds. */
const backend = () => tf.engine().backend as any;

describe('adjoint as a TensorFlow.js backend', () => {
  it('registers the MLP, layers and CNN kernel sets', () => {
    const needed = `Add Sub Multiply RealDiv Pow Maximum Minimum SquaredDifference Greater GreaterEqual Less
      LessEqual Equal Select Neg Abs Square Sqrt Rsqrt Exp Log Log1p Sin Cos Floor Sign Reciprocal
      ClipByValue Relu Sigmoid Tanh Softmax Step BatchMatMul _FusedMatMul Sum Max Min Mean ArgMax
      Reshape Transpose Cast OneHot GatherV2 Slice Concat Tile Identity Fill ZerosLike OnesLike AddN
      Softplus LogSoftmax Conv2D Conv2DBackpropInput Conv2DBackpropFilter FusedConv2D
      DepthwiseConv2dNative DepthwiseConv2dNativeBackpropInput DepthwiseConv2dNativeBackpropFilter
      MaxPool MaxPoolGrad AvgPool AvgPoolGrad FusedBatchNorm Relu6 LeakyRelu Elu Prelu Erf Cumsum
      StridedSlice PadV2 Pack Unpack SplitV Range ArgMin`.split(/\s+/);
    for (const k of needed) expect(tfjsKernelNames, k).toContain(k);
    expect(tf.getKernel('BatchMatMul', 'adjoint')).toBeDefined();
  });

  it('computes lazily and reads synchronously and asynchronously', async () => {
    const a = tf.tensor2d([
      [1, 2],
      [3, 4],
    ]);
    const b = tf.tensor2d([
      [5, 6],
      [7, 8],
    ]);
    const c = tf.relu(tf.sub(tf.matMul(a, b), 20));
    expect(Array.from(c.dataSync())).toEqual([0, 2, 23, 30]);
    const d = tf.softmax(tf.tensor1d([1, 2, 3]));
    const v = await d.data();
    expect(v[0] + v[1] + v[2]).toBeCloseTo(1, 6);
    tf.dispose([a, b, c, d]);
  });

  it('stores bool as 0/1 and reads it back as Uint8Array', () => {
    const m = tf.greater(tf.tensor1d([1, 5, 3]), 2);
    expect(m.dtype).toBe('bool');
    const v = m.dataSync();
    expect(v).toBeInstanceOf(Uint8Array);
    expect(Array.from(v)).toEqual([0, 1, 1]);
    const w = tf.where(m, tf.tensor1d([10, 20, 30]), tf.tensor1d([-1, -2, -3]));
    expect(Array.from(w.dataSync())).toEqual([-1, 20, 30]);
    tf.dispose([m, w]);
  });

  it("follows TF.js's reference counts: a clone shares the data id until both are disposed", () => {
    const ids = backend().numDataIds();
    const x = tf.tensor1d([1, 2, 3]);
    const y = x.clone();
    expect(backend().numDataIds()).toBe(ids + 1);
    expect(backend().refCount(x.dataId)).toBe(2);
    x.dispose();
    expect(Array.from(y.dataSync())).toEqual([1, 2, 3]);
    y.dispose();
    expect(backend().numDataIds()).toBe(ids);
    expect(backend().refCount(x.dataId)).toBe(0);
  });

  it('bounds the pending graph: a loop that never reads runs every maxPending kernels', () => {
    const be = backend();
    const runs = be.runs;
    let x: tf.Tensor = tf.scalar(0);
    for (let i = 0; i < 3 * be.maxPending + 10; i++) {
      const y = tf.add(x, 1);
      x.dispose();
      x = y;
    }
    expect(be.runs - runs).toBeGreaterThanOrEqual(3);
    expect(x.dataSync()[0]).toBe(3 * be.maxPending + 10);
    x.dispose();
  });

  it('gives the same numbers eagerly (maxPending 0) as lazily', async () => {
    const f = () =>
      tf.tidy(() => {
        const x = tf.tensor2d([
          [0.5, -1],
          [2, 3],
        ]);
        const g = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(tf.tanh(v), tf.sigmoid(v))))(x);
        return Array.from(g.dataSync());
      });
    const lazy = f();
    await tf.setBackend('adjoint-eager');
    const eager = f();
    await tf.setBackend('adjoint');
    expect(eager).toEqual(lazy);
  });

  it('runs on a worker pool as the README shows (threads 2): a layers model trains to the same bits as on one thread', async () => {
    const run = async () => {
      const m = tf.sequential();
      m.add(
        tf.layers.dense({
          units: 64,
          activation: 'relu',
          inputShape: [32],
          kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }),
        }),
      );
      m.add(
        tf.layers.dense({
          units: 4,
          activation: 'softmax',
          kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }),
        }),
      );
      m.compile({ optimizer: tf.train.sgd(0.1), loss: 'categoricalCrossentropy' });
      const x = tf.tensor2d(
        Float32Array.from({ length: 512 * 32 }, (_, i) => Math.sin(i * 0.37)),
        [512, 32],
      );
      const y = tf.oneHot(
        tf.tensor1d(
          Int32Array.from({ length: 512 }, (_, i) => i % 4),
          'int32',
        ),
        4,
      );
      const h = await m.fit(x, y, { epochs: 2, batchSize: 128, shuffle: false, verbose: 0 });
      const p = m.predict(x) as tf.Tensor;
      const out = Array.from(await p.data());
      tf.dispose([x, y, p]);
      m.dispose();
      return { loss: h.history.loss as number[], out };
    };
    const one = await run();
    await init({ threads: 2 });
    try {
      expect(memoryStats().threads).toBe(2);
      const two = await run();
      expect(memoryStats().workers).toBeGreaterThan(0);
      expect(two.loss).toEqual(one.loss);
      expect(two.out).toEqual(one.out);
      expect(one.loss[1]).toBeLessThan(one.loss[0]);
    } finally {
      await init({ threads: 1 });
    }
  });

  it("gives TF.js's 'not registered' error for a kernel it does not provide (no fallback)", () => {
    const x = tf.tensor1d([3, 1, 2]);
    expect(() => tf.topk(x, 1)).toThrow(/Kernel 'TopK' not registered for backend 'adjoint'/);
    x.dispose();
  });

  it('typed errors: a dtype it does not store, a module that is not TF.js', async () => {
    expect(() => tf.tensor1d(['a', 'b'], 'string')).toThrow(TfjsBackendError);
    expect(() => tf.tensor1d(['a', 'b'], 'string')).toThrow(/write: dtype 'string' is not supported/);
    await expect(registerTfjsBackend({})).rejects.toThrow(TfjsBackendError);
    await expect(registerTfjsBackend({})).rejects.toThrow(/must be the TensorFlow.js module/);
  });
});
