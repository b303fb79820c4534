/**
 * The browser demo page (examples/web/index.html): trains the MNIST MLP with adjoint straight
 * from dist/ (no bundler), plots loss and held-out accuracy live, classifies digits drawn on a
 * canvas, and downloads / loads the parameters as a safetensors checkpoint.
 *
 * init() runs with its defaults: backend 'auto' (wasm with a worker pool, the page being
 * cross-origin isolated, plus WebGPU where there is an adapter placement finds worth using).
 * URL parameters override the training settings: ?epochs=8&hidden=256&batch=64&lr=0.003&seed=0.
 *
 * window.demo exposes the state for tests (test/demo-web.test.ts) and the console.
 */
import * as A from '/dist/index.js';
import { createTrainer, DEFAULTS, decodeDigits, IMAGE_SIZE, NUM_CLASSES, SIDE } from './trainer.mjs';

const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));
const buttons = {
  train: /** @type {HTMLButtonElement} */ ($('train')),
  stop: /** @type {HTMLButtonElement} */ ($('stop')),
  reset: /** @type {HTMLButtonElement} */ ($('reset')),
  save: /** @type {HTMLButtonElement} */ ($('save')),
  load: /** @type {HTMLInputElement} */ ($('load')),
};

const demo = {
  phase: 'starting',
  error: /** @type {string | null} */ (null),
  device: /** @type {Record<string, unknown>} */ ({}),
  /** Mean training loss every few steps, and held-out accuracy after each epoch (and after a load). */
  losses: /** @type {{ step: number, loss: number }[]} */ ([]),
  accuracies: /** @type {{ step: number, accuracy: number, source: string }[]} */ ([]),
  prediction: /** @type {{ label: number, probs: number[] } | null} */ (null),
  /** Predictions made so far (one per finished stroke). */
  predictions: 0,
  trainer: /** @type {any} */ (null),
  data: /** @type {any} */ (null),
  /** Held-out digit i as 784 intensities in [0, 1] and its label. */
  testDigit(i) {
    const t = demo.data.test;
    return {
      pixels: Array.from(t.images.subarray(i * IMAGE_SIZE, (i + 1) * IMAGE_SIZE)),
      label: t.labels[i],
    };
  },
  /** Class probabilities for 784 intensities (the model as it is now). */
  async classify(pixels) {
    return Array.from(await demo.trainer.predict(Float32Array.from(pixels), 1));
  },
};
/** @type {any} */ (window).demo = demo;

function setStatus(text) {
  $('status').textContent = text;
}

// ---------------------------------------------------------------------------------------------------------------
// the plot: training loss (left axis) and held-out accuracy (right axis) against the step

const plot = /** @type {HTMLCanvasElement} */ ($('plot'));

