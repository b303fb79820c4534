#!/usr/bin/env node
// tf.layers model.fit on TensorFlow.js backends: 'adjoint' (adjoint/tfjs) against 'wasm'
// (tfjs-backend-wasm, XNNPACK), one thread each. Two models on the `mnist` digits:
//   mlp  784-512-512-10 (relu, softmax), SGD, batch 256
//   cnn  conv 3x3x32 → max pool → conv 3x3x64 → max pool → dense 128 → dense 10, SGD, batch 64
// tfjs-backend-wasm registers no Conv2DBackpropFilter kernel, so it cannot train the CNN; the
// CNN is then also timed on tfjs-backend-cpu (one epoch).
// Each (model, backend) runs in its own child process: same seeded weights, one warm-up fit on
// a few batches (compilation, wasm tier-up), then `--reps` timed epochs; the best and the median
// epoch are reported, and the ratio wasm / adjoint of the medians.
//
//   node bench/tfjs-layers.mjs [--models mlp,cnn] [--mlp-samples 8192] [--cnn-samples 1024] [--reps 3]
//                              [--cnn-cpu-samples 64] [--adjoint-only]
// Needs dist/ (npm run build).
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { arg } from './lib/args.mjs';

const MODELS = {
  mlp: { batch: 256, samples: Number(arg('mlp-samples', 8192)), shape: [784] },
  cnn: { batch: 64, samples: Number(arg('cnn-samples', 1024)), shape: [28, 28, 1] },
};

async function child(model, backend, reps, mode, samples) {
  const tf = await import('@tensorflow/tfjs');
  if (backend === 'wasm') {
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    wasm.setThreadsCount(1);
  } else if (backend === 'adjoint') {
    const { registerTfjsBackend } = await import('../dist/tfjs.js');
    await registerTfjsBackend(tf, { init: { threads: 1 } });
  }
  await tf.setBackend(backend);
  await tf.ready();
  const { loadMnist, mulberry32, slice } = await import('../examples/lib/mnist-data.mjs');
  const spec = MODELS[model];
  const { train } = loadMnist({ testSize: 1000, seed: 1 });
  const d = slice(train, 0, Math.min(samples || spec.samples, train.count));
  const m = tf.sequential();
  if (model === 'mlp') {
    m.add(tf.layers.dense({ units: 512, activation: 'relu', inputShape: [784] }));
    m.add(tf.layers.dense({ units: 512, activation: 'relu' }));
  } else {
    m.add(tf.layers.conv2d({ inputShape: [28, 28, 1], filters: 32, kernelSize: 3, activation: 'relu' }));
    m.add(tf.layers.maxPooling2d({ poolSize: 2 }));
    m.add(tf.layers.conv2d({ filters: 64, kernelSize: 3, activation: 'relu' }));
    m.add(tf.layers.maxPooling2d({ poolSize: 2 }));
    m.add(tf.layers.flatten());
    m.add(tf.layers.dense({ units: 128, activation: 'relu' }));
  }
  m.add(tf.layers.dense({ units: 10, activation: 'softmax' }));
  const rnd = mulberry32(11);
  m.setWeights(
    m.getWeights().map((w) => {
      const n = w.size;
      const v = new Float32Array(n);
      if (w.shape.length > 1) {
        const lim = Math.sqrt(6 / (n / w.shape.at(-1) + w.shape.at(-1)));
        for (let i = 0; i < n; i++) v[i] = (rnd() * 2 - 1) * lim;
      }
      return tf.tensor(v, w.shape);
    }),
  );
  m.compile({ optimizer: tf.train.sgd(0.05), loss: 'sparseCategoricalCrossentropy' });
  const x = tf.tensor(d.images, [d.count, ...spec.shape]);
  const y = tf.tensor(d.labels, [d.count, 1], 'float32');
  // Warm-up: three batches (tfjs-backend-cpu, minutes per CNN epoch here: a few samples).
  const warm = backend === 'cpu' ? 8 : spec.batch * 3;
  const wx = x.slice(0, warm);
  const wy = y.slice(0, warm);
  try {
    if (mode !== 'predict')
      await m.fit(wx, wy, { epochs: 1, batchSize: spec.batch, shuffle: false, verbose: 0 });
  } catch (e) {
    process.send({ error: String(e.message ?? e).split('\n')[0] });
    return;
  }
  const times = [];
  let loss = 0;
  if (mode === 'predict') {
    for (let r = 0; r < reps + 1; r++) {
      const t0 = performance.now();
      const p = m.predict(x, { batchSize: 256 });
      p.dataSync();
      p.dispose();
      if (r > 0) times.push(performance.now() - t0);
    }
    process.send({ times, loss: 0, samples: d.count, batch: 256 });
    return;
  }
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    const h = await m.fit(x, y, { epochs: 1, batchSize: spec.batch, shuffle: false, verbose: 0 });
    times.push(performance.now() - t0);
    loss = h.history.loss[0];
  }
  process.send({ times, loss, samples: d.count, batch: spec.batch });
}

