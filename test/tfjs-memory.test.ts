/**
 * Memory on the adjoint TF.js backend: TF.js's tensor count and the backend's data-id count stay
 * flat over 1,000 training steps (model.fit, whose steps read nothing, so the backend's bound
 * on pending kernels is what runs them, and trainOnBatch, which reads the loss every step);
 * disposing a model releases its buffers in adjoint.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { memoryStats, shutdown } from '../src/index';
import { registerTfjsBackend } from '../src/tfjs/index';
import { mlp, seedWeights } from './tfjs/models';

beforeAll(async () => {
  await registerTfjsBackend(tf, { init: { threads: 1 } });
  await tf.setBackend('adjoint');
});

afterAll(() => {
  shutdown();
});

const numDataIds = () => tf.engine().backend.numDataIds();

function data(n: number): [tf.Tensor, tf.Tensor] {
  const x = new Float32Array(n * 784);
  for (let i = 0; i < x.length; i++) x[i] = ((i * 7919) % 1000) / 1000;
  const y = new Float32Array(n);
  for (let i = 0; i < n; i++) y[i] = i % 10;
  return [tf.tensor2d(x, [n, 784]), tf.tensor2d(y, [n, 1])];
}

describe('memory on the adjoint TF.js backend', () => {
  it('tensor and data-id counts stay flat over 1,000 model.fit steps', async () => {
    const model = mlp(tf, [32]) as tf.Sequential;
    seedWeights(tf, model, 3);
    model.compile({ optimizer: tf.train.adam(0.001), loss: 'sparseCategoricalCrossentropy' });
    const [x, y] = data(4000);
    const tensors: number[] = [];
    const ids: number[] = [];
    const buffers: number[] = [];
    await model.fit(x, y, {
      epochs: 1,
      batchSize: 4,
      shuffle: false,
      verbose: 0,
      callbacks: {
        onBatchEnd: async () => {
          tensors.push(tf.memory().numTensors);
          ids.push(numDataIds());
          buffers.push(memoryStats().liveBuffers);
        },
      },
    });
    expect(tensors.length).toBe(1000);
    // After warm-up (the optimizer's slots exist from step 1), every step ends with the same counts.
    const settle = tensors[10];
    expect(Math.max(...tensors.slice(10))).toBe(settle);
    expect(Math.min(...tensors.slice(10))).toBe(settle);
    expect(Math.max(...ids.slice(10))).toBe(ids[10]);
    expect(Math.min(...ids.slice(10))).toBe(ids[10]);
    expect(Math.max(...buffers.slice(100))).toBeLessThanOrEqual(Math.max(...buffers.slice(10, 100)));
    console.log(
      `model.fit, 1000 steps: ${settle} tensors, ${ids[10]} data ids at every step after the 10th; adjoint buffers at most ${Math.max(...buffers)}`,
    );
    tf.dispose([x, y]);
    model.dispose();
  }, 120_000);

  it('tensor, data-id and adjoint buffer counts stay flat over 1,000 trainOnBatch steps', async () => {
    const model = mlp(tf, [32]) as tf.Sequential;
    seedWeights(tf, model, 4);
    model.compile({ optimizer: tf.train.sgd(0.05), loss: 'sparseCategoricalCrossentropy' });
    const [x, y] = data(16);
    const tensors: number[] = [];
    const ids: number[] = [];
    const buffers: number[] = [];
    for (let step = 0; step < 1000; step++) {
      await model.trainOnBatch(x, y);
      tensors.push(tf.memory().numTensors);
      ids.push(numDataIds());
      buffers.push(memoryStats().liveBuffers);
    }
    expect(new Set(tensors.slice(10)).size).toBe(1);
    expect(new Set(ids.slice(10)).size).toBe(1);
    // adjoint's own buffers: bounded (no growth from step 100 to step 1000).
    expect(Math.max(...buffers.slice(100))).toBeLessThanOrEqual(Math.max(...buffers.slice(10, 100)));
    console.log(
      `trainOnBatch, 1000 steps: ${tensors[999]} tensors, ${ids[999]} data ids, ${buffers[999]} adjoint buffers`,
    );
    tf.dispose([x, y]);
    model.dispose();
  }, 120_000);

  it('disposing a model releases its memory in adjoint', async () => {
    // adjoint keeps compiled plans (and their scratch) per graph structure: a first model fills
    // those caches; a second, identical one then must leave memory exactly where it found it.
    const trainAndDispose = async (check?: (during: ReturnType<typeof memoryStats>) => void) => {
      const model = mlp(tf, [256, 256]) as tf.Sequential;
      const optimizer = tf.train.adam(0.001);
      model.compile({ optimizer, loss: 'sparseCategoricalCrossentropy' });
      const [x, y] = data(64);
      await model.fit(x, y, { epochs: 2, batchSize: 32, verbose: 0 });
      check?.(memoryStats());
      tf.dispose([x, y]);
      model.dispose();
      // The optimizer's slot variables belong to the optimizer, not the model.
      optimizer.dispose();
    };
    await trainAndDispose();
    const before = memoryStats();
    const idsBefore = numDataIds();
    let during = before;
    await trainAndDispose((s) => {
      during = s;
    });
    const after = memoryStats();
    console.log(
      `adjoint live bytes: ${before.liveBytes} before, ${during.liveBytes} with the model, ${after.liveBytes} after dispose`,
    );
    // The weights and Adam's two slots: 3 × (784·256 + 256·256) floats at least.
    expect(during.liveBytes - before.liveBytes).toBeGreaterThan(3 * 4 * (784 * 256 + 256 * 256));
    expect(numDataIds()).toBe(idsBefore);
    expect(after.liveBytes).toBe(before.liveBytes);
    expect(after.liveBuffers).toBe(before.liveBuffers);
  }, 120_000);
});
