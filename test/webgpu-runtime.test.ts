/**
 * WebGPU through the runtime, on Dawn (npm 'webgpu') over this machine's adapter (Mesa's
 * lavapipe; .ci/run installs it): init() with a GPU, every op and the transforms with the GPU
 * forced, mixed placement forced by the work threshold, a long jitted loop's GPU memory, and
 * the failures — no adapter, a lost device, a value past one binding, dataSync of a GPU value.
 * Without an adapter every test fails with the reason.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { create, globals } from 'webgpu';
import { WebGPUBackend } from '../src/backends/webgpu/backend';
import {
  WebGPUDeviceLostError,
  WebGPUExecutionError,
  WebGPUOutOfMemoryError,
  WebGPUUnavailableError,
} from '../src/backends/webgpu/errors';
import { ConcretizationError } from '../src/errors';
import {
  full,
  grad,
  hessian,
  init,
  jit,
  jvp,
  matmul,
  memoryStats,
  nn,
  optim,
  random,
  type Tensor,
  tensor,
  valueAndGrad,
} from '../src/index';
import * as o from '../src/ops/api';
import { devices, setDevices } from '../src/runtime/devices';
import { measureGpu } from '../src/runtime/gpu';
import { placementPolicy } from '../src/runtime/placement';
import { expectClose } from './helpers';

process.env.XDG_RUNTIME_DIR ??= mkdtempSync(path.join(tmpdir(), 'xdg-'));
Object.assign(globalThis, globals);
const gpu = create([]);

async function adapterOrWhy(): Promise<void> {
  const a = await gpu.requestAdapter();
  if (!a)
    throw new Error(
      "no WebGPU adapter from Dawn: install Mesa 25's lavapipe (bookworm-backports mesa-vulkan-drivers; .ci/run does)",
    );
}

beforeAll(adapterOrWhy);

afterAll(async () => {
  placementPolicy.gpuMinWork = null;
  await init({ backend: 'wasm', threads: 1 });
});

/** f's results on the GPU (forced) and on wasm alone. */
async function both(f: () => Tensor | Tensor[]): Promise<{ gpu: Float32Array[]; wasm: Float32Array[] }> {
  const read = async () => {
    const r = f();
    return Promise.all((Array.isArray(r) ? r : [r]).map(async (t) => Float32Array.from(await t.data())));
  };
  await init({ backend: 'webgpu', gpu, threads: 1 });
  const onGpu = await read();
  await init({ backend: 'wasm', threads: 1 });
  return { gpu: onGpu, wasm: await read() };
}

describe('init', () => {
  it("'webgpu' puts every op on the GPU; values agree with wasm", async () => {
    await init({ backend: 'webgpu', gpu, threads: 1 });
    expect(memoryStats().gpu).toBe('webgpu');
    const x = random.normal([33, 17], { seed: 1 });
    const y = o.softmax(o.add(matmul(x, o.transpose(x)), 1));
    await y.data();
    expect(y.device).toBe('webgpu');
    expect(() => y.dataSync()).toThrow(ConcretizationError);
    expect(() => y.dataSync()).toThrow(/await tensor\.data\(\)/);
    const r = await both(() => o.softmax(o.add(matmul(x, o.transpose(x)), 1)));
    expectClose(r.gpu[0], r.wasm[0], { rtol: 1e-5, atol: 1e-7 });
  });

  it("'webgpu' beside a worker pool: values in shared wasm memory upload to the GPU", async () => {
    // jit realizes a lazy argument (here a fill) in wasm memory, which a pool shares (a
    // SharedArrayBuffer that Dawn's writeBuffer refuses), before the GPU plan binds it: the
    // upload copies it out first
    const g = jit((x: Tensor, z: Tensor) => o.add(o.mul(x, 2), z));
    const f = () => g(random.normal([33, 17], { seed: 3 }), full([17], 0.5));
    const r = await both(f);
    await init({ backend: 'webgpu', gpu, threads: 2 });
    expect(memoryStats().threads).toBe(2);
    const y = f();
    const got = await y.data();
    expect(y.device).toBe('webgpu');
    expect(Array.from(got)).toEqual(Array.from(r.gpu[0]));
    expectClose(got, r.wasm[0], { rtol: 1e-6, atol: 1e-6 });
    await init({ backend: 'wasm', threads: 1 });
  });

  it("'webgpu' without an adapter is a typed error at init that says what to do", async () => {
    const g = globalThis as { navigator?: unknown };
    const saved = g.navigator;
    delete g.navigator;
    try {
      await expect(init({ backend: 'webgpu' })).rejects.toThrow(WebGPUUnavailableError);
      await expect(init({ backend: 'webgpu' })).rejects.toThrow(/init\(\{ gpu \}\)/);
    } finally {
      if (saved !== undefined) g.navigator = saved;
    }
    // 'auto' without one is just wasm
    await init({ backend: 'auto', threads: 1 });
    expect(memoryStats().gpu).toBe(null);
  });

  it("'auto' gives a software adapter nothing", async () => {
    await init({ backend: 'auto', gpu, threads: 1 });
    expect(memoryStats().gpu).toBe(null); // lavapipe is a fallback adapter
    const y = o.exp(random.normal([64, 64], { seed: 2 }));
    await y.data();
    expect(y.device).toBe('wasm');
  });
});

