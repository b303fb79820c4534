/**
 * WebGPU convolution and pooling (the primitives of src/ops/defs/conv.ts). Channel counts in
 * multiples of 4 run the blocked kernels below (CONV_Y4/DX4/DW4); everything else runs direct:
 * one invocation per element of the result, looping over what it sums — one module for the three
 * convolution ops, one for the five pooling ops. Every size is a uniform, so each module
 * compiles once whatever the shapes.
 *
 * - conv2d: y[n,oh,ow,co] sums x·w over the taps and the group's input channels.
 * - conv2dBackpropInput: dx[n,h,w,ci] sums dy·w over the taps whose output position is whole and
 *   in range ((h + pt - kh·dh) divisible by the stride) and the group's output channels.
 * - conv2dBackpropFilter: dw[kh,kw,ci,co] sums x·dy over every output position.
 * - pooling: the window's first largest value (a NaN beats everything, tested on the bits: WGSL
 *   may assume NaNs away), the gather at that argmax, the average over in-bounds positions; the
 *   two gradients are gathers too: each dx element visits the windows that contain it in (oh, ow)
 *   order, the order the wasm kernels scatter in.
 */
import type { GNode } from '../../graph/graph';
import { type ConvGeo, convGeoOf, convGeoWords, poolGeometry } from '../../ops/conv-geometry';
import { sizeOf } from '../../shape';
import { convBuilders, convMode, poolMode } from '../conv-modes';
import { ConvMode, PoolMode } from '../opcodes';
import { type GpuDispatch, type GpuKernelBuilder, grid } from './kernel';
import { fillWords, fits } from './matmul';

const HEAD = /* wgsl */ `
@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;
@group(0) @binding(3) var<uniform> u: U;

fn index(wid: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 { return (wid.y * nwg.x + wid.x) * 64u + li; }`;

export const CONV_WGSL = /* wgsl */ `// adjoint conv2d and its gradients (mode 0 y, 1 dx, 2 dw)
struct U {
  mode: u32, total: u32, N: u32, H: u32,
  W: u32, Cin: u32, OH: u32, OW: u32,
  Cout: u32, KH: u32, KW: u32, sh: i32,
  sw: i32, dh: i32, dw: i32, pt: i32,
  pl: i32, cinG: u32, coutG: u32, p0: u32,
}
${HEAD}

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let o = index(wid, nwg, li);
  if (o >= u.total) { return; }
  let H = i32(u.H);
  let W = i32(u.W);
  let OH = i32(u.OH);
  let OW = i32(u.OW);
  var acc = 0.0;
  if (u.mode == ${ConvMode.conv2d}u) {
    // y[n, oh, ow, co]: A = x, B = w
    let co = o % u.Cout;
    let p = o / u.Cout;
    let ow = i32(p % u.OW);
    let q = p / u.OW;
    let oh = i32(q % u.OH);
    let n = q / u.OH;
    let g = co / u.coutG;
    for (var kh = 0u; kh < u.KH; kh++) {
      let ih = oh * u.sh - u.pt + i32(kh) * u.dh;
      if (ih < 0 || ih >= H) { continue; }
      for (var kw = 0u; kw < u.KW; kw++) {
        let iw = ow * u.sw - u.pl + i32(kw) * u.dw;
        if (iw < 0 || iw >= W) { continue; }
        let xb = ((n * u.H + u32(ih)) * u.W + u32(iw)) * u.Cin + g * u.cinG;
        let wb = (kh * u.KW + kw) * u.cinG * u.Cout + co;
        for (var ci = 0u; ci < u.cinG; ci++) { acc += A[xb + ci] * B[wb + ci * u.Cout]; }
      }
    }
  } else if (u.mode == ${ConvMode.conv2dBackpropInput}u) {
    // dx[n, h, w, ci]: A = dy, B = w
    let ci = o % u.Cin;
    let p = o / u.Cin;
    let w = i32(p % u.W);
    let q = p / u.W;
    let h = i32(q % u.H);
    let n = q / u.H;
    let g = ci / u.cinG;
    let cl = ci - g * u.cinG;
    for (var kh = 0u; kh < u.KH; kh++) {
      let a = h + u.pt - i32(kh) * u.dh;
      if (a < 0 || a % u.sh != 0 || a / u.sh >= OH) { continue; }
      for (var kw = 0u; kw < u.KW; kw++) {
        let b = w + u.pl - i32(kw) * u.dw;
        if (b < 0 || b % u.sw != 0 || b / u.sw >= OW) { continue; }
        let yb = ((n * u.OH + u32(a / u.sh)) * u.OW + u32(b / u.sw)) * u.Cout + g * u.coutG;
        let wb = ((kh * u.KW + kw) * u.cinG + cl) * u.Cout + g * u.coutG;
        for (var co = 0u; co < u.coutG; co++) { acc += A[yb + co] * B[wb + co]; }
      }
    }
  } else {
    // dw[kh, kw, ci, co]: A = x, B = dy
    let co = o % u.Cout;
    let p = o / u.Cout;
    let ci = p % u.cinG;
    let t = p / u.cinG;
    let kw = i32(t % u.KW);
    let kh = i32(t / u.KW);
    let xc = (co / u.coutG) * u.cinG + ci;
    for (var n = 0u; n < u.N; n++) {
      for (var oh = 0; oh < OH; oh++) {
        let ih = oh * u.sh - u.pt + kh * u.dh;
        if (ih < 0 || ih >= H) { continue; }
        for (var ow = 0; ow < OW; ow++) {
          let iw = ow * u.sw - u.pl + kw * u.dw;
          if (iw < 0 || iw >= W) { continue; }
          acc += A[((n * u.H + u32(ih)) * u.W + u32(iw)) * u.Cin + xc] *
            B[((n * u.OH + u32(oh)) * u.OW + u32(ow)) * u.Cout + co];
        }
      }
    }
  }
  Y[o] = acc;
}
`;

