import { copyFileSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import esbuild from 'rollup-plugin-esbuild';

const require = createRequire(import.meta.url);

/** Ships the prebuilt kernels (src/wasm/*.wasm, from `npm run build:wasm`) beside the bundle. */
const copyWasm = () => ({
  name: 'copy-wasm',
  writeBundle() {
    if (!existsSync('src/wasm')) return;
    mkdirSync('dist/wasm', { recursive: true });
    for (const f of readdirSync('src/wasm'))
      if (f.endsWith('.wasm')) copyFileSync(`src/wasm/${f}`, `dist/wasm/${f}`);
  },
});

/** Declarations come from `tsc -p tsconfig.build.json` (TypeScript 7 has no API for a dts bundler). */
const typesEntry = () => ({
  name: 'types-entry',
  writeBundle() {
    writeFileSync('dist/index.d.ts', "export * from './types/src/index';\n");
    if (existsSync('src/tfjs/index.ts'))
      writeFileSync('dist/tfjs.d.ts', "export * from './types/src/tfjs/index';\n");
  },
});

/**
 * In the sources the worker script is workers/kernel-worker.js; in the package it is
 * dist/kernel-worker.js, beside dist/index.js: point src/worker-url.ts there.
 */
const workerUrl = () => ({
  name: 'worker-url',
  transform(code, id) {
    if (!id.endsWith(`${path.sep}src${path.sep}worker-url.ts`)) return null;
    const from = "'../workers/kernel-worker.js'";
    if (!code.includes(from)) this.error(`worker-url: ${from} not found in ${id}`);
    return { code: code.replace(from, "'./kernel-worker.js'"), map: null };
  },
});

/** Bundles comlink (no node-resolve plugin here; comlink has no exports map). */
const comlinkPaths = () => ({
  name: 'comlink-paths',
  resolveId(source) {
    if (source === 'comlink')
      return path.join(path.dirname(require.resolve('comlink/package.json')), 'dist/esm/comlink.mjs');
    if (source.startsWith('comlink/'))
      return path.join(
        path.dirname(require.resolve('comlink/package.json')),
        source.slice('comlink/'.length),
      );
    return null;
  },
});

// comlink (a few kB) is bundled too, so dist/ loads in a browser without a bundler or import map.
const external = [/^node:/, 'web-worker'];

export default [
  {
    input: 'src/index.ts',
    output: { file: 'dist/index.js', format: 'es', sourcemap: true },
    external,
    plugins: [workerUrl(), comlinkPaths(), esbuild({ target: 'es2022' }), copyWasm(), typesEntry()],
  },
  {
    // One self-contained script for browsers, Deno and Node: comlink is bundled in.
    input: 'workers/kernel-worker.js',
    output: { file: 'dist/kernel-worker.js', format: 'es', sourcemap: true },
    external: [/^node:/],
    plugins: [comlinkPaths()],
  },
];