function drawPlot() {
  const ctx = /** @type {CanvasRenderingContext2D} */ (plot.getContext('2d'));
  const W = plot.width;
  const H = plot.height;
  const m = { l: 48, r: 52, t: 16, b: 30 };
  const w = W - m.l - m.r;
  const h = H - m.t - m.b;
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, W, H);
  const trainer = demo.trainer;
  const maxStep = Math.max(trainer ? trainer.totalSteps : 1, ...demo.losses.map((p) => p.step), 1);
  const maxLoss = Math.max(0.5, ...demo.losses.map((p) => p.loss));
  const X = (s) => m.l + (s / maxStep) * w;
  const YL = (v) => m.t + h - (Math.min(v, maxLoss) / maxLoss) * h;
  const YA = (a) => m.t + h - a * h;
  // grid and axes
  ctx.strokeStyle = '#eee';
  ctx.lineWidth = 1;
  ctx.font = '11px system-ui, sans-serif';
  for (let i = 0; i <= 5; i++) {
    const y = m.t + (i / 5) * h;
    ctx.beginPath();
    ctx.moveTo(m.l, y);
    ctx.lineTo(m.l + w, y);
    ctx.stroke();
    ctx.fillStyle = '#36c';
    ctx.textAlign = 'right';
    ctx.fillText(((1 - i / 5) * maxLoss).toFixed(2), m.l - 6, y + 4);
    ctx.fillStyle = '#2a7';
    ctx.textAlign = 'left';
    ctx.fillText(`${((1 - i / 5) * 100).toFixed(0)}%`, m.l + w + 6, y + 4);
  }
  ctx.strokeStyle = '#999';
  ctx.strokeRect(m.l, m.t, w, h);
  ctx.fillStyle = '#555';
  ctx.textAlign = 'center';
  ctx.fillText(`step (of ${maxStep})`, m.l + w / 2, H - 8);
  ctx.textAlign = 'left';
  ctx.fillStyle = '#36c';
  ctx.fillText('loss', m.l + 6, m.t + 12);
  ctx.fillStyle = '#2a7';
  ctx.fillText('held-out accuracy', m.l + 44, m.t + 12);
  // loss
  if (demo.losses.length) {
    ctx.strokeStyle = '#36c';
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    demo.losses.forEach((p, i) => {
      if (i) ctx.lineTo(X(p.step), YL(p.loss));
      else ctx.moveTo(X(p.step), YL(p.loss));
    });
    ctx.stroke();
  }
  // accuracy
  if (demo.accuracies.length) {
    ctx.strokeStyle = '#2a7';
    ctx.fillStyle = '#2a7';
    ctx.lineWidth = 2;
    ctx.beginPath();
    demo.accuracies.forEach((p, i) => {
      if (i) ctx.lineTo(X(p.step), YA(p.accuracy));
      else ctx.moveTo(X(p.step), YA(p.accuracy));
    });
    ctx.stroke();
    for (const p of demo.accuracies) {
      ctx.beginPath();
      ctx.arc(X(p.step), YA(p.accuracy), 3, 0, 2 * Math.PI);
      ctx.fill();
    }
    const last = demo.accuracies[demo.accuracies.length - 1];
    ctx.textAlign = 'right';
    ctx.fillText(
      `${(last.accuracy * 100).toFixed(2)}%`,
      Math.max(X(last.step) - 6, m.l + 40),
      YA(last.accuracy) - 6,
    );
  }
}

// ---------------------------------------------------------------------------------------------------------------
// drawing and classifying

const draw = /** @type {HTMLCanvasElement} */ ($('draw'));
const dctx = /** @type {CanvasRenderingContext2D} */ (draw.getContext('2d', { willReadFrequently: true }));

function clearDrawing() {
  dctx.fillStyle = '#000';
  dctx.fillRect(0, 0, draw.width, draw.height);
  demo.prediction = null;
  $('prediction').textContent = '–';
  $('bars').replaceChildren();
}

/**
 * The drawing as MNIST prepares its digits: the ink's bounding box scaled to fit 20×20 (aspect
 * kept, area-averaged), placed in 28×28 with its center of mass at the center. Null when empty.
 */
function drawingAsDigit() {
  const { width: W, height: H } = draw;
  const rgba = dctx.getImageData(0, 0, W, H).data;
  const ink = new Float32Array(W * H);
  let x0 = W;
  let y0 = H;
  let x1 = -1;
  let y1 = -1;
  for (let i = 0; i < W * H; i++) {
    const v = rgba[4 * i] / 255;
    ink[i] = v;
    if (v > 0.1) {
      const x = i % W;
      const y = (i - x) / W;
      if (x < x0) x0 = x;
      if (x > x1) x1 = x;
      if (y < y0) y0 = y;
      if (y > y1) y1 = y;
    }
  }
  if (x1 < 0) return null;
  const side = Math.max(x1 - x0 + 1, y1 - y0 + 1);
  const cx0 = (x0 + x1 + 1) / 2 - side / 2;
  const cy0 = (y0 + y1 + 1) / 2 - side / 2;
  // 20×20 box: each cell averages the source pixels under it (sampled on a fine grid)
  const box = new Float32Array(400);
  const k = Math.max(2, Math.ceil(side / 20) * 2);
  for (let by = 0; by < 20; by++)
    for (let bx = 0; bx < 20; bx++) {
      let sum = 0;
      for (let sy = 0; sy < k; sy++)
        for (let sx = 0; sx < k; sx++) {
          const x = Math.floor(cx0 + ((bx + (sx + 0.5) / k) * side) / 20);
          const y = Math.floor(cy0 + ((by + (sy + 0.5) / k) * side) / 20);
          if (x >= 0 && x < W && y >= 0 && y < H) sum += ink[y * W + x];
        }
      box[by * 20 + bx] = sum / (k * k);
    }
  let mass = 0;
  let mx = 0;
  let my = 0;
  for (let y = 0; y < 20; y++)
    for (let x = 0; x < 20; x++) {
      const v = box[y * 20 + x];
      mass += v;
      mx += v * (x + 0.5);
      my += v * (y + 0.5);
    }
  const ox = Math.round(SIDE / 2 - mx / mass);
  const oy = Math.round(SIDE / 2 - my / mass);
  const out = new Float32Array(IMAGE_SIZE);
  for (let y = 0; y < 20; y++)
    for (let x = 0; x < 20; x++) {
      const tx = x + ox;
      const ty = y + oy;
      if (tx >= 0 && tx < SIDE && ty >= 0 && ty < SIDE) out[ty * SIDE + tx] = Math.min(1, box[y * 20 + x]);
    }
  return out;
}

