import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  CheckpointError,
  decodeSafetensors,
  encodeSafetensors,
  flattenTree,
  type RawTensor,
  SAFETENSORS_MAX_HEADER_BYTES,
  unflattenTree,
} from '../src/io/safetensors';
import { expectClose } from './helpers';

// ---------------------------------------------------------------------------------------------------------------
// helpers: an independent writer that builds files byte by byte

function le32(values: number[]): number[] {
  const out: number[] = [];
  for (const v of values) out.push(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff);
  return out;
}
function le16(values: number[]): number[] {
  const out: number[] = [];
  for (const v of values) out.push(v & 0xff, (v >>> 8) & 0xff);
  return out;
}
function f32Bytes(values: number[]): number[] {
  return le32(Array.from(new Uint32Array(new Float32Array(values).buffer)));
}

/** 8-byte u64 length + header text (padded with spaces to 8 bytes unless `pad` is false) + data. */
function file(header: string, data: number[] = [], pad = true): Uint8Array {
  let text = new TextEncoder().encode(header);
  if (pad && text.length % 8 !== 0) {
    const padded = new Uint8Array(Math.ceil(text.length / 8) * 8).fill(0x20);
    padded.set(text);
    text = padded;
  }
  const out = new Uint8Array(8 + text.length + data.length);
  out.set(le32([text.length, 0]), 0);
  out.set(text, 8);
  out.set(data, 8 + text.length);
  return out;
}

function withLength(lo: number, hi: number, rest: number[] = []): Uint8Array {
  return new Uint8Array([...le32([lo, hi]), ...rest]);
}

function bitsOf(a: Float32Array): number[] {
  return Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));
}

function f32(shape: number[], values: number[]): RawTensor {
  return { dtype: 'float32', shape, data: new Float32Array(values) };
}
function i32(shape: number[], values: number[]): RawTensor {
  return { dtype: 'int32', shape, data: new Int32Array(values) };
}

