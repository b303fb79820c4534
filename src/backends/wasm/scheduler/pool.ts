/**
 * The worker pool: threads - 1 workers over one shared WebAssembly.Memory, each with its own
 * instance of the kernels; the main thread is thread 0 and works too.
 *
 * comlink starts, configures and stops the workers (workers/kernel-worker.js). Running a job
 * costs no message: the main thread writes the job into the control block (control.ts), bumps
 * its epoch with Atomics.store + Atomics.notify, and every thread claims chunks with
 * compare-and-swap. Workers spin a little after each job, then sleep in Atomics.wait; the main
 * thread never blocks (browsers forbid Atomics.wait there): it runs its own share, then spins
 * until every chunk is done.
 *
 * Faults: a worker whose task throws reports it in the control block and leaves; a worker that
 * dies silently is noticed when the job makes no progress for `stallMs` (matmul kernels tick a
 * progress word per row block, so long kernels are not mistaken for dead ones). Either way
 * runJob throws a WorkerFault after the other threads' chunks are finished, and the pool
 * replaces the worker in the background.
 *
 * The package loads this module (and comlink with it) only when threads > 1 are asked for
 * (src/runtime/init.ts imports it dynamically): in dist/ it is a chunk of its own.
 */
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import { preferNodeWorkers, startNodeWorker } from '../../../platform/node';
import { kernelWorkerUrl } from '../../../worker-url';
import type { Kernels } from '../kernels';
import type { PtrTable } from '../ops';
import { COMMAND, CTL, KILL_EXIT, KILL_THROW, STATE } from './control';
import { WorkerFault } from './errors';
import type { SharedKernels } from './module';
import type { Job } from './partition';

export { WorkerError, WorkerFault } from './errors';

interface WorkerApi {
  init(o: { module: WebAssembly.Module; memory: WebAssembly.Memory; ctlPtr: number; thread: number }): {
    thread: number;
    relaxed: boolean;
  };
  serve(seen: number): 'exit';
}

/** A Web Worker constructor (browsers, Deno; the `web-worker` package under Node). Node and Bun use worker_threads. */
export type WorkerConstructor = new (
  url: URL | string,
  options?: { type?: 'module'; name?: string },
) => Worker;

interface WorkerHandle {
  endpoint: Comlink.Endpoint;
  terminate(): Promise<void>;
  /** Called when the thread ends or fails without being asked to. */
  onGone(cb: (why: string) => void): void;
  /** Node: keep the worker from holding the process open (after comlink has attached). */
  unref(): void;
}

