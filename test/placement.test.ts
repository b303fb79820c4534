/**
 * Devices in the runtime: placement, transfers, residency and the async read path, on the wasm
 * backend beside a stand-in second device. The stand-in is the reference interpreter posing as
 * 'webgpu': its buffers have no synchronous read, like a GPU's, so every rule that a real GPU
 * exercises (reads back only on the async path, dataSync refused, copies kept where values are
 * consumed) is tested here on any machine. The real WebGPU backend has its own suite.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Backend } from '../src/backends/backend';
import { ReferenceBackend } from '../src/backends/reference/interpreter';
import { ConcretizationError } from '../src/errors';
import type { GNode, Graph } from '../src/graph/graph';
import { init, jit, matmul, random, type Tensor, tensor, valueAndGrad } from '../src/index';
import * as o from '../src/ops/api';
import { activeBackend, devices, setDevices } from '../src/runtime/devices';
import { placementPolicy } from '../src/runtime/placement';
import '../src/runtime/placement-mixed';
import type { HostArray, Storage } from '../src/tensor';
import { expectClose } from './helpers';

/** A buffer with no synchronous read, as on a GPU. */
class FarStorage implements Storage {
  readonly device = 'webgpu';
  released = false;
  constructor(readonly data: HostArray) {}
  view(): null {
    return null;
  }
  read(): Promise<HostArray> {
    if (this.released) throw new Error('read after release');
    return Promise.resolve(this.data.slice());
  }
  release(): void {
    this.released = true;
    live.delete(this);
  }
}

const live = new Set<FarStorage>();

/** The reference interpreter as a second device; it declines `declined` ops. */
class FarBackend implements Backend {
  readonly name = 'far';
  readonly device = 'webgpu';
  readonly inner = new ReferenceBackend();
  runs = 0;
  constructor(readonly declined: string[] = []) {}
  supports(n: GNode): boolean {
    return !this.declined.includes(n.op);
  }
  upload(data: HostArray): Storage {
    const s = new FarStorage(data instanceof Int32Array ? data.slice() : Float32Array.from(data));
    live.add(s);
    return s;
  }
  run(g: Graph, inputs: readonly Storage[]): Storage[] {
    this.runs++;
    for (const n of g.nodes)
      if (!this.supports(n) && n.op !== 'input') throw new Error(`far: ${n.op} placed here`);
    const near = inputs.map((s) => {
      if (!(s instanceof FarStorage) || s.released) throw new Error(`far: given a ${s.device} buffer`);
      return { device: 'host' as const, view: () => s.data, read: s.read.bind(s), release() {} };
    });
    return this.inner.run(g, near).map((h) => this.upload(h.view()!) as FarStorage);
  }
}

let far: FarBackend;

async function withFar(declined: string[] = [], gpuMinWork: number | null = 1000) {
  await init({ threads: 1 });
  far = new FarBackend(declined);
  setDevices({ primary: activeBackend(), gpu: far, gpuMode: 'auto', threads: 1 });
  placementPolicy.gpuMinWork = gpuMinWork;
}

beforeAll(async () => {
  await init({ threads: 1 });
});

afterEach(async () => {
  placementPolicy.gpuMinWork = null;
  await init({ threads: 1 });
});

/** The same function on wasm alone. */
async function wasmOnly<T>(f: () => Promise<T>): Promise<T> {
  const saved = devices();
  const { primary, gpu, gpuMode, threads } = saved;
  setDevices({ primary, gpu: null, threads });
  try {
    return await f();
  } finally {
    setDevices({ primary, gpu, gpuMode, threads });
  }
}