describe('the cost model', () => {
  it('measures an adapter: dispatch overhead, matmul and copy throughput (positive, finite)', async () => {
    const backend = await WebGPUBackend.create({ gpu, tuning: 'guess' });
    try {
      const p = await measureGpu(backend);
      for (const k of [
        'dispatchNs',
        'flopsPerNs',
        'bytesPerNs',
        'transferBytesPerNs',
        'readbackNs',
      ] as const) {
        expect(Number.isFinite(p[k]) && p[k] > 0, `${k} = ${p[k]}`).toBe(true);
      }
      expect(p.fallback).toBe(true); // lavapipe
    } finally {
      backend.dispose();
    }
  });
});

describe('mixed placement', () => {
  it('large matmuls on the GPU, small ops on wasm (forced by the threshold) equal wasm alone', async () => {
    placementPolicy.gpuMinWork = 100_000;
    try {
      await init({ backend: 'auto', gpu, threads: 1 });
      expect(memoryStats().gpu).toBe('webgpu');
      const sizes = [32, 64, 64, 10];
      const params = nn.mlp.init(sizes, { seed: 3 });
      const x = random.normal([50, 32], { seed: 4 });
      const labels = tensor(
        Int32Array.from({ length: 50 }, (_, i) => i % 10),
        { dtype: 'int32' },
      );
      const loss = (p: typeof params) => nn.softmaxCrossEntropy(nn.mlp.apply(p, x), labels);
      const run = () => {
        const [l, g] = valueAndGrad(loss)(params);
        return [l, ...(g as typeof params).flatMap((q) => [q.w, q.b])];
      };
      const gpuRun = run();
      const got = await Promise.all(gpuRun.map(async (t) => Float32Array.from(await t.data())));
      const devicesUsed = new Set(gpuRun.map((t) => t.device));
      expect(devicesUsed.has('webgpu')).toBe(true); // the weight gradients (matmuls)
      expect([...devicesUsed].some((d) => d !== 'webgpu')).toBe(true); // the small ones
      await init({ backend: 'wasm', threads: 1 });
      const want = await Promise.all(run().map(async (t) => Float32Array.from(await t.data())));
      got.forEach((g, i) => {
        expectClose(g, want[i], { rtol: 1e-4, atol: 1e-6, scale: 'max', what: `output ${i}` });
      });
    } finally {
      placementPolicy.gpuMinWork = null;
    }
  });
});

