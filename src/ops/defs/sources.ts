/** Nodes without inputs: realized constants, fills, and the symbolic inputs of trace/jit. */
import { ConcretizationError } from '../../errors';
import { sizeOf } from '../../shape';
import type { DType } from '../../tensor';
import { sourceRule, unaryRule } from '../batching';
import { defineOp } from '../registry';

/** A realized buffer. Backends read it from the tensor's storage, never through this reference. */
defineOp({
  name: 'const',
  kind: 'source',
  infer: () => {
    throw new ConcretizationError('const nodes are created from data, not applied');
  },
  reference: () => {
    throw new ConcretizationError('const nodes carry their own storage');
  },
  batch: sourceRule,
});

/** Every element equal to attrs.value; cheap to fold and never materialized when fusion absorbs it. */
defineOp({
  name: 'fill',
  kind: 'source',
  infer: (_inputs, attrs) => ({ shape: attrs.shape as number[], dtype: attrs.dtype as DType }),
  reference: (_inputs, attrs, out) => new Float64Array(sizeOf(out.shape)).fill(attrs.value as number),
  batch: sourceRule,
});

/** A symbolic argument of trace/jit: has a shape and dtype but no value until the plan runs. */
defineOp({
  name: 'input',
  kind: 'source',
  infer: (_inputs, attrs) => ({ shape: attrs.shape as number[], dtype: attrs.dtype as DType }),
  reference: (_inputs, attrs) => {
    throw new ConcretizationError(
      `input ${String(attrs.index)} is symbolic: its value exists only when the plan runs`,
    );
  },
  batch: sourceRule,
});

/**
 * A value crossing devices (attrs.to: the device it moves to). Only the placement pass inserts
 * it, after optimization, where a producer and a consumer run on different devices; the runtime
 * executes it as a copy. The same value, so its derivatives are the identity's.
 */
defineOp({
  name: 'transfer',
  kind: 'other',
  infer: ([x]) => x,
  reference: ([x]) => x.data.slice(),
  jvp: ([t]) => t,
  vjp: (ct) => [ct],
  batch: unaryRule('transfer'),
});
