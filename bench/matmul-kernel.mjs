// Micro-benchmark of the raw matmul kernel (single thread).
//   node bench/matmul-kernel.mjs [--relaxed] [sizes...]
// Uses the raw exports directly (no TS bindings) so it runs on plain Node after `npm run build:wasm`.
import { readFileSync } from 'node:fs';
import v8 from 'node:v8';

const args = process.argv.slice(2);
const relaxed = args.includes('--relaxed');
if (relaxed) v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
const sizes = args.filter((a) => /^\d+$/.test(a)).map(Number);
if (sizes.length === 0) sizes.push(256, 512, 1024);

const name = relaxed ? 'kernels-relaxed.wasm' : 'kernels.wasm';
const bytes = readFileSync(new URL(`../src/wasm/${name}`, import.meta.url));
const memory = new WebAssembly.Memory({ initial: 256, maximum: 65536 });
const { exports: k } = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } });

let top = (k.heapBase() + 63) & ~63;
function alloc(n) {
  const p = top;
  top = (top + n + 63) & ~63;
  if (top > memory.buffer.byteLength) memory.grow(Math.ceil((top - memory.buffer.byteLength) / 65536));
  return p;
}

console.log(
  `build ${name}; MR=${k.matmulParam(0)} NR=${k.matmulParam(1)} KC=${k.matmulParam(2)} MC=${k.matmulParam(3)} NC=${k.matmulParam(4)}`,
);
for (const n of sizes) {
  const a = alloc(n * n * 4);
  const b = alloc(n * n * 4);
  const c = alloc(n * n * 4);
  const s = alloc(k.matmulScratchBytes(n, n, n));
  const f = new Float32Array(memory.buffer);
  for (let i = 0; i < n * n; i++) {
    f[(a >> 2) + i] = Math.random() - 0.5;
    f[(b >> 2) + i] = Math.random() - 0.5;
  }
  for (const flags of [0, 1, 2]) {
    const flops = 2 * n * n * n;
    // warm up (V8 tiers wasm up) for ~0.5 s
    const t0 = performance.now();
    while (performance.now() - t0 < 500) k.matmul(a, b, c, n, n, n, flags, 0, 0, n, s);
    let best = Infinity;
    const reps = Math.max(3, Math.round(2e9 / flops));
    for (let r = 0; r < reps; r++) {
      const t = performance.now();
      k.matmul(a, b, c, n, n, n, flags, 0, 0, n, s);
      best = Math.min(best, performance.now() - t);
    }
    const label = ['NN', 'TN', 'NT'][flags];
    console.log(`${n}^3 ${label}: best ${best.toFixed(2)} ms  ${(flops / best / 1e6).toFixed(1)} GFLOP/s`);
  }
}