/**
 * Blocked convolution kernels for channel counts in multiples of 4 (the common case), with
 * vec4 loads of the channel-contiguous operands and a 4×4 block of results per invocation, so
 * each load feeds four multiply-adds instead of one:
 * - y: 4 output pixels along ow × 4 output channels (x scalar, w and y vec4);
 * - dx: 4 pixels along w × 4 input channels, from vec4 dot products over the output channels
 *   of dy and w;
 * - dw: 4 input × 4 output channels of one tap, over a slice of the output positions; with
 *   several slices (few results, many positions) each writes its partial sums and a second
 *   dispatch adds them in slice order, so results do not depend on the GPU's scheduling.
 * The sums run over the same terms as the direct kernel, in another order.
 */
const BLOCK_HEAD = /* wgsl */ `
struct U {
  mode: u32, total: u32, N: u32, H: u32,
  W: u32, Cin: u32, OH: u32, OW: u32,
  Cout: u32, KH: u32, KW: u32, sh: i32,
  sw: i32, dh: i32, dw: i32, pt: i32,
  pl: i32, cinG: u32, coutG: u32, slices: u32,
}
fn index(wid: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 { return (wid.y * nwg.x + wid.x) * 64u + li; }`;

/** The entry point of a blocked module, up to the invocation index o (each module checks its own range). */
const BLOCK_MAIN = `@compute @workgroup_size(64, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let o = index(wid, nwg, li);`;

function blockBindings(a: 'f32' | 'vec4<f32>'): string {
  return `@group(0) @binding(0) var<storage, read> A: array<${a}>;
@group(0) @binding(1) var<storage, read> B: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> Y: array<vec4<f32>>;
@group(0) @binding(3) var<uniform> u: U;`;
}

