/**
 * The contract between the WebGPU backend and each op's kernels: for a graph node, a builder
 * returns the compute dispatches that produce its value, as WGSL source plus bindings. Buffers
 * are addressed by slot (from `ctx.at`), so the dispatches of a plan are built once and bound
 * to new buffers on every run. Pipelines are cached by WGSL source, so a builder that makes
 * the same source for two nodes shares one pipeline.
 */
import type { GNode } from '../../graph/graph';

/** One compute dispatch. */
export interface GpuDispatch {
  /** A complete WGSL module. Storage buffers are @group(0) @binding(0..n-1) in `buffers` order. */
  readonly wgsl: string;
  /** Entry point; default 'main'. */
  readonly entry?: string;
  /** Buffer slots bound as storage buffers, in binding order. */
  readonly buffers: readonly number[];
  /** Uniform data bound at @binding(buffers.length) when present (a uniform buffer, 16-byte multiple). */
  readonly uniforms?: Uint32Array;
  /** Workgroup counts; each at most limits.maxComputeWorkgroupsPerDimension. */
  readonly workgroups: readonly [number, number, number];
}

/** The adapter limits kernels size themselves by. */
export interface GpuLimits {
  readonly maxComputeInvocationsPerWorkgroup: number;
  readonly maxComputeWorkgroupSizeX: number;
  readonly maxComputeWorkgroupsPerDimension: number;
  readonly maxComputeWorkgroupStorageSize: number;
  readonly maxStorageBufferBindingSize: number;
  readonly maxStorageBuffersPerShaderStage: number;
}

/** Per-adapter kernel shape choices (calibrated once per adapter; see backend). */
export interface GpuTuning {
  /** Matmul: 'register' (each invocation an 8x8 block in registers, best on CPU adapters) or 'tiled' (workgroup-memory tiles, best on real GPUs). */
  readonly matmul: 'register' | 'tiled';
}

export interface GpuKernelContext {
  /** Slot of a node's buffer (a value, an input or an output). */
  at(n: GNode): number;
  /** A scratch buffer of `bytes` (at least 16) live only while this node's dispatches run; its slot. */
  temp(bytes: number): number;
  readonly limits: GpuLimits;
  readonly tuning: GpuTuning;
}

/** Returns null to decline a case (placement then keeps the node off the GPU). */
export type GpuKernelBuilder = (n: GNode, ctx: GpuKernelContext) => GpuDispatch[] | null;

/** Workgroup counts covering `invocations` with `perGroup` invocations each, folded into 2D past the per-dimension limit. */
export function grid(invocations: number, perGroup: number, limits: GpuLimits): [number, number, number] {
  const groups = Math.max(1, Math.ceil(invocations / perGroup));
  const max = limits.maxComputeWorkgroupsPerDimension;
  if (groups <= max) return [groups, 1, 1];
  const y = Math.ceil(groups / max);
  return [Math.ceil(groups / y), y, 1];
}
