/**
 * WebGPU convolution and pooling (the primitives of src/ops/defs/conv.ts), direct: one
 * invocation per element of the result, looping over what it sums. Two WGSL modules in all —
 * one for the three convolution ops, one for the five pooling ops — with the op (mode) and every
 * size in uniforms, so each compiles once whatever the shapes.
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
import { convGeoOf, convGeoWords, poolGeometry } from '../../ops/conv-geometry';
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

const conv: GpuKernelBuilder = (n, ctx) => {
  const g = convGeoOf(n.op, n.inputs, n.shape, n.attrs);
  const total = sizeOf(n.shape);
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
