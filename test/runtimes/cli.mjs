/**
 * Runs the GPU parity check (gpu-parity.mjs) on a built adjoint and prints its result as one line,
 * `GPU-PARITY {json}`, on stdout; exit code 0 when there are no failures.
 *
 *   deno run --allow-read test/runtimes/cli.mjs [path/to/dist/index.js]   (navigator.gpu)
 *   node test/runtimes/cli.mjs [path/to/dist/index.js]                     (Dawn from npm 'webgpu')
 *
 * The path defaults to ../../dist/index.js from this file.
 */
import { gpuParity } from './gpu-parity.mjs';

const g = globalThis;
const args = g.Deno ? g.Deno.args : g.process.argv.slice(2);
const target = args[0]
  ? new URL(args[0], `file://${g.Deno ? g.Deno.cwd() : g.process.cwd()}/`)
  : new URL('../../dist/index.js', import.meta.url);
const A = await import(target.href);

let gpu;
if (!g.Deno && !g.navigator?.gpu) {
  // Node: Dawn from npm 'webgpu' (a dev dependency); keep the GPU object referenced
  const { create, globals } = await import('webgpu');
  Object.assign(g, globals);
  gpu = create([]);
}
const result = await gpuParity(A, { gpu });
console.log(`GPU-PARITY ${JSON.stringify(result)}`);
const code = result.failures.length === 0 ? 0 : 1;
if (g.Deno) g.Deno.exit(code);
else g.process.exit(code);
