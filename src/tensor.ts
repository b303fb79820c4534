import { ConcretizationError, DisposedError } from './errors';
import { keyOf } from './key';
import { type Shape, sizeOf } from './shape';

export type DType = 'float32' | 'int32';
/** Host-side element arrays. Float64Array appears only in the float64 reference mode used by tests. */
export type HostArray = Float32Array | Int32Array | Float64Array;
export type NestedArray = number | NestedArray[];
export type Attrs = Readonly<Record<string, unknown>>;

/** Where a realized value lives. */
export type Device = 'host' | 'wasm' | 'webgpu';

/**
 * A realized buffer on one device (a JS array on the host, a block of wasm memory, a GPU buffer).
 * Reads are async at heart (a GPU read is a mapAsync); `view` is the synchronous path where the
 * device has one.
 */
export interface Storage {
  readonly device: Device;
  /** The elements, as a view valid until the device's memory next changes, or null where no synchronous read exists. */
  view(): HostArray | null;
  /** A fresh host copy of the elements, the caller's to keep. */
  read(): Promise<HostArray>;
  /** Gives the memory back to its device. Idempotent. */
  release(): void;
}

/** Hooks the runtime installs, so this module does not depend on compiler or backends. */
export const runtimeHooks: {
  realize: ((ts: Tensor[]) => Promise<void>) | null;
  realizeSync: ((ts: Tensor[]) => void) | null;
  /** Told of every read, for the residency policy. */
  read: ((t: Tensor) => void) | null;
  /** Eager valueAndGrad's gradients, from a program cached by the forward's structure where one fits. */
  eagerGrad:
    | ((out: Tensor, vars: readonly Tensor[], backward: () => Tensor[], custom: boolean) => Tensor[])
    | null;
  /** After an async read: now and then a macrotask, so finalizers run in a loop of reads (`big`: a large value was made). */
  turn: ((big: boolean) => Promise<void> | undefined) | null;
} = { realize: null, realizeSync: null, read: null, eagerGrad: null, turn: null };

/** While > 0, a transform is tracing: realized tensors keep their history so they stay differentiable. */
export const traceState = { depth: 0 };

/**
 * The buffers behind one realized tensor: its storage and copies of the same value on other
 * devices (values are immutable, so a copy never goes stale; the runtime's residency policy
 * decides which to keep). Released together by dispose() or, once the tensor is unreachable, by
 * the finalizer; the cell never refers back to its tensor.
 */
interface Cell {
  storage: Storage;
  copies: Storage[];
}

function releaseCell(c: Cell): void {
  c.storage.release();
  for (const s of c.copies) s.release();
  c.copies.length = 0;
}

const finalizer =
  typeof FinalizationRegistry === 'undefined' ? null : new FinalizationRegistry<Cell>(releaseCell);

let nextId = 1;

let walks = 0;

/** A fresh mark for a graph walk that stamps Tensor.walkEpoch; such walks run to completion, never nested. */
export function newWalk(): number {
  return ++walks;
}

const shapeKeys = new WeakMap<readonly number[], string>();

/** A frozen shape as a string, made once per shape array (they are shared, and keys are built per node). */
export function shapeKey(shape: readonly number[]): string {
  let k = shapeKeys.get(shape);
  if (k === undefined) {
    k = shape.join(',');
    shapeKeys.set(shape, k);
  }
  return k;
}

const keyIds = new Map<string, number>();
let nextKeyId = 1;

/**
 * A number for a key string. Numbers are never reused: when the table is cleared (it is bounded),
 * a key seen again gets a new number, so a number cached on an old tensor can only miss, never
 * stand for another key.
 */
export function internKey(key: string): number {
  let id = keyIds.get(key);
  if (id === undefined) {
    if (keyIds.size >= 1 << 16) keyIds.clear();
    id = nextKeyId++;
    keyIds.set(key, id);
  }
  return id;
}

/** Signatures of nodes without attributes, by op and dtype, then by (shared, frozen) shape. */
const plainSignatures = new Map<string, WeakMap<readonly number[], number>>();

