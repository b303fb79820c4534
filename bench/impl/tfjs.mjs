// TensorFlow.js peers: the wasm backend (XNNPACK, SIMD), the pure-JS cpu backend and the WebGPU
// backend (on the same Dawn GPU as adjoint's rows).
// @tensorflow/tfjs registers the gradients that tf.valueAndGrad and the optimizers need.
import { createRequire } from 'node:module';
import path from 'node:path';
import { adapterName, dawnGpu } from '../lib/gpu.mjs';

let tf;

/** backend: 'wasm' | 'cpu' | 'webgpu'. */
export async function setup({ backend }) {
  const require = createRequire(import.meta.url);
  // tfjs-backend-webgpu registers itself only where navigator.gpu exists when it is imported.
  if (backend === 'webgpu') globalThis.navigator = { gpu: await dawnGpu(), userAgent: 'node' };
  tf = await import('@tensorflow/tfjs');
  if (backend === 'webgpu') await import('@tensorflow/tfjs-backend-webgpu');
  let wasm = null;
  if (backend === 'wasm') {
    wasm = await import('@tensorflow/tfjs-backend-wasm');
    const dir = `${path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json'))}/dist/`;
    wasm.setWasmPaths(dir);
  }
  const ok = await tf.setBackend(backend);
  await tf.ready();
  if (!ok || tf.getBackend() !== backend)
    throw new Error(`tf.setBackend('${backend}') failed (active: ${tf.getBackend()})`);
  const info = { tfjs: tf.version.tfjs, backend: tf.getBackend() };
  if (wasm) {
    info.simd = tf.env().getBool('WASM_HAS_SIMD_SUPPORT');
    info.multithread = tf.env().getBool('WASM_HAS_MULTITHREAD_SUPPORT');
    info.threads = typeof wasm.getThreadsCount === 'function' ? wasm.getThreadsCount() : undefined;
  }
  if (backend === 'webgpu') {
    info.webgpu = require('@tensorflow/tfjs-backend-webgpu/package.json').version;
    info.adapter = await adapterName();
  }
  return info;
}

/** Returns rows [{ row, run }]; run() computes and reads back, resolving to Float32Array[] for checking. */
export function prepare(c, inp, rowName) {
  switch (c.kind) {
    case 'matmul': {
      const a = tf.tensor2d(inp.a, [inp.n, inp.n]);
      const b = tf.tensor2d(inp.b, [inp.n, inp.n]);
      const run = async () => {
        const y = tf.matMul(a, b);
        const out = await y.data();
        y.dispose();
        return [out];
      };
      return { rows: [{ row: rowName, run }], dispose: () => tf.dispose([a, b]) };
    }
    case 'ew': {
      const a = tf.tensor1d(inp.a);
      const b = tf.tensor1d(inp.b);
      const cc = tf.tensor1d(inp.c);
      let first = true;
      const run = async () => {
        const y = tf.tidy(() => tf.relu(tf.add(tf.mul(a, b), cc)));
        if (c.compute && !first) {
          // Kernels run when the ops are called (wasm and cpu backends are synchronous).
          y.dispose();
          return [];
        }
        first = false;
        const out = await y.data();
        y.dispose();
        return [out];
      };
      return { rows: [{ row: rowName, run }], dispose: () => tf.dispose([a, b, cc]) };
    }
    case 'mlp': {
      const vars = inp.layers.map((L) => ({
        w: tf.variable(tf.tensor2d(L.w, [L.fin, L.fout])),
        b: tf.variable(tf.tensor1d(L.b)),
      }));
      const x = tf.tensor2d(inp.x, [inp.batch, inp.layers[0].fin]);
      const y = tf.tensor2d(inp.onehot, [inp.batch, inp.layers.at(-1).fout]);
      const opt = tf.train.sgd(inp.lr);
      const lossFn = () => {
        let h = x;
        vars.forEach((L, i) => {
          h = tf.add(tf.matMul(h, L.w), L.b);
          if (i + 1 < vars.length) h = tf.relu(h);
        });
        return tf.losses.softmaxCrossEntropy(y, h); // mean over the batch
      };
      const run = async () => {
        const loss = opt.minimize(lossFn, true);
        const out = await loss.data();
        loss.dispose();
        return [out];
      };
      const dispose = () => {
        tf.dispose([x, y]);
        for (const L of vars) tf.dispose([L.w, L.b]);
        opt.dispose();
      };
      return { rows: [{ row: rowName, run }], dispose };
    }
    case 'chain': {
      const x = tf.tensor1d(inp.x);
      const w = tf.tensor1d(inp.w);
      const f = (x0) => {
        let y = x0;
        for (let i = 0; i < inp.ops; i++) {
          if (i % 3 === 0) y = tf.sin(y);
          else if (i % 3 === 1) y = tf.mul(y, w);
          else y = tf.add(y, x0);
        }
        return tf.sum(y);
      };
      const vg = tf.valueAndGrad(f);
      const run = async () => {
        const { value, grad } = tf.tidy(() => vg(x));
        const [v, g] = await Promise.all([value.data(), grad.data()]);
        tf.dispose([value, grad]);
        return [v, g];
      };
      return { rows: [{ row: rowName, run }], dispose: () => tf.dispose([x, w]) };
    }
    default:
      throw new Error(`tfjs: no implementation for case kind '${c.kind}'`);
  }
}

export function memoryNote() {
  return `tf.memory().numTensors = ${tf.memory().numTensors}`;
}
