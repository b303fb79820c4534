/**
 * adjoint as a TensorFlow.js backend (the `adjoint/tfjs` subpath export).
 *
 * ```js
 * import * as tf from '@tensorflow/tfjs';
 * import { registerTfjsBackend } from 'adjoint/tfjs';
 * await registerTfjsBackend(tf);
 * await tf.setBackend('adjoint');
 * ```
 *
 * `@tensorflow/tfjs-core` is a peer dependency: the app passes in its own `tf` object and this
 * module never imports TF.js at run time (only its types), so exactly one TF.js engine exists.
 */
import type * as tfc from '@tensorflow/tfjs-core';
import { type InitOptions, init, memoryStats } from '../index';
import { type AdjointBackend, type AdjointBackendOptions, makeBackendClass, type TF } from './backend';
import { TfjsBackendError } from './errors';
import { kernels } from './kernels';

export type { AdjointBackend, AdjointBackendOptions };
export { TfjsBackendError };

export interface RegisterTfjsBackendOptions extends AdjointBackendOptions {
  /** The backend's name in TF.js. Default 'adjoint'. */
  name?: string;
  /** TF.js picks the registered backend of highest priority by default. Default 1 (below TF.js's own backends). */
  priority?: number;
  /** Passed to adjoint's `init()` before the backend is registered (default: `init()` only if adjoint is not initialized yet). */
  init?: InitOptions;
}

/** The names of the TF.js kernels the backend registers. */
export const tfjsKernelNames: readonly string[] = Object.keys(kernels);

/**
 * Initializes adjoint, registers it with the given TensorFlow.js instance as a backend named
 * `opts.name` ('adjoint') with a kernel for every entry of `tfjsKernelNames`, and returns the
 * name. Kernels not in that list give TF.js's "not registered" error on this backend.
 */
export async function registerTfjsBackend(
  tf: unknown,
  opts: RegisterTfjsBackendOptions = {},
): Promise<string> {
  const t = tf as TF;
  for (const f of ['registerBackend', 'registerKernel', 'KernelBackend', 'engine', 'backend_util'] as const)
    if (!t || (t as Record<string, unknown>)[f] === undefined)
      throw new TfjsBackendError(
        `registerTfjsBackend: the first argument must be the TensorFlow.js module (@tensorflow/tfjs or @tensorflow/tfjs-core); it has no '${f}'`,
      );
  const name = opts.name ?? 'adjoint';
  if (typeof name !== 'string' || name === '')
    throw new TfjsBackendError(`registerTfjsBackend: name must be a non-empty string, got ${String(name)}`);
  // An app that already initialized adjoint keeps its configuration unless `init` is given.
  if (opts.init || memoryStats().backend === 'none') await init(opts.init);
  const Backend = makeBackendClass(t);
  t.registerBackend(name, () => new Backend({ maxPending: opts.maxPending }), opts.priority ?? 1);
  for (const [kernelName, impl] of Object.entries(kernels)) {
    const config: tfc.KernelConfig = {
      kernelName,
      backendName: name,
      kernelFunc: ({ inputs, attrs, backend }) =>
        impl(backend as unknown as AdjointBackend, inputs as never, attrs, t) as tfc.TensorInfo,
    };
    // Registering twice (a second call with the same name) keeps the first registration.
    if (!t.getKernel(kernelName, name)) t.registerKernel(config);
  }
  return name;
}
