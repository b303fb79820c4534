import { ReferenceBackend } from '../backends/reference/interpreter';
import { WasmBackend } from '../backends/wasm/backend';
import { loadKernels, loadKernelsSync, resetFeatureCache } from '../backends/wasm/loader';
import {
  loadSharedKernels,
  loadSharedKernelsSync,
  type SharedKernels,
  sharedMemorySupported,
} from '../backends/wasm/scheduler/module';
import { WorkerPool } from '../backends/wasm/scheduler/pool';
import { ValueError } from '../errors';
import { enableRelaxedSimd, envVar, isNode, nodeParallelism } from '../platform/node';
import { setDevices } from './devices';
import { activeBackend, setAutoInit, setBackend } from './realize';
import { relieveWasm } from './residency';

export interface InitOptions {
  /** 'auto' picks wasm (WebGPU placement comes later); 'reference' is the float64 interpreter. */
  backend?: 'auto' | 'wasm' | 'webgpu' | 'reference';
  /**
   * Threads for the wasm kernels, the calling thread included: 1 runs everything on it; more
   * starts threads - 1 workers over one shared memory. Default: the ADJOINT_THREADS environment
   * variable where there is one, else the number of logical CPUs (at most 16).
   */
  threads?: number;
  /** A precompiled kernel module, for runtimes that forbid compiling wasm from bytes. */
  wasmModule?: WebAssembly.Module;
}

const MAX_DEFAULT_THREADS = 16;
const MAX_THREADS = 64;

function check(opts: InitOptions): 'wasm' | 'reference' {
  const backend = opts.backend ?? 'auto';
  if (!['auto', 'wasm', 'webgpu', 'reference'].includes(backend))
    throw new ValueError(
      `init: unknown backend '${String(backend)}' (expected auto, wasm, webgpu or reference)`,
    );
  if (backend === 'webgpu')
    throw new ValueError("init: the webgpu backend is not available in this version; use 'auto' or 'wasm'");
  if (
    opts.threads !== undefined &&
    (!Number.isInteger(opts.threads) || opts.threads < 1 || opts.threads > MAX_THREADS)
  )
    throw new ValueError(`init: threads must be an integer from 1 to ${MAX_THREADS}, got ${opts.threads}`);
  return backend === 'reference' ? 'reference' : 'wasm';
}

let warnedEnv = false;

/** The thread count init() uses when none is given. */
export function defaultThreads(): number {
  const env = envVar('ADJOINT_THREADS');
  if (env !== undefined && env !== '') {
    const n = Number(env);
    if (Number.isInteger(n) && n >= 1 && n <= MAX_THREADS) return n;
    if (!warnedEnv) {
      warnedEnv = true;
      console.warn(`adjoint: ignoring ADJOINT_THREADS=${env} (expected an integer from 1 to ${MAX_THREADS})`);
    }
  }
  const nav = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator;
  const hw = (isNode() ? nodeParallelism() : undefined) ?? nav?.hardwareConcurrency ?? 1;
  return Math.max(1, Math.min(MAX_DEFAULT_THREADS, Math.floor(hw)));
}

let warnedNoThreads = false;
let warnedNoWorkers = false;

/** Whether workers can run here; warns once (per process) when threads were wanted but cannot be had. */
function threadsAvailable(): boolean {
  const g = globalThis as { Worker?: unknown };
  let why = '';
  if (!sharedMemorySupported())
    why =
      'SharedArrayBuffer is not available (a web page must be cross-origin isolated: serve it with ' +
      "the headers 'Cross-Origin-Opener-Policy: same-origin' and 'Cross-Origin-Embedder-Policy: require-corp')";
  else if (typeof g.Worker !== 'function' && !isNode()) why = 'this runtime has no Worker';
  if (!why) return true;
  if (!warnedNoThreads) {
    warnedNoThreads = true;
    console.warn(`adjoint: ${why}; running on one thread.`);
  }
  return false;
}

function prepare(): void {
  enableRelaxedSimd();
  resetFeatureCache();
}

/** The pool of the active wasm backend, shut down when init() switches. */
let currentPool: WorkerPool | null = null;

