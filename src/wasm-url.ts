/**
 * Location of the prebuilt kernel binaries. Kept in one file at the src/ root on purpose:
 * in the sources this resolves to src/wasm/<name>; once rollup bundles everything into
 * dist/index.js it resolves to dist/wasm/<name>.
 */
export function wasmUrl(name: string): URL {
  return new URL(`./wasm/${name}`, import.meta.url);
}
