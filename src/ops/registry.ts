import { AdjointError } from '../errors';
import { shapeEq } from '../shape';
import { type Attrs, type DType, frozenShape, Tensor } from '../tensor';

export interface TensorInfo {
  readonly shape: readonly number[];
  readonly dtype: DType;
}

/** A value in the float64 reference interpreter: every dtype is held as float64 there. */
export interface RefValue {
  readonly data: Float64Array;
  readonly shape: readonly number[];
}

/** Where a vmapped value keeps its batch axis: an axis of the batched tensor, or null (not batched). */
export type BatchDim = number | null;

/**
 * A batching rule for vmap: given the op's inputs as batched tensors with their batch axes
 * (null = the same value for every example), return the batched output and its batch axis.
 * `out` is the per-example node being batched (its shape and dtype are the per-example ones);
 * `size` is the batch size. Rules are written with ops, so vmapped graphs are ordinary graphs.
 */
export type BatchRule = (
  inputs: readonly Tensor[],
  dims: readonly BatchDim[],
  attrs: Attrs,
  out: Tensor,
  size: number,
) => [Tensor, BatchDim];

/** How the compiler may treat an op: elementwise ops fuse into one tile loop; sources have no inputs. */
export type OpKind = 'elementwise' | 'reduce' | 'shape' | 'source' | 'other';

/**
 * One primitive. Everything about it lives here: the shape/dtype rule, the float64 reference
 * implementation (the test oracle), the JVP and VJP rules and the batching rule for vmap, all
 * written with ops, so derivatives and batched functions are graphs and transforms nest. Kernels are registered per backend under the same name.
 */
export interface OpDef {
  readonly name: string;
  readonly kind: OpKind;
  /** Output shape and dtype; throws a typed error naming the op on bad input. */
  infer(inputs: readonly TensorInfo[], attrs: Attrs): TensorInfo;
  /** float64 reference implementation. Integer dtypes hold integral float64 values. */
  reference(inputs: readonly RefValue[], attrs: Attrs, out: TensorInfo): Float64Array;
  /** Tangent of the output given input tangents (null = zero); undefined = not differentiable. */
  jvp?(
    tangents: readonly (Tensor | null)[],
    inputs: readonly Tensor[],
    out: Tensor,
    attrs: Attrs,
  ): Tensor | null;
  /** Cotangents of the inputs (null = zero) given the output cotangent. */
  vjp?(
    ct: Tensor,
    inputs: readonly Tensor[],
    out: Tensor,
    attrs: Attrs,
    /** Which inputs need a cotangent (absent: all); a rule may return null for the others. */
    needed?: readonly boolean[],
  ): readonly (Tensor | null)[];
  /** Batching rule for vmap (see BatchRule). Called only when some input is batched. */
  batch?: BatchRule;
}

const registry = new Map<string, OpDef>();

export function defineOp(def: OpDef): OpDef {
  if (registry.has(def.name)) throw new AdjointError(`op '${def.name}' is defined twice`);
  registry.set(def.name, def);
  return def;
}

export function getOp(name: string): OpDef {
  const def = registry.get(name);
  if (!def) throw new AdjointError(`unknown op '${name}'`);
  return def;
}

export function allOps(): OpDef[] {
  return [...registry.values()];
}

/** Records one node in the lazy graph. Shape errors surface here, at the call that made them. */
/** The attributes of ops that have none: one object, so nodes do not each allocate their own. */
export const NO_ATTRS: Attrs = Object.freeze({});

export function apply(name: string, inputs: Tensor[], attrs: Attrs = NO_ATTRS): Tensor {
  const def = getOp(name);
  for (const x of inputs) x.checkAlive(name);
  const info = def.infer(inputs, attrs);
  // Share an input's (frozen) shape where the result has the same one: most ops do.
  let shape: readonly number[] | null = null;
  for (const x of inputs)
    if (shapeEq(x.shape, info.shape)) {
      shape = x.shape;
      break;
    }
  return new Tensor(name, inputs, attrs, shape ?? frozenShape(info.shape), info.dtype);
}
