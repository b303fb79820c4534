/**
 * Starting a kernel worker: the Web Worker (browsers, Deno; the `web-worker` package under Node)
 * or worker_threads (Node, Bun), and comlink on this side of it. The pool (pool.ts) imports this module
 * dynamically when it starts its first worker, so a run on one thread (edge runtimes, pages that
 * are not cross-origin isolated) never loads it or comlink; in dist/ it is a chunk of its own.
 */
import type * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import { preferNodeWorkers, startNodeWorker } from '../../../platform/node';
import type { WorkerConstructor } from './pool';

export { wrap } from 'comlink';

export interface WorkerHandle {
  endpoint: Comlink.Endpoint;
  terminate(): Promise<void>;
  /** Called when the thread ends or fails without being asked to. */
  onGone(cb: (why: string) => void): void;
  /** Node: keep the worker from holding the process open (after comlink has attached). */
  unref(): void;
}

export function startWorker(url: URL, ctor: WorkerConstructor | undefined): WorkerHandle {
  const W =
    ctor ??
    (typeof Worker === 'function' && !preferNodeWorkers()
      ? (Worker as unknown as WorkerConstructor)
      : undefined);
  if (W) {
    const w = new W(url, { type: 'module', name: 'adjoint-kernels' });
    let gone: ((why: string) => void) | undefined;
    let terminated = false;
    w.addEventListener('error', (e: Event) => {
      if (!terminated) gone?.(`worker error: ${(e as ErrorEvent).message ?? 'unknown'}`);
    });
    return {
      endpoint: w as unknown as Comlink.Endpoint,
      async terminate() {
        terminated = true;
        w.terminate();
        // A terminated web worker stops at once; give its thread a turn to unwind.
        await new Promise((r) => setTimeout(r, 0));
      },
      onGone(cb) {
        gone = cb;
      },
      unref() {},
    };
  }
  const h = startNodeWorker(url);
  if (!h) throw new Error('adjoint: no Worker constructor in this runtime');
  let terminated = false;
  let gone: ((why: string) => void) | undefined;
  h.onExit((code) => {
    if (!terminated) gone?.(`the worker thread exited (code ${code})`);
  });
  h.onError((e) => {
    if (!terminated) gone?.(`worker error: ${e instanceof Error ? e.message : String(e)}`);
  });
  return {
    endpoint: nodeEndpoint(h.worker),
    async terminate() {
      terminated = true;
      await h.terminate();
    },
    onGone(cb) {
      gone = cb;
    },
    unref() {
      h.unref();
    },
  };
}
