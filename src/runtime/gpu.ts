/**
 * The GPU side of init(): finding an adapter, deciding whether placement may use it, measuring
 * it once for the cost model, and dropping it when the device is lost (later work continues on
 * wasm; values whose only copy was on the GPU raise WebGPUDeviceLostError when used). Only the
 * look for a GPU and the state shutdown() needs are here; the rest is in gpu-lazy.ts.
 */
import type { WebGPUBackend } from '../backends/webgpu/backend';
import { WebGPUUnavailableError } from '../backends/webgpu/errors';
import type { GpuProfile } from './devices';

export interface GpuRequest {
  /** 'webgpu': an adapter is required and every op it can run goes there; 'auto': used when it pays. */
  mode: 'auto' | 'webgpu';
  gpu?: GPU | GPUDevice;
}

/** The WebGPU backend for init(), or null where 'auto' finds no adapter worth using. */
export async function gpuBackend(
  req: GpuRequest,
): Promise<{ backend: WebGPUBackend; profile: GpuProfile } | null> {
  const source = req.gpu ?? (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
  if (!source) {
    if (req.mode === 'auto') return null;
    throw new WebGPUUnavailableError(
      "init({ backend: 'webgpu' }): no WebGPU here (navigator.gpu is missing); in Node pass init({ gpu }) " +
        "with gpu = create([]) from the npm package 'webgpu'",
    );
  }
  // 'auto' asks a GPU source for an adapter once: a browser logs every request that finds none
  if (req.mode === 'auto' && gpuState.noAdapter.has(source)) return null;
  // The rest is loaded on first use (src/runtime/gpu-lazy.ts, a chunk of its own in dist/), so
  // pages and runtimes without a GPU do not download or parse the WebGPU backend.
  return (await import('./gpu-lazy')).gpuBackend(req, source);
}

/**
 * One backend per GPU source for the process: init() called again with the same GPU reuses it
 * (no new device, no new calibration), and values computed on it stay readable across inits.
 * shutdown() releases it.
 */
export const gpuState: {
  current: { source: GPU | GPUDevice; backend: WebGPUBackend } | null;
  /** GPU sources where 'auto' found no adapter: not asked again in this process. */
  noAdapter: WeakSet<GPU | GPUDevice>;
} = {
  current: null,
  noAdapter: new WeakSet(),
};

/** Releases the GPU device (shutdown()): values that lived only there can no longer be read. */
export function releaseGpu(): void {
  gpuState.current?.backend.dispose();
  gpuState.current = null;
}

/** Measures dispatch overhead, matmul and copy throughput (src/runtime/gpu-lazy.ts). */
export async function measureGpu(b: WebGPUBackend): Promise<GpuProfile> {
  return (await import('./gpu-lazy')).measureGpu(b);
}
