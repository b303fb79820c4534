/**
 * The part of init()'s GPU side (src/runtime/gpu.ts) that runs once a GPU is there: the WebGPU
 * backend itself, deciding whether placement may use it, the one-time measurement of an adapter
 * for the cost model, and dropping it when the device is lost. src/runtime/gpu.ts imports this
 * module dynamically, so the package's entry does not load it (rollup puts it in its own chunk).
 */
import { WebGPUBackend } from '../backends/webgpu/backend';
import { WebGPUUnavailableError } from '../backends/webgpu/errors';
import { GNode, Graph } from '../graph/graph';
import { devices, type GpuProfile, setDevices } from './devices';
import { type GpuRequest, gpuState } from './gpu';
import { placementPolicy } from './placement';
import './placement-mixed';

export async function gpuBackend(
  req: GpuRequest,
  source: GPU | GPUDevice,
): Promise<{ backend: WebGPUBackend; profile: GpuProfile } | null> {
  let backend: WebGPUBackend;
  try {
    backend = await backendFor(source, req.mode);
  } catch (e) {
    if (req.mode === 'auto' && e instanceof WebGPUUnavailableError) {
      gpuState.noAdapter.add(source);
      return null;
    }
    throw e;
  }
  // A software adapter loses to wasm on everything: under 'auto' it takes nothing, unless a
  // test forces work onto it.
  if (req.mode === 'auto' && backend.adapter.isFallbackAdapter && placementPolicy.gpuMinWork === null)
    return null;
  const profile =
    req.mode === 'auto' && !backend.adapter.isFallbackAdapter ? await profileOf(backend) : nominal(backend);
  backend.health.whenLost.catch(() => dropLost(backend));
  return { backend, profile };
}

async function backendFor(source: GPU | GPUDevice, mode: GpuRequest['mode']): Promise<WebGPUBackend> {
  const current = gpuState.current;
  if (current && current.source === source && current.backend.alive) return current.backend;
  const backend = await WebGPUBackend.create({
    gpu: source,
    tuning: mode === 'auto' ? 'guess' : 'calibrate',
  });
  gpuState.current = { source, backend };
  return backend;
}

function dropLost(b: WebGPUBackend): void {
  const ds = devices();
  if (ds.gpu !== b) return;
  setDevices({ primary: ds.primary, gpu: null, threads: ds.threads });
}

/** A profile that is not used for decisions (forced modes), marked by the adapter's kind. */
function nominal(b: WebGPUBackend): GpuProfile {
  return {
    dispatchNs: 50_000,
    flopsPerNs: 10,
    bytesPerNs: 10,
    transferBytesPerNs: 2,
    readbackNs: 500_000,
    fallback: b.adapter.isFallbackAdapter,
  };
}

const profiles = new Map<string, Promise<GpuProfile>>();

/** Measures an adapter once per process (dispatch overhead, matmul and copy throughput). */
function profileOf(b: WebGPUBackend): Promise<GpuProfile> {
  const a = b.adapter;
  const key = [a.vendor, a.architecture, a.device, a.description].join('|');
  let p = profiles.get(key);
  if (!p) profiles.set(key, (p = measureGpu(b)));
  return p;
}

function input(index: number, shape: number[]): GNode {
  return new GNode('input', [], { index, shape, dtype: 'float32' }, shape, 'float32');
}

async function timed(b: WebGPUBackend, g: Graph, args: Float32Array[], reps: number): Promise<number> {
  const ins = args.map((a) => b.upload(a, 'float32'));
  try {
    const once = async () => {
      const [out] = b.run(g, ins);
      await out.read();
      out.release();
    };
    await once(); // compiles the pipelines
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) await once();
    return ((performance.now() - t0) / reps) * 1e6;
  } finally {
    for (const s of ins) s.release();
  }
}

export async function measureGpu(b: WebGPUBackend): Promise<GpuProfile> {
  const n = 512;
  const a = input(0, [n, n]);
  const c = input(1, [n, n]);
  const mm = new GNode('matmul', [a, c], { transA: false, transB: false }, [n, n], 'float32');
  const big = new Float32Array(n * n).fill(1);
  const tiny = input(0, [4]);
  const neg = new GNode('neg', [tiny], {}, [4], 'float32');
  const m = 1 << 20;
  const x = input(0, [m]);
  const add = new GNode('add', [x, x], {}, [m], 'float32');
  const dispatchNs = await timed(b, new Graph([tiny, neg], [neg]), [new Float32Array(4)], 5);
  const mmNs = await timed(b, new Graph([a, c, mm], [mm]), [big, big], 3);
  const addNs = await timed(b, new Graph([x, add], [add]), [new Float32Array(m)], 3);
  // a read of 4 MiB, less the round trip, over its bytes
  const copyNs = Math.max(1, addNs - dispatchNs);
  return {
    dispatchNs: Math.max(1000, dispatchNs / 4),
    flopsPerNs: (2 * n ** 3) / Math.max(1, mmNs - dispatchNs),
    bytesPerNs: (12 * m) / copyNs,
    transferBytesPerNs: (4 * m) / copyNs,
    readbackNs: dispatchNs,
    fallback: b.adapter.isFallbackAdapter,
  };
}
