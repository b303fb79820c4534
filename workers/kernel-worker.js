/**
 * adjoint kernel worker: one script for browsers, Deno and Node (worker_threads).
 *
 * comlink carries the slow, rare messages (start with the compiled kernel module and the shared
 * memory, serve, stop). Kernel dispatch never uses a message: in `serve()` the worker waits on
 * the control block in shared memory (workers/protocol.js), claims chunks of the posted job with
 * Atomics, runs them with its own kernel instance (`runTask`, assembly/task.ts) and counts them
 * done. Plain JavaScript so Node can start it from the sources; rollup bundles it (with comlink)
 * into dist/kernel-worker.js.
 */
import * as Comlink from 'comlink/dist/esm/comlink.mjs';
import { COMMAND, CTL, KILL_EXIT, KILL_THROW, STATE } from './protocol.js';

/** @type {{ runTask(rec: number, u0: number, u1: number, scratch: number): number; setProgress(addr: number): void; isRelaxed(): number } | null} */
let kernels = null;
/** @type {Int32Array | null} */
let ctl = null;
let thread = 0;
let tw = 0;
let lastError = '';

/** Ends this thread at once, as a crash would (test hook). */
function dieSilently() {
  const proc = /** @type {any} */ (globalThis).process;
  if (isNode && proc) proc.exit(1);
  /** @type {any} */ (globalThis).close?.();
  throw new Error('adjoint worker: killed by the test hook');
}

function markDone(c, tag) {
  for (;;) {
    const v = Atomics.load(c, CTL.DONE);
    if (v >>> 16 !== tag) return;
    if (Atomics.compareExchange(c, CTL.DONE, v, v + 1) === v) return;
  }
}

/** Claims and runs chunks of the job tagged `tag` until none is left. */
function work(c, k, tag) {
  let task = 0;
  for (;;) {
    const v = Atomics.load(c, CTL.CLAIM);
    if (v >>> 16 !== tag) return;
    const idx = v & 0xffff;
    if (idx >= Atomics.load(c, CTL.TOTAL)) return;
    if (Atomics.compareExchange(c, CTL.CLAIM, v, v + 1) !== v) continue;
    Atomics.store(c, tw, STATE.BUSY);
    const n = Atomics.load(c, CTL.NTASKS);
    // chunks are claimed in increasing order: move forward through the table
    let at = CTL.TASKS + task * CTL.TASK_WORDS;
    while (task + 1 < n && idx >= c[at + 1] + c[at + 2]) {
      task++;
      at += CTL.TASK_WORDS;
    }
    if (idx < c[at + 1]) {
      task = 0;
      at = CTL.TASKS;
      while (task + 1 < n && idx >= c[at + 1] + c[at + 2]) {
        task++;
        at += CTL.TASK_WORDS;
      }
    }
    const grain = c[at + 3];
    const u0 = (idx - c[at + 1]) * grain;
    const scratch = Atomics.load(c, CTL.SCRATCH) + thread * Atomics.load(c, CTL.SCRATCH_STRIDE);
    try {
      if (Atomics.load(c, CTL.KILL) === thread + 1) {
        const mode = Atomics.load(c, CTL.KILL_MODE);
        Atomics.store(c, CTL.KILL, 0);
        if (mode === KILL_EXIT) dieSilently();
        if (mode === KILL_THROW) throw new Error('adjoint worker: task failed (test hook)');
      }
      const rc = k.runTask(c[at], u0, u0 + grain, scratch);
      if (rc !== 0) throw new Error(`adjoint worker: malformed task record (code ${rc})`);
    } catch (e) {
      lastError = e instanceof Error ? e.message : String(e);
      Atomics.compareExchange(c, CTL.ERROR, 0, thread + 1);
      Atomics.store(c, tw, STATE.FAILED);
      markDone(c, tag);
      throw e;
    }
    c[tw + 2]++;
    Atomics.store(c, tw, STATE.IDLE);
    markDone(c, tag);
  }
}

const api = {
  /**
   * Instantiates the kernels over the shared memory.
   * @param {{ module: WebAssembly.Module; memory: WebAssembly.Memory; ctlPtr: number; thread: number }} o
   */
  init(o) {
    const instance = new WebAssembly.Instance(o.module, {
      env: {
        memory: o.memory,
        abort: (_m, _f, line, col) => {
          throw new Error(`adjoint: wasm kernel abort at ${line}:${col}`);
        },
      },
    });
    kernels = /** @type {any} */ (instance.exports);
    ctl = new Int32Array(o.memory.buffer, o.ctlPtr, CTL.WORDS);
    thread = o.thread;
    tw = CTL.THREADS + thread * CTL.THREAD_WORDS;
    kernels.setProgress(o.ctlPtr + (tw + 1) * 4);
    Atomics.store(ctl, tw, STATE.IDLE);
    return { thread, relaxed: kernels.isRelaxed() === 1 };
  },

  /**
   * The dispatch loop: returns when the main thread posts EXIT, throws when a task fails (the
   * pool then replaces this worker). Blocks this worker's event loop while it runs.
   * @param {number} seen the epoch already handled (the main thread's current one)
   */
  serve(seen) {
    const c = ctl;
    const k = kernels;
    if (!c || !k) throw new Error('adjoint worker: serve() before init()');
    for (;;) {
      let e = Atomics.load(c, CTL.EPOCH);
      if (e === seen) {
        const spinMs = Atomics.load(c, CTL.SPIN_US) / 1000;
        const until = performance.now() + spinMs;
        let i = 0;
        while ((e = Atomics.load(c, CTL.EPOCH)) === seen) {
          if ((++i & 255) === 0 && performance.now() >= until) Atomics.wait(c, CTL.EPOCH, seen);
        }
      }
      seen = e;
      if (Atomics.load(c, CTL.COMMAND) === COMMAND.EXIT) {
        Atomics.store(c, tw, STATE.EXITED);
        return 'exit';
      }
      work(c, k, e & 0xffff);
    }
  },

  /** The message of the last task failure in this worker. */
  lastError() {
    return lastError;
  },
};

const G = /** @type {any} */ (globalThis);
const isNode = typeof G.WorkerGlobalScope === 'undefined' && G.process?.versions?.node !== undefined;

if (isNode) {
  const wt = G.process.getBuiltinModule
    ? G.process.getBuiltinModule('node:worker_threads')
    : await import('node:worker_threads');
  // comlink's adapter for worker_threads, imported here only: browsers and Deno never load it
  const { default: nodeEndpoint } = await import('comlink/dist/esm/node-adapter.mjs');
  Comlink.expose(api, nodeEndpoint(wt.parentPort));
} else {
  Comlink.expose(api);
}
