import { WasmUnavailableError } from './errors';

/**
 * Location of the prebuilt kernel binaries. Kept in one file at the src/ root on purpose:
 * in the sources this resolves to src/wasm/<name>; once rollup bundles everything into
 * dist/index.js it resolves to dist/wasm/<name>.
 *
 * Throws a WasmUnavailableError where the module has no URL of its own to resolve against
 * (Cloudflare's workerd leaves `import.meta.url` undefined): there the kernels must be passed
 * to `init({ wasmModule })`.
 */
export function wasmUrl(name: string): URL {
  const base: unknown = import.meta.url;
  if (typeof base !== 'string' || base === '')
    throw new WasmUnavailableError(
      `adjoint: cannot locate the wasm kernels (${name}): import.meta.url is ${base === '' ? 'empty' : 'undefined'} in this runtime. ` +
        "Import the kernel module and pass it: `import wasmModule from 'adjoint/wasm/kernels.wasm'; await init({ wasmModule })` (see docs/EDGE.md).",
    );
  return new URL(`./wasm/${name}`, base);
}
