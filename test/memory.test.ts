/** Memory: a training loop's wasm memory stops growing; running out of memory is a clean error. */
import { afterAll, describe, expect, it } from 'vitest';
import '../src/index';
import { WasmBackend } from '../src/backends/wasm/backend';
import { loadKernels } from '../src/backends/wasm/loader';
import { tensor } from '../src/creation';
import { AdjointError } from '../src/errors';
import * as o from '../src/ops/api';
import * as optim from '../src/optim/index';
import * as random from '../src/random';
import { init, memoryStats } from '../src/runtime/init';
import { donate, jit } from '../src/runtime/jit';
import { activeBackend, setBackend } from '../src/runtime/realize';
import type { Tensor } from '../src/tensor';
import { valueAndGrad } from '../src/transforms/transforms';

type Params = { w1: Tensor; b1: Tensor; w2: Tensor };

const loss = (p: Params, x: Tensor, y: Tensor) =>
  o.mean(o.square(o.sub(o.matmul(o.relu(o.add(o.matmul(x, p.w1), p.b1)), p.w2), y)));

function problem() {
  const x = random.normal([64, 8], { seed: 1 });
  const y = o.sum(o.sin(x), -1, true);
  const params: Params = {
    w1: o.mul(random.normal([8, 32], { seed: 2 }), 0.3),
    b1: tensor(new Float32Array(32)),
    w2: o.mul(random.normal([32, 1], { seed: 3 }), 0.3),
  };
  return { x, y, params };
}

afterAll(async () => {
  await init();
});

describe('memory stays flat in a training loop', () => {
  it('jit-compiled steps with donated parameters: 1,000 steps', async () => {
    await init({ backend: 'wasm' });
    const { x, y } = problem();
    let { params } = problem();
    const step = jit((p: Params, x: Tensor, y: Tensor) => {
      const [l, g] = valueAndGrad(loss)(p, x, y);
      donate(p);
      const next = {
        w1: o.sub(p.w1, o.mul(g.w1, 0.05)),
        b1: o.sub(p.b1, o.mul(g.b1, 0.05)),
        w2: o.sub(p.w2, o.mul(g.w2, 0.05)),
      };
      return { loss: l, params: next };
    });
    const samples: { wasm: number; live: number }[] = [];
    let first = 0;
    let last = 0;
    for (let i = 0; i < 1000; i++) {
      const r = step(params, x, y);
      params = r.params;
      const l = (await r.loss.data())[0];
      if (i === 0) first = l;
      last = l;
      if (i % 100 === 99) samples.push({ wasm: memoryStats().wasmBytes, live: memoryStats().liveBuffers });
    }
    expect(last).toBeLessThan(first * 0.5);
    expect(step.cacheSize).toBe(1);
    // After warm-up neither the memory size nor the number of live buffers moves.
    const tail = samples.slice(1);
    expect(new Set(tail.map((s) => s.wasm)).size).toBe(1);
    expect(Math.max(...tail.map((s) => s.live)) - Math.min(...tail.map((s) => s.live))).toBeLessThanOrEqual(
      2,
    );
  });

  it('eager steps (no jit): 300 steps with parameters realized each step', async () => {
    await init({ backend: 'wasm' });
    const { x, y } = problem();
    let { params } = problem();
    const sizes: number[] = [];
    for (let i = 0; i < 300; i++) {
      const [l, g] = valueAndGrad(loss)(params, x, y);
      const next = {
        w1: o.sub(params.w1, o.mul(g.w1, 0.05)),
        b1: o.sub(params.b1, o.mul(g.b1, 0.05)),
        w2: o.sub(params.w2, o.mul(g.w2, 0.05)),
      };
      await Promise.all([l.data(), next.w1.data(), next.b1.data(), next.w2.data()]);
      for (const t of Object.values(params)) t.dispose();
      params = next;
      if (i % 50 === 49) sizes.push(memoryStats().wasmBytes);
    }
    expect(new Set(sizes.slice(1)).size).toBe(1);
  });
});

