/**
 * comlink for the main thread, in one module that the worker pool imports dynamically when it
 * starts its first worker: a run on one thread (edge runtimes, pages that are not cross-origin
 * isolated) never loads it, and in dist/ it is a chunk of its own.
 */
export { wrap } from 'comlink';
export { default as nodeEndpoint } from 'comlink/dist/esm/node-adapter.mjs';
