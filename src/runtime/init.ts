import { ReferenceBackend } from '../backends/reference/interpreter';
import { WasmBackend } from '../backends/wasm/backend';
import { loadKernels, loadKernelsSync, resetFeatureCache } from '../backends/wasm/loader';
import { ValueError } from '../errors';
import { enableRelaxedSimd } from './node';
import { activeBackend, setAutoInit, setBackend } from './realize';

export interface InitOptions {
  /** 'auto' picks wasm (WebGPU placement comes later); 'reference' is the float64 interpreter. */
  backend?: 'auto' | 'wasm' | 'webgpu' | 'reference';
  threads?: number;
  /** A precompiled kernel module, for runtimes that forbid compiling wasm from bytes. */
  wasmModule?: WebAssembly.Module;
}

function check(opts: InitOptions): 'wasm' | 'reference' {
  const backend = opts.backend ?? 'auto';
  if (!['auto', 'wasm', 'webgpu', 'reference'].includes(backend))
    throw new ValueError(
      `init: unknown backend '${String(backend)}' (expected auto, wasm, webgpu or reference)`,
    );
  if (backend === 'webgpu')
    throw new ValueError("init: the webgpu backend is not available in this version; use 'auto' or 'wasm'");
  if (opts.threads !== undefined && (!Number.isInteger(opts.threads) || opts.threads < 1))
    throw new ValueError(`init: threads must be a positive integer, got ${opts.threads}`);
  return backend === 'reference' ? 'reference' : 'wasm';
}

function prepare(): void {
  enableRelaxedSimd();
  resetFeatureCache();
}

/** Chooses and loads the backend. Calling it again switches; existing tensors stay valid. */
export async function init(opts: InitOptions = {}): Promise<void> {
  const kind = check(opts);
  if (kind === 'reference') {
    setBackend(new ReferenceBackend());
    return;
  }
  prepare();
  const kernels = await loadKernels(opts.wasmModule ? { module: opts.wasmModule } : {});
  setBackend(new WasmBackend(kernels));
}

/** Synchronous default initialization for dataSync() before init(): possible under Node. */
export function initSync(opts: InitOptions = {}): void {
  const kind = check(opts);
  if (kind === 'reference') {
    setBackend(new ReferenceBackend());
    return;
  }
  prepare();
  setBackend(new WasmBackend(loadKernelsSync(opts.wasmModule ? { module: opts.wasmModule } : {})));
}

export function memoryStats(): {
  backend: string;
  wasmBytes: number;
  liveBuffers: number;
  liveBytes: number;
} {
  const b = activeBackend();
  const s = b?.stats?.() ?? {};
  return {
    backend: b?.name ?? 'none',
    wasmBytes: s.wasmBytes ?? 0,
    liveBuffers: s.liveBuffers ?? 0,
    liveBytes: s.liveBytes ?? 0,
  };
}

setAutoInit({ sync: () => initSync(), async: () => init() });
