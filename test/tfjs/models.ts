/**
 * Helpers of the tf.layers tests: the `mnist` package digits as TF.js tensors, the MLP and CNN
 * used in the tests and the benchmark, and accuracy on held-out digits. Models are built on the
 * TF.js instance given; initial weights come from a seeded generator so both backends start from
 * the same numbers.
 */
import { loadMnist, mulberry32, slice } from '../../examples/lib/mnist-data.mjs';

/** The TF.js namespace object, loosely typed. */
type TF = any;

export interface Digits {
  trainX: Float32Array;
  trainY: Int32Array;
  testX: Float32Array;
  testY: Int32Array;
  nTrain: number;
  nTest: number;
}

export function digits(nTrain: number, nTest: number, seed = 1): Digits {
  const { train, test } = loadMnist({ testSize: nTest, seed });
  const tr = slice(train, 0, nTrain);
  const te = slice(test, 0, nTest);
  return {
    trainX: tr.images,
    trainY: tr.labels,
    testX: te.images,
    testY: te.labels,
    nTrain: tr.count,
    nTest: te.count,
  };
}

export function mlp(tf: TF, hidden: number[] = [64]): unknown {
  const m = tf.sequential();
  hidden.forEach((h, i) => {
    m.add(
      tf.layers.dense(
        i === 0 ? { units: h, activation: 'relu', inputShape: [784] } : { units: h, activation: 'relu' },
      ),
    );
  });
  m.add(tf.layers.dense({ units: 10, activation: 'softmax' }));
  return m;
}

/**
 * A small CNN: conv 5×5 (stride 2) → max pool 2×2 → dense 10, small enough for tfjs-backend-cpu
 * (whose convolutions are slow) to train in seconds.
 */
export function cnn(tf: TF): unknown {
  const m = tf.sequential();
  m.add(
    tf.layers.conv2d({ inputShape: [28, 28, 1], filters: 4, kernelSize: 5, strides: 2, activation: 'relu' }),
  );
  m.add(tf.layers.maxPooling2d({ poolSize: 2 }));
  m.add(tf.layers.flatten());
  m.add(tf.layers.dense({ units: 10, activation: 'softmax' }));
  return m;
}

/** Replaces every weight with seeded uniform values in ±sqrt(6 / (fanIn + fanOut)) (Glorot), biases 0. */
export function seedWeights(tf: TF, model: TF, seed: number): void {
  const rnd = mulberry32(seed);
  const ws = model.getWeights().map((w: TF) => {
    const shape: number[] = w.shape;
    const n = shape.reduce((a, d) => a * d, 1);
    const v = new Float32Array(n);
    if (shape.length > 1) {
      const fanOut = shape[shape.length - 1];
      const fanIn = n / fanOut;
      const lim = Math.sqrt(6 / (fanIn + fanOut));
      for (let i = 0; i < n; i++) v[i] = (rnd() * 2 - 1) * lim;
    }
    return tf.tensor(v, shape);
  });
  model.setWeights(ws);
  for (const w of ws) w.dispose();
}

/** Fraction of test digits classified right. */
export function accuracy(tf: TF, model: TF, x: TF, labels: Int32Array): number {
  const pred = tf.tidy(() => model.predict(x).argMax(-1));
  const p = pred.dataSync() as Int32Array;
  pred.dispose();
  let ok = 0;
  for (let i = 0; i < labels.length; i++) if (p[i] === labels[i]) ok++;
  return ok / labels.length;
}
