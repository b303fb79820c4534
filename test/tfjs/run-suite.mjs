#!/usr/bin/env node
/**
 * Runs TensorFlow.js's own test suite (tfjs-core's dist/tests.js) against the adjoint backend
 * under jasmine. tfjs-core ships its tests as ES modules with extensionless imports, which Node
 * cannot load directly, so they are bundled first (esbuild) together with suite-entry.mjs;
 * adjoint itself is loaded from dist/ (build it first). Prints
 * `tfjs suite: N specs run, F failed, S skipped` and exits 1 on any failure.
 * Usage: node test/tfjs/run-suite.mjs [--list-failures] [--filter substring]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import Jasmine from 'jasmine';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const args = process.argv.slice(2);
const filterArg = args.includes('--filter') ? args[args.indexOf('--filter') + 1] : null;

const dir = mkdtempSync(path.join(tmpdir(), 'adjoint-tfjs-suite-'));
const bundle = path.join(dir, 'suite.mjs');
// jasmine_util requires jasmine-core's internal jasmine.js only to set a default timeout on a
// second jasmine instance; the jasmine running the suite is the one below.
const jasmineCoreStub = {
  name: 'jasmine-core-stub',
  setup(b) {
    b.onResolve({ filter: /^jasmine-core\/lib\// }, () => ({ path: 'stub', namespace: 'jasmine-core-stub' }));
    b.onLoad({ filter: /.*/, namespace: 'jasmine-core-stub' }, () => ({
      contents: 'module.exports = { core: () => ({}) };',
      loader: 'js',
    }));
    b.onResolve({ filter: /^adjoint-dist\// }, (a) => ({
      path: pathToFileURL(path.join(root, 'dist', a.path.slice('adjoint-dist/'.length))).href,
      external: true,
    }));
  },
};
await build({
  entryPoints: [path.join(here, 'suite-tests.mjs')],
  bundle: true,
  platform: 'node',
  format: 'esm',
  outfile: bundle,
  // tfjs-core marks its test files side-effect free; they register specs when imported.
  ignoreAnnotations: true,
  plugins: [jasmineCoreStub],
  logLevel: 'error',
  banner: {
    js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
  },
});

const runner = new Jasmine({ projectBaseDir: root });
runner.exitOnCompletion = false;
runner.env.clearReporters();
let run = 0;
let skipped = 0;
const failed = [];
const t0 = Date.now();
runner.env.addReporter({
  specDone(r) {
    if (r.status === 'excluded') return;
    if (r.status === 'pending') {
      skipped++;
      return;
    }
    if (filterArg && !r.fullName.includes(filterArg)) return;
    run++;
    if (r.status === 'failed')
      failed.push(
        `${r.fullName}\n    ${r.failedExpectations.map((e) => e.message.split('\n')[0]).join('\n    ')}`,
      );
  },
});
// tfjs-core defines some suites twice under one name (jasmine >= 5 forbids that by default).
runner.env.configure({ random: false, forbidDuplicateNames: false, verboseDeprecations: false });
if (filterArg) {
  const base = runner.env.configuration().specFilter;
  runner.env.configure({ specFilter: (s) => base(s) && s.getFullName().includes(filterArg) });
}
runner.addMatchingSpecFiles([bundle]);
await runner.execute();
rmSync(dir, { recursive: true, force: true });
const secs = ((Date.now() - t0) / 1000).toFixed(1);
if (failed.length)
  console.log(`failures:\n${failed.slice(0, args.includes('--list-failures') ? Infinity : 40).join('\n')}`);
console.log(`tfjs suite: ${run} specs run, ${failed.length} failed, ${skipped} skipped, ${secs} s`);
process.exitCode = failed.length ? 1 : 0;
