/**
 * More tf.layers: batch normalization, separable, depthwise and 1-D convolutions, average and
 * global pooling, embeddings, LSTM and GRU, layer normalization, PReLU/SELU/ELU/softplus, trained
 * with model.fit (Adam) from the same initial weights on tfjs-backend-cpu and on adjoint: the
 * per-epoch losses agree to float32 rounding.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shutdown } from '../src/index';
import { registerTfjsBackend } from '../src/tfjs/index';

beforeAll(async () => {
  await registerTfjsBackend(tf, { init: { threads: 1 } });
});

afterAll(async () => {
  await tf.setBackend('cpu');
  shutdown();
});

function rand(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const v = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    v[i] = lo + ((hi - lo) * s) / 2 ** 32;
  }
  return v;
}

interface Case {
  name: string;
  build: () => tf.Sequential;
  x: () => tf.Tensor;
}

const labels = () =>
  tf.oneHot(
    tf.tensor1d(
      Array.from({ length: 48 }, (_, i) => (i * 7) % 4),
      'int32',
    ),
    4,
  );
const tokens = () =>
  tf.tensor2d(
    Array.from(rand(48 * 6, 5, 0, 20), (v) => Math.floor(v)),
    [48, 6],
    'int32',
  );

const cases: Case[] = [
  {
    name: 'conv + batch norm + average pool + separable conv + global pool',
    build: () => {
      const m = tf.sequential();
      m.add(tf.layers.conv2d({ inputShape: [8, 8, 3], filters: 4, kernelSize: 3, padding: 'same' }));
      m.add(tf.layers.batchNormalization());
      m.add(tf.layers.activation({ activation: 'relu' }));
      m.add(tf.layers.averagePooling2d({ poolSize: 2 }));
      m.add(tf.layers.separableConv2d({ filters: 4, kernelSize: 3, padding: 'same' }));
      m.add(tf.layers.globalAveragePooling2d({}));
      m.add(tf.layers.dense({ units: 4, activation: 'softmax' }));
      return m;
    },
    x: () => tf.tensor4d(rand(48 * 8 * 8 * 3, 1), [48, 8, 8, 3]),
  },
  {
    name: 'depthwise conv (stride 2) + ELU + leaky ReLU + same-padded max pool',
    build: () => {
      const m = tf.sequential();
      m.add(
        tf.layers.depthwiseConv2d({ inputShape: [8, 8, 3], kernelSize: 3, depthMultiplier: 2, strides: 2 }),
      );
      m.add(tf.layers.elu());
      m.add(tf.layers.leakyReLU());
      m.add(tf.layers.maxPooling2d({ poolSize: 2, padding: 'same' }));
      m.add(tf.layers.flatten());
      m.add(tf.layers.dense({ units: 4, activation: 'softmax' }));
      return m;
    },
    x: () => tf.tensor4d(rand(48 * 8 * 8 * 3, 2), [48, 8, 8, 3]),
  },
  {
    name: 'embedding + LSTM',
    build: () => {
      const m = tf.sequential();
      m.add(tf.layers.embedding({ inputDim: 20, outputDim: 5, inputLength: 6 }));
      m.add(tf.layers.lstm({ units: 8 }));
      m.add(tf.layers.dense({ units: 4, activation: 'softmax' }));
      return m;
    },
    x: tokens,
  },
  {
    name: 'embedding + conv1d + GRU',
    build: () => {
      const m = tf.sequential();
      m.add(tf.layers.embedding({ inputDim: 20, outputDim: 5, inputLength: 6 }));
      m.add(tf.layers.conv1d({ filters: 4, kernelSize: 2 }));
      m.add(tf.layers.gru({ units: 4 }));
      m.add(tf.layers.dense({ units: 4, activation: 'softmax' }));
      return m;
    },
    x: tokens,
  },
  {
    name: 'PReLU + SELU + layer norm + softplus',
    build: () => {
      const m = tf.sequential();
      m.add(tf.layers.dense({ inputShape: [6], units: 8 }));
      m.add(tf.layers.prelu());
      m.add(tf.layers.dense({ units: 8, activation: 'selu' }));
      m.add(tf.layers.layerNormalization());
      m.add(tf.layers.dense({ units: 8, activation: 'softplus' }));
      m.add(tf.layers.dense({ units: 4, activation: 'softmax' }));
      return m;
    },
    x: () => tf.tensor2d(rand(48 * 6, 3), [48, 6]),
  },
];

async function losses(
  backend: string,
  c: Case,
  init: Float32Array[] | null,
): Promise<[number[], Float32Array[]]> {
  await tf.setBackend(backend);
  const m = c.build();
  if (init) m.setWeights(m.getWeights().map((w, i) => tf.tensor(init[i], w.shape)));
  const weights = m.getWeights().map((w) => w.dataSync() as Float32Array);
  m.compile({ optimizer: tf.train.adam(0.01), loss: 'categoricalCrossentropy' });
  const x = c.x();
  const y = labels();
  const h = await m.fit(x, y, { epochs: 3, batchSize: 16, shuffle: false, verbose: 0 });
  tf.dispose([x, y]);
  m.dispose();
  return [h.history.loss as number[], weights];
}

describe('more tf.layers on the adjoint backend', () => {
  for (const c of cases)
    it(`${c.name}: the same losses as on tfjs-backend-cpu`, async () => {
      const [onCpu, init] = await losses('cpu', c, null);
      const [onAdjoint] = await losses('adjoint', c, init);
      for (let e = 0; e < onCpu.length; e++) expect(onAdjoint[e]).toBeCloseTo(onCpu[e], 3);
      // Training moved the loss (the comparison is not between two untrained models).
      expect(onCpu[2]).not.toBeCloseTo(onCpu[0], 3);
    }, 60_000);
});