let classifying = Promise.resolve();

function classifyDrawing() {
  classifying = classifying.then(async () => {
    const px = drawingAsDigit();
    if (!px || !demo.trainer) return;
    const probs = Array.from(await demo.trainer.predict(px, 1));
    let best = 0;
    for (let c = 1; c < NUM_CLASSES; c++) if (probs[c] > probs[best]) best = c;
    demo.prediction = { label: best, probs };
    demo.predictions++;
    $('prediction').textContent = `${best}  (${(probs[best] * 100).toFixed(1)}%)`;
    const rows = [];
    for (let c = 0; c < NUM_CLASSES; c++) {
      const name = document.createElement('span');
      name.textContent = String(c);
      const bar = document.createElement('span');
      bar.className = 'bar';
      bar.style.width = `${Math.max(1, probs[c] * 150)}px`;
      const pct = document.createElement('span');
      pct.textContent = `${(probs[c] * 100).toFixed(1)}%`;
      if (c === best) for (const e of [name, pct]) e.className = 'best';
      rows.push(name, bar, pct);
    }
    $('bars').replaceChildren(...rows);
  });
  return classifying;
}

let drawing = false;
let last = { x: 0, y: 0 };
const pos = (e) => {
  const r = draw.getBoundingClientRect();
  return {
    x: ((e.clientX - r.left) * draw.width) / r.width,
    y: ((e.clientY - r.top) * draw.height) / r.height,
  };
};
function stroke(from, to) {
  if (from.x === to.x && from.y === to.y) {
    // a dot (a zero-length line draws nothing)
    dctx.fillStyle = '#fff';
    dctx.beginPath();
    dctx.arc(from.x, from.y, 9, 0, 2 * Math.PI);
    dctx.fill();
    return;
  }
  dctx.strokeStyle = '#fff';
  dctx.lineWidth = 18;
  dctx.lineCap = 'round';
  dctx.lineJoin = 'round';
  dctx.beginPath();
  dctx.moveTo(from.x, from.y);
  dctx.lineTo(to.x, to.y);
  dctx.stroke();
}
draw.addEventListener('pointerdown', (e) => {
  drawing = true;
  draw.setPointerCapture?.(e.pointerId);
  last = pos(e);
  stroke(last, last);
});
draw.addEventListener('pointermove', (e) => {
  if (!drawing) return;
  const p = pos(e);
  stroke(last, p);
  last = p;
});
const endStroke = () => {
  if (!drawing) return;
  drawing = false;
  void classifyDrawing();
};
draw.addEventListener('pointerup', endStroke);
draw.addEventListener('pointerleave', endStroke);
$('clear').addEventListener('click', clearDrawing);

// ---------------------------------------------------------------------------------------------------------------
// training, checkpoints

let stopRequested = false;

function setBusy(busy) {
  buttons.train.disabled = busy;
  buttons.reset.disabled = busy;
  buttons.save.disabled = busy;
  buttons.load.disabled = busy;
  buttons.stop.disabled = !busy;
}

async function train() {
  const t = demo.trainer;
  setBusy(true);
  stopRequested = false;
  demo.phase = 'training';
  const t0 = performance.now();
  const secs = () => ((performance.now() - t0) / 1000).toFixed(1);
  try {
    await t.train({
      onStep: async ({ step, epoch, loss }) => {
        demo.losses.push({ step, loss });
        setStatus(
          `epoch ${epoch}/${t.cfg.epochs}, step ${step}/${t.totalSteps}, loss ${loss.toFixed(4)}, ${secs()} s`,
        );
        drawPlot();
        await new Promise((r) => setTimeout(r, 0)); // let the page paint and take input
      },
      onEpoch: ({ epoch, step, accuracy }) => {
        demo.accuracies.push({ step, accuracy, source: `epoch ${epoch}` });
        drawPlot();
      },
      shouldStop: () => stopRequested,
    });
    const acc = demo.accuracies[demo.accuracies.length - 1];
    setStatus(
      `${stopRequested ? 'stopped' : 'done'} after ${t.step} steps in ${secs()} s` +
        (acc
          ? `: held-out accuracy ${(acc.accuracy * 100).toFixed(2)}% on ${demo.data.test.count} digits`
          : ''),
    );
    demo.phase = stopRequested ? 'stopped' : 'trained';
  } catch (e) {
    fail(e);
  } finally {
    setBusy(false);
    showDevice();
    void classifyDrawing();
  }
}

