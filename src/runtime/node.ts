/**
 * The only module under src/ that touches Node built-ins, and only through dynamic
 * imports / process.getBuiltinModule, so browser and edge bundles never load them.
 */

interface NodeFsSync {
  readFileSync(path: URL): Uint8Array;
}

interface NodeProcessLike {
  versions?: { node?: string };
  getBuiltinModule?: (id: string) => unknown;
}

function nodeProcess(): NodeProcessLike | undefined {
  const p = (globalThis as { process?: NodeProcessLike }).process;
  return p?.versions?.node ? p : undefined;
}

/** True when running under Node (or a runtime that exposes Node's process object). */
export function isNode(): boolean {
  return nodeProcess() !== undefined;
}

/** Reads a file: URL into bytes (Node / Deno-with-node-compat). */
export async function readFileBytes(url: URL): Promise<Uint8Array> {
  const fs = await import('node:fs/promises');
  const buf = await fs.readFile(url);
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

/**
 * Synchronous variant, available where `process.getBuiltinModule` exists (Node >= 20.16).
 * Returns undefined when synchronous file access is impossible.
 */
export function readFileBytesSync(url: URL): Uint8Array | undefined {
  const fs = nodeProcess()?.getBuiltinModule?.('node:fs') as NodeFsSync | undefined;
  if (!fs) return undefined;
  const buf = fs.readFileSync(url);
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

interface NodeV8 {
  setFlagsFromString(flags: string): void;
}

/**
 * Node 20 gates relaxed SIMD behind a V8 flag; setting it before the kernels are compiled
 * lets feature detection pick the faster build. Other runtimes have it on already.
 */
export function enableRelaxedSimd(): void {
  const v8 = nodeProcess()?.getBuiltinModule?.('node:v8') as NodeV8 | undefined;
  try {
    v8?.setFlagsFromString('--experimental-wasm-relaxed-simd');
  } catch {
    // Not fatal: the plain SIMD build is used.
  }
}