describe('transforms with the GPU forced', () => {
  const x = random.normal([7, 5], { seed: 5 });
  const w = random.normal([5, 3], { seed: 6 });
  const f = (x: Tensor) => o.sum(o.tanh(matmul(x, w)));

  it('grad, grad of grad, jvp, hessian', async () => {
    const r = await both(() => {
      const g = grad(f)(x);
      const gg = grad((t: Tensor) => o.sum(o.square(grad(f)(t))))(x);
      const [, t] = jvp(f, [x], [o.mul(o.abs(x), 0.5)]);
      const h = hessian((v: Tensor) => o.sum(o.mul(o.sin(v), v)))(o.reshape(x, [35]));
      return [g, gg, t as Tensor, h];
    });
    r.gpu.forEach((g, i) => {
      expectClose(g, r.wasm[i], { rtol: 1e-4, atol: 1e-6, scale: 'max', what: `result ${i}` });
    });
  });

  it('keyed random numbers (traced by jit) are the same bits with the GPU forced as on wasm', async () => {
    // products only (no sums a GPU compiler could contract into fused multiply-adds); a host input
    // (jit on wasm cannot read a GPU-resident argument back synchronously)
    const x = random.normal([7, 5], { seed: 15 });
    const draw = jit((key: Tensor, x: Tensor) => {
      const [k1, k2] = random.split(key);
      return [nn.dropout(x, 0.3, { key: k1 }), random.normal([7, 5], { key: k2, std: 3 })];
    });
    const r = await both(() => draw(random.key(12), x) as Tensor[]);
    expect(r.gpu.map((a) => Array.from(a))).toEqual(r.wasm.map((a) => Array.from(a)));
    expect(r.wasm[0].filter((v) => v === 0).length).toBeGreaterThan(0);
  });

  it('jit of a gradient step, and a 1,000-step jitted training loop keeps GPU memory flat', async () => {
    await init({ backend: 'webgpu', gpu, threads: 1 });
    let params = nn.mlp.init([8, 16, 1], { seed: 7 });
    const xs = random.normal([32, 8], { seed: 8 });
    const ys = o.sum(o.sin(xs), -1, true);
    const opt = optim.sgd({ lr: 0.05 });
    let state = opt.init(params);
    const step = jit((p: typeof params, s: typeof state) => {
      const [l, g] = valueAndGrad((q: typeof params) => nn.mse(nn.mlp.apply(q, xs), ys))(p);
      const [np, ns] = opt.update(g as typeof params, s, p);
      return { loss: l, params: np, state: ns };
    });
    const samples: { bytes: number; buffers: number }[] = [];
    let first = 0;
    let last = 0;
    for (let i = 0; i < 1000; i++) {
      const out = step(params, state);
      params = out.params;
      state = out.state;
      if (i === 0) first = await out.loss.item();
      if (i % 100 === 99) {
        last = await out.loss.item();
        samples.push(await settledGpu());
      }
    }
    expect(params[0].w.device).toBe('webgpu');
    expect(last).toBeLessThan(first);
    // the parameters and optimizer state are donated and replaced in place; each step's loss
    // (a scalar the loop drops) is freed by its finalizer: flat once the collector has run
    const tail = samples.slice(1);
    expect(new Set(tail.map((s) => s.bytes)).size, JSON.stringify(samples)).toBe(1);
    expect(new Set(tail.map((s) => s.buffers)).size, JSON.stringify(samples)).toBe(1);
  });
});

/** GPU memory once unreachable tensors are collected and finalized (waits until the figures settle). */
async function settledGpu(): Promise<{ bytes: number; buffers: number }> {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  let last = '';
  for (let i = 0; i < 200; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 5));
    const m = memoryStats();
    const now = JSON.stringify({ bytes: m.gpuBytes, buffers: m.gpuBuffers });
    if (now === last) return JSON.parse(now);
    last = now;
  }
  throw new Error(`GPU memory never settled (${last})`);
}

