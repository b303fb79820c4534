/**
 * The control block layout shared with the kernel workers. It mirrors workers/protocol.js (the
 * worker is plain JavaScript and cannot import TypeScript; test/workers.test.ts checks the two
 * agree). See that file for what each word means.
 */
export const CTL = {
  EPOCH: 0,
  COMMAND: 1,
  CLAIM: 2,
  DONE: 3,
  TOTAL: 4,
  NTASKS: 5,
  SCRATCH: 6,
  SCRATCH_STRIDE: 7,
  ERROR: 8,
  KILL: 9,
  KILL_MODE: 10,
  SPIN_US: 11,
  THREADS: 16,
  THREAD_WORDS: 4,
  MAX_THREADS: 64,
  TASKS: 16 + 64 * 4,
  TASK_WORDS: 4,
  MAX_TASKS: 512,
  WORDS: 16 + 64 * 4 + 512 * 4,
} as const;

export const COMMAND = { RUN: 0, EXIT: 1 } as const;
export const STATE = { STARTING: 0, IDLE: 1, BUSY: 2, EXITED: 3, FAILED: 4 } as const;
export const KILL_EXIT = 1;
export const KILL_THROW = 2;
export const MAX_CHUNKS = 0xffff;

/** Task kinds of assembly/task.ts. */
export const TaskKind = {
  matmul: 1,
  fused: 2,
  unary: 3,
  binary: 4,
  where: 5,
  fill: 6,
  reduce: 7,
  softmax: 8,
  strided: 9,
} as const;

/** Bytes at the start of each thread's scratch region that runTask keeps for a descriptor copy. */
export const TASK_DESC_BYTES = 256;