export const CONV_Y4_WGSL = /* wgsl */ `// adjoint conv2d, 4 pixels x 4 output channels an invocation
${BLOCK_HEAD}
${blockBindings('f32')}

${BLOCK_MAIN}
  if (o >= u.total) { return; }
  let c4 = u.Cout / 4u;
  let owBlocks = (u.OW + 3u) / 4u;
  let co = (o % c4) * 4u;
  let p = o / c4;
  let ow0 = i32(p % owBlocks) * 4;
  let q = p / owBlocks;
  let oh = i32(q % u.OH);
  let n = q / u.OH;
  let g = co / u.coutG;
  var acc: array<vec4<f32>, 4>;
  for (var kh = 0u; kh < u.KH; kh++) {
    let ih = oh * u.sh - u.pt + i32(kh) * u.dh;
    if (ih < 0 || ih >= i32(u.H)) { continue; }
    for (var kw = 0u; kw < u.KW; kw++) {
      var xb: array<u32, 4>;
      var ok: array<bool, 4>;
      for (var j = 0; j < 4; j++) {
        let iw = (ow0 + j) * u.sw - u.pl + i32(kw) * u.dw;
        ok[j] = ow0 + j < i32(u.OW) && iw >= 0 && iw < i32(u.W);
        xb[j] = ((n * u.H + u32(ih)) * u.W + u32(clamp(iw, 0, i32(u.W) - 1))) * u.Cin + g * u.cinG;
      }
      let wb = (kh * u.KW + kw) * u.cinG * c4 + co / 4u;
      for (var ci = 0u; ci < u.cinG; ci++) {
        let wv = B[wb + ci * c4];
        for (var j = 0; j < 4; j++) { acc[j] += select(0.0, A[xb[j] + ci], ok[j]) * wv; }
      }
    }
  }
  for (var j = 0; j < 4; j++) {
    if (ow0 + j < i32(u.OW)) { Y[((n * u.OH + u32(oh)) * u.OW + u32(ow0 + j)) * c4 + co / 4u] = acc[j]; }
  }
}
`;

export const CONV_DX4_WGSL = /* wgsl */ `// adjoint conv2dBackpropInput, 4 pixels x 4 input channels an invocation
${BLOCK_HEAD}
${blockBindings('vec4<f32>')}

${BLOCK_MAIN}
  if (o >= u.total) { return; }
  let ci4 = u.Cin / 4u;
  let c4 = u.Cout / 4u;
  let wBlocks = (u.W + 3u) / 4u;
  let ci = (o % ci4) * 4u;
  let p = o / ci4;
  let w0 = i32(p % wBlocks) * 4;
  let q = p / wBlocks;
  let h = i32(q % u.H);
  let n = q / u.H;
  let g = ci / u.cinG;
  let cl = ci - g * u.cinG;
  var acc: array<vec4<f32>, 4>;
  for (var kh = 0u; kh < u.KH; kh++) {
    let a = h + u.pt - i32(kh) * u.dh;
    if (a < 0 || a % u.sh != 0 || a / u.sh >= i32(u.OH)) { continue; }
    for (var kw = 0u; kw < u.KW; kw++) {
      // the output position each pixel reads (if any): whole and in range
      var yb: array<u32, 4>;
      var ok: array<bool, 4>;
      for (var j = 0; j < 4; j++) {
        let b = w0 + j + u.pl - i32(kw) * u.dw;
        ok[j] = w0 + j < i32(u.W) && b >= 0 && b % u.sw == 0 && b / u.sw < i32(u.OW);
        let ow = u32(clamp(b / u.sw, 0, i32(u.OW) - 1));
        yb[j] = ((n * u.OH + u32(a / u.sh)) * u.OW + ow) * c4 + g * u.coutG / 4u;
      }
      let wb = ((kh * u.KW + kw) * u.cinG + cl) * c4 + g * u.coutG / 4u;
      for (var co = 0u; co < u.coutG / 4u; co++) {
        let w0v = B[wb + co];
        let w1v = B[wb + c4 + co];
        let w2v = B[wb + 2u * c4 + co];
        let w3v = B[wb + 3u * c4 + co];
        for (var j = 0; j < 4; j++) {
          let dy = select(vec4<f32>(0.0), A[yb[j] + co], ok[j]);
          acc[j] += vec4<f32>(dot(dy, w0v), dot(dy, w1v), dot(dy, w2v), dot(dy, w3v));
        }
      }
    }
  }
  for (var j = 0; j < 4; j++) {
    if (w0 + j < i32(u.W)) { Y[((n * u.H + u32(h)) * u.W + u32(w0 + j)) * ci4 + ci / 4u] = acc[j]; }
  }
}
`;

