/**
 * Elementwise programs in generated WGSL: a fused group (src/compiler/passes/fuse.ts) or a single
 * elementwise op becomes one shader that walks the output once, loads each input through its
 * broadcast strides, evaluates the members as straight-line code and stores the group's outputs.
 *
 * The source depends only on the program's structure (ops, dtypes, wiring, counts of inputs,
 * constants and outputs). Shapes, strides and fill constants are uniforms, so programs of other
 * shapes or constants reuse the pipeline. Ranks are coalesced first; when every input has the
 * output's shape the rank uniform is 0 and offsets are the invocation index (no divisions).
 * Fill inputs never get buffers: they are constants. Buffers hold 32-bit words; values are
 * bitcast to f32 or i32 by dtype. Semantics follow the reference interpreter (see wgsl.ts).
 */
import type { GNode } from '../../graph/graph';
import { broadcastStrides } from '../../shape';
import type { DType } from '../../tensor';
import { type GpuDispatch, type GpuKernelBuilder, type GpuKernelContext, grid } from './kernel';
import {
  coalesce,
  entry,
  helperSource,
  MAX_RANK,
  UNIFORM_WORD,
  Uniforms,
  uniformDecl,
  valueBits,
  WG,
} from './wgsl';

const wgslType = (d: DType) => (d === 'int32' ? 'i32' : 'f32');

/** An expression for member `n` over argument expressions, plus the helpers it calls; null = unsupported. */
type Emitted = { expr: string; helpers?: string[] };

const F32_UNARY: Record<string, (x: string) => Emitted> = {
  neg: (x) => ({ expr: `(-${x})` }),
  abs: (x) => ({ expr: `abs(${x})` }),
  sign: (x) => ({ expr: `signf(${x})`, helpers: ['signf'] }),
  square: (x) => ({ expr: `(${x} * ${x})` }),
  exp: (x) => ({ expr: `expf(${x})`, helpers: ['expf'] }),
  log: (x) => ({ expr: `logf(${x})`, helpers: ['logf'] }),
  log1p: (x) => ({ expr: `log1pf(${x})`, helpers: ['log1pf'] }),
  sqrt: (x) => ({ expr: `sqrtf(${x})`, helpers: ['sqrtf'] }),
  reciprocal: (x) => ({ expr: `(1.0 / ${x})` }),
  sin: (x) => ({ expr: `sinf(${x})`, helpers: ['sinf'] }),
  cos: (x) => ({ expr: `cosf(${x})`, helpers: ['cosf'] }),
  tanh: (x) => ({ expr: `tanhf(${x})`, helpers: ['tanhf'] }),
  sigmoid: (x) => ({ expr: `sigmoidf(${x})`, helpers: ['sigmoidf'] }),
  // -0 -> 0 and NaN -> NaN, as Math.max(x, 0).
  relu: (x) => ({ expr: `select(${x}, 0.0, ${x} <= 0.0)` }),
  softplus: (x) => ({ expr: `softplusf(${x})`, helpers: ['softplusf'] }),
  // 1/sqrt as the wasm kernel (inverseSqrt may be approximate).
  rsqrt: (x) => ({ expr: `(1.0 / sqrtf(${x}))`, helpers: ['sqrtf'] }),
  floor: (x) => ({ expr: `floor(${x})` }),
  ceil: (x) => ({ expr: `ceil(${x})` }),
  // WGSL round is half to even, like f32x4.nearest.
  round: (x) => ({ expr: `round(${x})` }),
  erf: (x) => ({ expr: `erff(${x})`, helpers: ['erff'] }),
};

const I32_UNARY: Record<string, (x: string) => Emitted> = {
  neg: (x) => ({ expr: `(-${x})` }),
  abs: (x) => ({ expr: `abs(${x})` }),
  sign: (x) => ({ expr: `signi(${x})`, helpers: ['signi'] }),
  square: (x) => ({ expr: `(${x} * ${x})` }),
};

const cmp = (op: string) => (a: string, b: string) => ({ expr: `select(0i, 1i, ${a} ${op} ${b})` });

const F32_BINARY: Record<string, (a: string, b: string) => Emitted> = {
  add: (a, b) => ({ expr: `(${a} + ${b})` }),
  sub: (a, b) => ({ expr: `(${a} - ${b})` }),
  mul: (a, b) => ({ expr: `(${a} * ${b})` }),
  div: (a, b) => ({ expr: `(${a} / ${b})` }),
  pow: (a, b) => ({ expr: `powf(${a}, ${b})`, helpers: ['powf'] }),
  maximum: (a, b) => ({ expr: `maxf(${a}, ${b})`, helpers: ['maxf'] }),
  minimum: (a, b) => ({ expr: `minf(${a}, ${b})`, helpers: ['minf'] }),
  greater: cmp('>'),
  less: cmp('<'),
  equal: cmp('=='),
  greaterEqual: cmp('>='),
  lessEqual: cmp('<='),
  // `!=` on floats is ordered on some adapters (NaN != 1 false): negate `==`, which is false for NaN
  notEqual: (a, b) => ({ expr: `select(1i, 0i, ${a} == ${b})` }),
};

