// The GPU every WebGPU row uses: npm 'webgpu' (Dawn), one per process, shared by adjoint and
// TF.js. Dawn needs a writable XDG_RUNTIME_DIR; the returned GPU must stay referenced.
import os from 'node:os';

let gpu = null;

export async function dawnGpu() {
  if (gpu) return gpu;
  process.env.XDG_RUNTIME_DIR ||= os.tmpdir();
  const { create, globals } = await import('webgpu');
  Object.assign(globalThis, globals);
  gpu = create([]);
  return gpu;
}

/** The adapter's description, for the report (e.g. "llvmpipe: Mesa 25.0.7 …"). */
export async function adapterName() {
  const a = await (await dawnGpu()).requestAdapter();
  const i = a?.info ?? {};
  return a
    ? [i.description || i.device || i.vendor || '?', i.isFallbackAdapter ? '(fallback adapter)' : '']
        .filter(Boolean)
        .join(' ')
    : 'no adapter';
}