function signatureOf(op: string, dtype: DType, shape: readonly number[], attrs: Attrs): number {
  let plain = true;
  for (const _ in attrs) {
    plain = false;
    break;
  }
  const head = `${op}${dtype[0]}`;
  let byShape = plain ? plainSignatures.get(head) : undefined;
  let id = byShape?.get(shape);
  if (id !== undefined) return id;
  id = internKey(`${head}${shapeKey(shape)}${keyOf(attrs)}`);
  if (plain) {
    if (!byShape) plainSignatures.set(head, (byShape = new WeakMap()));
    byShape.set(shape, id);
  }
  return id;
}

/** The shape as a frozen array, itself where it already is one (most ops keep an input's shape). */
export function frozenShape(shape: Shape): readonly number[] {
  return Object.isFrozen(shape) ? shape : Object.freeze([...shape]);
}

/** The id the next tensor will get: tensors made from now on have ids at least this. */
export function nextTensorId(): number {
  return nextId;
}

/**
 * A tensor is a node of the lazy computation graph: `op` applied to `inputs` with `attrs`.
 * Realizing it stores a buffer in `storage` and (outside transforms) drops the history, so a
 * realized tensor is a leaf. Tensors are immutable values.
 */
export class Tensor {
  readonly id = nextId++;
  readonly shape: readonly number[];
  readonly dtype: DType;
  op: string;
  inputs: Tensor[];
  attrs: Attrs;
  private cell: Cell | null = null;
  disposed = false;
  /**
   * Tensors computed by the same transform call (a value and its gradients): realizing one
   * realizes the others still pending in the same run, so shared work is done once.
   */
  siblings: WeakRef<Tensor>[] | null = null;
  private disposedWhy = 'it was disposed';
  /** Scratch for graph walks (see newWalk): the walk that last reached this tensor, and what it noted there. */
  walkEpoch = 0;
  walkIndex = 0;
  /** This node's own part of a structure key (op, dtype, shape, attributes) as a number, made once. */
  private sig = 0;

  /** `shape` must be frozen (see frozenShape): shapes are shared between tensors. */
  constructor(op: string, inputs: Tensor[], attrs: Attrs, shape: readonly number[], dtype: DType) {
    this.op = op;
    this.inputs = inputs;
    this.attrs = attrs;
    this.shape = shape;
    this.dtype = dtype;
  }

  /** Op, dtype, shape and attributes as a number: equal for nodes that compute alike from alike inputs. */
  signature(): number {
    if (this.sig === 0) this.sig = signatureOf(this.op, this.dtype, this.shape, this.attrs);
    return this.sig;
  }

  get size(): number {
    return sizeOf(this.shape);
  }

  get ndim(): number {
    return this.shape.length;
  }

  /** Where the value lives now; null while the tensor is lazy (not computed yet). */
  get device(): Device | null {
    return this.storage?.device ?? null;
  }

  /** True once a buffer holds this tensor's value. */
  get isRealized(): boolean {
    return this.storage !== null;
  }

  /** The buffer holding the value, on the device it lives on; null while lazy. */
  get storage(): Storage | null {
    return this.cell?.storage ?? null;
  }

  /** Attaches a buffer (releasing any earlier one and its copies). Called by the runtime; drops history unless a transform is tracing. */
  setStorage(storage: Storage): void {
    if (this.cell) releaseCell(this.cell);
    this.cell = { storage, copies: [] };
    // One registration per tensor: re-registering would keep every replaced cell alive.
    finalizer?.unregister(this);
    finalizer?.register(this, this.cell, this);
    if (traceState.depth === 0) this.dropHistory();
  }

  /** A copy of the value kept on `device`, if the runtime made one. */
  copyOn(device: Device): Storage | undefined {
    return this.cell?.copies.find((c) => c.device === device);
  }

  /** Keeps a copy of the value on another device (released with the tensor). */
  addCopy(copy: Storage): void {
    if (!this.cell) throw new ConcretizationError(`tensor #${this.id} has no value to copy`);
    this.cell.copies.push(copy);
  }