const I32_BINARY: Record<string, (a: string, b: string) => Emitted> = {
  add: (a, b) => ({ expr: `(${a} + ${b})` }),
  sub: (a, b) => ({ expr: `(${a} - ${b})` }),
  mul: (a, b) => ({ expr: `(${a} * ${b})` }),
  div: (a, b) => ({ expr: `idiv(${a}, ${b})`, helpers: ['idiv'] }),
  pow: (a, b) => ({ expr: `ipow(${a}, ${b})`, helpers: ['ipow'] }),
  maximum: (a, b) => ({ expr: `max(${a}, ${b})` }),
  minimum: (a, b) => ({ expr: `min(${a}, ${b})` }),
  greater: cmp('>'),
  less: cmp('<'),
  equal: cmp('=='),
  greaterEqual: cmp('>='),
  lessEqual: cmp('<='),
  notEqual: cmp('!='),
};

/** Ops that only forward their input's value. */
const COPIES = new Set(['identity', 'stopGradient']);

/** The WGSL of one member, or null when this backend cannot evaluate it. */
function emit(n: GNode, args: readonly string[]): Emitted | null {
  const inDtype = n.inputs[0]?.dtype;
  if (COPIES.has(n.op)) return { expr: args[0] };
  if (n.op === 'cast') {
    if (inDtype === n.dtype) return { expr: args[0] };
    return n.dtype === 'int32' ? { expr: `f2i(${args[0]})`, helpers: ['f2i'] } : { expr: `f32(${args[0]})` };
  }
  if (n.op === 'where') {
    const [c, a, b] = args;
    // Any nonzero condition (NaN included, -0 not) picks a, as `c !== 0` in the reference.
    const cond = n.inputs[0].dtype === 'int32' ? `${c} != 0i` : `(bitcast<u32>(${c}) & 0x7fffffffu) != 0u`;
    return n.inputs[1].dtype === n.inputs[2].dtype ? { expr: `select(${b}, ${a}, ${cond})` } : null;
  }
  if (n.inputs.length === 1) {
    const f: ((x: string) => Emitted) | undefined = (inDtype === 'int32' ? I32_UNARY : F32_UNARY)[n.op];
    return f !== undefined && n.dtype === inDtype ? f(args[0]) : null;
  }
  if (n.inputs.length === 2) {
    if (n.inputs[0].dtype !== n.inputs[1].dtype) return null;
    const f: ((a: string, b: string) => Emitted) | undefined = (
      inDtype === 'int32' ? I32_BINARY : F32_BINARY
    )[n.op];
    return f ? f(args[0], args[1]) : null;
  }
  return null;
}

/** Whether a node can be a member of an elementwise program here. */
export function canElementwise(n: GNode): boolean {
  if (n.shape.length > MAX_RANK) return false;
  if (n.inputs.some((x) => x.shape.length > MAX_RANK)) return false;
  return (
    emit(
      n,
      n.inputs.map(() => 'x'),
    ) !== null
  );
}

/** A program: members in topological order, the values it reads, the members it stores. */
export interface ElementwiseProgram {
  readonly members: readonly GNode[];
  readonly inputs: readonly GNode[];
  readonly outputs: readonly GNode[];
}

/** Storage buffers a program binds (inputs + outputs; fills are uniforms). */
export function programBindings(p: ElementwiseProgram): number {
  return new Set(p.inputs.filter((x) => x.op !== 'fill')).size + p.outputs.length;
}

/** Uniform words before the per-input strides: n, rank, 2 spare, then the shape. */
const HEAD = 4 + MAX_RANK;

/**
 * The dispatch of a program, or null when a member is not supported or the shapes do not
 * coalesce to MAX_RANK dims. Fill inputs are read from uniforms, never bound.
 */
