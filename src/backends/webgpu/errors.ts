/**
 * The typed errors of the WebGPU backend. Each says what failed and what to do about it, so a
 * missing adapter, a lost device or a tensor too large for one binding never shows up as a hang
 * or a silently wrong number.
 */
import { AdjointError } from '../../errors';

/** No WebGPU implementation, or no adapter (requestAdapter returned null). */
export class WebGPUUnavailableError extends AdjointError {
  override name = 'WebGPUUnavailableError';
}

/** The GPUDevice was lost (destroyed, driver reset, out of memory); work on it cannot complete. */
export class WebGPUDeviceLostError extends AdjointError {
  override name = 'WebGPUDeviceLostError';
}

/** A tensor larger than one storage binding (maxStorageBufferBindingSize) of this device. */
export class WebGPULimitError extends AdjointError {
  override name = 'WebGPULimitError';
}

/** A node this backend has no kernel for (placement keeps such nodes on another device). */
export class WebGPUUnsupportedError extends AdjointError {
  override name = 'WebGPUUnsupportedError';
}

/** The GPU reported an error (validation, out of memory, internal) for work of a run. */
export class WebGPUExecutionError extends AdjointError {
  override name = 'WebGPUExecutionError';
}

/** The GPU ran out of memory for a run's buffers; tensors made before it are intact. */
export class WebGPUOutOfMemoryError extends WebGPUExecutionError {
  override name = 'WebGPUOutOfMemoryError';
}