function rejects(bytes: Uint8Array, message: RegExp): void {
  let caught: unknown;
  try {
    decodeSafetensors(bytes);
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(CheckpointError);
  expect((caught as Error).name).toBe('CheckpointError');
  expect((caught as Error).message).toMatch(message);
}

function throwsCheckpoint(fn: () => unknown, message: RegExp): void {
  expect(fn).toThrow(CheckpointError);
  expect(fn).toThrow(message);
}

const entry = (dtype: string, shape: number[], begin: number, end: number) =>
  JSON.stringify({ dtype, shape, data_offsets: [begin, end] });

// ---------------------------------------------------------------------------------------------------------------

describe('encode/decode round trip', () => {
  it('keeps float32 bit patterns exactly (NaN payloads, -0, subnormals, infinities)', () => {
    const patterns = [
      0x00000000, 0x80000000, 0x00000001, 0x807fffff, 0x00400000, 0x7f7fffff, 0xff7fffff, 0x7f800000,
      0xff800000, 0x7fc00000, 0x7fc00001, 0xffc12345, 0x7f800001, 0x7fbfffff, 0x3f800000,
    ];
    const data = new Float32Array(new Uint32Array(patterns).buffer);
    const out = decodeSafetensors(encodeSafetensors({ x: { dtype: 'float32', shape: [3, 5], data } }));
    expect(out.tensors.x!.dtype).toBe('float32');
    expect(out.tensors.x!.shape).toEqual([3, 5]);
    expect(bitsOf(out.tensors.x!.data as Float32Array)).toEqual(patterns);
  });

  it('keeps int32 extremes exactly', () => {
    const values = [-2147483648, 2147483647, -1, 0, 1, 123456789, -987654321];
    const out = decodeSafetensors(encodeSafetensors({ k: i32([7], values) }));
    expect(out.tensors.k).toEqual(i32([7], values));
    expect(out.tensors.k!.data).toBeInstanceOf(Int32Array);
  });

  it('handles scalars, zero-size tensors and metadata', () => {
    const entries = {
      s: f32([], [3.5]),
      n: i32([], [-7]),
      e: f32([0], []),
      e2: i32([2, 0, 3], []),
    };
    const bytes = encodeSafetensors(entries, { format: 'pt', note: 'héllo "quoted"' });
    const out = decodeSafetensors(bytes);
    expect(out.tensors).toEqual(entries);
    expect(out.metadata).toEqual({ format: 'pt', note: 'héllo "quoted"' });
    expect(decodeSafetensors(encodeSafetensors({})).tensors).toEqual({});
    expect(decodeSafetensors(encodeSafetensors({ a: f32([1], [1]) })).metadata).toEqual({});
  });

  it('writes sorted keys, a space-padded header and 8-byte aligned data', () => {
    const bytes = encodeSafetensors({ zeta: f32([1], [1]), alpha: i32([2], [1, 2]), mid: f32([], [2]) });
    const view = new DataView(bytes.buffer);
    const n = view.getUint32(0, true);
    expect(view.getUint32(4, true)).toBe(0);
    expect((8 + n) % 8).toBe(0);
    const text = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    expect(text.trimEnd()).toBe(
      '{"alpha":{"dtype":"I32","shape":[2],"data_offsets":[0,8]},' +
        '"mid":{"dtype":"F32","shape":[],"data_offsets":[8,12]},' +
        '"zeta":{"dtype":"F32","shape":[1],"data_offsets":[12,16]}}',
    );
    expect(/^ *$/.test(text.slice(text.trimEnd().length))).toBe(true);
    expect(bytes.length).toBe(8 + n + 16);
    expect(Array.from(bytes.subarray(8 + n))).toEqual([...le32([1, 2]), ...f32Bytes([2, 1])]);
  });

  it('keeps numeric-looking names in code-point order and survives odd names', () => {
    const entries = {
      '10': f32([], [1]),
      '9': f32([], [2]),
      é: f32([], [3]),
      '\u{1F600}': f32([], [4]),
      '\uffff': f32([], [5]),
    };
    const bytes = encodeSafetensors(entries);
    const n = new DataView(bytes.buffer).getUint32(0, true);
    const header = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    const order = ['"10"', '"9"', '"é"', '"\uffff"', '"\u{1F600}"'].map((k) => header.indexOf(k));
    expect(order).toEqual([...order].sort((a, b) => a - b));
    expect(decodeSafetensors(bytes).tensors).toEqual(entries);
  });

  it('encodes typed-array views with a byte offset', () => {
    const backing = new Float32Array([9, 9, 1, 2, 3, 9]);
    const bytes = encodeSafetensors({ v: { dtype: 'float32', shape: [3], data: backing.subarray(2, 5) } });
    expect(Array.from(decodeSafetensors(bytes).tensors.v!.data)).toEqual([1, 2, 3]);
  });

  it('decodes from an unaligned view and never aliases the input', () => {
    const bytes = encodeSafetensors({ a: f32([2], [1.5, -2.5]), b: i32([1], [42]) });
    const shifted = new Uint8Array(bytes.length + 3);
    shifted.set(bytes, 3);
    const out = decodeSafetensors(shifted.subarray(3));
    expect(out.tensors.a).toEqual(f32([2], [1.5, -2.5]));
    shifted.fill(0);
    expect(Array.from(out.tensors.a!.data)).toEqual([1.5, -2.5]);
    expect(out.tensors.b!.data.buffer).not.toBe(shifted.buffer);
    expect(decodeSafetensors(bytes.slice().buffer).tensors.b).toEqual(i32([1], [42]));
  });

  it('round-trips nested trees through flatten/unflatten', () => {
    const isLeaf = (x: unknown): x is RawTensor => typeof x === 'object' && x !== null && 'data' in x;
    const tree = {
      embed: f32([2, 2], [1, 2, 3, 4]),
      layers: [
        { w: f32([2], [5, 6]), b: f32([], [7]) },
        { w: f32([2], [8, 9]), extra: { steps: i32([], [100]) } },
      ],
      head: { out: [f32([1], [0.25])] },
      unused: [],
    };
    const flat = flattenTree(tree, isLeaf);
    expect(Object.keys(flat).sort()).toEqual([
      'embed',
      'head.out.0',
      'layers.0.b',
      'layers.0.w',
      'layers.1.extra.steps',
      'layers.1.w',
    ]);
    const back = unflattenTree(decodeSafetensors(encodeSafetensors(flat)).tensors);
    const { unused: _dropped, ...expected } = tree; // empty containers hold no tensors and are dropped
    expect(back).toEqual(expected);
    expect(Array.isArray((back as { layers: unknown }).layers)).toBe(true);
  });
});

describe('files from an independent writer', () => {
  it('produces the reference layout byte for byte (metadata first, sorted, space padded)', () => {
    // What the reference library writes for {"a": f32[2], "b": i32[1]} with metadata {"format": "pt"}: compact JSON,
    // "__metadata__" first, F32 before I32, padding to 8 bytes.
    const header =
      '{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' +
      '"b":{"dtype":"I32","shape":[1],"data_offsets":[8,12]}}';
    const bytes = file(header, [...f32Bytes([0.5, -1]), ...le32([-5])]);
    const mine = encodeSafetensors({ b: i32([1], [-5]), a: f32([2], [0.5, -1]) }, { format: 'pt' });
    expect(Array.from(mine)).toEqual(Array.from(bytes));
    expect(decodeSafetensors(bytes)).toEqual({
      tensors: { a: f32([2], [0.5, -1]), b: i32([1], [-5]) },
      metadata: { format: 'pt' },
    });
  });

  it('loads a hand-built half-precision checkpoint (F16 and BF16, widest dtype first)', () => {
    const header =
      '{"__metadata__":{"format":"pt"},' +
      '"model.norm.weight":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]},' +
      '"model.embed.weight":{"dtype":"F16","shape":[2,2],"data_offsets":[4,12]}}';
    const bytes = file(header, [...le16([0x3f80, 0xc060]), ...le16([0x3c00, 0xc000, 0x3800, 0x7bff])]);
    const { tensors, metadata } = decodeSafetensors(bytes);
    expect(metadata).toEqual({ format: 'pt' });
    expect(tensors['model.norm.weight']).toEqual(f32([2], [1, -3.5]));
    expect(tensors['model.embed.weight']).toEqual(f32([2, 2], [1, -2, 0.5, 65504]));
    expect(unflattenTree(tensors)).toEqual({
      model: { norm: { weight: f32([2], [1, -3.5]) }, embed: { weight: f32([2, 2], [1, -2, 0.5, 65504]) } },
    });
  });

  it('loads the committed fixture written by test/fixtures/make_tiny.py', () => {
    const bytes = new Uint8Array(readFileSync(new URL('./fixtures/tiny.safetensors', import.meta.url)));
    const { tensors, metadata } = decodeSafetensors(bytes);
    expect(metadata).toEqual({ format: 'pt' });
    expect(Object.keys(tensors).sort()).toEqual(
      [
        'bytes',
        'brain',
        'double',
        'half',
        'ids',
        'layers.0.weight',
        'layers.1.bias',
        'mask',
        'scalar',
        'short',
        'zeros',
      ].sort(),
    );
    expect(tensors.ids).toEqual(i32([4], [-2147483648, -1, 0, 2147483647]));
    expect(tensors.double).toEqual(f32([2], [Math.fround(0.1), -2.5]));
    expect(tensors['layers.0.weight']).toEqual(f32([2, 2], [1, -2, 0.5, 3.25]));
    expect(bitsOf(tensors['layers.1.bias']!.data as Float32Array)).toEqual([0x80000000, 0x00000001]);
    expect(tensors.scalar).toEqual(f32([], [42]));
    expect(tensors.zeros).toEqual(f32([0, 3], []));
    expect(tensors.brain).toEqual(f32([4], [1, -3.5, 2 ** 100, -0]));
    expect(Object.is(tensors.brain!.data[3], -0)).toBe(true);
    const half = Array.from(tensors.half!.data);
    expect(half.slice(0, 6)).toEqual([1, -2, 0.5, 65504, 2 ** -24, Number.POSITIVE_INFINITY]);
    expect(Number.isNaN(half[6])).toBe(true);
    expect(tensors.short).toEqual(i32([2], [-32768, 32767]));
    expect(tensors.bytes).toEqual(i32([3], [0, 255, 7]));
    expect(tensors.mask).toEqual(i32([3], [1, 0, 1]));
    const tree = unflattenTree(tensors) as Record<string, unknown>;
    expect(tree.layers).toEqual([{ weight: tensors['layers.0.weight'] }, { bias: tensors['layers.1.bias'] }]);
  });
});

describe('dtype conversion', () => {
  const one = (dtype: string, shape: number[], data: number[]) =>
    decodeSafetensors(file(`{"t":${entry(dtype, shape, 0, data.length)}}`, data)).tensors.t!;

  it('F16 -> float32 exactly, including subnormals, infinities and NaN payloads', () => {
    const halves = [
      0x3c00, 0xc000, 0x7bff, 0x0001, 0x03ff, 0x0400, 0x3555, 0x8000, 0x7c00, 0xfc00, 0x7e00, 0x7c01,
    ];
    const t = one('F16', [halves.length], le16(halves));
    expect(t.dtype).toBe('float32');
    const v = Array.from(t.data);
    expect(v.slice(0, 10)).toEqual([
      1,
      -2,
      65504,
      2 ** -24,
      1023 * 2 ** -24,
      2 ** -14,
      1365 / 4096,
      -0,
      Number.POSITIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
    ]);
    expect(Object.is(v[7], -0)).toBe(true);
    const bits = bitsOf(t.data as Float32Array);
    expect(bits[10]).toBe(0x7fc00000);
    expect(bits[11]).toBe(0x7f802000); // payload kept
  });

  it('BF16 -> float32 exactly', () => {
    const t = one('BF16', [6], le16([0x3f80, 0xc060, 0x7f7f, 0x0001, 0xff80, 0x7fc1]));
    expect(bitsOf(t.data as Float32Array)).toEqual([
      0x3f800000, 0xc0600000, 0x7f7f0000, 0x00010000, 0xff800000, 0x7fc10000,
    ]);
    expectClose(t.data[2], 3.3895313892515355e38, { rtol: 0, atol: 5e29 });
  });

  it('F8_E4M3 (e4m3fn) and F8_E5M2 -> float32', () => {
    const a = Array.from(one('F8_E4M3', [6], [0x38, 0xb8, 0x7e, 0x01, 0x00, 0x7f]).data);
    expect(a.slice(0, 5)).toEqual([1, -1, 448, 2 ** -9, 0]);
    expect(Number.isNaN(a[5])).toBe(true);
    const b = Array.from(one('F8_E5M2', [5], [0x3c, 0x7b, 0x7c, 0x01, 0xc0]).data);
    expect(b).toEqual([1, 57344, Number.POSITIVE_INFINITY, 2 ** -16, -2]);
  });

  it('F64 -> float32 rounded to nearest', () => {
    const data = Array.from(new Uint8Array(new Float64Array([0.1, -1e300, 1 + 2 ** -30]).buffer));
    const t = one('F64', [3], data);
    expect(Array.from(t.data)).toEqual([Math.fround(0.1), Number.NEGATIVE_INFINITY, 1]);
  });

  it('small integers and BOOL -> int32', () => {
    expect(one('I8', [3], [0x80, 0x7f, 0xff])).toEqual(i32([3], [-128, 127, -1]));
    expect(one('U8', [2], [0, 255])).toEqual(i32([2], [0, 255]));
    expect(one('I16', [2], le16([0x8000, 0x7fff]))).toEqual(i32([2], [-32768, 32767]));
    expect(one('U16', [1], le16([0xffff]))).toEqual(i32([1], [65535]));
    expect(one('BOOL', [3], [0, 1, 2])).toEqual(i32([3], [0, 1, 1]));
  });

  it('U32, I64, U64 -> int32 when in range, otherwise rejected', () => {
    expect(one('U32', [2], le32([0x7fffffff, 3]))).toEqual(i32([2], [2147483647, 3]));
    expect(one('I64', [3], le32([0x80000000, 0xffffffff, 5, 0, 0xffffffff, 0xffffffff]))).toEqual(
      i32([3], [-2147483648, 5, -1]),
    );
    expect(one('U64', [1], le32([0x7fffffff, 0]))).toEqual(i32([1], [2147483647]));
    rejects(
      file(`{"t":${entry('U32', [1], 0, 4)}}`, le32([0x80000000])),
      /tensor 't': U32 value 2147483648 at index 0 does not fit in int32/,
    );
    rejects(
      file(`{"t":${entry('I64', [2], 0, 16)}}`, le32([1, 0, 0x7fffffff, 1])),
      /tensor 't': I64 value 6442450943 at index 1 does not fit in int32/,
    );
    rejects(
      file(`{"t":${entry('I64', [1], 0, 8)}}`, le32([0x7fffffff, 0xffffffff])),
      /I64 value -2147483649 at index 0/,
    );
    rejects(
      file(`{"t":${entry('U64', [1], 0, 8)}}`, le32([0, 0x80000000])),
      /U64 value 9223372036854775808 at index 0/,
    );
  });
});

describe('malformed files are rejected with a precise CheckpointError', () => {
  it('too short', () => {
    rejects(new Uint8Array(0), /file is 0 bytes, too short for the 8-byte header length/);
    rejects(new Uint8Array(7), /file is 7 bytes/);
  });

  it('header length over the cap or past the end of the file', () => {
    rejects(
      withLength(SAFETENSORS_MAX_HEADER_BYTES + 1, 0),
      /header length 100000001 exceeds the limit of 100000000 bytes/,
    );
    rejects(withLength(0, 0x80000000), /header length 9223372036854775808 exceeds the limit/);
    rejects(
      withLength(16, 0, [0x7b, 0x7d]),
      /header length 16 is larger than the 2 bytes that follow the length field/,
    );
  });

  it('header not UTF-8, not JSON, or not an object', () => {
    rejects(
      file('{"a":1}\xff', [], false).map((b, i, a) => (i === a.length - 1 ? 0xff : b)),
      /header is not valid UTF-8/,
    );
    rejects(file('{"a":'), /header is not valid JSON/);
    rejects(file(''), /header is not valid JSON/);
    rejects(file('[]'), /header must be a JSON object, got array/);
    rejects(file('null'), /header must be a JSON object, got null/);
    rejects(file('42'), /header must be a JSON object, got number/);
  });

  it('entries missing fields or of the wrong type', () => {
    rejects(file('{"w":[1,2]}'), /tensor 'w': header entry must be an object, got array/);
    rejects(
      file('{"w":{"shape":[1],"data_offsets":[0,4]}}', [0, 0, 0, 0]),
      /tensor 'w': header entry is missing "dtype"/,
    );
    rejects(
      file('{"w":{"dtype":"F32","data_offsets":[0,4]}}', [0, 0, 0, 0]),
      /tensor 'w': header entry is missing "shape"/,
    );
    rejects(
      file('{"w":{"dtype":"F32","shape":[1]}}', [0, 0, 0, 0]),
      /tensor 'w': header entry is missing "data_offsets"/,
    );
    rejects(
      file('{"w":{"dtype":7,"shape":[1],"data_offsets":[0,4]}}'),
      /tensor 'w': "dtype" must be a string, got number/,
    );
    rejects(
      file('{"w":{"dtype":"F32","shape":"1","data_offsets":[0,4]}}'),
      /tensor 'w': "shape" must be an array/,
    );
    rejects(
      file('{"w":{"dtype":"F32","shape":[2,"2"],"data_offsets":[0,16]}}'),
      /tensor 'w': shape\[1\] is "2"/,
    );
    rejects(
      file('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}'),
      /tensor 'w': "data_offsets" must be an array \[begin, end\], got \[0,4,8\]/,
    );
    rejects(
      file('{"w":{"dtype":"F32","shape":[1],"data_offsets":{"0":0}}}'),
      /tensor 'w': "data_offsets" must be an array/,
    );
    rejects(
      file('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4.5]}}'),
      /tensor 'w': data_offsets \[0,4.5\] must be non-negative integers/,
    );
    rejects(
      file('{"w":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}'),
      /data_offsets \[-4,0\] must be non-negative/,
    );
  });

  it('unknown or unsupported dtype', () => {
    rejects(file(`{"w":${entry('F17', [1], 0, 4)}}`, [0, 0, 0, 0]), /tensor 'w': unknown dtype "F17"/);
    rejects(file(`{"w":${entry('f32', [1], 0, 4)}}`, [0, 0, 0, 0]), /tensor 'w': unknown dtype "f32"/);
    rejects(
      file(`{"w":${entry('C64', [1], 0, 8)}}`, new Array(8).fill(0)),
      /tensor 'w': dtype "C64" is not supported/,
    );
  });

  it('negative or non-integer shape dims', () => {
    rejects(
      file(`{"w":${entry('F32', [2, -1], 0, 0)}}`),
      /tensor 'w': shape\[1\] is -1; dims must be non-negative integers/,
    );
    rejects(
      file(`{"w":${entry('F32', [1.5], 0, 0)}}`),
      /tensor 'w': shape\[0\] is 1.5; dims must be non-negative integers/,
    );
  });

  it('data_offsets out of range, reversed, overlapping, leaving gaps or trailing bytes', () => {
    const four = [0, 0, 0, 0];
    rejects(
      file(`{"w":${entry('F32', [2], 0, 8)}}`, four),
      /tensor 'w': data_offsets \[0, 8\] are out of range: the byte buffer is 4 bytes/,
    );
    rejects(
      file(`{"w":${entry('F32', [1], 4, 0)}}`, four),
      /tensor 'w': data_offsets \[4, 0\] have begin > end/,
    );
    rejects(
      file(`{"a":${entry('F32', [2], 0, 8)},"b":${entry('F32', [1], 4, 8)}}`, [...four, ...four]),
      /tensor 'b': data_offsets \[4, 8\] overlap tensor 'a' \[0, 8\]/,
    );
    rejects(
      file(`{"a":${entry('F32', [1], 0, 4)},"b":${entry('F32', [1], 0, 4)}}`, four),
      /tensor 'b': data_offsets \[0, 4\] overlap tensor 'a' \[0, 4\]/,
    );
    rejects(
      file(`{"a":${entry('F32', [1], 4, 8)}}`, [...four, ...four]),
      /tensor 'a': data_offsets \[4, 8\] leave a gap: bytes 0..4 of the byte buffer belong to no tensor/,
    );
    rejects(
      file(`{"a":${entry('F32', [1], 0, 4)},"b":${entry('F32', [1], 8, 12)}}`, [...four, ...four, ...four]),
      /tensor 'b': data_offsets \[8, 12\] leave a gap: bytes 4..8/,
    );
    rejects(
      file(`{"a":${entry('F32', [1], 0, 4)}}`, [...four, 0, 0]),
      /byte buffer has 2 trailing bytes \(4..6\) that belong to no tensor/,
    );
    // zero-size tensors may sit at any boundary, but not inside another tensor
    expect(
      Object.keys(
        decodeSafetensors(file(`{"a":${entry('F32', [1], 0, 4)},"z":${entry('F32', [0], 4, 4)}}`, four))
          .tensors,
      ),
    ).toEqual(['a', 'z']);
    rejects(
      file(`{"a":${entry('F32', [2], 0, 8)},"z":${entry('F32', [0], 4, 4)}}`, [...four, ...four]),
      /tensor 'z': data_offsets \[4, 4\] overlap tensor 'a'/,
    );
  });

  it('byte length not equal to product(shape) * itemsize', () => {
    rejects(
      file(`{"w":${entry('F32', [2, 3], 0, 20)}}`, new Array(20).fill(0)),
      /tensor 'w': dtype F32 with shape \[2, 3\] needs 24 bytes but data_offsets \[0, 20\] span 20/,
    );
    rejects(
      file(`{"w":${entry('F16', [3], 0, 4)}}`, [0, 0, 0, 0]),
      /tensor 'w': dtype F16 with shape \[3\] needs 6 bytes/,
    );
    rejects(
      file(`{"w":${entry('F32', [2 ** 40, 2 ** 40], 0, 4)}}`, [0, 0, 0, 0]),
      /tensor 'w': dtype F32 with shape/,
    );
    // a zero dim makes the element count 0 even when the other dims would overflow
    const huge = decodeSafetensors(file(`{"w":${entry('F32', [2 ** 52, 2 ** 52, 2 ** 52, 0], 0, 0)}}`));
    expect(huge.tensors.w!.data.length).toBe(0);
  });

  it('tensor names that conflict as tree paths', () => {
    rejects(
      file(`{"a":${entry('F32', [1], 0, 4)},"a.b":${entry('F32', [1], 4, 8)}}`, new Array(8).fill(0)),
      /tensor names 'a' and 'a.b' conflict: 'a' cannot be both a tensor and a group/,
    );
    rejects(
      file(
        `{"x.y.z":${entry('F32', [1], 0, 4)},"x.y":${entry('F32', [1], 4, 8)},"x!":${entry('F32', [0], 8, 8)}}`,
        new Array(8).fill(0),
      ),
      /tensor names 'x.y' and 'x.y.z' conflict/,
    );
  });

  it('duplicate keys in the JSON', () => {
    rejects(
      file(`{"a":${entry('F32', [1], 0, 4)},"a":${entry('F32', [1], 0, 4)}}`, [0, 0, 0, 0]),
      /header has duplicate tensor name 'a'/,
    );
    rejects(
      file(`{"a":${entry('F32', [1], 0, 4)},"\\u0061":${entry('F32', [1], 0, 4)}}`, [0, 0, 0, 0]),
      /header has duplicate tensor name 'a'/,
    );
    rejects(
      file('{"w":{"dtype":"F32","dtype":"I32","shape":[1],"data_offsets":[0,4]}}', [0, 0, 0, 0]),
      /header entry 'w' has duplicate key 'dtype'/,
    );
    rejects(file('{"__metadata__":{"k":"1","k":"2"}}'), /header entry '__metadata__' has duplicate key 'k'/);
    // escaped quotes and braces inside strings do not confuse the scan
    const tricky = decodeSafetensors(
      file(`{"__metadata__":{"a":"x\\"}{,","b":"\\\\"},"q\\"{":${entry('F32', [0], 0, 0)}}`),
    );
    expect(tricky.metadata).toEqual({ a: 'x"}{,', b: '\\' });
    expect(Object.keys(tricky.tensors)).toEqual(['q"{']);
  });

  it('bad __metadata__', () => {
    rejects(file('{"__metadata__":[]}'), /"__metadata__" must be an object of strings, got array/);
    rejects(
      file('{"__metadata__":{"epoch":3}}'),
      /"__metadata__" value for key 'epoch' must be a string, got number/,
    );
    expect(decodeSafetensors(file('{"__metadata__":null}')).metadata).toEqual({});
  });

  it('tolerates whitespace padding and unknown extra fields', () => {
    const out = decodeSafetensors(
      file(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":1}}          `, f32Bytes([2])),
    );
    expect(out.tensors.w).toEqual(f32([1], [2]));
  });

  it('keeps a tensor named __proto__ as an own property', () => {
    const out = decodeSafetensors(file(`{"__proto__":${entry('F32', [1], 0, 4)}}`, f32Bytes([3])));
    expect(Object.getPrototypeOf(out.tensors)).toBe(Object.prototype);
    expect(Object.keys(out.tensors)).toEqual(['__proto__']);
  });
});

describe('encode rejects invalid input', () => {
  it('wrong data, shape mismatch, reserved or conflicting names, bad metadata', () => {
    throwsCheckpoint(
      () => encodeSafetensors({ w: { dtype: 'float32', shape: [1], data: new Int32Array(1) } }),
      /tensor 'w': dtype float32 needs a Float32Array, got \[object Int32Array\]/,
    );
    throwsCheckpoint(
      () =>
        encodeSafetensors({ w: { dtype: 'float64' as 'float32', shape: [1], data: new Float32Array(1) } }),
      /tensor 'w': unsupported dtype "float64"/,
    );
    throwsCheckpoint(
      () => encodeSafetensors({ w: f32([2, 2], [1, 2, 3]) }),
      /tensor 'w': shape \[2, 2\] has 4 elements but data has 3/,
    );
    throwsCheckpoint(() => encodeSafetensors({ w: f32([-1], []) }), /tensor 'w': shape\[0\] is -1/);
    throwsCheckpoint(() => encodeSafetensors({ __metadata__: f32([], [1]) }), /'__metadata__' is reserved/);
    throwsCheckpoint(
      () => encodeSafetensors({ a: f32([], [1]), 'a.b': f32([], [1]) }),
      /tensor names 'a' and 'a.b' conflict/,
    );
    throwsCheckpoint(
      () => encodeSafetensors({}, { n: 1 as unknown as string }),
      /metadata value for key 'n' must be a string, got number/,
    );
  });
});

describe('flattenTree / unflattenTree', () => {
  const isNum = (x: unknown): x is number => typeof x === 'number';

  it('flattens objects and arrays with dotted paths, skipping undefined', () => {
    const holey: number[] = [];
    holey[0] = 3;
    holey[2] = 4;
    expect(flattenTree({ layers: [{ w: 1 }, { b: 2 }], opt: undefined, z: { y: holey } }, isNum)).toEqual({
      'layers.0.w': 1,
      'layers.1.b': 2,
      'z.y.0': 3,
      'z.y.2': 4,
    });
    expect(flattenTree([[1], 2], isNum)).toEqual({ '0.0': 1, '1': 2 });
  });

  it('rejects ambiguous or unsupported trees', () => {
    throwsCheckpoint(() => flattenTree({ 'a.b': 1 }, isNum), /key 'a.b' under the root contains '.'/);
    throwsCheckpoint(() => flattenTree({ a: { 'x.y': 1 } }, isNum), /key 'x.y' under 'a' contains '.'/);
    throwsCheckpoint(
      () => flattenTree({ a: null }, isNum),
      /value at 'a' is neither a leaf nor a plain object or array \(got null\)/,
    );
    throwsCheckpoint(() => flattenTree({ a: [new Date()] }, isNum), /value at 'a.0' is neither a leaf/);
    throwsCheckpoint(() => flattenTree(5, isNum), /the root is a leaf/);
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = { back: cyclic };
    throwsCheckpoint(() => flattenTree(cyclic, isNum), /cycle at 'self.back'/);
  });

  it('unflattens: 0..n-1 keys become arrays, anything else stays an object', () => {
    expect(unflattenTree({ 'a.0': 1, 'a.1': 2, 'b.0': 3, 'b.2': 4, 'c.01': 5, 'd.1': 6, 'd.0': 7 })).toEqual({
      a: [1, 2],
      b: { '0': 3, '2': 4 },
      c: { '01': 5 },
      d: [7, 6],
    });
    expect(unflattenTree({ '0': 'x', '1': 'y' })).toEqual(['x', 'y']);
    expect(unflattenTree({})).toEqual({});
  });

  it('unflatten rejects leaf/group conflicts in either order', () => {
    throwsCheckpoint(() => unflattenTree({ a: 1, 'a.b': 2 }), /keys 'a' and 'a.b' conflict: 'a' is a leaf/);
    throwsCheckpoint(
      () => unflattenTree({ 'a.b.c': 2, 'a.b': 1 }),
      /keys 'a.b' and 'a.b.c' conflict: 'a.b' is a leaf/,
    );
  });

  it('flatten and unflatten are inverse on trees without empty containers', () => {
    const tree = { a: [{ x: 1, y: [2, 3] }, { x: 4 }], b: { c: { d: 5 } }, __proto__x: 6 };
    expect(unflattenTree(flattenTree(tree, isNum))).toEqual(tree);
    const proto = JSON.parse('{"__proto__": {"w": 1}}');
    const back = unflattenTree(flattenTree(proto, isNum)) as Record<string, unknown>;
    expect(Object.getPrototypeOf(back)).toBe(Object.prototype);
    expect(Object.keys(back)).toEqual(['__proto__']);
  });
});
