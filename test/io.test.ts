/** io: pytree checkpoints in safetensors, bit-exact round trips, templates, malformed files. */
import { describe, expect, it } from 'vitest';
import { io, nn, optim, type Tensor, tensor } from '../src/index';

const bits = (t: Tensor) => {
  const d = t.dataSync();
  return Array.from(new Uint32Array(d.buffer, d.byteOffset, d.length));
};

/** A model after two Adam steps: params plus optimizer state, with nested objects and arrays. */
function trained() {
  let params = nn.mlp.init([5, 4, 3], { seed: 11 });
  const opt = optim.adam({ lr: 0.1 });
  let state = opt.init(params);
  for (let k = 0; k < 2; k++) {
    const grads = params.map((l, i) => ({ w: l.w.mul(0.3 + i).sin(), b: l.b.add(k + 1) }));
    [params, state] = opt.update(grads, state, params);
  }
  return { params, state };
}

describe('io.saveSafetensors / io.loadSafetensors', () => {
  it('round-trips params and optimizer state bit for bit, structure and dtypes included', () => {
    const tree = trained();
    const bytes = io.saveSafetensors(tree);
    expect(bytes).toBeInstanceOf(Uint8Array);
    const back = io.loadSafetensors(bytes) as unknown as typeof tree;
    expect(Array.isArray(back.params)).toBe(true);
    expect(back.params).toHaveLength(2);
    expect(back.state.step.dtype).toBe('int32');
    expect(back.state.step.shape).toEqual([]);
    expect(back.state.step.dataSync()[0]).toBe(2);
    back.params.forEach((l, i) => {
      expect(l.w.shape).toEqual(tree.params[i].w.shape);
      expect(bits(l.w)).toEqual(bits(tree.params[i].w));
      expect(bits(l.b)).toEqual(bits(tree.params[i].b));
    });
    const mu = back.state.mu as typeof tree.params;
    const nu = back.state.nu as typeof tree.params;
    expect(bits(mu[1].w)).toEqual(bits((tree.state.mu as typeof tree.params)[1].w));
    expect(bits(nu[0].b)).toEqual(bits((tree.state.nu as typeof tree.params)[0].b));
    // and saving what was loaded reproduces the file exactly
    expect(io.saveSafetensors(back)).toEqual(bytes);
  });

  it('keeps special float values bit for bit', () => {
    const special = new Float32Array([-0, 1e-45, -3.4028234663852886e38, Number.POSITIVE_INFINITY, 0.1]);
    const t = tensor(special);
    const back = io.loadSafetensors(io.saveSafetensors({ t })) as { t: Tensor };
    expect(bits(back.t)).toEqual(Array.from(new Uint32Array(special.buffer)));
  });

  it('joins nested keys with dots in the file', () => {
    const bytes = io.saveSafetensors({ model: [{ w: tensor([1]) }], step: tensor(3, { dtype: 'int32' }) });
    const { tensors } = io.decodeSafetensors(bytes);
    expect(Object.keys(tensors).sort()).toEqual(['model.0.w', 'step']);
    expect(tensors.step.dtype).toBe('int32');
  });

  it('realizes lazy tensors; the async variant writes the same bytes', async () => {
    const lazy = { a: tensor([1, 2]).mul(3), b: tensor([[1, 2]]).matmul(tensor([[1], [1]])) };
    expect(lazy.a.isRealized).toBe(false);
    const bytes = io.saveSafetensors(lazy);
    const back = io.loadSafetensors(bytes) as { a: Tensor; b: Tensor };
    expect(Array.from(back.a.dataSync())).toEqual([3, 6]);
    expect(Array.from(back.b.dataSync())).toEqual([3]);
    const lazy2 = { a: tensor([1, 2]).mul(3), b: tensor([[1, 2]]).matmul(tensor([[1], [1]])) };
    expect(await io.saveSafetensorsAsync(lazy2)).toEqual(bytes);
  });

  it('stores and reads metadata; reads Node Buffers and ArrayBuffers', () => {
    const bytes = io.saveSafetensors({ w: tensor([1.5, 2.5]) }, { metadata: { format: 'pt', note: 'hi' } });
    expect(io.safetensorsMetadata(bytes)).toEqual({ format: 'pt', note: 'hi' });
    // A Buffer from a shared pool (as fs.readFileSync returns for small files) and a bare ArrayBuffer.
    const pooled = Buffer.concat([Buffer.from('padding!'), Buffer.from(bytes)]).subarray(8);
    expect(Array.from((io.loadSafetensors(pooled) as { w: Tensor }).w.dataSync())).toEqual([1.5, 2.5]);
    const ab = bytes.slice().buffer;
    expect(Array.from((io.loadSafetensors(ab) as { w: Tensor }).w.dataSync())).toEqual([1.5, 2.5]);
  });

  it('rejects trees it cannot store', () => {
    expect(() => io.saveSafetensors({ a: 1 })).toThrow(io.CheckpointError);
    expect(() => io.saveSafetensors({ 'a.b': tensor([1]) })).toThrow(io.CheckpointError);
    expect(() => io.saveSafetensors(tensor([1]))).toThrow(io.CheckpointError);
    const t = tensor([1]);
    t.dispose();
    expect(() => io.saveSafetensors({ t })).toThrow(io.CheckpointError);
  });
});

