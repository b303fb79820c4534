import { AdjointError } from '../index';

/**
 * A TensorFlow.js request the adjoint backend cannot serve: a dtype it does not store (string,
 * complex64), an attribute value a kernel does not support (NCHW data, batchDims in a gather...),
 * or a data id it does not own. The message names the kernel (or backend method) and the value.
 */
export class TfjsBackendError extends AdjointError {
  override name = 'TfjsBackendError';
}
