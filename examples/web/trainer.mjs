/**
 * The browser demo's model and training loop, written against the package's public API passed in
 * as `A` (the page passes dist/index.js), so the same code runs in the page and in a Node check.
 *
 * Model: the MNIST MLP (784 -> hidden -> 10, ReLU), softmax cross-entropy, Adam with a cosine-
 * decayed learning rate; the training step (loss, gradients, update) is one jit plan.
 */

import { mulberry32, shuffled } from '../lib/shuffle.mjs';

export const SIDE = 28;
export const IMAGE_SIZE = SIDE * SIDE;
export const NUM_CLASSES = 10;

/** Settings that reach >= 95% held-out accuracy on the `mnist` package's digits in a few epochs. */
export const DEFAULTS = { hidden: 256, batch: 64, epochs: 8, lr: 3e-3, seed: 0, shift: 0.5 };

/**
 * The digits as the server sends them (examples/web/serve.mjs, /data/mnist.bin): a 16-byte header
 * ('ADJM', version 1, train count, test count; little-endian u32), the labels as bytes, then the
 * pixels as bytes (0..255), train images first, 784 per image, row-major.
 */
export function decodeDigits(buf) {
  const bytes = new Uint8Array(buf);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = String.fromCharCode(...bytes.subarray(0, 4));
  if (magic !== 'ADJM' || view.getUint32(4, true) !== 1) throw new Error('not an ADJM v1 digit file');
  const trainCount = view.getUint32(8, true);
  const testCount = view.getUint32(12, true);
  const n = trainCount + testCount;
  const labels = bytes.subarray(16, 16 + n);
  const pixels = bytes.subarray(16 + n, 16 + n + n * IMAGE_SIZE);
  if (pixels.length !== n * IMAGE_SIZE) throw new Error('digit file is truncated');
  const images = new Float32Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) images[i] = pixels[i] / 255;
  const split = (from, count) => ({
    count,
    images: images.subarray(from * IMAGE_SIZE, (from + count) * IMAGE_SIZE),
    labels: Int32Array.from(labels.subarray(from, from + count)),
  });
  return { train: split(0, trainCount), test: split(trainCount, testCount) };
}

/** Copies image i of `images` into `out` at `at`, shifted by (dx, dy) pixels (augmentation). */
function copyShifted(images, i, out, at, dx, dy) {
  const src = i * IMAGE_SIZE;
  if (dx === 0 && dy === 0) {
    out.set(images.subarray(src, src + IMAGE_SIZE), at);
    return;
  }
  out.fill(0, at, at + IMAGE_SIZE);
  for (let y = 0; y < SIDE; y++) {
    const sy = y - dy;
    if (sy < 0 || sy >= SIDE) continue;
    for (let x = 0; x < SIDE; x++) {
      const sx = x - dx;
      if (sx >= 0 && sx < SIDE) out[at + y * SIDE + x] = images[src + sy * SIDE + sx];
    }
  }
}

/**
 * A trainer over `data` ({ train, test } from decodeDigits). `train(hooks)` runs the epochs,
 * calling hooks.onStep({ step, epoch, loss }) every few steps and hooks.onEpoch({ epoch,
 * accuracy }) after each epoch (held-out accuracy); hooks.shouldStop() ends it early.
 */