export const CONV_DW4_WGSL = /* wgsl */ `// adjoint conv2dBackpropFilter, 4 input x 4 output channels of a tap an invocation
${BLOCK_HEAD}
${blockBindings('vec4<f32>')}

${BLOCK_MAIN}
  if (o >= u.total * u.slices) { return; }
  let s = o / u.total;
  let e = o % u.total;
  let c4 = u.Cout / 4u;
  let co = (e % c4) * 4u;
  let p = e / c4;
  let ci = (p % (u.cinG / 4u)) * 4u;
  let t = p / (u.cinG / 4u);
  let kw = i32(t % u.KW);
  let kh = i32(t / u.KW);
  let xc = ((co / u.coutG) * u.cinG + ci) / 4u;
  let positions = u.N * u.OH * u.OW;
  var acc: array<vec4<f32>, 4>;
  // slice s: positions [start, end), the first positions % slices slices one longer
  let len = positions / u.slices;
  let rem = positions % u.slices;
  let start = s * len + min(s, rem);
  let end = start + len + select(0u, 1u, s < rem);
  for (var pos = start; pos < end; pos++) {
    let ow = i32(pos % u.OW);
    let oh = i32((pos / u.OW) % u.OH);
    let n = pos / (u.OW * u.OH);
    let ih = oh * u.sh - u.pt + kh * u.dh;
    let iw = ow * u.sw - u.pl + kw * u.dw;
    if (ih < 0 || ih >= i32(u.H) || iw < 0 || iw >= i32(u.W)) { continue; }
    let xv = A[((n * u.H + u32(ih)) * u.W + u32(iw)) * (u.Cin / 4u) + xc];
    let dy = B[pos * c4 + co / 4u];
    acc[0] += xv.x * dy;
    acc[1] += xv.y * dy;
    acc[2] += xv.z * dy;
    acc[3] += xv.w * dy;
  }
  // rows ci..ci+3 of the [KH, KW, cinG, Cout] result, each 4 output channels; slice s's copy
  let r = (u32(kh) * u.KW + u32(kw)) * u.cinG + ci;
  for (var j = 0u; j < 4u; j++) { Y[s * u.total * 4u + (r + j) * c4 + co / 4u] = acc[j]; }
}
`;

/** Y[i] = Σ_s P[s·count + i] in slice order (vec4 words). */
const SUM_SLICES_WGSL = /* wgsl */ `// adjoint sum of slices
struct U { count: u32, slices: u32, p0: u32, p1: u32 }
@group(0) @binding(0) var<storage, read> P: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> Y: array<vec4<f32>>;
@group(0) @binding(2) var<uniform> u: U;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let i = (wid.y * nwg.x + wid.x) * 64u + li;
  if (i >= u.count) { return; }
  var acc = P[i];
  for (var s = 1u; s < u.slices; s++) { acc += P[s * u.count + i]; }
  Y[i] = acc;
}
`;

