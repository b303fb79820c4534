import { ValueError } from '../errors';
import { activeBackend } from './realize';

export interface InitOptions {
  backend?: 'auto' | 'wasm' | 'webgpu' | 'reference';
  threads?: number;
  wasmModule?: WebAssembly.Module;
}

/** Chooses and loads the backend. Safe to call more than once; the last call wins. */
export async function init(opts: InitOptions = {}): Promise<void> {
  const backend = opts.backend ?? 'auto';
  if (!['auto', 'wasm', 'webgpu', 'reference'].includes(backend))
    throw new ValueError(
      `init: unknown backend '${String(backend)}' (expected auto, wasm, webgpu or reference)`,
    );
  if (opts.threads !== undefined && (!Number.isInteger(opts.threads) || opts.threads < 1))
    throw new ValueError(`init: threads must be a positive integer, got ${opts.threads}`);
}

export function memoryStats(): {
  backend: string;
  wasmBytes: number;
  liveBuffers: number;
  liveBytes: number;
} {
  const b = activeBackend();
  const s = b.stats?.() ?? {};
  return {
    backend: b.name,
    wasmBytes: s.wasmBytes ?? 0,
    liveBuffers: s.liveBuffers ?? 0,
    liveBytes: s.liveBytes ?? 0,
  };
}
