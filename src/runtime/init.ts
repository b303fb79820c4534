import { WasmBackend } from '../backends/wasm/backend';
import { loadKernels, loadKernelsSync, resetFeatureCache } from '../backends/wasm/loader';
import {
  loadSharedKernels,
  loadSharedKernelsSync,
  type SharedKernels,
  sharedMemorySupported,
} from '../backends/wasm/scheduler/module';
import type { WorkerPool } from '../backends/wasm/scheduler/pool';
import { AdjointError, ValueError, WasmUnavailableError } from '../errors';
import { enableRelaxedSimd, envVar, isNode, nodeParallelism } from '../platform/node';
import { devices, setDevices } from './devices';
import { gpuBackend, releaseGpu } from './gpu';
import { activeBackend, setAutoInit, setBackend } from './realize';
import { relieveWasm } from './residency';

export interface InitOptions {
  /**
   * 'auto' (default): wasm, plus WebGPU when an adapter exists, a placement pass choosing the
   * device per node (a software adapter takes nothing). 'webgpu': every op the GPU can run goes
   * there; a WebGPUUnavailableError here when there is no adapter. 'wasm': wasm only.
   * 'reference': the float64 interpreter.
   */
  backend?: 'auto' | 'wasm' | 'webgpu' | 'reference';
  /** Where to find the GPU: a GPU (default navigator.gpu; in Node `create([])` from npm 'webgpu') or a GPUDevice. */
  gpu?: GPU | GPUDevice;
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

function check(opts: InitOptions): 'auto' | 'wasm' | 'webgpu' | 'reference' {
  const backend = opts.backend ?? 'auto';
  if (!['auto', 'wasm', 'webgpu', 'reference'].includes(backend))
    throw new ValueError(
      `init: unknown backend '${String(backend)}' (expected auto, wasm, webgpu or reference)`,
    );
  if (
    opts.threads !== undefined &&
    (!Number.isInteger(opts.threads) || opts.threads < 1 || opts.threads > MAX_THREADS)
  )
    throw new ValueError(`init: threads must be an integer from 1 to ${MAX_THREADS}, got ${opts.threads}`);
  return backend;
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
  // A runtime that cannot start workers (edge isolates: no Worker) defaults to one thread, so
  // a plain init() there prints nothing; asking for more gives the one-thread notice.
  if (typeof (globalThis as { Worker?: unknown }).Worker !== 'function' && !isNode()) return 1;
  const nav = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator;
  const hw = (isNode() ? nodeParallelism() : undefined) ?? nav?.hardwareConcurrency ?? 1;
  return Math.max(1, Math.min(MAX_DEFAULT_THREADS, Math.floor(hw)));
}

let noticedOneThread = false;

/**
 * The one notice per process that threads were asked for and adjoint runs on one thread
 * (whatever the reason: no SharedArrayBuffer, no Worker, a module for unshared memory, workers
 * that did not start). Later fallbacks stay silent.
 */
function noticeOneThread(why: string): void {
  if (noticedOneThread) return;
  noticedOneThread = true;
  console.warn(`adjoint: ${why}; running on one thread.`);
}

/** Whether workers can run here; gives the one-thread notice when they cannot. */
function threadsAvailable(): boolean {
  const g = globalThis as { Worker?: unknown };
  let why = '';
  if (!sharedMemorySupported())
    why =
      'SharedArrayBuffer is not available (a web page must be cross-origin isolated: serve it with ' +
      "the headers 'Cross-Origin-Opener-Policy: same-origin' and 'Cross-Origin-Embedder-Policy: require-corp')";
  else if (typeof g.Worker !== 'function' && !isNode()) why = 'this runtime has no Worker';
  if (!why) return true;
  noticeOneThread(why);
  return false;
}

/**
 * A failure to locate, fetch or compile the kernels, as the typed error that names the fix:
 * pass a precompiled module to init({ wasmModule }).
 */
function kernelsUnavailable(e: unknown): Error {
  if (e instanceof WasmUnavailableError) return e;
  if (e instanceof AdjointError) return e;
  const why = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  return new WasmUnavailableError(
    `adjoint: init could not load the wasm kernels (${why}). Where a runtime cannot locate, fetch or ` +
      'compile them (no import.meta.url, a failed fetch, WebAssembly.compile refused as on edge runtimes), ' +
      "import the kernel module and pass it: `import wasmModule from 'adjoint/wasm/kernels.wasm'; " +
      'await init({ wasmModule })` (see docs/EDGE.md).',
    { cause: e },
  );
}

/** Runs a kernel load that had no wasmModule to go on, turning its failure into a WasmUnavailableError. */
async function locating<T>(load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (e) {
    throw kernelsUnavailable(e);
  }
}

function prepare(): void {
  enableRelaxedSimd();
  resetFeatureCache();
}

/**
 * The worker pool's module, loaded the first time threads > 1 are asked for: in dist/ it is a
 * chunk of its own, which runs on one thread (edge runtimes, pages without cross-origin
 * isolation) never load.
 */
const poolModule = () => import('../backends/wasm/scheduler/pool');

/** The pool of the active wasm backend, shut down when init() switches. */
let currentPool: WorkerPool | null = null;
/** initSync's pool while its module loads; retiring cancels it. */
let pendingPool: { cancelled: boolean } | null = null;

function retirePool(): Promise<void> {
  if (pendingPool) pendingPool.cancelled = true;
  pendingPool = null;
  const old = currentPool;
  currentPool = null;
  return old ? old.shutdown() : Promise.resolve();
}

/** Stops the workers before the devices change (tensors stay readable where they live: the GPU backend is kept for reuse). */
async function retireDevices(): Promise<void> {
  if (devices().gpu) setDevices({ ...devices(), gpu: null });
  await retirePool();
}

async function poolBackend(shared: SharedKernels, threads: number): Promise<WasmBackend> {
  const { WorkerPool } = await poolModule();
  const pool = new WorkerPool(shared, threads);
  currentPool = pool;
  return new WasmBackend(shared.kernels, { pool });
}

/**
 * initSync's pool backend: usable at once, on this thread; the pool attaches when its module has
 * loaded and its workers start in the background, as they do anyway (runs use them once they
 * serve).
 */
function poolBackendSync(shared: SharedKernels, threads: number): WasmBackend {
  const backend = new WasmBackend(shared.kernels, { threads });
  const pending = { cancelled: false };
  pendingPool = pending;
  poolModule().then(
    ({ WorkerPool }) => {
      if (pending.cancelled) return;
      pendingPool = null;
      const pool = new WorkerPool(shared, threads);
      currentPool = pool;
      backend.attachPool(pool);
    },
    (e) => {
      if (!pending.cancelled) noticeOneThread(`the worker pool did not load (${(e as Error).message})`);
    },
  );
  return backend;
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
  await retireDevices();
  if (kind === 'reference') {
    // the float64 interpreter (tests, oracles) is a chunk of its own in dist/, loaded here only
    const { ReferenceBackend } = await import('../backends/reference/interpreter');
    setBackend(new ReferenceBackend());
    return;
  }
  const gpu = kind === 'wasm' ? null : await gpuBackend({ mode: kind, gpu: opts.gpu });
  const primary = await wasmBackend(opts);
  primary.kernels.allocator.onPressure = relieveWasm;
  setDevices({
    primary,
    gpu: gpu?.backend ?? null,
    gpuMode: kind === 'webgpu' ? 'webgpu' : 'auto',
    gpuProfile: gpu?.profile ?? null,
    threads: primary.threads,
  });
}

/** The wasm backend init() asks for: a worker pool over shared memory where threads can run. */
async function wasmBackend(opts: InitOptions): Promise<WasmBackend> {
  prepare();
  const threads = opts.threads ?? defaultThreads();
  if (threads > 1 && threadsAvailable()) {
    let shared: SharedKernels | undefined;
    try {
      shared = opts.wasmModule
        ? await loadSharedKernels(opts.wasmModule)
        : await locating(() => loadSharedKernels());
    } catch (e) {
      // e.g. a wasmModule built for unshared memory
      if (!opts.wasmModule) throw e;
      noticeOneThread(`the given wasmModule cannot use shared memory (${(e as Error).message})`);
    }
    if (shared) {
      const backend = await poolBackend(shared, threads);
      const pool = backend.pool!;
      await pool.ready();
      if (pool.serving === 0)
        noticeOneThread(`the kernel workers did not start (${pool.lastFailureMessage})`);
      return backend;
    }
  }
  if (opts.wasmModule) return new WasmBackend(await loadKernels({ module: opts.wasmModule }));
  return new WasmBackend(await locating(() => loadKernels()));
}

/**
 * Synchronous default initialization for dataSync() before init(): possible under Node. With
 * threads the workers start in the background; runs use them once they are up.
 */
export function initSync(opts: InitOptions = {}): void {
  const kind = check(opts);
  if (kind === 'webgpu' || kind === 'reference')
    throw new ValueError(`init({ backend: '${kind}' }) is async: await init(...) first`);
  void retireDevices();
  prepare();
  const threads = opts.threads ?? defaultThreads();
  if (threads > 1 && threadsAvailable()) {
    try {
      const primary = poolBackendSync(loadSharedKernelsSync(opts.wasmModule), threads);
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
  await retireDevices();
  releaseGpu();
}

export function memoryStats(): {
  backend: string;
  /** The GPU placement may use, if any ('webgpu'). */
  gpu: string | null;
  wasmBytes: number;
  liveBuffers: number;
  liveBytes: number;
  /** Bytes of live GPU buffers (pooled idle buffers not counted), and their number. */
  gpuBytes: number;
  gpuBuffers: number;
  /** Graph runs and compute dispatches on the GPU so far (a run is one command encoder). */
  gpuRuns: number;
  gpuDispatches: number;
  threads: number;
  workers: number;
} {
  const b = activeBackend();
  const s = b?.stats?.() ?? {};
  const gpu = devices().gpu;
  const g = gpu?.stats?.() ?? {};
  return {
    backend: b?.name ?? 'none',
    gpu: gpu?.name ?? null,
    wasmBytes: s.wasmBytes ?? 0,
    liveBuffers: s.liveBuffers ?? 0,
    liveBytes: s.liveBytes ?? 0,
    gpuBytes: g.gpuBytes ?? 0,
    gpuBuffers: g.liveBuffers ?? 0,
    gpuRuns: g.runs ?? 0,
    gpuDispatches: g.dispatches ?? 0,
    threads: s.threads ?? 1,
    workers: s.workers ?? 0,
  };
}

setAutoInit({ sync: () => initSync(), async: () => init() });