export const POOL_WGSL = /* wgsl */ `// adjoint pooling (mode 0 max, 1 gather at argmax, 2 max gradient, 3 average, 4 average gradient)
struct U {
  mode: u32, total: u32, H: u32, W: u32,
  C: u32, OH: u32, OW: u32, KH: i32,
  KW: i32, sh: i32, sw: i32, pt: i32,
  pl: i32, p0: u32, p1: u32, p2: u32,
}
${HEAD}

fn isNan(v: f32) -> bool { return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u; }

/** Element index (in A) of the first largest value of window (n, oh, ow), channel c. */
fn argmax(n: u32, oh: i32, ow: i32, c: u32) -> u32 {
  let h0 = max(oh * u.sh - u.pt, 0);
  let h1 = min(oh * u.sh - u.pt + u.KH, i32(u.H));
  let w0 = max(ow * u.sw - u.pl, 0);
  let w1 = min(ow * u.sw - u.pl + u.KW, i32(u.W));
  var best = ((n * u.H + u32(h0)) * u.W + u32(w0)) * u.C + c;
  var bv = A[best];
  for (var h = h0; h < h1; h++) {
    for (var w = w0; w < w1; w++) {
      let i = ((n * u.H + u32(h)) * u.W + u32(w)) * u.C + c;
      let v = A[i];
      if (v > bv || (isNan(v) && !isNan(bv))) { bv = v; best = i; }
    }
  }
  return best;
}

/** In-bounds positions of window (oh, ow). */
fn count(oh: i32, ow: i32) -> f32 {
  let h = min(oh * u.sh - u.pt + u.KH, i32(u.H)) - max(oh * u.sh - u.pt, 0);
  let w = min(ow * u.sw - u.pl + u.KW, i32(u.W)) - max(ow * u.sw - u.pl, 0);
  return f32(h * w);
}

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let o = index(wid, nwg, li);
  if (o >= u.total) { return; }
  let c = o % u.C;
  let p = o / u.C;
  if (u.mode == ${PoolMode.maxPool2dGrad}u || u.mode == ${PoolMode.avgPool2dGrad}u) {
    // dx[n, h, w, c] from the windows holding (h, w): A = x, B = ct
    let w = i32(p % u.W);
    let q = p / u.W;
    let h = i32(q % u.H);
    let n = q / u.H;
    let oh0 = max((h + u.pt - u.KH + u.sh) / u.sh, 0);
    let oh1 = min((h + u.pt) / u.sh, i32(u.OH) - 1);
    let ow0 = max((w + u.pl - u.KW + u.sw) / u.sw, 0);
    let ow1 = min((w + u.pl) / u.sw, i32(u.OW) - 1);
    var acc = 0.0;
    for (var oh = oh0; oh <= oh1; oh++) {
      for (var ow = ow0; ow <= ow1; ow++) {
        let g = B[((n * u.OH + u32(oh)) * u.OW + u32(ow)) * u.C + c];
        if (u.mode == ${PoolMode.avgPool2dGrad}u) { acc += g / count(oh, ow); }
        else if (argmax(n, oh, ow, c) == o) { acc += g; }
      }
    }
    Y[o] = acc;
    return;
  }
  // y[n, oh, ow, c]: A = x, B = g (mode 1)
  let ow = i32(p % u.OW);
  let q = p / u.OW;
  let oh = i32(q % u.OH);
  let n = q / u.OH;
  if (u.mode == ${PoolMode.avgPool2d}u) {
    let h0 = max(oh * u.sh - u.pt, 0);
    let h1 = min(oh * u.sh - u.pt + u.KH, i32(u.H));
    let w0 = max(ow * u.sw - u.pl, 0);
    let w1 = min(ow * u.sw - u.pl + u.KW, i32(u.W));
    var s = 0.0;
    for (var h = h0; h < h1; h++) {
      for (var w = w0; w < w1; w++) { s += A[((n * u.H + u32(h)) * u.W + u32(w)) * u.C + c]; }
    }
    Y[o] = s / count(oh, ow);
    return;
  }
  let a = argmax(n, oh, ow, c);
  if (u.mode == ${PoolMode.maxPool2d}u) { Y[o] = A[a]; } else { Y[o] = B[a]; }
}
`;

/** One dispatch over the result, or zeros when an operand is empty (nothing to bind). */
function direct(
  n: GNode,
  ctx: Parameters<GpuKernelBuilder>[1],
  wgsl: string,
  uniforms: Uint32Array,
): GpuDispatch[] | null {
  const total = sizeOf(n.shape);
  if (total === 0) return [];
  const out = ctx.at(n);
  const ds: GpuDispatch[] = n.inputs.some((x) => sizeOf(x.shape) === 0)
    ? [fillWords(out, total, ctx.limits)]
    : [
        {
          wgsl,
          buffers: [ctx.at(n.inputs[0]), ctx.at(n.inputs[n.inputs.length - 1]), out],
          uniforms,
          workgroups: grid(total, 64, ctx.limits),
        },
      ];
  return fits(ds, ctx.limits) ? ds : null;
}

