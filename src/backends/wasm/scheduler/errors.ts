/**
 * The worker pool's errors, apart from the pool itself (pool.ts), which the package loads only
 * when threads > 1 are asked for: the backend and the package root need these classes always.
 */
import { AdjointError } from '../../../errors';

/** A worker failed while it computed; the tensors that existed before are intact. */
export class WorkerError extends AdjointError {
  override name = 'WorkerError';
  /** The pool threads (1-based: thread 0 is the main thread) that failed. */
  readonly threads: number[];
  constructor(message: string, threads: number[]) {
    super(message);
    this.threads = threads;
  }
}

/**
 * Thrown by runJob. `settled` resolves once the failed workers have ended, after which memory
 * they might still have written (when they only looked dead) may be reused.
 */
export class WorkerFault extends WorkerError {
  override name = 'WorkerFault';
  readonly settled: Promise<void>;
  /** True when a worker stopped answering (it may have been alive, writing, until `settled`). */
  readonly stalled: boolean;
  constructor(message: string, threads: number[], settled: Promise<void>, stalled: boolean) {
    super(message, threads);
    this.settled = settled;
    this.stalled = stalled;
  }
}