export function programDispatch(p: ElementwiseProgram, ctx: GpuKernelContext): GpuDispatch[] | null {
  const shape = p.members[p.members.length - 1].shape;
  const size = shape.reduce((a, d) => a * d, 1);
  const inside = new Set(p.members);
  const bound = [...new Set(p.inputs.filter((x) => x.op !== 'fill' && !inside.has(x)))];
  // Fills read by members (whether or not listed as inputs) become constants.
  const fills: GNode[] = [];
  for (const m of p.members)
    for (const x of m.inputs) if (x.op === 'fill' && !inside.has(x) && !fills.includes(x)) fills.push(x);

  const names = new Map<GNode, string>();
  const lines: string[] = [];
  const helpers = new Set<string>();
  bound.forEach((x, k) => {
    names.set(x, `x${k}`);
    lines.push(`  let x${k} = bitcast<${wgslType(x.dtype)}>(in${k}[o${k}]);`);
  });
  const constBase = HEAD + MAX_RANK * bound.length;
  fills.forEach((x, k) => {
    names.set(x, `c${k}`);
    const w = constBase + k;
    lines.push(`  let c${k} = bitcast<${wgslType(x.dtype)}>(u[${w >> 2}][${w & 3}]);`);
  });
  for (let m = 0; m < p.members.length; m++) {
    const n = p.members[m];
    const args = n.inputs.map((x) => names.get(x));
    if (args.some((a) => a === undefined)) return null;
    const e = emit(n, args as string[]);
    if (!e) return null;
    for (const h of e.helpers ?? []) helpers.add(h);
    names.set(n, `v${m}`);
    lines.push(`  let v${m}: ${wgslType(n.dtype)} = ${e.expr};`);
  }
  p.outputs.forEach((o, j) => {
    lines.push(`  out${j}[i] = bitcast<u32>(${names.get(o)});`);
  });

  // Uniforms: coalesced shape and each bound input's strides, then the constants.
  const strides = bound.map((x) => broadcastStrides(x.shape, shape));
  const c = coalesce(shape, strides);
  if (c.shape.length > MAX_RANK) return null;
  const plain = c.shape.length <= 1 && c.strides.every((s) => s.length === 0 || s[0] === 1);
  const uni = new Uniforms()
    .u32(size)
    .u32(plain ? 0 : c.shape.length)
    .u32(0)
    .u32(0)
    .array(c.shape, MAX_RANK);
  for (const s of c.strides) uni.array(s, MAX_RANK);
  for (const x of fills) uni.u32(valueBits(x.attrs.value as number, x.dtype));
  const uniforms = uni.finish();

  const nIn = bound.length;
  const decl: string[] = [];
  for (let k = 0; k < nIn; k++) decl.push(`@group(0) @binding(${k}) var<storage, read> in${k}: array<u32>;`);
  p.outputs.forEach((_, j) => {
    decl.push(`@group(0) @binding(${nIn + j}) var<storage, read_write> out${j}: array<u32>;`);
  });
  decl.push(uniformDecl(nIn + p.outputs.length, uniforms.length));
  const offsets: string[] = [];
  if (nIn > 0) {
    offsets.push(`  ${bound.map((_, k) => `var o${k} = i;`).join(' ')}`);
    offsets.push('  let rank = u[0][1];');
    offsets.push('  if (rank > 0u) {');
    offsets.push(`    ${bound.map((_, k) => `o${k} = 0u;`).join(' ')}`);
    // innermost dim first; the outermost index is what remains (one division per inner dim)
    offsets.push('    var rem = i;');
    offsets.push('    for (var d = rank; d > 0u; d = d - 1u) {');
    offsets.push('      let k = d - 1u;');
    offsets.push('      var q = rem;');
    offsets.push('      if (k > 0u) {');
    offsets.push('        let n = uw(4u + k);');
    offsets.push('        let next = rem / n;');
    offsets.push('        q = rem - next * n;');
    offsets.push('        rem = next;');
    offsets.push('      }');
    for (let k = 0; k < nIn; k++) offsets.push(`      o${k} = o${k} + q * uw(${HEAD + MAX_RANK * k}u + k);`);
    offsets.push('    }');
    offsets.push('  }');
  }
  const wgsl = [
    ...decl,
    UNIFORM_WORD,
    helperSource(helpers),
    entry(WG),
    '  if (i >= u[0][0]) { return; }',
    ...offsets,
    ...lines,
    '}',
    '',
  ].join('\n');
  if (size === 0) return [];
  return [
    {
      wgsl,
      buffers: [...bound.map((x) => ctx.at(x)), ...p.outputs.map((o) => ctx.at(o))],
      uniforms,
      workgroups: grid(size, WG, ctx.limits),
    },
  ];
}

/** A single elementwise op as a one-member program. */
const single: GpuKernelBuilder = (n, ctx) => {
  if (!canElementwise(n)) return null;
  return programDispatch({ members: [n], inputs: n.inputs, outputs: [n] }, ctx);
};

export const elementwiseKernels: Record<string, GpuKernelBuilder> = Object.fromEntries(
  [...Object.keys(F32_UNARY), ...Object.keys(F32_BINARY), 'where', 'cast', 'identity', 'stopGradient'].map(
    (op) => [op, single],
  ),
);
