/**
 * tf.layers models trained with model.fit on the `mnist` digits: the same model, initial weights
 * and batch order on tfjs-backend-cpu and on adjoint reach the same held-out accuracy (within
 * 0.5 points).
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shutdown } from '../src/index';
import { registerTfjsBackend } from '../src/tfjs/index';
import { accuracy, cnn, type Digits, digits, mlp, seedWeights } from './tfjs/models';

let data: Digits;

beforeAll(async () => {
  await registerTfjsBackend(tf, { init: { threads: 1 } });
  data = digits(2000, 1000);
});

afterAll(async () => {
  await tf.setBackend('cpu');
  shutdown();
});

async function train(backend: string, make: () => any, shape: number[], epochs: number): Promise<number> {
  await tf.setBackend(backend);
  const model = make();
  seedWeights(tf, model, 7);
  model.compile({
    optimizer: tf.train.sgd(0.1),
    loss: 'sparseCategoricalCrossentropy',
    metrics: ['accuracy'],
  });
  const x = tf.tensor(data.trainX, [data.nTrain, ...shape]);
  const y = tf.tensor(data.trainY, [data.nTrain, 1], 'float32');
  await model.fit(x, y, { epochs, batchSize: 32, shuffle: false, verbose: 0 });
  const tx = tf.tensor(data.testX, [data.nTest, ...shape]);
  const acc = accuracy(tf, model, tx, data.testY);
  tf.dispose([x, y, tx]);
  model.dispose();
  return acc;
}

describe('tf.layers on the adjoint backend', () => {
  it('an MLP (784-64-10) reaches the accuracy it reaches on tfjs-backend-cpu, within 0.5 points', async () => {
    const onCpu = await train('cpu', () => mlp(tf, [64]), [784], 3);
    const onAdjoint = await train('adjoint', () => mlp(tf, [64]), [784], 3);
    console.log(
      `MLP held-out accuracy: cpu ${(onCpu * 100).toFixed(2)}%, adjoint ${(onAdjoint * 100).toFixed(2)}%`,
    );
    expect(onCpu).toBeGreaterThan(0.85);
    expect(Math.abs(onAdjoint - onCpu)).toBeLessThanOrEqual(0.005);
  }, 120_000);

  it('a small CNN (conv 5x5x4 stride 2, max pool, dense 10) reaches the accuracy it reaches on tfjs-backend-cpu, within 0.5 points', async () => {
    const onCpu = await train('cpu', () => cnn(tf), [28, 28, 1], 2);
    const onAdjoint = await train('adjoint', () => cnn(tf), [28, 28, 1], 2);
    console.log(
      `CNN held-out accuracy: cpu ${(onCpu * 100).toFixed(2)}%, adjoint ${(onAdjoint * 100).toFixed(2)}%`,
    );
    expect(onCpu).toBeGreaterThan(0.8);
    expect(Math.abs(onAdjoint - onCpu)).toBeLessThanOrEqual(0.005);
  }, 180_000);
});
