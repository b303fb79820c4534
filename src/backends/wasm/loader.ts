/**
 * Finds, compiles and instantiates the kernel module.
 *
 * Four prebuilt binaries exist (see asconfig.json): kernels.wasm, kernels-shared.wasm,
 * kernels-relaxed.wasm, kernels-relaxed-shared.wasm. The relaxed-SIMD ones are chosen when
 * `WebAssembly.validate` accepts a tiny hand-written relaxed-SIMD module; the shared ones
 * import a shared memory for worker pools. Memory is always created by JS and imported.
 * No code is generated at run time.
 */

import { readFileBytes, readFileBytesSync } from '../../platform/node';
import { wasmUrl } from '../../wasm-url';
import { type KernelExports, Kernels } from './kernels';
import { WasmAllocator } from './memory';

const PAGE = 65536;

/**
 * (module (func (result v128)
 *   (f32x4.relaxed_madd (v128.const i32x4 0 0 0 0) (v128.const ...) (v128.const ...))))
 */
const RELAXED_PROBE = new Uint8Array([
  0x00,
  0x61,
  0x73,
  0x6d,
  0x01,
  0x00,
  0x00,
  0x00, // magic, version
  0x01,
  0x05,
  0x01,
  0x60,
  0x00,
  0x01,
  0x7b, // type section: () -> v128
  0x03,
  0x02,
  0x01,
  0x00, // function section
  0x0a,
  0x3d,
  0x01,
  0x3b,
  0x00, // code section, 1 body of 59 bytes, no locals
  0xfd,
  0x0c,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0, // v128.const
  0xfd,
  0x0c,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0xfd,
  0x0c,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0xfd,
  0x85,
  0x02, // f32x4.relaxed_madd (0xfd 0x105)
  0x0b, // end
]);

let relaxedCache: boolean | undefined;

/** Whether this runtime accepts relaxed-SIMD instructions (feature detection by validation). */
export function relaxedSimdSupported(): boolean {
  if (relaxedCache === undefined) {
    try {
      relaxedCache = WebAssembly.validate(RELAXED_PROBE);
    } catch {
      relaxedCache = false;
    }
  }
  return relaxedCache;
}

/** Forget the cached probe result (tests that toggle V8 flags). */
export function resetFeatureCache(): void {
  relaxedCache = undefined;
}

export function kernelFileName(relaxed: boolean, shared: boolean): string {
  return `kernels${relaxed ? '-relaxed' : ''}${shared ? '-shared' : ''}.wasm`;
}

export interface LoadKernelsOptions {
  /** A precompiled module (must match `shared`); skips fetching. */
  module?: WebAssembly.Module;
  /** Raw bytes of a kernel module; skips fetching. */
  bytes?: BufferSource;
  /** Use the shared-memory build (worker pools). Defaults to whether `memory` is shared. */
  shared?: boolean;
  /** Memory to import; created when absent. */
  memory?: WebAssembly.Memory;
  /** true/false forces the relaxed-SIMD build on/off; default: feature detection. */
  relaxed?: boolean;
  /** Upper bound for linear memory growth (bytes, default 4 GiB). */
  maxBytes?: number;
  /** Initial memory size when this loader creates the memory (bytes, default 16 MiB). */
  initialBytes?: number;
}

interface Plan {
  shared: boolean;
  relaxed: boolean;
  maxPages: number;
}

function plan(opts: LoadKernelsOptions): Plan {
  const memShared =
    opts.memory !== undefined &&
    typeof SharedArrayBuffer !== 'undefined' &&
    opts.memory.buffer instanceof SharedArrayBuffer;
  const shared = opts.shared ?? memShared;
  if (opts.memory && shared !== memShared) {
    throw new Error(`adjoint: loadKernels: shared=${shared} does not match the given memory`);
  }
  const relaxed = opts.relaxed ?? relaxedSimdSupported();
  const maxPages = Math.min(65536, Math.floor((opts.maxBytes ?? 4 * 1024 * 1024 * 1024) / PAGE));
  return { shared, relaxed, maxPages };
}

