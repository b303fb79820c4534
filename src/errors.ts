/** Base class of every error adjoint throws on purpose; `op` names the call that failed. */
export class AdjointError extends Error {
  override name = 'AdjointError';
}

/** Operand shapes that do not fit the op (broadcasting, matmul inner dims, reshape sizes...). */
export class ShapeError extends AdjointError {
  override name = 'ShapeError';
}

/** An axis argument outside [-ndim, ndim). */
export class AxisError extends AdjointError {
  override name = 'AxisError';
}

/** A dtype the op or transform cannot take (e.g. grad with respect to an int32 input). */
export class DTypeError extends AdjointError {
  override name = 'DTypeError';
}

/** Misuse of a transform: grad of a non-scalar, bad argnums, a jit signature problem... */
export class TransformError extends AdjointError {
  override name = 'TransformError';
}

/** A pytree whose leaf is not a Tensor, or trees of different structure where equal ones are needed. */
export class PytreeError extends AdjointError {
  override name = 'PytreeError';
}

/** A value was requested from a symbolic tensor (a traced input of trace/jit) that has none. */
export class ConcretizationError extends AdjointError {
  override name = 'ConcretizationError';
}

/** Bad argument to a creation function or op (non-finite size, wrong data length...). */
export class ValueError extends AdjointError {
  override name = 'ValueError';
}

/** A tensor used after dispose(). */
export class DisposedError extends AdjointError {
  override name = 'DisposedError';
}

/**
 * The wasm kernels could not be located, fetched or compiled here: no `import.meta.url` to find
 * them by, a failed fetch, or a runtime that refuses to compile wasm from bytes (edge runtimes
 * such as Cloudflare Workers). The fix is to import the kernel module and pass it:
 * `init({ wasmModule })` (see docs/EDGE.md). `cause` holds the runtime's own error.
 */
export class WasmUnavailableError extends AdjointError {
  override name = 'WasmUnavailableError';
}