function retirePool(): Promise<void> {
  const old = currentPool;
  currentPool = null;
  return old ? old.shutdown() : Promise.resolve();
}

function poolBackend(shared: SharedKernels, threads: number): WasmBackend {
  const pool = new WorkerPool(shared, threads);
  currentPool = pool;
  return new WasmBackend(shared.kernels, { pool });
}

let initChain: Promise<void> = Promise.resolve();

/**
 * Chooses and loads the backend. Calling it again switches; existing tensors stay valid.
 * Calls are serialized, so overlapping inits cannot leave a worker pool behind.
 */
export function init(opts: InitOptions = {}): Promise<void> {
  const run = initChain.then(() => initNow(opts));
  initChain = run.catch(() => {});
  return run;
}

async function initNow(opts: InitOptions): Promise<void> {
  const kind = check(opts);
  await retirePool();
  if (kind === 'reference') {
    setBackend(new ReferenceBackend());
    return;
  }
  const primary = await wasmBackend(opts);
  primary.kernels.allocator.onPressure = relieveWasm;
  setDevices({ primary, gpu: null, threads: primary.threads });
}

/** The wasm backend init() asks for: a worker pool over shared memory where threads can run. */
async function wasmBackend(opts: InitOptions): Promise<WasmBackend> {
  prepare();
  const threads = opts.threads ?? defaultThreads();
  if (threads > 1 && threadsAvailable()) {
    let shared: SharedKernels | undefined;
    try {
      shared = await loadSharedKernels(opts.wasmModule);
    } catch (e) {
      // e.g. a wasmModule built for unshared memory
      if (!opts.wasmModule) throw e;
      console.warn(
        `adjoint: the given wasmModule cannot use shared memory (${(e as Error).message}); running on one thread.`,
      );
    }
    if (shared) {
      const backend = poolBackend(shared, threads);
      const pool = backend.pool!;
      await pool.ready();
      if (pool.serving === 0 && !warnedNoWorkers) {
        warnedNoWorkers = true;
        console.warn(
          `adjoint: the kernel workers did not start (${pool.lastFailureMessage}); running on one thread.`,
        );
      }
      return backend;
    }
  }
  return new WasmBackend(await loadKernels(opts.wasmModule ? { module: opts.wasmModule } : {}));
}

/**
 * Synchronous default initialization for dataSync() before init(): possible under Node. With
 * threads the workers start in the background; runs use them once they are up.
 */
export function initSync(opts: InitOptions = {}): void {
  const kind = check(opts);
  void retirePool();
  if (kind === 'reference') {
    setBackend(new ReferenceBackend());
    return;
  }
  prepare();
  const threads = opts.threads ?? defaultThreads();
  if (threads > 1 && threadsAvailable()) {
    try {
      const primary = poolBackend(loadSharedKernelsSync(opts.wasmModule), threads);
      primary.kernels.allocator.onPressure = relieveWasm;
      setDevices({ primary, gpu: null, threads });
      return;
    } catch (e) {
      if (!opts.wasmModule) throw e;
    }
  }
  const primary = new WasmBackend(loadKernelsSync(opts.wasmModule ? { module: opts.wasmModule } : {}));
  primary.kernels.allocator.onPressure = relieveWasm;
  setDevices({ primary, gpu: null, threads: 1 });
}

/**
 * Stops the worker pool of the active backend (if any); later runs use the main thread only.
 * Not needed for a Node process to exit (workers never keep it alive).
 */
export async function shutdown(): Promise<void> {
  await retirePool();
}

export function memoryStats(): {
  backend: string;
  wasmBytes: number;
  liveBuffers: number;
  liveBytes: number;
  threads: number;
  workers: number;
} {
  const b = activeBackend();
  const s = b?.stats?.() ?? {};
  return {
    backend: b?.name ?? 'none',
    wasmBytes: s.wasmBytes ?? 0,
    liveBuffers: s.liveBuffers ?? 0,
    liveBytes: s.liveBytes ?? 0,
    threads: s.threads ?? 1,
    workers: s.workers ?? 0,
  };
}

setAutoInit({ sync: () => initSync(), async: () => init() });