function makeMemory(p: Plan, opts: LoadKernelsOptions): WebAssembly.Memory {
  if (opts.memory) return opts.memory;
  const initial = Math.min(
    p.maxPages,
    Math.max(1, Math.ceil((opts.initialBytes ?? 16 * 1024 * 1024) / PAGE)),
  );
  return new WebAssembly.Memory({ initial, maximum: p.maxPages, shared: p.shared });
}

/** Instantiates an already compiled kernel module over `memory`. */
export function instantiateKernels(
  module: WebAssembly.Module,
  memory: WebAssembly.Memory,
  info: { shared: boolean; maxBytes?: number },
): Kernels {
  const instance = new WebAssembly.Instance(module, {
    env: {
      memory,
      abort: (_msg: number, _file: number, line: number, col: number) => {
        throw new Error(`adjoint: wasm kernel abort at ${line}:${col}`);
      },
    },
  });
  const exports = instance.exports as unknown as KernelExports;
  const allocator = new WasmAllocator(memory, { base: exports.heapBase(), maxBytes: info.maxBytes });
  return new Kernels(exports, memory, allocator, { shared: info.shared, relaxed: exports.isRelaxed() === 1 });
}

async function fetchModule(name: string): Promise<WebAssembly.Module> {
  const url = wasmUrl(name);
  if (url.protocol === 'file:') {
    return WebAssembly.compile((await readFileBytes(url)) as BufferSource);
  }
  const res = fetch(url.href);
  if (typeof WebAssembly.compileStreaming === 'function') {
    try {
      return await WebAssembly.compileStreaming(res);
    } catch {
      // wrong MIME type etc.: fall back to compiling the bytes
    }
  }
  const r = await res;
  if (!r.ok) throw new Error(`adjoint: could not fetch ${url.href}: HTTP ${r.status}`);
  return WebAssembly.compile(await r.arrayBuffer());
}

/** Loads and instantiates the best kernel build for this runtime. */
export async function loadKernels(opts: LoadKernelsOptions = {}): Promise<Kernels> {
  const p = plan(opts);
  let module = opts.module;
  if (!module && opts.bytes) module = await WebAssembly.compile(opts.bytes);
  if (!module) {
    try {
      module = await fetchModule(kernelFileName(p.relaxed, p.shared));
    } catch (e) {
      if (!p.relaxed) throw e;
      p.relaxed = false;
      module = await fetchModule(kernelFileName(false, p.shared));
    }
  }
  return instantiateKernels(module, makeMemory(p, opts), { shared: p.shared, maxBytes: p.maxPages * PAGE });
}

/**
 * Synchronous loading: works with `module` or `bytes`, or under Node (file: URLs read with
 * process.getBuiltinModule). Throws a clear error where the bytes cannot be had synchronously.
 */
export function loadKernelsSync(opts: LoadKernelsOptions = {}): Kernels {
  const p = plan(opts);
  let module = opts.module;
  if (!module && opts.bytes) module = new WebAssembly.Module(opts.bytes);
  if (!module) {
    const read = (name: string): Uint8Array => {
      const url = wasmUrl(name);
      const bytes = url.protocol === 'file:' ? readFileBytesSync(url) : undefined;
      if (!bytes) {
        throw new Error(
          `adjoint: cannot load ${url.href} synchronously here; use loadKernels() or pass { module }`,
        );
      }
      return bytes;
    };
    try {
      module = new WebAssembly.Module(read(kernelFileName(p.relaxed, p.shared)) as BufferSource);
    } catch (e) {
      if (!p.relaxed) throw e;
      p.relaxed = false;
      module = new WebAssembly.Module(read(kernelFileName(false, p.shared)) as BufferSource);
    }
  }
  return instantiateKernels(module, makeMemory(p, opts), { shared: p.shared, maxBytes: p.maxPages * PAGE });
}
