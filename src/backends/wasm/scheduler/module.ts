/**
 * The shared-memory kernels of a worker pool: the compiled module (workers instantiate the same
 * one), one shared WebAssembly.Memory, and the main thread's instance over it.
 */

import { readFileBytes, readFileBytesSync } from '../../../platform/node';
import { wasmUrl } from '../../../wasm-url';
import type { Kernels } from '../kernels';
import { instantiateKernels, kernelFileName, relaxedSimdSupported } from '../loader';

const PAGE = 65536;

export interface SharedKernels {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  kernels: Kernels;
}

/** Whether this runtime can share memory between threads at all (false on pages without COOP/COEP). */
export function sharedMemorySupported(): boolean {
  const g = globalThis as { SharedArrayBuffer?: unknown; Atomics?: unknown; crossOriginIsolated?: boolean };
  if (typeof g.SharedArrayBuffer !== 'function' || typeof g.Atomics !== 'object') return false;
  if (g.crossOriginIsolated === false) return false;
  try {
    const m = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
    return m.buffer instanceof (g.SharedArrayBuffer as typeof SharedArrayBuffer);
  } catch {
    return false;
  }
}

/** A shared memory as large as the runtime allows to reserve (4 GiB, else less). */
function sharedMemory(initialBytes: number): { memory: WebAssembly.Memory; maxBytes: number } {
  const initial = Math.max(1, Math.ceil(initialBytes / PAGE));
  let last: unknown;
  for (const maxPages of [65536, 32768, 16384, 4096]) {
    try {
      const memory = new WebAssembly.Memory({ initial, maximum: maxPages, shared: true });
      return { memory, maxBytes: maxPages * PAGE };
    } catch (e) {
      last = e;
    }
  }
  throw last;
}

async function fetchModule(name: string): Promise<WebAssembly.Module> {
  const url = wasmUrl(name);
  if (url.protocol === 'file:') return WebAssembly.compile((await readFileBytes(url)) as BufferSource);
  const res = await fetch(url.href);
  if (!res.ok) throw new Error(`adjoint: could not fetch ${url.href}: HTTP ${res.status}`);
  return WebAssembly.compile(await res.arrayBuffer());
}

function readModuleSync(name: string): WebAssembly.Module {
  const url = wasmUrl(name);
  const bytes = url.protocol === 'file:' ? readFileBytesSync(url) : undefined;
  if (!bytes) throw new Error(`adjoint: cannot load ${url.href} synchronously here; call 'await init()'`);
  return new WebAssembly.Module(bytes as BufferSource);
}

function instantiate(module: WebAssembly.Module): SharedKernels {
  const { memory, maxBytes } = sharedMemory(16 * 1024 * 1024);
  const kernels = instantiateKernels(module, memory, { shared: true, maxBytes });
  if (typeof (kernels.exports as unknown as { runTask?: unknown }).runTask !== 'function')
    throw new Error('adjoint: this kernel module has no runTask export (rebuild the wasm kernels)');
  return { module, memory, kernels };
}

/** Loads the shared build (relaxed SIMD where available), or instantiates `module` over shared memory. */
export async function loadSharedKernels(module?: WebAssembly.Module): Promise<SharedKernels> {
  if (module) return instantiate(module);
  const relaxed = relaxedSimdSupported();
  try {
    return instantiate(await fetchModule(kernelFileName(relaxed, true)));
  } catch (e) {
    if (!relaxed) throw e;
    return instantiate(await fetchModule(kernelFileName(false, true)));
  }
}

export function loadSharedKernelsSync(module?: WebAssembly.Module): SharedKernels {
  if (module) return instantiate(module);
  const relaxed = relaxedSimdSupported();
  try {
    return instantiate(readModuleSync(kernelFileName(relaxed, true)));
  } catch (e) {
    if (!relaxed) throw e;
    return instantiate(readModuleSync(kernelFileName(false, true)));
  }
}