function startWorker(url: URL, ctor: WorkerConstructor | undefined): WorkerHandle {
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

interface Slot {
  readonly thread: number;
  readonly h: WorkerHandle;
  readonly api: Comlink.Remote<WorkerApi>;
  serving: boolean;
  retired: boolean;
  /** Resolves when the thread has ended (after retire). */
  ended?: Promise<void>;
}

export interface PoolOptions {
  /** How long idle workers spin before they sleep (µs, default 2000). */
  spinUs?: number;
  /** A job that makes no progress this long has a dead worker (ms, default 5000). */
  stallMs?: number;
  /** The worker script (default: workers/kernel-worker.js, dist/kernel-worker.js when bundled). */
  workerUrl?: URL;
  /** Start workers with this Web Worker constructor instead of the runtime's own. */
  Worker?: WorkerConstructor;
}

type RunTask = (rec: number, u0: number, u1: number, scratch: number) => number;

const MAX_RESPAWNS = 32;
let warnedFault = false;

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export class WorkerPool {
  /** Threads including the main one. */
  readonly threads: number;
  readonly kernels: Kernels;
  readonly ctlPtr: number;
  stallMs: number;
  readonly stats = { jobs: 0, faults: 0, respawns: 0, spawnFailures: 0 };
  /** Test knobs: with mainClaims false the main thread leaves every chunk to the workers. */
  readonly testing = { mainClaims: true };
  private readonly shared: SharedKernels;
  private readonly ctl: Int32Array;
  private readonly slots: (Slot | undefined)[];
  private readonly url: URL;
  private readonly ctor: WorkerConstructor | undefined;
  private readonly runTask: RunTask;
  private closed = false;
  private readonly started: Promise<void>;
  private lastFailure = '';

  constructor(shared: SharedKernels, threads: number, opts: PoolOptions = {}) {
    if (threads < 2 || threads > CTL.MAX_THREADS)
      throw new RangeError(`adjoint: a worker pool needs 2..${CTL.MAX_THREADS} threads, got ${threads}`);
    this.shared = shared;
    this.kernels = shared.kernels;
    this.threads = threads;
    this.stallMs = opts.stallMs ?? 5000;
    this.url = opts.workerUrl ?? kernelWorkerUrl();
    this.ctor = opts.Worker;
    this.runTask = (shared.kernels.exports as unknown as { runTask: RunTask }).runTask;
    this.ctlPtr = shared.kernels.alloc(CTL.WORDS * 4);
    this.ctl = new Int32Array(shared.memory.buffer, this.ctlPtr, CTL.WORDS);
    this.ctl.fill(0);
    this.ctl[CTL.SPIN_US] = Math.max(0, Math.round(opts.spinUs ?? 2000));
    this.ctl[CTL.THREADS] = STATE.IDLE;
    this.slots = new Array(threads).fill(undefined);
    const starting: Promise<void>[] = [];
    for (let t = 1; t < threads; t++) starting.push(this.spawn(t));
    this.started = Promise.all(starting).then(() => undefined);
  }

  /** Resolves once every worker has started (or failed to start). */
  ready(): Promise<void> {
    return this.started;
  }

  /** Workers running the dispatch loop now. */
  get serving(): number {
    let n = 0;
    for (const s of this.slots) if (s?.serving) n++;
    return n;
  }

  get closedForGood(): boolean {
    return this.closed;
  }

  /** Why the last worker failed or could not start ('' if none did). */
  get lastFailureMessage(): string {
    return this.lastFailure;
  }

  private async spawn(t: number): Promise<void> {
    let h: WorkerHandle;
    try {
      h = startWorker(this.url, this.ctor);
    } catch (e) {
      this.stats.spawnFailures++;
      this.lastFailure = messageOf(e);
      return;
    }
    const api = Comlink.wrap<WorkerApi>(h.endpoint);
    const slot: Slot = { thread: t, h, api, serving: false, retired: false };
    this.slots[t] = slot;
    // A worker that fails before it is up (a script that does not load, say) is not replaced.
    let starting = true;
    let failStart: (why: string) => void = () => {};
    const failed = new Promise<never>((_, reject) => {
      failStart = (why) => reject(new Error(why));
    });
    h.onGone((why) => (starting ? failStart(why) : this.lost(slot, why)));
    try {
      await Promise.race([
        api.init({
          module: this.shared.module,
          memory: this.shared.memory,
          ctlPtr: this.ctlPtr,
          thread: t,
        }),
        failed,
      ]);
    } catch (e) {
      this.stats.spawnFailures++;
      this.lastFailure = messageOf(e);
      void this.retire(slot, false);
      return;
    } finally {
      starting = false;
    }
    if (slot.retired || this.closed) return;
    const seen = Atomics.load(this.ctl, CTL.EPOCH);
    slot.serving = true;
    api.serve(seen).then(
      () => {
        slot.serving = false;
      },
      (e) => this.lost(slot, messageOf(e)),
    );
    // The pending serve() must not keep a Node process alive (init's reply had to).
    h.unref();
  }

  /** A worker ended or failed on its own: replace it. */
  private lost(slot: Slot, why: string): void {
    if (slot.retired || this.closed) return;
    this.lastFailure = why;
    this.stats.faults++;
    void this.retire(slot, true);
  }

  /** Stops a worker (idempotent) and, unless the pool is closing, starts its replacement. */
  private retire(slot: Slot, respawn: boolean): Promise<void> {
    if (slot.ended) return slot.ended;
    slot.retired = true;
    slot.serving = false;
    if (this.slots[slot.thread] === slot) this.slots[slot.thread] = undefined;
    Atomics.store(this.ctl, CTL.THREADS + slot.thread * CTL.THREAD_WORDS, STATE.EXITED);
    slot.ended = slot.h.terminate().catch(() => undefined);
    if (respawn)
      void slot.ended.then(() => {
        if (this.closed || this.slots[slot.thread] || this.stats.respawns >= MAX_RESPAWNS) return;
        this.stats.respawns++;
        return this.spawn(slot.thread);
      });
    return slot.ended;
  }

  /** Bumps the epoch: a new job (or, with TOTAL = 0, just a wake-up call). Returns the job's tag. */
  private post(): number {
    const c = this.ctl;
    const e = (Atomics.load(c, CTL.EPOCH) + 1) | 0;
    const tag = e & 0xffff;
    Atomics.store(c, CTL.DONE, tag << 16);
    Atomics.store(c, CTL.CLAIM, tag << 16);
    Atomics.store(c, CTL.COMMAND, COMMAND.RUN);
    Atomics.store(c, CTL.EPOCH, e);
    Atomics.notify(c, CTL.EPOCH);
    return tag;
  }

  /** Wakes sleeping workers ahead of a job (a run's first level), so their wake-up overlaps setup. */
  wake(): void {
    if (this.closed) return;
    this.ctl[CTL.TOTAL] = 0;
    this.ctl[CTL.NTASKS] = 0;
    this.post();
  }

  /**
   * Runs one level's job: the task chunks on every thread, the job's main-only steps on this
   * one. Synchronous. Throws the main thread's own error, or a WorkerFault when a worker
   * failed; in both cases only after every chunk other threads claimed is finished or its
   * thread is written off.
   */
  runJob(job: Job, p: PtrTable, mem: Int32Array, scratchBase: number, scratchStride: number): void {
    const c = this.ctl;
    const tasks = job.tasks;
    for (const t of tasks) {
      t.prepare?.(p);
      const pt = t.patch;
      for (let j = 0; j < pt.length; j += 3) mem[pt[j]] = p[pt[j + 1]] + pt[j + 2];
    }
    // Close the previous job's claim word first: a worker still looking at it must not pass its
    // "index < TOTAL" check against the TOTAL written below and claim a chunk with the old tag.
    const prev = Atomics.load(c, CTL.CLAIM);
    Atomics.store(c, CTL.CLAIM, (prev & ~0xffff) | 0xffff);
    let first = 0;
    for (let i = 0; i < tasks.length; i++) {
      const at = CTL.TASKS + i * CTL.TASK_WORDS;
      c[at] = tasks[i].rec;
      c[at + 1] = first;
      c[at + 2] = tasks[i].chunks;
      c[at + 3] = tasks[i].grain;
      first += tasks[i].chunks;
    }
    const total = first;
    c[CTL.TOTAL] = total;
    c[CTL.NTASKS] = tasks.length;
    c[CTL.SCRATCH] = scratchBase;
    c[CTL.SCRATCH_STRIDE] = scratchStride;
    Atomics.store(c, CTL.ERROR, 0);
    this.stats.jobs++;
    const tag = this.post();

    let mainError: unknown;
    let failed = false;
    try {
      for (const s of job.main) s(p);
      if (this.testing.mainClaims) this.claimChunks(job, tag, total, scratchBase);
    } catch (e) {
      mainError = e;
      failed = true;
    }
    const fault = this.finish(tag, total, failed);
    // A worker fault wins over a main-thread error: the backend must quarantine the plan (a
    // stalled worker may still write to it); the retry on the main thread raises the error again.
    if (fault) throw fault;
    if (failed) throw mainError;
  }

  /** The main thread's share: claim chunks in order and run them with scratch region 0. */
  private claimChunks(job: Job, tag: number, total: number, scratch: number): void {
    const c = this.ctl;
    const tasks = job.tasks;
    let task = 0;
    let first = 0;
    for (;;) {
      const v = Atomics.load(c, CTL.CLAIM);
      if (v >>> 16 !== tag) return;
      const idx = v & 0xffff;
      if (idx >= total) return;
      if (Atomics.compareExchange(c, CTL.CLAIM, v, v + 1) !== v) continue;
      while (idx >= first + tasks[task].chunks) first += tasks[task++].chunks;
      const t = tasks[task];
      const u0 = (idx - first) * t.grain;
      let rc: number;
      try {
        rc = this.runTask(t.rec, u0, u0 + t.grain, scratch);
      } finally {
        this.markDone(tag);
      }
      if (rc !== 0) throw new Error(`adjoint internal error: malformed task record (code ${rc})`);
    }
  }

  private markDone(tag: number): void {
    const c = this.ctl;
    for (;;) {
      const v = Atomics.load(c, CTL.DONE);
      if (v >>> 16 !== tag) return;
      if (Atomics.compareExchange(c, CTL.DONE, v, v + 1) === v) return;
    }
  }

  /** Sum of the words that move while a job makes progress. */
  private progress(): number {
    const c = this.ctl;
    let s = Atomics.load(c, CTL.DONE);
    for (let t = 1; t < this.threads; t++)
      s = (s + Atomics.load(c, CTL.THREADS + t * CTL.THREAD_WORDS + 1)) | 0;
    return s;
  }

  /** Waits for the job's claimed chunks; returns a fault if a worker failed or stopped answering. */
  private finish(tag: number, total: number, abort: boolean): WorkerFault | null {
    const c = this.ctl;
    let target = total;
    const stopClaims = () => {
      const old = Atomics.exchange(c, CTL.CLAIM, (tag << 16) | 0xffff);
      target = old >>> 16 === tag ? Math.min(old & 0xffff, total) : total;
    };
    if (abort) stopClaims();
    let stopped = abort;
    let spins = 0;
    let last = this.progress();
    let lastChange = performance.now();
    while ((Atomics.load(c, CTL.DONE) & 0xffff) < target) {
      if (!stopped && Atomics.load(c, CTL.ERROR) !== 0) {
        stopClaims();
        stopped = true;
        continue;
      }
      if ((++spins & 255) !== 0) continue;
      const now = performance.now();
      const sig = this.progress();
      if (sig !== last) {
        last = sig;
        lastChange = now;
      } else if (now - lastChange > this.stallMs) {
        if (!stopped) stopClaims();
        const busy: number[] = [];
        for (let t = 1; t < this.threads; t++)
          if (Atomics.load(c, CTL.THREADS + t * CTL.THREAD_WORDS) === STATE.BUSY) busy.push(t);
        const culprits = busy.length > 0 ? busy : this.liveThreads();
        return this.fault(
          `adjoint: worker ${culprits.join(', ')} stopped answering for ${this.stallMs} ms`,
          culprits,
          true,
        );
      }
    }
    const err = Atomics.load(c, CTL.ERROR);
    if (err !== 0) {
      const t = err - 1;
      const slot = this.slots[t];
      // A worker whose task threw has left its loop: nothing of it is still running.
      return this.fault(`adjoint: a task failed in worker ${t}`, [t], false, slot);
    }
    return null;
  }

  private liveThreads(): number[] {
    const r: number[] = [];
    for (let t = 1; t < this.threads; t++) if (this.slots[t]) r.push(t);
    return r;
  }

  private fault(message: string, threads: number[], stalled: boolean, only?: Slot): WorkerFault {
    this.stats.faults++;
    this.lastFailure = message;
    const ending: Promise<void>[] = [];
    for (const t of threads) {
      const slot = only ?? this.slots[t];
      if (slot) ending.push(this.retire(slot, true));
    }
    if (!warnedFault) {
      warnedFault = true;
      console.warn(`${message}; the pool replaces it (further worker failures are not reported here)`);
    }
    return new WorkerFault(
      message,
      threads,
      Promise.all(ending).then(() => undefined),
      stalled,
    );
  }

  /**
   * Test hook: the worker `thread` dies when it claims its next chunk, either at once without a
   * word ('exit', as a crash would) or by throwing from its task ('throw').
   */
  killDuringNextJob(thread: number, mode: 'exit' | 'throw' = 'exit'): void {
    Atomics.store(this.ctl, CTL.KILL_MODE, mode === 'exit' ? KILL_EXIT : KILL_THROW);
    Atomics.store(this.ctl, CTL.KILL, thread + 1);
  }

  /** Stops every worker; the pool cannot run jobs afterwards. */
  async shutdown(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const c = this.ctl;
    Atomics.store(c, CTL.COMMAND, COMMAND.EXIT);
    Atomics.store(c, CTL.EPOCH, (Atomics.load(c, CTL.EPOCH) + 1) | 0);
    Atomics.notify(c, CTL.EPOCH);
    const ending: Promise<void>[] = [];
    for (const s of this.slots) if (s) ending.push(this.retire(s, false));
    await Promise.all(ending);
  }
}
