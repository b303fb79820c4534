/**
 * Placement with a GPU in use (see placement.ts): 'webgpu' mode sends every node the GPU can run
 * there; 'auto' compares, node by node in topological order, the estimated time on each device
 * plus the transfers the choice implies (a cost model: work and bytes over throughput, the GPU's
 * dispatch overhead and throughput measured once per adapter). Loaded with the GPU backend
 * (gpu-lazy.ts), so pages without a GPU do not download it.
 */
import type { Backend } from '../backends/backend';
import { GNode, Graph } from '../graph/graph';
import { convGeoOf } from '../ops/conv-geometry';
import { sizeOf } from '../shape';
import type { Device } from '../tensor';
import { devices, type GpuProfile } from './devices';
import { isLeaf, type Placed, type PlaceOptions, placementPolicy, setMixedPlacement } from './placement';

/** Rough work of a node, in element operations (flops for matmul). */
function workOf(n: GNode): number {
  const out = sizeOf(n.shape);
  switch (n.op) {
    case 'matmul': {
      const a = n.inputs[0].shape;
      const k = n.attrs.transA ? a[a.length - 2] : a[a.length - 1];
      return 2 * out * k;
    }
    case 'conv2d':
    case 'conv2dBackpropInput':
    case 'conv2dBackpropFilter': {
      // multiply-adds of the forward convolution: output elements × window × input channels per group
      const g = convGeoOf(n.op, n.inputs, n.shape, n.attrs);
      return 2 * g.N * g.OH * g.OW * g.KH * g.KW * g.cinG * g.Cout;
    }
    case 'sum':
    case 'max':
    case 'min':
    case 'argmax':
      return sizeOf(n.inputs[0].shape);
    case 'softmax':
    case 'logSoftmax':
    case 'softmaxCrossEntropy':
    case 'softmaxCrossEntropyGrad':
    case 'softmaxGrad':
    case 'layerNorm':
    case 'layerNormGrad':
      return 5 * sizeOf(n.inputs[0].shape);
    default:
      return out;
  }
}

/** Ops whose time is their flops (matmul and the convolutions), not their bytes. */
const flopBound = (n: GNode) => n.op === 'matmul' || n.op.startsWith('conv2d');

/** Bytes a node reads and writes. */
function bytesOf(n: GNode): number {
  let b = sizeOf(n.shape);
  for (const x of n.inputs) b += sizeOf(x.shape);
  return 4 * b;
}

/** Estimated wasm time, ns: ~40 GFLOP/s a thread on matmul, ~4 GB/s a thread elsewhere. */
function wasmNs(n: GNode, threads: number): number {
  const t = flopBound(n) ? workOf(n) / 40 : bytesOf(n) / 4 + workOf(n) * 0.3;
  return t / Math.max(1, threads) + 200;
}

function gpuNs(n: GNode, p: GpuProfile): number {
  // the WGSL convolutions (4x4 register blocks, no workgroup tiles) ran at about 0.4 of the
  // register matmul's rate on lavapipe: count them at half of matmul's rate
  const compute = flopBound(n)
    ? (workOf(n) * (n.op === 'matmul' ? 1 : 2)) / p.flopsPerNs
    : bytesOf(n) / p.bytesPerNs;
  return p.dispatchNs + compute;
}

function transferNs(n: GNode, to: Device, p: GpuProfile): number {
  const bytes = 4 * sizeOf(n.shape);
  return bytes / p.transferBytesPerNs + (to === 'webgpu' ? 0 : p.readbackNs);
}

function placeMixed(g: Graph, opts: PlaceOptions): Placed {
  const ds = devices();
  const primary = ds.primary!;
  const gpu = ds.gpu!;
  const chosen = new Map<GNode, Device>();
  const outputs = new Set(g.outputs);
  // Without readbacks, whatever a node the GPU cannot run consumes is computed off the GPU too.
  const offGpu = new Set<GNode>();
  if (opts.noReadback)
    for (let i = g.nodes.length - 1; i >= 0; i--) {
      const n = g.nodes[i];
      if (!isLeaf(n) && (offGpu.has(n) || !(gpu.supports?.(n) ?? true)))
        for (const x of n.inputs) offGpu.add(x);
    }
  for (const n of g.nodes) {
    if (isLeaf(n) || n.op === 'fill') continue;
    if (offGpu.has(n)) {
      chosen.set(n, primary.device);
      continue;
    }
    const pinned = opts.noReadback && n.inputs.some((x) => chosen.get(x) === gpu.device);
    const supported = gpu.supports?.(n) ?? true;
    chosen.set(n, pinned && supported ? gpu.device : choose(n, primary, gpu, chosen, outputs.has(n)));
  }
  return insertTransfers(g, chosen, primary.device);
}

function choose(
  n: GNode,
  primary: Backend,
  gpu: Backend,
  chosen: Map<GNode, Device>,
  isOutput: boolean,
): Device {
  const ds = devices();
  if (!(gpu.supports?.(n) ?? true)) return primary.device;
  if (ds.gpuMode === 'webgpu') return gpu.device;
  const forced = placementPolicy.gpuMinWork;
  if (forced !== null) return workOf(n) >= forced ? gpu.device : primary.device;
  const p = ds.gpuProfile;
  if (!p || p.fallback) return primary.device;
  const cost = (d: Device) => {
    let t = d === gpu.device ? gpuNs(n, p) : wasmNs(n, ds.threads);
    for (const x of n.inputs) {
      const from = chosen.get(x);
      if (from !== undefined && from !== d) t += transferNs(x, d, p);
    }
    if (isOutput && d === gpu.device) t += transferNs(n, primary.device, p);
    return t;
  };
  return cost(gpu.device) < cost(primary.device) ? gpu.device : primary.device;
}

/** Rebuilds the graph with fills copied per consuming device and a transfer on every crossing edge. */
function insertTransfers(g: Graph, chosen: Map<GNode, Device>, primary: Device): Placed {
  const nodes: GNode[] = [];
  const device: (Device | null)[] = [];
  const map = new Map<GNode, GNode>();
  const onDevice = new Map<GNode, Map<Device, GNode>>(); // old node -> its value on each device
  const add = (n: GNode, d: Device | null) => {
    nodes.push(n);
    device.push(d);
    return n;
  };
  const valueOn = (x: GNode, d: Device): GNode => {
    if (isLeaf(x)) return map.get(x)!;
    let per = onDevice.get(x);
    if (!per) onDevice.set(x, (per = new Map()));
    let v = per.get(d);
    if (v) return v;
    if (x.op === 'fill') v = add(new GNode('fill', [], x.attrs, x.shape, x.dtype), d);
    else v = add(new GNode('transfer', [map.get(x)!], { to: d }, x.shape, x.dtype), d);
    per.set(d, v);
    return v;
  };
  for (const n of g.nodes) {
    if (isLeaf(n)) {
      map.set(n, add(n, null));
      continue;
    }
    if (n.op === 'fill') continue; // made where it is consumed
    const d = chosen.get(n)!;
    const inputs = n.inputs.map((x) => valueOn(x, d));
    const same = inputs.every((x, k) => x === n.inputs[k]);
    const m = add(same ? n : new GNode(n.op, inputs, n.attrs, n.shape, n.dtype, n.source), d);
    map.set(n, m);
    onDevice.set(n, new Map([[d, m]]));
  }
  // Outputs are returned where they were computed; an output fill is made on the primary device.
  const outs = g.outputs.map((o) => (o.op === 'fill' ? valueOn(o, primary) : map.get(o)!));
  return { graph: new Graph(nodes, outs), device };
}

setMixedPlacement(placeMixed);
