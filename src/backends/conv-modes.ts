/**
 * The convolution and pooling ops as the mode word their kernels take (assembly/conv.ts and
 * pool.ts, the WGSL in webgpu/conv.ts); the numbers come from opcodes.json.
 */
import { ConvMode, PoolMode } from './opcodes';

export function convMode(op: string): number {
  return ConvMode[op as keyof typeof ConvMode];
}

export function poolMode(op: string): number {
  return PoolMode[op as keyof typeof PoolMode];
}

/** A backend's builder table for the convolution and pooling ops. */
export function convBuilders<B>(conv: B, pool: B): Record<string, B> {
  return Object.fromEntries([
    ...Object.keys(ConvMode).map((op) => [op, conv]),
    ...Object.keys(PoolMode).map((op) => [op, pool]),
  ]);
}
