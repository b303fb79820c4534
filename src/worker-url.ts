import { WasmUnavailableError } from './errors';

/**
 * Location of the kernel worker script. Kept in one file at the src/ root on purpose, like
 * wasm-url.ts: in the sources this resolves to workers/kernel-worker.js; when rollup bundles
 * the package it rewrites the path (rollup.config.mjs) so that it resolves to
 * dist/kernel-worker.js, the bundled worker beside dist/index.js. Bundlers that follow
 * `new URL(..., import.meta.url)` ship the worker with an app. Where the module has no URL
 * (no `import.meta.url`), a WasmUnavailableError: the pool reports it and adjoint runs on one
 * thread.
 */
export function kernelWorkerUrl(): URL {
  if (typeof import.meta.url !== 'string' || import.meta.url === '')
    throw new WasmUnavailableError(
      'adjoint: cannot locate the kernel worker script: import.meta.url is undefined in this runtime',
    );
  return new URL('../workers/kernel-worker.js', import.meta.url);
}