/** Invocations at which the filter gradient stops splitting its positions into slices. */
const DW_PARALLEL = 4096;

/** The blocked kernels, where every channel count they touch is a multiple of 4; else null. */
function blocked(n: GNode, ctx: Parameters<GpuKernelBuilder>[1], g: ConvGeo): GpuDispatch[] | null {
  const mode = convMode(n.op);
  const four = (...xs: number[]) => xs.every((x) => x % 4 === 0);
  const geo = convGeoWords(g);
  const [a, b] = [ctx.at(n.inputs[0]), ctx.at(n.inputs[1])];
  const out = ctx.at(n);
  const words = (total: number, slices = 1) =>
    new Uint32Array([mode, total, ...geo, g.cinG, g.coutG, slices]);
  if (mode === ConvMode.conv2d) {
    if (!four(g.coutG)) return null;
    const total = g.N * g.OH * Math.ceil(g.OW / 4) * (g.Cout / 4);
    return [
      {
        wgsl: CONV_Y4_WGSL,
        buffers: [a, b, out],
        uniforms: words(total),
        workgroups: grid(total, 64, ctx.limits),
      },
    ];
  }
  if (!four(g.cinG, g.coutG)) return null;
  if (mode === ConvMode.conv2dBackpropInput) {
    const total = g.N * g.H * Math.ceil(g.W / 4) * (g.Cin / 4);
    return [
      {
        wgsl: CONV_DX4_WGSL,
        buffers: [a, b, out],
        uniforms: words(total),
        workgroups: grid(total, 64, ctx.limits),
      },
    ];
  }
  const total = (g.KH * g.KW * g.cinG * g.Cout) / 16;
  const positions = g.N * g.OH * g.OW;
  const slices = Math.max(1, Math.min(Math.ceil(DW_PARALLEL / total), Math.floor(positions / 64)));
  const dw = (to: number): GpuDispatch => ({
    wgsl: CONV_DW4_WGSL,
    buffers: [a, b, to],
    uniforms: words(total, slices),
    workgroups: grid(total * slices, 64, ctx.limits),
  });
  if (slices === 1) return [dw(out)];
  const count = total * 4;
  const partial = ctx.temp(slices * count * 16);
  return [
    dw(partial),
    {
      wgsl: SUM_SLICES_WGSL,
      buffers: [partial, out],
      uniforms: new Uint32Array([count, slices, 0, 0]),
      workgroups: grid(count, 64, ctx.limits),
    },
  ];
}

const conv: GpuKernelBuilder = (n, ctx) => {
  const g = convGeoOf(n.op, n.inputs, n.shape, n.attrs);
  const total = sizeOf(n.shape);
  if (total > 0 && n.inputs.every((x) => sizeOf(x.shape) > 0)) {
    const ds = blocked(n, ctx, g);
    if (ds && fits(ds, ctx.limits)) return ds;
  }
  const u = new Uint32Array([convMode(n.op), total, ...convGeoWords(g), g.cinG, g.coutG, 0]);
  return direct(n, ctx, CONV_WGSL, u);
};

const pool: GpuKernelBuilder = (n, ctx) => {
  const mode = poolMode(n.op);
  const g = poolGeometry(n.op, mode === PoolMode.avgPool2dGrad ? n.shape : n.inputs[0].shape, n.attrs);
  const u = new Uint32Array([
    mode,
    sizeOf(n.shape),
    g.H,
    g.W,
    g.C,
    g.OH,
    g.OW,
    g.KH,
    g.KW,
    g.sh,
    g.sw,
    g.pt,
    g.pl,
    0,
    0,
    0,
  ]);
  return direct(n, ctx, POOL_WGSL, u);
};

export const convKernels: Record<string, GpuKernelBuilder> = convBuilders(conv, pool);