describe('placement', () => {
  it('large matmuls on the second device, small ops on wasm: same numbers as wasm alone', async () => {
    await withFar();
    const a = random.normal([40, 30], { seed: 1 });
    const b = random.normal([30, 20], { seed: 2 });
    const f = () => o.sum(o.tanh(o.add(matmul(a, b), 1)), 1); // matmul: 48,000 flops; the rest small
    const got = await f().data();
    expect(far.runs).toBeGreaterThan(0);
    const want = await wasmOnly(() => f().data());
    expectClose(got, want, { rtol: 1e-5, atol: 1e-6 });
  });

  it('a value computed far away and read back: data() works, dataSync() names the async call', async () => {
    await withFar([], 0); // everything the stand-in supports goes there
    const x = random.normal([8, 8], { seed: 3 });
    const y = o.exp(x);
    await expect(y.data()).resolves.toHaveLength(64);
    expect(y.device).toBe('webgpu');
    expect(() => y.dataSync()).toThrow(ConcretizationError);
    expect(() => y.dataSync()).toThrow(/await tensor\.data\(\)/);
    expectClose(await y.data(), await wasmOnly(() => o.exp(x).data()), { rtol: 1e-6 });
  });

  it('an op the second device declines runs on wasm between far ops (transfers both ways)', async () => {
    await withFar(['sin'], 0);
    const x = random.normal([16, 16], { seed: 4 });
    const f = () => o.exp(o.sin(o.square(x)));
    const got = await f().data();
    expectClose(got, await wasmOnly(() => f().data()), { rtol: 1e-5 });
    await f().data(); // x is now kept on the far device too (its second use there)
    // the synchronous path cannot bring the square back for sin: a clear error, nothing leaked
    const before = live.size;
    expect(() => o.exp(o.sin(o.square(x))).dataSync()).toThrow(/async/);
    expect(live.size).toBe(before);
  });

  it('gradients of a mixed program equal wasm alone', async () => {
    await withFar(['tanh'], 500);
    const w = random.normal([24, 16], { seed: 5 });
    const x = random.normal([32, 24], { seed: 6 });
    const loss = (w: Tensor) => o.mean(o.square(o.tanh(matmul(x, w))));
    const [l, g] = valueAndGrad(loss)(w);
    const got = [await l.data(), await (g as Tensor).data()];
    expect(far.runs).toBeGreaterThan(0);
    const want = await wasmOnly(async () => {
      const [l2, g2] = valueAndGrad(loss)(w);
      return [await l2.data(), await (g2 as Tensor).data()];
    });
    expectClose(got[0], want[0], { rtol: 1e-5 });
    expectClose(got[1], want[1], { rtol: 1e-4, atol: 1e-6, scale: 'max' });
  });

  it('jit keeps values on the second device once there (no read back inside a run)', async () => {
    await withFar([], 1000);
    const a = random.normal([40, 30], { seed: 1 });
    const b = random.normal([30, 20], { seed: 2 });
    const f = jit((a: Tensor, b: Tensor) => o.sum(o.tanh(o.add(matmul(a, b), 1)), 1));
    const y = f(a, b); // the matmul goes far; everything after it follows instead of coming back
    expect(y.device).toBe('webgpu');
    expectClose(await y.data(), await wasmOnly(() => f(a, b).data()), { rtol: 1e-5, atol: 1e-6 });
    // an op the far device declines: what feeds it stays off the far device (no read back)
    await withFar(['tanh'], 0);
    const g = jit((t: Tensor) => o.tanh(o.exp(o.square(t))));
    const runs = far.runs;
    const z = g(a);
    expect(z.device).toBe('wasm');
    expect(far.runs).toBe(runs);
    expectClose(await z.data(), await wasmOnly(() => g(a).data()), { rtol: 1e-6 });
  });
});

describe('the cost model (auto)', () => {
  const profile = (fast: boolean) => ({
    dispatchNs: fast ? 10_000 : 200_000,
    flopsPerNs: fast ? 2000 : 5,
    bytesPerNs: fast ? 500 : 5,
    transferBytesPerNs: 10,
    readbackNs: 50_000,
    fallback: false,
  });
  const setup = async (fast: boolean) => {
    await init({ threads: 1 });
    far = new FarBackend();
    setDevices({
      primary: activeBackend(),
      gpu: far,
      gpuMode: 'auto',
      gpuProfile: profile(fast),
      threads: 1,
    });
  };

  it('a fast GPU gets the large matmul; small elementwise work stays on wasm', async () => {
    await setup(true);
    const a = random.normal([512, 512], { seed: 20 });
    const big = matmul(a, a);
    await big.data();
    expect(big.device).toBe('webgpu');
    const small = o.exp(random.normal([100], { seed: 21 }));
    await small.data();
    expect(small.device).toBe('wasm');
  });

  it('a slow GPU gets nothing, and neither does a fallback adapter', async () => {
    await setup(false);
    const a = random.normal([512, 512], { seed: 22 });
    const big = matmul(a, a);
    await big.data();
    expect(big.device).toBe('wasm');
    const ds = devices();
    setDevices({ ...ds, gpuProfile: { ...profile(true), fallback: true } });
    const again = matmul(a, a);
    await again.data();
    expect(again.device).toBe('wasm');
    expect(far.runs).toBe(0);
  });
});

describe('residency', () => {
  it('a value consumed far away twice keeps a copy there; a one-shot value does not', async () => {
    await withFar([], 0);
    const w = tensor(Float32Array.from({ length: 100 }, (_, i) => i / 10)); // on the host
    const once = tensor(Float32Array.from({ length: 100 }, (_, i) => i));
    await o.exp(once).data();
    expect(once.copyOn('webgpu')).toBeUndefined();
    await o.exp(w).data();
    expect(w.device).toBe('host');
    await o.exp(w).data();
    expect(w.device).toBe('webgpu'); // moved for good: the host array is dropped
    const uploads = live.size;
    await o.exp(w).data();
    expect(live.size).toBe(uploads + 1); // only the new result
  });

  it('tiny wasm results come back to the host; large ones stay where computed', async () => {
    await init({ threads: 1 });
    const x = random.normal([100], { seed: 8 });
    const s = o.sum(x);
    await s.data();
    expect(s.device).toBe('host');
    const e = o.exp(x);
    await e.data();
    expect(e.device).toBe('wasm');
  });

  it('dispose() releases a tensor and its copies on other devices', async () => {
    await withFar([], 0);
    const w = tensor(Float32Array.from({ length: 64 }, (_, i) => i));
    const big = o.mul(w, 2);
    await big.data(); // computed far away
    const before = live.size;
    big.dispose();
    expect(live.size).toBe(before - 1);
  });
});

describe('devices stay valid across init()', () => {
  it('tensors computed before a re-init (new wasm memory) are still readable and usable', async () => {
    await init({ threads: 1 });
    const a = o.exp(random.normal([50], { seed: 9 }));
    const want = Float32Array.from(await a.data());
    await init({ threads: 2 });
    expectClose(await o.mul(a, 1).data(), want);
    await init({ threads: 1 });
    expectClose(await a.data(), want);
  });
});
