/**
 * Placement: after optimization, every node gets a device and a `transfer` node goes where a
 * value crosses devices. Leaves (constants, jit inputs) are not placed: the residency policy
 * binds them, at run time, on the device of each consumer. Fills are duplicated onto each device
 * that consumes them (they cost nothing to make).
 *
 * With no GPU every node runs on the primary backend and the graph is returned as it is. With a
 * GPU the choice is placement-mixed.ts's, loaded with the GPU backend. A software adapter takes
 * nothing under 'auto', unless `placementPolicy.gpuMinWork` (or ADJOINT_GPU_MIN_WORK) forces
 * nodes of at least that much work onto the GPU — for tests that need mixed graphs.
 */
import { AdjointError } from '../errors';
import type { GNode, Graph } from '../graph/graph';
import { envVar } from '../platform/node';
import type { Device } from '../tensor';
import { devices } from './devices';

function envWork(): number | null {
  const v = envVar('ADJOINT_GPU_MIN_WORK');
  const n = v === undefined || v === '' ? Number.NaN : Number(v);
  return Number.isFinite(n) && n >= 0 ? n : null;
}

/** Mutable for tests and benchmarks. */
export const placementPolicy: { gpuMinWork: number | null } = { gpuMinWork: envWork() };

/** A graph whose nodes each have a device (null for leaves), with transfer nodes inserted. */
export interface Placed {
  readonly graph: Graph;
  readonly device: readonly (Device | null)[];
}

export const isLeaf = (n: GNode) => n.op === 'const' || n.op === 'input';

export interface PlaceOptions {
  /**
   * For programs that must run synchronously (jit): a value placed on the GPU never comes back
   * within the run, so its consumers go to the GPU too, and what feeds a node the GPU cannot run
   * stays off it (reads back happen only when asked for).
   */
  readonly noReadback?: boolean;
}

let mixed: ((g: Graph, opts: PlaceOptions) => Placed) | null = null;

/** Installed by placement-mixed.ts when it loads. */
export function setMixedPlacement(f: (g: Graph, opts: PlaceOptions) => Placed): void {
  mixed = f;
}

export function place(g: Graph, opts: PlaceOptions = {}): Placed {
  const { primary, gpu } = devices();
  if (!gpu) return { graph: g, device: g.nodes.map((n) => (isLeaf(n) ? null : primary!.device)) };
  if (!mixed)
    throw new AdjointError('internal: a GPU is in use but its placement (placement-mixed.ts) is not loaded');
  return mixed(g, opts);
}