describe('out of memory', () => {
  it('is a typed error that leaves existing tensors intact, and the next call works', async () => {
    const prev = activeBackend();
    const kernels = await loadKernels({ maxBytes: 64 * 1024 * 1024, initialBytes: 1 << 20 });
    setBackend(new WasmBackend(kernels));
    try {
      const a = random.normal([64, 64], { seed: 5 });
      const before = Float32Array.from(await o.mul(a, 2).data());
      const huge = o.broadcastTo(o.reshape(a, [1, 64, 64]), [8192, 64, 64]); // 128 MiB
      expect(() => o.add(huge, 1).dataSync()).toThrow(AdjointError);
      expect(() => o.add(huge, 1).dataSync()).toThrow(/memory/);
      expect(Float32Array.from(await o.mul(a, 2).data())).toEqual(before);
      expect([...(await o.add(tensor([1, 2]), 1).data())]).toEqual([2, 3]);
    } finally {
      setBackend(prev);
    }
  });
});

describe('10,000 optimizer steps', () => {
  it('a jitted Adam training loop keeps wasm memory and live buffers flat after warm-up', async () => {
    await init({ backend: 'wasm' });
    const { x, y } = problem();
    let { params } = problem();
    const opt = optim.adam({ lr: 0.01 });
    let state = opt.init(params);
    const step = jit((p: Params, s: optim.AdamState, x: Tensor, y: Tensor) => {
      const [l, g] = valueAndGrad(loss)(p, x, y);
      const [np, ns] = opt.update(g, s, p);
      return { loss: l, params: np, state: ns };
    });
    const samples: { wasm: number; live: number }[] = [];
    let first = 0;
    let last = 0;
    for (let i = 0; i < 10_000; i++) {
      const out = step(params, state, x, y);
      params = out.params;
      state = out.state;
      if (i === 0) first = await out.loss.item();
      if (i % 1000 === 999) {
        last = await out.loss.item();
        const m = memoryStats();
        samples.push({ wasm: m.wasmBytes, live: m.liveBuffers });
      }
    }
    expect(step.cacheSize).toBe(1);
    expect(last).toBeLessThan(first * 0.1);
    const tail = samples.slice(1);
    expect(new Set(tail.map((s) => s.wasm)).size).toBe(1);
    expect(new Set(tail.map((s) => s.live)).size).toBe(1);
  });
});

describe('fresh input data every step', () => {
  it('a jitted loop fed a new host-side batch each step keeps live wasm memory flat', async () => {
    await init({ backend: 'wasm' });
    let { params } = problem();
    const step = jit((p: Params, x: Tensor, y: Tensor) => {
      const [l, g] = valueAndGrad(loss)(p, x, y);
      donate(p);
      return {
        loss: l,
        params: {
          w1: o.sub(p.w1, o.mul(g.w1, 0.05)),
          b1: o.sub(p.b1, o.mul(g.b1, 0.05)),
          w2: o.sub(p.w2, o.mul(g.w2, 0.05)),
        },
      };
    });
    const sizes: number[] = [];
    for (let i = 0; i < 400; i++) {
      // New tensors from JS arrays every step, as a data loader makes them; nothing is awaited.
      const x = tensor(
        Float32Array.from({ length: 64 * 8 }, (_, k) => Math.sin(i + k)),
        { shape: [64, 8] },
      );
      const y = tensor(
        Float32Array.from({ length: 64 }, (_, k) => Math.cos(i + k)),
        { shape: [64, 1] },
      );
      const out = step(params, x, y);
      params = out.params;
      if (i % 50 === 49) sizes.push(memoryStats().liveBytes);
    }
    // One-shot inputs are uploaded for their run only: live wasm bytes never grow (they can
    // shrink, as finalizers free buffers of earlier tests' tensors).
    const tail = sizes.slice(1);
    expect(Math.max(...tail)).toBeLessThanOrEqual(tail[0]);
  });
});