async function save() {
  const bytes = await demo.trainer.save();
  const blob = new Blob([bytes], { type: 'application/octet-stream' });
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = `adjoint-mnist-mlp-${demo.trainer.sizes.join('-')}.safetensors`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
  setStatus(`checkpoint: ${(bytes.length / 1024).toFixed(0)} KiB of safetensors`);
}

async function load(file) {
  setBusy(true);
  try {
    demo.trainer.load(new Uint8Array(await file.arrayBuffer()));
    const accuracy = await demo.trainer.accuracy();
    demo.accuracies.push({ step: demo.trainer.step, accuracy, source: 'loaded' });
    drawPlot();
    demo.phase = 'loaded';
    setStatus(`loaded ${file.name}: held-out accuracy ${(accuracy * 100).toFixed(2)}%`);
    void classifyDrawing();
  } catch (e) {
    setStatus(`could not load ${file.name}: ${e instanceof Error ? e.message : String(e)}`);
  } finally {
    setBusy(false);
  }
}

function reset() {
  demo.trainer.reset(Math.floor(Math.random() * 1e6));
  demo.losses = [];
  demo.accuracies = [];
  demo.phase = 'ready';
  drawPlot();
  setStatus('parameters reset: train again, or load a checkpoint');
  void classifyDrawing();
}

buttons.train.addEventListener('click', () => void train());
buttons.stop.addEventListener('click', () => {
  stopRequested = true;
});
buttons.reset.addEventListener('click', reset);
buttons.save.addEventListener('click', () => void save().catch(fail));
buttons.load.addEventListener('change', () => {
  const f = buttons.load.files?.[0];
  buttons.load.value = '';
  if (f) void load(f);
});

function fail(e) {
  demo.error = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  demo.phase = 'error';
  setStatus(`error: ${demo.error}`);
  console.error(e);
}

function showDevice() {
  const s = A.memoryStats();
  const leaf = demo.trainer ? A.treeFlatten(demo.trainer.params).leaves[0] : null;
  demo.device = {
    backend: s.backend,
    gpu: s.gpu,
    threads: s.threads,
    workers: s.workers,
    crossOriginIsolated: globalThis.crossOriginIsolated === true,
    paramsOn: leaf?.device ?? null,
    gpuRuns: s.gpuRuns,
  };
  const gpu = s.gpu
    ? `WebGPU available to placement (${s.gpuRuns} GPU runs so far)`
    : 'no WebGPU adapter placement would use (none, or a software one)';
  $('device').textContent =
    `device: ${s.backend} on ${s.threads} thread${s.threads === 1 ? '' : 's'} (${s.workers} worker${s.workers === 1 ? '' : 's'}), ` +
    `${gpu}; parameters live on ${leaf?.device ?? '?'}; cross-origin isolated: ${demo.device.crossOriginIsolated ? 'yes' : 'no'}`;
}

// ---------------------------------------------------------------------------------------------------------------
// start

async function main() {
  clearDrawing();
  drawPlot();
  await A.init();
  showDevice();
  const res = await fetch('/data/mnist.bin');
  if (!res.ok) throw new Error(`GET /data/mnist.bin: HTTP ${res.status}`);
  demo.data = decodeDigits(await res.arrayBuffer());
  const q = new URLSearchParams(location.search);
  const opts = {};
  for (const k of Object.keys(DEFAULTS)) if (q.has(k)) opts[k] = Number(q.get(k));
  demo.trainer = createTrainer(A, demo.data, opts);
  const c = demo.trainer.cfg;
  setStatus(
    `${demo.data.train.count} training digits, ${demo.data.test.count} held out; MLP ${demo.trainer.sizes.join('-')}, ` +
      `Adam lr ${c.lr} (cosine), batch ${c.batch}, ${c.epochs} epochs: press Train`,
  );
  drawPlot();
  showDevice();
  demo.phase = 'ready';
  setBusy(false);
}

main().catch(fail);
