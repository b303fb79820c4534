/**
 * The control block layout shared with the kernel workers: one definition, in
 * workers/protocol.js (the worker is plain JavaScript), imported here. See that file for what
 * each word means.
 */
export { COMMAND, CTL, KILL_EXIT, KILL_THROW, MAX_CHUNKS, STATE } from '../../../../workers/protocol.js';

/** Task kinds of assembly/task.ts, from their one definition (src/backends/opcodes.json). */
export { TaskKind } from '../../opcodes';

/** Bytes at the start of each thread's scratch region that runTask keeps for a descriptor copy. */
export const TASK_DESC_BYTES = 256;
