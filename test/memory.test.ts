/** Memory: a training loop's wasm memory stops growing; running out of memory is a clean error. */
import v8 from 'node:v8';
import vm from 'node:vm';
import { afterAll, describe, expect, it } from 'vitest';
import '../src/index';
import { OutOfMemoryError, WasmBackend } from '../src/backends/wasm/backend';
import { loadKernels } from '../src/backends/wasm/loader';
import { tensor } from '../src/creation';
import * as o from '../src/ops/api';
import * as optim from '../src/optim/index';
import * as random from '../src/random';
import { init, memoryStats } from '../src/runtime/init';
import { donate, jit } from '../src/runtime/jit';
import { activeBackend, realizeSync, setBackend } from '../src/runtime/realize';
import { residencyPolicy } from '../src/runtime/residency';
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
});

/** One eager training step (no jit): loss, gradients and new parameters, all realized. */
async function eagerStep(params: Params, x: Tensor, y: Tensor) {
  const [l, g] = valueAndGrad(loss)(params, x, y);
  const next = {
    w1: o.sub(params.w1, o.mul(g.w1, 0.05)),
    b1: o.sub(params.b1, o.mul(g.b1, 0.05)),
    w2: o.sub(params.w2, o.mul(g.w2, 0.05)),
  };
  await Promise.all([l.data(), next.w1.data(), next.b1.data(), next.w2.data()]);
  return { loss: l, grads: g, next };
}

/** V8's garbage collector, callable (the flag can be set at run time; a new context exposes it). */
const gc = (() => {
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
})();

const live = () => {
  const m = memoryStats();
  return { buffers: m.liveBuffers, bytes: m.liveBytes };
};

/**
 * Live wasm memory once everything unreachable is collected and its finalizers have run: V8
 * runs finalization callbacks in batches as tasks, so wait (a few ms at a time) until the
 * figures stop moving; no fixed delay.
 */
async function settledLive() {
  let last = '';
  for (let i = 0; i < 200; i++) {
    gc();
    await new Promise<void>((resolve) => setTimeout(resolve, 5));
    const now = JSON.stringify(live());
    if (now === last) return now;
    last = now;
  }
  throw new Error(`live wasm memory never settled (last ${last})`);
}

describe('eager steps (no jit)', () => {
  it('with dispose(): live buffers and bytes return to the same figures every step', async () => {
    await init({ backend: 'wasm' });
    const { x, y } = problem();
    let { params } = problem();
    const samples: string[] = [];
    for (let i = 0; i < 300; i++) {
      const { loss: l, grads, next } = await eagerStep(params, x, y);
      for (const t of [l, ...Object.values(grads as Params), ...Object.values(params)]) t.dispose();
      params = next;
      if (i >= 10) samples.push(JSON.stringify(live()));
    }
    // Nothing but the parameters and the data is held between steps: exactly flat, with no
    // help from the garbage collector.
    expect(new Set(samples)).toEqual(new Set([samples[0]]));
  });

  it('without dispose(), awaited: flat once the collector has run (finalizers free the buffers)', async () => {
    await init({ backend: 'wasm' });
    const { x, y } = problem();
    // Steps run in a function of their own, so that no finished frame still holds an old
    // step's tensors when a sample is taken.
    const train = async (params: Params, steps: number) => {
      for (let i = 0; i < steps; i++) params = (await eagerStep(params, x, y)).next;
      return params;
    };
    let { params } = problem();
    const samples: string[] = [];
    for (let k = 0; k < 10; k++) {
      params = await train(params, 100);
      samples.push(await settledLive());
    }
    // Flat: after the first 100 steps (plans compiled, data resident) no sample holds more
    // than the first, give or take two steps' tensors. Under vitest an old step's gradients or
    // parameters are now and then still reachable when a sample is taken (tracked with WeakRefs:
    // the last step's gradients together with those of a step 10-100 steps back, say, never more
    // than two steps' worth in 30 samples); a leak of even one buffer a step would add 100
    // between samples.
    const [warm, ...rest] = samples.slice(1).map((t) => JSON.parse(t) as { buffers: number; bytes: number });
    const step = { buffers: 12, bytes: 2 * 2 * 4 * (8 * 32 + 32 + 32) }; // parameters and gradients, twice
    for (const s of rest) {
      expect(s.buffers, samples.join(' ')).toBeLessThanOrEqual(warm.buffers + step.buffers);
      expect(s.bytes, samples.join(' ')).toBeLessThanOrEqual(warm.bytes + step.bytes);
    }
  });

  it('a loop that only awaits data() still gives finalizers their turn (no explicit yield)', async () => {
    await init({ backend: 'wasm' });
    const x = random.normal([64, 64], { seed: 9 });
    await x.data();
    // The same graph each time (one plan): each result is a 16 KiB wasm buffer nothing refers
    // to. Realized synchronously (no turn of the event loop), so once collected they wait for
    // their finalizers, which need a task to run.
    const garbage = (n: number) => {
      for (let i = 0; i < n; i++) realizeSync([o.exp(o.mul(x, 2))]);
    };
    garbage(10);
    await settledLive();
    garbage(200);
    gc();
    const before = live().buffers;
    // Only microtasks run in this loop unless realize() yields to the event loop, which it does
    // at most every 100 ms: loop until well past that, by the clock, not by a step count.
    const t0 = performance.now();
    // (a one-element result: the loop itself leaves nothing in wasm memory)
    while (performance.now() - t0 < 500) await o.sum(o.mul(x, 2)).data();
    expect(live().buffers).toBeLessThan(before - 150);
  });

  it('so does a loop that only reads values jit computed already (data() has nothing to realize)', async () => {
    await init({ backend: 'wasm' });
    const x = random.normal([64, 64], { seed: 9 });
    await x.data();
    const big = jit((v: Tensor) => o.exp(o.mul(v, 2)));
    const garbage = (n: number) => {
      for (let i = 0; i < n; i++) big(x);
    };
    garbage(10);
    await settledLive();
    garbage(200);
    gc();
    const before = live().buffers;
    const small = jit((v: Tensor) => o.sum(o.mul(v, 2)));
    const t0 = performance.now();
    while (performance.now() - t0 < 500) await small(x).data();
    expect(live().buffers).toBeLessThan(before - 150);
  });
});

