/**
 * Residency: where values stay between runs. One policy for every device:
 * - A leaf (a constant or jit argument) consumed on a device it does not live on is copied there
 *   for the run. The second time the same tensor is consumed there, the copy is kept: weights
 *   and other reused inputs pay one transfer, one-shot inputs (a data batch) hold no device
 *   memory after their run. A host value moves for good (its JS array is dropped); a value on
 *   another device keeps a copy beside it (values are immutable, so copies never go stale).
 * - Values of 16 elements or fewer (losses, metrics, counters) come back to the host after a
 *   wasm run: the JS garbage collector reclaims them promptly, where wasm buffers wait for
 *   finalizers. They are copied to a temporary buffer for each run that reads them.
 * - Reading a value copies it out once and leaves it where it is. Under memory pressure (wasm
 *   memory past `residencyPolicy.wasmSoftBytes` and about to grow), values that were read are
 *   moved to the host, oldest read first: the JS collector then owns them (and sees them, which
 *   it does not see of wasm memory), and their wasm blocks serve the new allocation. Values a
 *   run is using are never moved.
 */
import { ConcretizationError } from '../errors';
import { HostStorage } from '../storage';
import type { Device, Storage, Tensor } from '../tensor';
import { backendOn } from './devices';

export const HOST_MAX_ELEMENTS = 16;

/** Mutable for tests and benchmarks. */
export const residencyPolicy = { wasmSoftBytes: 256 * 1024 * 1024 };

const seen = new Map<Device, WeakSet<Tensor>>();

/** Whether this is the second (or later) time `t` is consumed on `device`. */
function reused(t: Tensor, device: Device): boolean {
  if (t.size <= HOST_MAX_ELEMENTS) return false;
  let s = seen.get(device);
  if (!s) seen.set(device, (s = new WeakSet()));
  if (s.has(t)) return true;
  s.add(t);
  return false;
}

/** Whether binding `t` on `device` needs an async read first (its only copies are on a GPU). */
export function needsRead(t: Tensor, device: Device): boolean {
  const s = t.storage!;
  return !usable(s, device) && !usable(t.copyOn(device), device) && s.view() === null;
}

/** Whether `s` can be read as it is by the backend on `device` (a wasm buffer of an earlier init() cannot). */
function usable(s: Storage | undefined, device: Device): boolean {
  if (!s || s.device !== device) return false;
  const b = backendOn(device);
  return b.holds?.(s) ?? true;
}

/**
 * The tensor's value as a storage on `device`, for one run. Temporary copies are pushed to
 * `temps` (the caller releases them after the run); `host` is the value read beforehand where
 * the tensor's storage has no synchronous read.
 */
export function bind(t: Tensor, device: Device, temps: Storage[], host?: Float32Array | Int32Array): Storage {
  const s = t.storage!;
  if (usable(s, device)) return s;
  const kept = t.copyOn(device);
  if (kept && usable(kept, device)) return kept;
  const backend = backendOn(device);
  const data = s.view() ?? host;
  if (!data)
    throw new ConcretizationError(
      `tensor #${t.id} lives on ${s.device} and is needed on ${device}: that takes an async read; use 'await tensor.data()' or an async call`,
    );
  if (!backend.upload)
    throw new ConcretizationError(`the ${device} backend cannot take values from ${s.device}`);
  const copy = backend.upload(data, t.dtype);
  if (!reused(t, device)) temps.push(copy);
  else if (s.device === 'host') t.moveTo(copy);
  else t.addCopy(copy);
  return copy;
}

/** What a run's output becomes: tiny wasm values move to the host. */
export function settle(out: Storage, size: number): Storage {
  if (out.device !== 'wasm' || size > HOST_MAX_ELEMENTS) return out;
  const host = new HostStorage(out.view()!.slice());
  out.release();
  return host;
}

/** Tensors read since they were last moved, oldest first; weak, so reads never keep a value alive. */
let readOrder: WeakRef<Tensor>[] = [];
const inReadOrder = new WeakSet<Tensor>();

export function noteRead(t: Tensor): void {
  if (t.storage?.device !== 'wasm' || inReadOrder.has(t) || t.size <= HOST_MAX_ELEMENTS) return;
  inReadOrder.add(t);
  readOrder.push(new WeakRef(t));
}

/** Tensors bound by runs in progress: their buffers must stay where they are. */
const pinned = new Map<Tensor, number>();

export function pin(ts: readonly Tensor[]): void {
  for (const t of ts) pinned.set(t, (pinned.get(t) ?? 0) + 1);
}

export function unpin(ts: readonly Tensor[]): void {
  for (const t of ts) {
    const n = pinned.get(t)! - 1;
    if (n > 0) pinned.set(t, n);
    else pinned.delete(t);
  }
}

/** The wasm allocator's pressure callback: moves read values to the host until `bytes` are freed. */
export function relieveWasm(bytes: number, memoryBytes: number): boolean {
  if (memoryBytes < residencyPolicy.wasmSoftBytes) return false;
  let freed = 0;
  const keep: WeakRef<Tensor>[] = [];
  for (const ref of readOrder) {
    const t = ref.deref();
    if (!t) continue;
    const s = t.storage;
    if (freed >= bytes || pinned.has(t) || s?.device !== 'wasm') {
      if (s?.device === 'wasm') keep.push(ref);
      else if (t) inReadOrder.delete(t);
      continue;
    }
    t.moveTo(new HostStorage(s.view()!.slice()));
    inReadOrder.delete(t);
    freed += 4 * t.size;
  }
  readOrder = keep;
  return freed > 0;
}