describe('loading into a template (like)', () => {
  it('returns the template structure and key order', () => {
    const tree = trained();
    const bytes = io.saveSafetensors(tree);
    const back = io.loadSafetensors(bytes, { like: tree });
    expect(Object.keys(back.params[0])).toEqual(['w', 'b']); // the file stores b before w
    expect(Object.keys(back)).toEqual(['params', 'state']);
    expect(bits(back.params[0].w)).toEqual(bits(tree.params[0].w));
    // plain loading gives the file's (sorted) order instead
    const plain = io.loadSafetensors(bytes) as { params: Record<string, Tensor>[] };
    expect(Object.keys(plain.params[0])).toEqual(['b', 'w']);
  });

  it('rejects a missing tensor, a shape or dtype mismatch and (strict) extra tensors', () => {
    const tree = trained();
    const bytes = io.saveSafetensors(tree);
    const wider = { ...tree, params: nn.mlp.init([5, 6, 3]) };
    expect(() => io.loadSafetensors(bytes, { like: wider })).toThrow(/params\.0\.w.*\[5, 4\].*\[5, 6\]/);
    expect(() => io.loadSafetensors(bytes, { like: { ...tree, extra: tensor([1]) } })).toThrow(
      /no tensor 'extra'/,
    );
    const intStep = { ...tree, state: { ...tree.state, step: tensor(0) } };
    expect(() => io.loadSafetensors(bytes, { like: intStep })).toThrow(io.CheckpointError);
    expect(() => io.loadSafetensors(bytes, { like: { params: tree.params } })).toThrow(/strict: false/);
    const onlyParams = io.loadSafetensors(bytes, { like: { params: tree.params }, strict: false });
    expect(bits(onlyParams.params[1].b)).toEqual(bits(tree.params[1].b));
  });
});

describe('malformed checkpoints', () => {
  const good = () => io.saveSafetensors({ a: tensor([1, 2, 3]), b: { c: tensor([[4]]) } });

  /** Tensor ids are sequential: if a call creates no tensor, the next id follows the previous one. */
  function createsNoTensors(f: () => void): void {
    const before = tensor(0).id;
    expect(f).toThrow(io.CheckpointError);
    expect(tensor(0).id).toBe(before + 1);
  }

  it('rejects truncated, corrupt and inconsistent files with CheckpointError and loads nothing', () => {
    const bytes = good();
    createsNoTensors(() => io.loadSafetensors(bytes.subarray(0, 5)));
    createsNoTensors(() => io.loadSafetensors(bytes.subarray(0, bytes.length - 1)));
    const corrupt = bytes.slice();
    corrupt[8] = 0x5b; // '[' where the JSON header opens with '{'
    createsNoTensors(() => io.loadSafetensors(corrupt));
    const huge = bytes.slice();
    new DataView(huge.buffer).setUint32(0, 2 ** 31, true);
    createsNoTensors(() => io.loadSafetensors(huge));
    // Valid first entry, broken second: still nothing is created.
    const text = new TextDecoder().decode(
      bytes.subarray(8, 8 + Number(new DataView(bytes.buffer).getUint32(0, true))),
    );
    const broken = text.replace('"b.c":{"dtype":"F32"', '"b.c":{"dtype":"F99"');
    expect(broken).not.toBe(text);
    const file = new Uint8Array(bytes.length);
    file.set(bytes);
    file.set(new TextEncoder().encode(broken), 8);
    createsNoTensors(() => io.loadSafetensors(file));
    // A template mismatch on the last key also happens before any tensor is made.
    const like = { a: tensor([0, 0, 0]), b: { c: tensor([[0, 0]]) } };
    createsNoTensors(() => io.loadSafetensors(bytes, { like }));
    expect(() => io.loadSafetensors('not bytes' as never)).toThrow(io.CheckpointError);
  });
});
