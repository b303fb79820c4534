import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import terser from '@rollup/plugin-terser';
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

/**
 * The package entries, built together so that they share chunks: adjoint/tfjs (when its
 * sources exist) imports the same runtime instance as the root entry, never a copy of it.
 */
const input = { index: 'src/index.ts' };
if (existsSync('src/tfjs/index.ts')) input.tfjs = 'src/tfjs/index.ts';

/**
 * Everything the root entry loads statically is one chunk (chunk-runtime-*.js): dist/index.js
 * re-exports the public API from it (strict entry signatures, so no internal names leak into
 * `import *`), and the other entries (dist/tfjs.js) import the same instance. Modules reached only
 * through a dynamic import() stay in lazily loaded chunks: the WebGPU backend
 * (src/runtime/gpu-lazy.ts, when a GPU is found) and the worker pool with comlink
 * (src/backends/wasm/scheduler/pool.ts, when threads > 1).
 */
function runtimeChunk() {
  let eager = null;
  return (id, { getModuleInfo }) => {
    if (!eager) {
      eager = new Set();
      const entry = getModuleInfo(path.resolve('src/index.ts'));
      const todo = entry ? [entry.id] : [];
      while (todo.length) {
        const m = todo.pop();
        if (eager.has(m)) continue;
        eager.add(m);
        for (const d of getModuleInfo(m)?.importedIds ?? []) todo.push(d);
      }
    }
    return eager.has(id) ? 'runtime' : undefined;
  };
}

/**
 * Removes chunks of earlier builds (their names carry content hashes, so they pile up): once the
 * last of the builds below that carry it has written, any dist/chunk-* file none of them wrote.
 */
const written = new Set();
const pruneChunks = ({ last }) => ({
  name: 'prune-chunks',
  writeBundle(_, bundle) {
    for (const f of Object.keys(bundle)) written.add(f);
    if (!last) return;
    for (const f of readdirSync('dist'))
      if (/^chunk-.*\.js(\.map)?$/.test(f) && !written.has(f)) rmSync(`dist/${f}`, { force: true });
  },
});

/** terser compresses better than esbuild's minifier (about 5% gzipped here); @license comments kept. */
const minify = {
  module: true,
  ecma: 2022,
  compress: { passes: 2 },
  format: { comments: 'some' },
};

export default [
  {
    input,
    preserveEntrySignatures: 'strict',
    output: {
      dir: 'dist',
      format: 'es',
      sourcemap: true,
      entryFileNames: '[name].js',
      // Chunks sit beside the entries, not in a subfolder: wasm-url.ts and worker-url.ts resolve
      // against import.meta.url, so any chunk that might hold them must live in dist/ itself.
      chunkFileNames: 'chunk-[name]-[hash].js',
      manualChunks: runtimeChunk(),
    },
    external,
    plugins: [
      workerUrl(),
      comlinkPaths(),
      esbuild({ target: 'es2022' }),
      terser(minify),
      copyWasm(),
      typesEntry(),
      pruneChunks({ last: false }),
    ],
  },
  {
    // One script for browsers, Deno and Node, comlink bundled in; comlink's worker_threads adapter
    // is a chunk beside it that only Node's workers import.
    input: { 'kernel-worker': 'workers/kernel-worker.js' },
    output: {
      dir: 'dist',
      format: 'es',
      sourcemap: true,
      entryFileNames: '[name].js',
      chunkFileNames: 'chunk-[name]-[hash].js',
    },
    external: [/^node:/],
    plugins: [
      comlinkPaths(),
      // esbuild's minifier here: terser writes `await(import(...))`, which Node, seeing no import
      // or export in a .js file outside a "type": "module" package, runs as CommonJS and fails
      esbuild({ target: 'es2022', minify: true, legalComments: 'eof' }),
      pruneChunks({ last: true }),
    ],
  },
];