export function createTrainer(A, data, options = {}) {
  const cfg = { ...DEFAULTS, ...options };
  const { nn, optim, jit, valueAndGrad, tensor, softmax, io } = A;
  const sizes = [IMAGE_SIZE, cfg.hidden, NUM_CLASSES];
  const stepsPerEpoch = Math.floor(data.train.count / cfg.batch);
  const totalSteps = cfg.epochs * stepsPerEpoch;

  const lossFn = (p, x, y) => nn.softmaxCrossEntropy(nn.mlp.apply(p, x), y);
  const opt = optim.adam({ lr: optim.cosineDecay(cfg.lr, totalSteps) });
  const trainStep = jit((p, s, x, y) => {
    const [loss, grads] = valueAndGrad(lossFn)(p, x, y);
    const [params, state] = opt.update(grads, s, p);
    return { loss, params, state };
  });
  const probsOf = jit((p, x) => softmax(nn.mlp.apply(p, x)));

  const t = {
    cfg,
    sizes,
    stepsPerEpoch,
    totalSteps,
    params: nn.mlp.init(sizes, { seed: cfg.seed }),
    state: null,
    step: 0,
    /** Fresh random parameters and optimizer state (the plot starts again). */
    reset(seed = cfg.seed) {
      t.params = nn.mlp.init(sizes, { seed });
      t.state = opt.init(t.params);
      t.step = 0;
    },
    /** Class probabilities for n images (Float32Array n*784), as a Float32Array n*10. */
    async predict(images, n = images.length / IMAGE_SIZE) {
      const p = probsOf(t.params, tensor(images, { shape: [n, IMAGE_SIZE] }));
      return /** @type {Float32Array} */ (await p.data());
    },
    /** Accuracy on the held-out digits (never trained on), in chunks of 500. */
    async accuracy(split = data.test) {
      let right = 0;
      const chunk = 500;
      for (let start = 0; start < split.count; start += chunk) {
        const n = Math.min(chunk, split.count - start);
        const probs = await t.predict(split.images.subarray(start * IMAGE_SIZE, (start + n) * IMAGE_SIZE), n);
        for (let i = 0; i < n; i++) {
          let best = 0;
          for (let c = 1; c < NUM_CLASSES; c++)
            if (probs[i * NUM_CLASSES + c] > probs[i * NUM_CLASSES + best]) best = c;
          if (best === split.labels[start + i]) right++;
        }
      }
      return right / split.count;
    },
    async train(hooks = {}) {
      const { onStep = () => {}, onEpoch = () => {}, shouldStop = () => false, every = 10 } = hooks;
      const rand = mulberry32(cfg.seed + 1);
      const x = new Float32Array(cfg.batch * IMAGE_SIZE);
      const y = new Int32Array(cfg.batch);
      const { images, labels } = data.train;
      for (let epoch = 1; epoch <= cfg.epochs; epoch++) {
        const order = shuffled(data.train.count, rand);
        let sum = 0;
        let seen = 0;
        for (let s = 0; s < stepsPerEpoch; s++) {
          for (let b = 0; b < cfg.batch; b++) {
            const i = order[s * cfg.batch + b];
            const shift = rand() < cfg.shift;
            const dx = shift ? Math.floor(rand() * 5) - 2 : 0;
            const dy = shift ? Math.floor(rand() * 5) - 2 : 0;
            copyShifted(images, i, x, b * IMAGE_SIZE, dx, dy);
            y[b] = labels[i];
          }
          const out = trainStep(
            t.params,
            t.state,
            tensor(x, { shape: [cfg.batch, IMAGE_SIZE] }),
            tensor(y, { dtype: 'int32' }),
          );
          t.params = out.params;
          t.state = out.state;
          t.step++;
          sum += (await out.loss.data())[0];
          seen++;
          if (seen === every || s === stepsPerEpoch - 1) {
            await onStep({ step: t.step, epoch, loss: sum / seen });
            sum = 0;
            seen = 0;
            if (shouldStop()) return;
          }
        }
        await onEpoch({ epoch, step: t.step, accuracy: await t.accuracy() });
        if (shouldStop()) return;
      }
    },
    /** The parameters as safetensors bytes. */
    save() {
      return io.saveSafetensorsAsync(t.params, { metadata: { model: `mlp ${sizes.join('-')}` } });
    },
    /** Parameters from safetensors bytes (names, shapes and dtypes checked against the model's). */
    load(bytes) {
      t.params = io.loadSafetensors(bytes, { like: t.params });
      t.state = opt.init(t.params);
    },
  };
  t.state = opt.init(t.params);
  return t;
}
