/**
 * One op table: kernel op codes and task kinds come from src/backends/opcodes.json (generated
 * into TypeScript and AssemblyScript at build time), and every primitive in the registry has
 * its kernels — a wasm kernel or a declared host fallback, and a WebGPU builder — so adding an
 * op without its kernels fails here, not in a user's program.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { BinaryOp, ConvMode, PoolMode, ReduceOp, TaskKind, UnaryOp } from '../src/backends/opcodes';
import { binaryCode, unaryCode, wasmKernels } from '../src/backends/wasm/ops';
import { gpuKernels } from '../src/backends/webgpu/kernels';
import { GNode } from '../src/graph/graph';
import { allOps } from '../src/ops/registry';
import '../src/index';

const table = JSON.parse(readFileSync('src/backends/opcodes.json', 'utf8'));

describe('the op-code table', () => {
  it('the generated TypeScript matches its definition', () => {
    const codes = (names: string[], first = 0) => Object.fromEntries(names.map((n, i) => [n, i + first]));
    expect({ ...UnaryOp }).toEqual(codes(table.unary));
    expect({ ...BinaryOp }).toEqual(codes(table.binary));
    expect({ ...ReduceOp }).toEqual(codes(table.reduce));
    expect({ ...TaskKind }).toEqual(codes(table.task, 1));
    expect({ ...ConvMode }).toEqual(codes(table.convMode));
    expect({ ...PoolMode }).toEqual(codes(table.poolMode));
  });

  it('the generated AssemblyScript matches its definition', () => {
    const as = readFileSync('assembly/opcodes.ts', 'utf8');
    const snake = (n: string) => n.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
    for (const [i, n] of (table.unary as string[]).entries())
      expect(as).toContain(`export const U_${snake(n)}: i32 = ${i};`);
    for (const [i, n] of (table.task as string[]).entries())
      expect(as).toContain(`export const T_${snake(n)}: i32 = ${i + 1};`);
    for (const [i, n] of (table.convMode as string[]).entries())
      expect(as).toContain(`export const C_${snake(n)}: i32 = ${i};`);
    for (const [i, n] of (table.poolMode as string[]).entries())
      expect(as).toContain(`export const P_${snake(n)}: i32 = ${i};`);
  });
});

/** Ops whose value is made by the runtime or the compiler, not by a kernel. */
const NO_KERNEL = new Set(['const', 'input', 'identity', 'stopGradient', 'transfer', 'customCall']);
/** Ops the wasm plan runs without a kernel: a reshape (and checkpoint's barrier) aliases its input's buffer. */
const WASM_NO_KERNEL = new Set(['reshape', 'rematBarrier']);

describe('every primitive has its kernels', () => {
  const f32 = (shape: number[]) =>
    new GNode('input', [], { index: 0, shape, dtype: 'float32' }, shape, 'float32');
  for (const def of allOps()) {
    if (NO_KERNEL.has(def.name)) continue;
    it(def.name, () => {
      expect(gpuKernels[def.name], `a WebGPU builder for '${def.name}'`).toBeDefined();
      if (WASM_NO_KERNEL.has(def.name)) return;
      expect(wasmKernels[def.name], `a wasm kernel for '${def.name}'`).toBeDefined();
      if (def.kind === 'elementwise' && def.name !== 'where' && def.name !== 'cast') {
        const x = f32([4]);
        const asUnary = new GNode(def.name, [x], {}, [4], 'float32');
        const asBinary = new GNode(def.name, [x, x], {}, [4], 'float32');
        expect(
          unaryCode(asUnary) ?? binaryCode(asBinary),
          `a float32 kernel op code for '${def.name}'`,
        ).toBeDefined();
      }
    });
  }
});
