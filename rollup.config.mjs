import { copyFileSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import esbuild from 'rollup-plugin-esbuild';

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
    writeFileSync('dist/index.d.ts', "export * from './types/index';\n");
  },
});

const external = ['comlink', /^node:/, 'web-worker'];

export default [
  {
    input: 'src/index.ts',
    output: { file: 'dist/index.js', format: 'es', sourcemap: true },
    external,
    plugins: [esbuild({ target: 'es2022' }), copyWasm(), typesEntry()],
  },
];
