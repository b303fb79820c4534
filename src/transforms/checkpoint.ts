/**
 * checkpoint (JAX's jax.checkpoint / remat): the backward pass recomputes f's intermediates from
 * f's arguments instead of keeping them alive from the forward pass.
 *
 * In a lazy graph "recompute" must survive the compiler: a copy of f's nodes would be merged
 * back into the forward by CSE, and a scheduler free to run it early would keep its values alive
 * as long as the originals. So the copy starts from `rematBarrier(arg, cotangent)` nodes, whose
 * value is the argument but which exist only once a cotangent of f's outputs does: CSE sees
 * different inputs, and any topological order runs the copy after the backward has reached f.
 * Backends alias the barrier to its argument (no copy). The forward's own intermediates then
 * have no reader after the forward, and the memory plan reuses their space.
 */
import { callAt, finishCall, nameOf, newDef, runCall } from '../ops/custom';
import { traceState } from '../tensor';

type Fn = (...args: any[]) => any;

/**
 * f whose intermediates are recomputed in the backward pass (grad, vjp and what builds on them)
 * instead of being stored: less memory for about one more forward of f. Values and gradients are
 * those of f; tensors f closes over (parameters...) get their gradients too. Forward mode
 * differentiates f directly. Checkpoints nest, and compose with jit and vmap.
 */
export function checkpoint<F extends Fn>(f: F): F {
  const label = `checkpoint(${nameOf(f)})`;
  const def = newDef('remat');
  const wrapped = (...args: unknown[]) => {
    if (traceState.depth === 0) return f(...args);
    const site = runCall(label, f, args);
    return finishCall(callAt('checkpoint', label, def, site), site);
  };
  Object.defineProperty(wrapped, 'name', { value: nameOf(f) });
  return wrapped as F;
}
