/**
 * Runs the cross-runtime checks (checks.mjs) on a built adjoint and prints the result as one
 * line, `RUNTIME-CHECKS {json}`, on stdout; exit code 0 when there are no failures.
 *
 *   deno run --allow-read test/runtimes/checks-cli.mjs [path/to/dist/index.js]
 *   bun test/runtimes/checks-cli.mjs [path/to/dist/index.js]
 *   node test/runtimes/checks-cli.mjs [path/to/dist/index.js]
 *
 * The path defaults to ../../dist/index.js from this file.
 */
import { runtimeChecks } from './checks.mjs';

const g = globalThis;
const args = g.Deno ? g.Deno.args : g.process.argv.slice(2);
const target = args[0]
  ? new URL(args[0], `file://${g.Deno ? g.Deno.cwd() : g.process.cwd()}/`)
  : new URL('../../dist/index.js', import.meta.url);
// Which worker API the pool uses: under Bun it must be worker_threads, not the global Worker.
let webWorkers = 0;
if (typeof g.Worker === 'function') {
  const W = g.Worker;
  g.Worker = class extends W {
    constructor(...a) {
      super(...a);
      webWorkers++;
    }
  };
}
const A = await import(target.href);
const result = await runtimeChecks(A, { threads: [1, 2, 3] });
result.webWorkers = webWorkers;
console.log(`RUNTIME-CHECKS ${JSON.stringify(result)}`);
const code = result.failures.length === 0 ? 0 : 1;
if (g.Deno) g.Deno.exit(code);
else g.process.exit(code);