describe('memory pressure', () => {
  it('read values move to the host past the soft limit (never one a run is using); wasm memory stays bounded', async () => {
    await init({ threads: 1 });
    const saved = residencyPolicy.wasmSoftBytes;
    residencyPolicy.wasmSoftBytes = 48 * 1024 * 1024;
    try {
      const x = o.mul(random.normal([1024, 1024], { seed: 7 }), 2); // 4 MiB, in wasm memory
      const xs = Float32Array.from(await x.data()); // read: x may move, but not while a run uses it
      const first = o.exp(x);
      const want = Float32Array.from(await first.data());
      // 40 results of 4 MiB, each read and kept: without relief all of them stay in wasm memory.
      // Each reads x through a transpose: had x's block been freed and reused mid-run (x moved
      // while in use), the copy would read its own output.
      const kept: Tensor[] = [];
      for (let i = 0; i < 40; i++) {
        const r = o.transpose(x); // one kernel reading x and writing the result
        const got = await r.data();
        for (const [row, col] of [
          [3, 1000],
          [1000, 3],
          [517, 517],
        ])
          expect(got[row * 1024 + col], `result ${i}`).toBe(xs[col * 1024 + row]);
        kept.push(r);
      }
      expect(kept.filter((t) => t.device === 'host').length).toBeGreaterThan(10);
      expect(memoryStats().wasmBytes).toBeLessThanOrEqual(64 * 1024 * 1024);
      // the value read first moved to the host and is intact
      expect(first.device).toBe('host');
      expect(Float32Array.from(await first.data())).toEqual(want);
    } finally {
      residencyPolicy.wasmSoftBytes = saved;
    }
  });
});

describe('out of memory', () => {
  it('is an OutOfMemoryError that frees what the run allocated; existing tensors intact; the next call works', async () => {
    const prev = activeBackend();
    const kernels = await loadKernels({ maxBytes: 64 * 1024 * 1024, initialBytes: 1 << 20 });
    setBackend(new WasmBackend(kernels));
    try {
      const a = random.normal([64, 64], { seed: 5 });
      const kept = o.mul(a, 2);
      realizeSync([kept]); // a wasm buffer that must survive the failures below
      const before = Float32Array.from(await o.mul(a, 2).data());
      const huge = o.broadcastTo(o.reshape(a, [1, 64, 64]), [4096, 64, 64]); // 64 MiB
      const big = o.mul(random.normal([1024, 1024], { seed: 6 }), 1);
      realizeSync([big]); // in wasm memory already: a host-side input would move there on its second use
      const cases: [string, () => void][] = [
        ['one output', () => realizeSync([o.add(huge, 1)])],
        // 20 outputs of 4 MiB: the first ones fit, a later one does not (the plan itself needs
        // no memory): the ones allocated must be freed
        ['several outputs', () => realizeSync(Array.from({ length: 20 }, (_, i) => o.mul(big, i + 1)))],
        ['an intermediate', () => realizeSync([o.sum(o.exp(o.add(huge, 1)))])],
      ];
      const attempt = (what: string, run: () => void) => {
        let error: unknown;
        try {
          run();
        } catch (e) {
          error = e;
        }
        expect(error, what).toBeInstanceOf(OutOfMemoryError);
        expect((error as Error).message, what).toMatch(/memory exhausted: could not allocate \d+ bytes/);
      };
      for (const [what, run] of cases) {
        const start = live();
        attempt(what, run);
        // the first failure may leave its compiled plan in the cache (a few small blocks: fused
        // programs, task records), never the run's buffers (MiBs here)
        expect(live().buffers - start.buffers, `${what}: buffers after the first error`).toBeLessThanOrEqual(
          4,
        );
        expect(live().bytes - start.bytes, `${what}: bytes after the first error`).toBeLessThanOrEqual(
          64 * 1024,
        );
        const stats = JSON.stringify(live());
        attempt(what, run);
        expect(JSON.stringify(live()), `${what}: live wasm memory after the error`).toBe(stats);
      }
      expect(Float32Array.from(await kept.data())).toEqual(before);
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