  /** Makes a copy the tensor's storage, releasing the old storage and the other copies (an eviction or a move). */
  moveTo(copy: Storage): void {
    const cell = this.cell;
    if (!cell) throw new ConcretizationError(`tensor #${this.id} has no value to move`);
    const others = [cell.storage, ...cell.copies].filter((s) => s !== copy);
    cell.storage = copy;
    cell.copies = [];
    for (const o of others) o.release();
  }

  dropHistory(): void {
    if (!this.storage) return;
    this.op = 'const';
    this.inputs = [];
    this.attrs = {};
    this.sig = 0;
  }

  checkAlive(where: string): void {
    if (this.disposed)
      throw new DisposedError(
        `${where}: tensor #${this.id} ${fmtT(this)} cannot be used: ${this.disposedWhy}`,
      );
  }

  async data(): Promise<Float32Array | Int32Array> {
    this.checkAlive('data');
    const lazy = !this.storage;
    if (lazy) {
      if (!runtimeHooks.realize) throw new ConcretizationError('data: the runtime is not loaded');
      await runtimeHooks.realize([this]);
    }
    this.checkAlive('data');
    const out = (await this.storage!.read()) as Float32Array | Int32Array;
    runtimeHooks.read?.(this);
    // realize gives the event loop its turns; reading a value computed earlier (by jit) must too
    if (!lazy) await runtimeHooks.turn?.(false);
    return out;
  }

  dataSync(): Float32Array | Int32Array {
    this.checkAlive('dataSync');
    if (!this.storage) {
      if (!runtimeHooks.realizeSync) throw new ConcretizationError('dataSync: the runtime is not loaded');
      runtimeHooks.realizeSync([this]);
    }
    const out = readNow(this);
    runtimeHooks.read?.(this);
    return out;
  }

  async item(): Promise<number> {
    if (this.size !== 1)
      throw new ConcretizationError(`item: tensor of shape [${this.shape}] is not a scalar`);
    return (await this.data())[0];
  }

  async array(): Promise<NestedArray> {
    return toNested(await this.data(), this.shape);
  }

  arraySync(): NestedArray {
    return toNested(this.dataSync(), this.shape);
  }

  /** Releases the buffer now. Using the tensor afterwards throws DisposedError. */
  dispose(why?: string): void {
    if (this.disposed) return;
    this.disposed = true;
    if (why) this.disposedWhy = why;
    if (this.cell) {
      finalizer?.unregister(this);
      releaseCell(this.cell);
      this.cell = null;
    }
    this.inputs = [];
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  toString(): string {
    return `Tensor(${this.op}, ${fmtT(this)})`;
  }
}

function fmtT(t: Tensor): string {
  return `${t.dtype}[${t.shape.join(', ')}]`;
}

/** A fresh copy of a realized tensor's value, read synchronously: one copy out of the device. */
function readNow(t: Tensor): Float32Array | Int32Array {
  const v = t.storage!.view();
  if (v === null)
    throw new ConcretizationError(
      `dataSync: tensor #${t.id} ${fmtT(t)} lives on ${t.storage!.device}, which has no synchronous read; use 'await tensor.data()'`,
    );
  // Float64Array only occurs in the float64 reference mode, where tests want full precision.
  return v.slice() as Float32Array | Int32Array;
}

export function toNested(data: ArrayLike<number>, shape: readonly number[]): NestedArray {
  if (shape.length === 0) return data[0];
  let pos = 0;
  const build = (d: number): NestedArray[] => {
    const out: NestedArray[] = [];
    for (let i = 0; i < shape[d]; i++) out.push(d === shape.length - 1 ? data[pos++] : build(d + 1));
    return out;
  };
  return build(0);
}

/** Links tensors so that realizing any of them computes all (see Tensor.siblings). */
export function linkSiblings(ts: readonly Tensor[]): void {
  if (ts.length < 2 || typeof WeakRef === 'undefined') return;
  const refs = ts.map((t) => new WeakRef(t));
  for (const t of ts) if (t.storage === null) t.siblings = refs;
}

export function isTensor(x: unknown): x is Tensor {
  return x instanceof Tensor;
}
