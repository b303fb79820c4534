/**
 * The devices a run may use: a primary backend (wasm, or the reference interpreter) that can
 * run every op, and optionally a GPU backend that takes the nodes placement gives it. `epoch`
 * changes whenever the set changes, so caches keyed on placement start afresh.
 */
import type { Backend } from '../backends/backend';
import { ValueError } from '../errors';
import type { Device } from '../tensor';

/** How placement uses the GPU: 'auto' by the cost model, 'webgpu' for every op it can run. */
export type GpuMode = 'auto' | 'webgpu';

/** What the cost model knows of a GPU, measured once per adapter at init. */
export interface GpuProfile {
  /** Fixed cost of one dispatch, ns. */
  readonly dispatchNs: number;
  /** Matmul throughput, flop per ns (= GFLOP/s). */
  readonly flopsPerNs: number;
  /** Elementwise throughput, bytes per ns (= GB/s). */
  readonly bytesPerNs: number;
  /** Host <-> GPU copies, bytes per ns, and the fixed cost of a read back, ns. */
  readonly transferBytesPerNs: number;
  readonly readbackNs: number;
  /** Software adapters (lavapipe, SwiftShader) take nothing under 'auto'. */
  readonly fallback: boolean;
}

interface DeviceState {
  primary: Backend | null;
  gpu: Backend | null;
  gpuMode: GpuMode;
  gpuProfile: GpuProfile | null;
  /** Worker threads of the primary backend (the wasm cost model scales with them). */
  threads: number;
  epoch: number;
}

const state: DeviceState = {
  primary: null,
  gpu: null,
  gpuMode: 'auto',
  gpuProfile: null,
  threads: 1,
  epoch: 0,
};

export function devices(): Readonly<DeviceState> {
  return state;
}

/** The primary backend (wasm or reference). */
export function activeBackend(): Backend | null {
  return state.primary;
}

/** Installs a primary backend alone (no GPU). Used by init() and by tests. */
export function setBackend(b: Backend | null): void {
  setDevices({ primary: b, gpu: null });
}

export function setDevices(next: {
  primary: Backend | null;
  gpu: Backend | null;
  gpuMode?: GpuMode;
  gpuProfile?: GpuProfile | null;
  threads?: number;
}): void {
  state.primary = next.primary;
  state.gpu = next.gpu;
  state.gpuMode = next.gpuMode ?? 'auto';
  state.gpuProfile = next.gpuProfile ?? null;
  state.threads = next.threads ?? 1;
  state.epoch++;
}

/** The backend whose buffers live on `device`. */
export function backendOn(device: Device): Backend {
  if (state.primary?.device === device) return state.primary;
  if (state.gpu?.device === device) return state.gpu;
  throw new ValueError(`no backend on device '${device}' is active`);
}