function run(model, backend, reps, mode = 'fit', samples = 0) {
  return new Promise((resolve, reject) => {
    const c = fork(
      fileURLToPath(import.meta.url),
      ['--child', model, backend, String(reps), mode, String(samples), ...process.argv.slice(2)],
      {
        env: { ...process.env, ADJOINT_THREADS: '1' },
        stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      },
    );
    let out = null;
    c.on('message', (m) => {
      out = m;
    });
    c.on('exit', (code) =>
      out ? resolve(out) : reject(new Error(`${model}/${backend} exited with ${code}`)),
    );
  });
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

if (process.argv[2] === '--child') {
  const [model, backend, reps, mode, samples] = process.argv.slice(3);
  await child(model, backend, Number(reps), mode, Number(samples));
} else {
  const reps = Number(arg('reps', 3));
  const models = arg('models', 'mlp,cnn').split(',');
  const cpuSamples = Number(arg('cnn-cpu-samples', 64));
  const adjointOnly = process.argv.includes('--adjoint-only');
  const perSample = (r) => median(r.times) / r.samples;
  const show = (label, backend, r) =>
    console.log(
      r.error
        ? `  ${label} ${backend.padEnd(8)} cannot run: ${r.error}`
        : `  ${label} ${backend.padEnd(8)} ${r.samples} samples, batch ${r.batch}: best ${Math.min(...r.times).toFixed(0)} ms, median ${median(r.times).toFixed(0)} ms (${((1000 * median(r.times)) / r.samples).toFixed(0)} µs/sample)${r.loss ? ` loss ${r.loss.toFixed(4)}` : ''}`,
    );
  const ratio = (label, base, a, b) => {
    if (a.error || b.error) return;
    console.log(
      `  ${label}: adjoint is ${(perSample(b) / perSample(a)).toFixed(2)}x tfjs-backend-${base} (median, per sample)`,
    );
  };
  console.log(`tf.layers on TensorFlow.js backends, one thread each (${reps} timed reps each; median)`);
  for (const model of models) {
    const label = `${model} fit epoch`;
    const a = await run(model, 'adjoint', reps);
    show(label, 'adjoint', a);
    if (!adjointOnly) {
      const w = await run(model, 'wasm', reps);
      show(label, 'wasm', w);
      ratio(label, 'wasm', a, w);
      if (w.error) {
        // tfjs-backend-wasm cannot train it: tfjs-backend-cpu (slow on convolutions: fewer samples).
        const c = await run(model, 'cpu', 1, 'fit', cpuSamples);
        show(label, 'cpu', c);
        ratio(label, 'cpu', a, c);
      }
    }
    if (model === 'cnn') {
      const pl = 'cnn predict';
      const pa = await run(model, 'adjoint', reps, 'predict');
      show(pl, 'adjoint', pa);
      if (adjointOnly) continue;
      const pw = await run(model, 'wasm', reps, 'predict');
      show(pl, 'wasm', pw);
      ratio(pl, 'wasm', pa, pw);
    }
  }
}