describe('failures', () => {
  it('a backend holds the GPU object it was given while it lives and drops it at dispose (dawn.node frees its instance with that object)', async () => {
    v8.setFlagsFromString('--expose-gc');
    const collect = vm.runInNewContext('gc') as () => void;
    const settle = async () => {
      for (let i = 0; i < 3; i++) {
        collect();
        await new Promise((r) => setImmediate(r));
      }
    };
    // Passed inline and never kept here, as `create([])` usually is. Collecting it while the
    // device had work in flight crashed the process in InstanceBase::ProcessEvents (the Dawn
    // crash test/conv.test.ts's GPU section hit now and then).
    let given: GPU | null = create([]);
    const ref = new WeakRef(given);
    const backend = await WebGPUBackend.create({ gpu: given, tuning: 'guess' });
    given = null;
    await settle();
    expect(ref.deref(), 'the GPU object was collected while its device was in use').toBeDefined();
    backend.dispose();
    await settle();
    expect(ref.deref(), 'dispose() keeps the GPU object (and the process) alive').toBeUndefined();
  });

  it('a lost device: typed errors for values only it held, later work continues on wasm, nothing hangs', async () => {
    const device = await (await gpu.requestAdapter())!.requestDevice();
    await init({ backend: 'webgpu', gpu: device, threads: 1 });
    const kept = o.mul(random.normal([16, 16], { seed: 9 }), 2);
    const onHostToo = random.normal([16], { seed: 10 });
    await kept.data();
    expect(kept.device).toBe('webgpu');
    device.destroy();
    await expect(kept.data()).rejects.toThrow(WebGPUDeviceLostError);
    await expect(o.exp(kept).data()).rejects.toThrow(WebGPUDeviceLostError);
    // later work runs on wasm
    await new Promise((r) => setTimeout(r, 50));
    expect(devices().gpu).toBe(null);
    const later = o.exp(onHostToo);
    expect((await later.data()).length).toBe(16);
    expect(later.device).not.toBe('webgpu');
  });

  it('out of GPU memory: a typed error for the run that hit it, earlier tensors intact, later work runs', async () => {
    // Real exhaustion would take gigabytes on this shared machine: the device is wrapped so
    // its out-of-memory error scope reports an error while `oom.armed` is set, as a driver does
    // when an allocation of the run fails.
    const real = await (await gpu.requestAdapter())!.requestDevice();
    const oom = { armed: false, reported: 0 };
    const scopes: GPUErrorFilter[] = [];
    const device = new Proxy(real, {
      get(target, key) {
        if (key === 'pushErrorScope')
          return (filter: GPUErrorFilter) => {
            scopes.push(filter);
            target.pushErrorScope(filter);
          };
        if (key === 'popErrorScope')
          return async () => {
            const filter = scopes.pop();
            const err = await target.popErrorScope();
            if (filter !== 'out-of-memory' || !oom.armed) return err;
            oom.reported++;
            return new GPUOutOfMemoryError('injected: allocation failed');
          };
        const v = Reflect.get(target, key);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
    await init({ backend: 'webgpu', gpu: device, threads: 1 });
    try {
      const kept = o.mul(random.normal([16, 16], { seed: 21 }), 2);
      const want = Float32Array.from(await kept.data());
      expect(kept.device).toBe('webgpu');
      oom.armed = true;
      const failed = o.exp(kept);
      const err = await failed.data().then(
        () => null,
        (e) => e,
      );
      oom.armed = false;
      expect(oom.reported).toBeGreaterThan(0);
      expect(err).toBeInstanceOf(WebGPUOutOfMemoryError);
      expect(err).toBeInstanceOf(WebGPUExecutionError);
      expect(err.message).toMatch(/out of GPU memory in a run .*dispose tensors/);
      // the tensor made before is intact, and the same work runs once memory is there again
      expect(Float32Array.from(await kept.data())).toEqual(want);
      const again = await o.exp(kept).data();
      expectClose(again, Float32Array.from(want, Math.exp), { rtol: 1e-5 });
    } finally {
      oom.armed = false;
      await init({ backend: 'wasm', threads: 1 });
      real.destroy();
    }
  });

  it('a value larger than one binding stays on wasm (placement), earlier tensors intact', async () => {
    const backend = await WebGPUBackend.create({
      gpu,
      tuning: 'guess',
      limits: { maxStorageBufferBindingSize: 4096 },
    });
    await init({ backend: 'wasm', threads: 1 });
    const ds = devices();
    setDevices({ primary: ds.primary, gpu: backend, gpuMode: 'webgpu', threads: 1 });
    try {
      const small = o.exp(random.normal([64], { seed: 11 }));
      const want = Float32Array.from(await small.data());
      expect(small.device).toBe('webgpu');
      const big = random.normal([4096], { seed: 12 }); // 16 KiB: past the 4 KiB binding
      const e = o.exp(big);
      await e.data();
      expect(e.device).toBe('wasm');
      expect(Float32Array.from(await small.data())).toEqual(want);
    } finally {
      await init({ backend: 'wasm', threads: 1 });
      backend.dispose();
    }
  });
});
