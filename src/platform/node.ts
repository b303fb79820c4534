/**
 * The only module under src/ that touches Node built-ins, and only through dynamic
 * imports / process.getBuiltinModule, so browser and edge bundles never load them.
 */

interface NodeFsSync {
  readFileSync(path: URL): Uint8Array;
}

interface NodeProcessLike {
  versions?: { node?: string };
  getBuiltinModule?: (id: string) => unknown;
}

function nodeProcess(): NodeProcessLike | undefined {
  const p = (globalThis as { process?: NodeProcessLike }).process;
  return p?.versions?.node ? p : undefined;
}

/** True when running under Node (or a runtime that exposes Node's process object). */
export function isNode(): boolean {
  return nodeProcess() !== undefined;
}

/** Reads a file: URL into bytes (Node / Deno-with-node-compat). */
export async function readFileBytes(url: URL): Promise<Uint8Array> {
  const fs = await import('node:fs/promises');
  const buf = await fs.readFile(url);
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

/**
 * Synchronous variant, available where `process.getBuiltinModule` exists (Node >= 20.16).
 * Returns undefined when synchronous file access is impossible.
 */
export function readFileBytesSync(url: URL): Uint8Array | undefined {
  const fs = nodeProcess()?.getBuiltinModule?.('node:fs') as NodeFsSync | undefined;
  if (!fs) return undefined;
  const buf = fs.readFileSync(url);
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

interface NodeV8 {
  setFlagsFromString(flags: string): void;
}

/**
 * Node 20 gates relaxed SIMD behind a V8 flag; setting it before the kernels are compiled
 * lets feature detection pick the faster build. Other runtimes have it on already.
 */
export function enableRelaxedSimd(): void {
  const v8 = nodeProcess()?.getBuiltinModule?.('node:v8') as NodeV8 | undefined;
  try {
    v8?.setFlagsFromString('--experimental-wasm-relaxed-simd');
  } catch {
    // Not fatal: the plain SIMD build is used.
  }
}

interface NodeOs {
  availableParallelism?: () => number;
  cpus(): unknown[];
}

/** Logical CPUs under Node (os.availableParallelism), or undefined elsewhere. */
export function nodeParallelism(): number | undefined {
  const os = nodeProcess()?.getBuiltinModule?.('node:os') as NodeOs | undefined;
  if (!os) return undefined;
  return os.availableParallelism?.() ?? os.cpus().length;
}

/** An environment variable under Node (Deno with its process global too), else undefined. */
export function envVar(name: string): string | undefined {
  const p = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  try {
    return p?.env?.[name];
  } catch {
    // Deno without --allow-env throws on access.
    return undefined;
  }
}

interface NodeWorkerThread {
  postMessage(message: unknown, transfer?: unknown[]): void;
  on(event: string, listener: (...args: any[]) => void): void;
  off(event: string, listener: (...args: any[]) => void): void;
  once(event: string, listener: (...args: any[]) => void): void;
  terminate(): Promise<number>;
  unref(): void;
  start?: () => void;
}

interface NodeWorkerThreads {
  Worker: new (url: URL, opts?: Record<string, unknown>) => NodeWorkerThread;
}

/** A worker_threads Worker, with what the pool needs from it. */
export interface NodeWorkerHandle {
  /** The raw worker (wrap it with comlink's node adapter). */
  readonly worker: NodeWorkerThread;
  terminate(): Promise<void>;
  /**
   * Lets the process exit while the worker lives. Call it again after adding 'message'
   * listeners (comlink's): a listener refs the worker's port.
   */
  unref(): void;
  /** Called once when the thread has ended, for whatever reason. */
  onExit(cb: (code: number) => void): void;
  onError(cb: (e: unknown) => void): void;
}

/**
 * Whether kernel workers should be worker_threads even though a Web Worker constructor exists:
 * under Bun, whose worker_threads (like Node's) can be unreferenced, so an unfinished pool never
 * holds the process open.
 */
export function preferNodeWorkers(): boolean {
  return (
    typeof (globalThis as { Bun?: unknown }).Bun !== 'undefined' &&
    nodeProcess()?.getBuiltinModule !== undefined
  );
}

/**
 * Starts `url` (an ES module) on a worker_threads Worker that does not keep the process alive.
 * Returns undefined outside Node.
 */
export function startNodeWorker(url: URL): NodeWorkerHandle | undefined {
  const wt = nodeProcess()?.getBuiltinModule?.('node:worker_threads') as NodeWorkerThreads | undefined;
  if (!wt) return undefined;
  const worker = new wt.Worker(url, { name: 'adjoint-kernels' });
  worker.unref();
  return {
    worker,
    async terminate() {
      await worker.terminate();
    },
    unref() {
      worker.unref();
    },
    onExit(cb) {
      worker.once('exit', cb);
    },
    onError(cb) {
      worker.on('error', cb);
    },
  };
}
