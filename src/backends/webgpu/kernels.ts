/**
 * The builder table of the WebGPU backend: op name -> GpuKernelBuilder (kernel.ts). The one
 * place that lists which files provide kernels; an op missing here is not supported on the GPU
 * (placement keeps it elsewhere).
 */
import { convKernels } from './conv';
import { elementwiseKernels } from './elementwise';
import { gatherKernels } from './gather';
import type { GpuKernelBuilder } from './kernel';
import { matmulKernels } from './matmul';
import { movementKernels } from './movement';
import { normKernels } from './norm';
import { reduceKernels } from './reduce';
import { softmaxKernels } from './softmax';

export const gpuKernels: Readonly<Record<string, GpuKernelBuilder>> = {
  // sources, reshape and strided copies; elementwise programs; reductions (this backend's core)
  ...movementKernels,
  ...elementwiseKernels,
  ...reduceKernels,
  // matmul, the softmax family, layer norm, gather/scatterAdd (their own files)
  ...matmulKernels,
  ...softmaxKernels,
  ...normKernels,
  ...gatherKernels,
  // convolution and pooling, direct (conv.ts)
  ...convKernels,
  // keyed random numbers are declined: every device runs their host reference (ops/defs/random.ts)
  randomDraw: () => null,
  randomSplit: () => null,
};
