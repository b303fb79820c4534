/**
 * Checkpoints in the Hugging Face safetensors format, for whole pytrees (parameters, optimizer state, or
 * both in one object). Nested keys are joined with dots: `{ params: [{ w, b }] }` is stored as tensors
 * `params.0.w` and `params.0.b`; `loadSafetensors` splits them again (groups keyed 0..n-1 become arrays).
 *
 * The codec (./safetensors) is pure and validates a whole file before anything is allocated, so a malformed
 * checkpoint raises CheckpointError and creates no tensors.
 */
import { fromHost } from '../creation';
import { runtimeHooks, Tensor } from '../tensor';
import {
  CheckpointError,
  decodeSafetensors,
  encodeSafetensors,
  flattenTree,
  type RawTensor,
  type Tree,
  unflattenTree,
} from './safetensors';

export { CheckpointError, decodeSafetensors, encodeSafetensors, type RawTensor, type Tree };

const isTensor = (x: unknown): x is Tensor => x instanceof Tensor;

export interface SaveOptions {
  /** String key/value pairs stored in the file's `__metadata__` (e.g. { format: 'pt' }). */
  metadata?: Record<string, string>;
}

export interface LoadOptions<T> {
  /**
   * A template tree (e.g. freshly initialized params, or `{ params, state }`). The file must hold exactly
   * its tensors with the same shapes and dtypes (a CheckpointError names the first mismatch, and then no
   * tensor is created), and the result has the template's structure and key order, so a jitted step traced
   * on the template is reused as is.
   */
  like?: T;
  /** With `like`: allow tensors in the file that the template lacks (they are ignored). Default true = reject. */
  strict?: boolean;
}

function flatTensors(tree: unknown, where: string): Record<string, Tensor> {
  const leaves = flattenTree(tree, isTensor);
  for (const [k, t] of Object.entries(leaves))
    if (t.disposed) throw new CheckpointError(`${where}: tensor '${k}' was disposed`);
  return leaves;
}

function toRaw(t: Tensor): RawTensor {
  const h = t.dataSync();
  // The float64 reference mode (tests only) holds floats in Float64Arrays: files always store F32.
  const data = t.dtype === 'int32' ? (h as Int32Array) : h instanceof Float32Array ? h : Float32Array.from(h);
  return { dtype: t.dtype, shape: [...t.shape], data };
}

function encode(leaves: Record<string, Tensor>, opts: SaveOptions): Uint8Array {
  const raw: Record<string, RawTensor> = {};
  for (const [k, t] of Object.entries(leaves)) raw[k] = toRaw(t);
  return encodeSafetensors(raw, opts.metadata);
}

/**
 * Serializes a pytree of tensors to safetensors bytes (F32 / I32). Realizes every unrealized leaf first,
 * in one graph run, on the calling thread (it uses dataSync; use saveSafetensorsAsync where a synchronous
 * read is impossible). Keys must not contain '.', and leaves must all be tensors.
 */
export function saveSafetensors(tree: unknown, opts: SaveOptions = {}): Uint8Array {
  const leaves = flatTensors(tree, 'saveSafetensors');
  runtimeHooks.realizeSync?.(Object.values(leaves));
  return encode(leaves, opts);
}

/** saveSafetensors, realizing the tensors with the asynchronous path (`await data()`). */
export async function saveSafetensorsAsync(tree: unknown, opts: SaveOptions = {}): Promise<Uint8Array> {
  const leaves = flatTensors(tree, 'saveSafetensorsAsync');
  await runtimeHooks.realize?.(Object.values(leaves));
  return encode(leaves, opts);
}

/**
 * Reads safetensors bytes back into a tree of tensors. Without `like`, keys are split on '.' (object keys
 * come back in the file's order, which is sorted). Every dtype of the format is read; floats become float32
 * and integers int32 (see ./safetensors). Malformed input raises CheckpointError before any tensor exists.
 */
export function loadSafetensors<T>(bytes: Uint8Array | ArrayBuffer, opts: LoadOptions<T> & { like: T }): T;
export function loadSafetensors(bytes: Uint8Array | ArrayBuffer, opts?: LoadOptions<unknown>): Tree<Tensor>;
export function loadSafetensors(bytes: Uint8Array | ArrayBuffer, opts: LoadOptions<unknown> = {}): unknown {
  const { tensors } = decodeSafetensors(bytes);
  if (opts.like === undefined) {
    // Decoding validated everything; creating tensors from the fresh arrays cannot fail half way.
    const flat: Record<string, Tensor> = {};
    for (const [k, r] of Object.entries(tensors)) flat[k] = fromHost(r.data, r.shape, r.dtype);
    return unflattenTree(flat);
  }
  const template = flattenTree(opts.like, isTensor);
  for (const [k, t] of Object.entries(template)) {
    const r = Object.hasOwn(tensors, k) ? tensors[k] : undefined;
    if (!r) throw new CheckpointError(`loadSafetensors: the file has no tensor '${k}' that the template has`);
    if (r.dtype !== t.dtype || r.shape.length !== t.shape.length || r.shape.some((d, i) => d !== t.shape[i]))
      throw new CheckpointError(
        `loadSafetensors: tensor '${k}' is ${r.dtype}[${r.shape.join(', ')}] in the file but ${t.dtype}[${t.shape.join(', ')}] in the template`,
      );
  }
  if (opts.strict !== false) {
    for (const k of Object.keys(tensors))
      if (!Object.hasOwn(template, k))
        throw new CheckpointError(
          `loadSafetensors: the file has tensor '${k}' that the template lacks (pass strict: false to ignore it)`,
        );
  }
  const rebuild = (node: unknown, path: string): unknown => {
    if (node instanceof Tensor) {
      const r = tensors[path]!;
      return fromHost(r.data, r.shape, r.dtype);
    }
    if (Array.isArray(node)) return node.map((c, i) => rebuild(c, path === '' ? String(i) : `${path}.${i}`));
    if (node !== null && typeof node === 'object') {
      const out: Record<string, unknown> = {};
      for (const [k, c] of Object.entries(node)) {
        const v = rebuild(c, path === '' ? k : `${path}.${k}`);
        if (k === '__proto__') Object.defineProperty(out, k, { value: v, enumerable: true, writable: true });
        else out[k] = v;
      }
      return out;
    }
    return node; // undefined, skipped by flattenTree as well
  };
  return rebuild(opts.like, '');
}

/** The string metadata (`__metadata__`) of a safetensors file; validates the whole file like loadSafetensors. */
export function safetensorsMetadata(bytes: Uint8Array | ArrayBuffer): Record<string, string> {
  return decodeSafetensors(bytes).metadata;
}
