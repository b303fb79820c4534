/**
 * The control block shared by the main thread and the kernel workers: i32 words in the shared
 * wasm memory, at an address the main thread allocates. src/backends/wasm/scheduler/control.ts declares the
 * same layout for the TypeScript side (test/workers.test.ts checks that they agree).
 *
 * A job is a list of tasks (kernel records, see assembly/task.ts), each cut into chunks of
 * work units. The main thread writes the task table, resets CLAIM and DONE to (tag << 16 | 0)
 * and bumps EPOCH; every thread, the main one included, claims chunks by compare-and-swap on
 * CLAIM and counts them in DONE. Tags (the low 16 bits of the epoch) keep a late thread from
 * claiming or completing chunks of a job that is not the one it woke up for.
 */
export const CTL = Object.freeze({
  /** Job generation; idle workers Atomics.wait on it. */
  EPOCH: 0,
  /** What a bump of EPOCH means: RUN a job, or EXIT the serve loop. */
  COMMAND: 1,
  /** (tag << 16) | index of the next unclaimed chunk. */
  CLAIM: 2,
  /** (tag << 16) | chunks finished. */
  DONE: 3,
  /** Chunks in the current job. */
  TOTAL: 4,
  /** Tasks in the current job's table. */
  NTASKS: 5,
  /** Scratch of thread t: SCRATCH + t * SCRATCH_STRIDE (bytes). */
  SCRATCH: 6,
  SCRATCH_STRIDE: 7,
  /** 0, or thread + 1 of the first worker whose task threw. */
  ERROR: 8,
  /** Test hook: thread + 1 of a worker that dies when it claims its next chunk; 0 = none. */
  KILL: 9,
  /** Test hook: KILL_EXIT (the thread ends without a word) or KILL_THROW (its task throws). */
  KILL_MODE: 10,
  /** How long an idle worker spins before it sleeps, in microseconds. */
  SPIN_US: 11,
  /** Per-thread words start here, THREAD_WORDS each: [state, progress, chunks run, spare]. */
  THREADS: 16,
  THREAD_WORDS: 4,
  MAX_THREADS: 64,
  /** Task table: TASK_WORDS per task: [record pointer, first chunk, chunks, units per chunk]. */
  TASKS: 16 + 64 * 4,
  TASK_WORDS: 4,
  MAX_TASKS: 512,
  /** Total size of the block in i32 words. */
  WORDS: 16 + 64 * 4 + 512 * 4,
});

export const COMMAND = Object.freeze({ RUN: 0, EXIT: 1 });

/** Per-thread state word. */
export const STATE = Object.freeze({ STARTING: 0, IDLE: 1, BUSY: 2, EXITED: 3, FAILED: 4 });

export const KILL_EXIT = 1;
export const KILL_THROW = 2;

/** Chunks per job stay below this (16-bit chunk index). */
export const MAX_CHUNKS = 0xffff;
