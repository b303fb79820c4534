/**
 * Safetensors checkpoint codec.
 *
 * File layout (all integers little-endian):
 *   - 8 bytes: u64 N, the byte length of the header;
 *   - N bytes: UTF-8 JSON object `{ name: { dtype, shape, data_offsets: [begin, end] }, ..., "__metadata__"?: {..} }`,
 *     possibly padded with trailing spaces;
 *   - the byte buffer; `data_offsets` are relative to its start and must cover it exactly, without gaps or
 *     overlaps.
 *
 * Writing produces F32 and I32 tensors only, keys sorted by code point, data packed in that order, header padded
 * with spaces so that the byte buffer starts at a multiple of 8 (as the reference implementation does).
 *
 * Reading accepts every fixed-width dtype of the format and converts it to one of our two dtypes:
 *   - float32 <- F32 (bit exact), F16 and BF16 (exact, NaN payloads kept), F8_E4M3 (e4m3fn) and F8_E5M2 (exact),
 *     F64 (rounded to nearest float32; values beyond the float32 range become +-Infinity);
 *   - int32   <- I32 (bit exact), I8, U8, I16, U16 (exact), BOOL (0 -> 0, any other byte -> 1),
 *     U32, I64, U64 (exact; a value outside the int32 range rejects the whole file).
 * Sub-byte, complex and exotic float formats (F4, F6_*, F8_E8M0, F8_*FNUZ, C64) are rejected as unsupported.
 *
 * Decoding validates the whole file (header, offsets, sizes, name conflicts, integer ranges) before it allocates
 * any output, and the returned arrays never share memory with the input.
 *
 * Only web-standard APIs are used (DataView, TextEncoder/TextDecoder, typed arrays), so this runs in browsers, Deno
 * and edge runtimes as well as Node.
 */
import { AdjointError } from '../errors';

/** Raised for every malformed checkpoint and every invalid argument to this module. */
export class CheckpointError extends AdjointError {
  override name = 'CheckpointError';
}

/** Dtypes that {@link decodeSafetensors} reads. */
export type StDType =
  | 'F32'
  | 'F64'
  | 'F16'
  | 'BF16'
  | 'F8_E4M3'
  | 'F8_E5M2'
  | 'I32'
  | 'I64'
  | 'U64'
  | 'U32'
  | 'I16'
  | 'U16'
  | 'I8'
  | 'U8'
  | 'BOOL';

export interface RawTensor {
  dtype: 'float32' | 'int32';
  shape: number[];
  data: Float32Array | Int32Array;
}

/** Largest header accepted, as in the reference implementation. */
export const SAFETENSORS_MAX_HEADER_BYTES = 100_000_000;

const METADATA_KEY = '__metadata__';

const ITEM_SIZE: Record<StDType, number> = {
  F32: 4,
  F64: 8,
  F16: 2,
  BF16: 2,
  F8_E4M3: 1,
  F8_E5M2: 1,
  I32: 4,
  I64: 8,
  U64: 8,
  U32: 4,
  I16: 2,
  U16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

const FLOAT_SOURCES: ReadonlySet<string> = new Set(['F32', 'F64', 'F16', 'BF16', 'F8_E4M3', 'F8_E5M2']);

/** Dtypes of the format that we recognise but cannot represent. */
const UNSUPPORTED_DTYPES: ReadonlySet<string> = new Set([
  'F4',
  'F6_E2M3',
  'F6_E3M2',
  'F8_E8M0',
  'F8_E4M3FNUZ',
  'F8_E5M2FNUZ',
  'C64',
]);

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

// ---------------------------------------------------------------------------------------------------------------
// small helpers

function fail(message: string): never {
  throw new CheckpointError(message);
}

/** `'name'` with JSON escaping, so that odd names stay readable in messages. */
function q(name: string): string {
  return `'${JSON.stringify(name).slice(1, -1)}'`;
}

function describe(x: unknown): string {
  if (x === null) return 'null';
  if (Array.isArray(x)) return 'array';
  return typeof x;
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return false;
  const proto = Object.getPrototypeOf(x);
  return proto === Object.prototype || proto === null;
}

function hasOwn(obj: object, key: string): boolean {
  return Object.hasOwn(obj, key);
}

/** Assignment that also works for the key `__proto__`. */
function setOwn<T>(obj: Record<string, T>, key: string, value: T): void {
  if (key === '__proto__') {
    Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
  } else {
    obj[key] = value;
  }
}

/** Orders strings by Unicode code point, i.e. by their UTF-8 bytes (as Rust sorts `String`s). */
function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // Surrogates (0xd800..0xdfff) encode code points above 0xffff: they sort after everything else.
    const xs = x >= 0xd800 && x <= 0xdfff;
    const ys = y >= 0xd800 && y <= 0xdfff;
    if (xs !== ys) return xs ? 1 : -1;
    return x - y;
  }
  return a.length - b.length;
}

function tagOf(x: unknown): string {
  return Object.prototype.toString.call(x);
}

function shapeString(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** Throws unless `shape` is an array of non-negative safe integers; returns the element count. */
function checkShape(shape: unknown, where: string): number {
  if (!Array.isArray(shape)) fail(`${where}: "shape" must be an array of integers, got ${describe(shape)}`);
  let numel = 1;
  let hasZero = false;
  for (let i = 0; i < shape.length; i++) {
    const d = shape[i];
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
      fail(`${where}: shape[${i}] is ${JSON.stringify(d) ?? String(d)}; dims must be non-negative integers`);
    }
    if (d === 0) hasZero = true;
    numel *= d;
  }
  // Huge products are inexact (or Infinity) but then can never match a byte length, so that is harmless; a zero
  // dim makes the count exactly 0 even when the other dims overflow.
  return hasZero ? 0 : numel;
}

/** Swaps every `size`-byte group in place (used on big-endian hosts only). */
function byteSwap(bytes: Uint8Array, size: number): void {
  for (let i = 0; i + size <= bytes.length; i += size) {
    for (let a = i, b = i + size - 1; a < b; a++, b--) {
      const t = bytes[a]!;
      bytes[a] = bytes[b]!;
      bytes[b] = t;
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// encoding

/**
 * Serialises tensors into a safetensors file. Keys are written sorted by code point; data is little-endian on
 * every host. Tensor names must not clash as tree paths ('a' together with 'a.b'), so that the file always
 * decodes.
 */
export function encodeSafetensors(
  entries: Record<string, RawTensor>,
  metadata?: Record<string, string>,
): Uint8Array<ArrayBuffer> {
  if (!isPlainObject(entries))
    fail(`encodeSafetensors: entries must be a plain object, got ${describe(entries)}`);
  const names = Object.keys(entries).sort(compareCodePoints);
  checkNameConflicts(names);

  const parts: string[] = [];
  if (metadata !== undefined) {
    if (!isPlainObject(metadata))
      fail(`encodeSafetensors: metadata must be a plain object, got ${describe(metadata)}`);
    const meta: string[] = [];
    for (const k of Object.keys(metadata)) {
      const v = metadata[k];
      if (typeof v !== 'string')
        fail(`encodeSafetensors: metadata value for key ${q(k)} must be a string, got ${describe(v)}`);
      meta.push(`${JSON.stringify(k)}:${JSON.stringify(v)}`);
    }
    parts.push(`${JSON.stringify(METADATA_KEY)}:{${meta.join(',')}}`);
  }

  const datas: Uint8Array[] = [];
  let offset = 0;
  for (const name of names) {
    if (name === METADATA_KEY)
      fail(`encodeSafetensors: ${q(name)} is reserved for metadata and cannot name a tensor`);
    const where = `encodeSafetensors: tensor ${q(name)}`;
    const t = entries[name];
    if (typeof t !== 'object' || t === null) fail(`${where}: expected a RawTensor, got ${describe(t)}`);
    const { dtype, shape, data } = t;
    let st: 'F32' | 'I32';
    if (dtype === 'float32') {
      if (tagOf(data) !== '[object Float32Array]')
        fail(`${where}: dtype float32 needs a Float32Array, got ${tagOf(data)}`);
      st = 'F32';
    } else if (dtype === 'int32') {
      if (tagOf(data) !== '[object Int32Array]')
        fail(`${where}: dtype int32 needs an Int32Array, got ${tagOf(data)}`);
      st = 'I32';
    } else {
      fail(
        `${where}: unsupported dtype ${JSON.stringify(dtype) ?? String(dtype)}; expected 'float32' or 'int32'`,
      );
    }
    const numel = checkShape(shape, where);
    if (numel !== data.length) {
      fail(`${where}: shape ${shapeString(shape)} has ${numel} elements but data has ${data.length}`);
    }
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    parts.push(
      `${JSON.stringify(name)}:{"dtype":"${st}","shape":[${shape.join(',')}],"data_offsets":[${offset},${offset + bytes.length}]}`,
    );
    datas.push(bytes);
    offset += bytes.length;
  }

  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const headerLength = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + headerLength + offset);
  const view = new DataView(out.buffer);
  view.setUint32(0, headerLength % 2 ** 32, true);
  view.setUint32(4, Math.floor(headerLength / 2 ** 32), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLength);
  let pos = 8 + headerLength;
  for (const bytes of datas) {
    out.set(bytes, pos);
    if (!LITTLE_ENDIAN_HOST) byteSwap(out.subarray(pos, pos + bytes.length), 4);
    pos += bytes.length;
  }
  return out;
}

/** Rejects names where one is a tree-path prefix of another ('a' and 'a.b'). */
function checkNameConflicts(names: readonly string[]): void {
  const set = new Set(names);
  for (const name of names) {
    for (let i = name.indexOf('.'); i !== -1; i = name.indexOf('.', i + 1)) {
      const prefix = name.slice(0, i);
      if (set.has(prefix)) {
        fail(
          `tensor names ${q(prefix)} and ${q(name)} conflict: ${q(prefix)} cannot be both a tensor and a group`,
        );
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// decoding

interface Entry {
  name: string;
  dtype: StDType;
  shape: number[];
  numel: number;
  begin: number;
  end: number;
}

/**
 * Parses a safetensors file. Everything is validated before any output is allocated; a malformed file raises a
 * {@link CheckpointError} naming the offending tensor. Returned arrays are fresh copies.
 */
export function decodeSafetensors(bytes: Uint8Array | ArrayBuffer): {
  tensors: Record<string, RawTensor>;
  metadata: Record<string, string>;
} {
  if (tagOf(bytes) === '[object ArrayBuffer]') bytes = new Uint8Array(bytes as ArrayBuffer);
  if (tagOf(bytes) !== '[object Uint8Array]')
    fail(`decodeSafetensors: expected a Uint8Array, got ${tagOf(bytes)}`);
  // A plain Uint8Array view: subclasses such as Node's Buffer make slice() a view into a shared pool, not a copy.
  const input = new Uint8Array(
    (bytes as Uint8Array).buffer,
    (bytes as Uint8Array).byteOffset,
    (bytes as Uint8Array).byteLength,
  );
  const total = input.byteLength;
  if (total < 8) fail(`file is ${total} bytes, too short for the 8-byte header length`);

  const view = new DataView(input.buffer, input.byteOffset, input.byteLength);
  const headerLength = view.getBigUint64(0, true);
  if (headerLength > BigInt(SAFETENSORS_MAX_HEADER_BYTES)) {
    fail(`header length ${headerLength} exceeds the limit of ${SAFETENSORS_MAX_HEADER_BYTES} bytes`);
  }
  const n = Number(headerLength);
  if (n > total - 8) {
    fail(`header length ${n} is larger than the ${total - 8} bytes that follow the length field`);
  }

  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(input.subarray(8, 8 + n));
  } catch {
    fail('header is not valid UTF-8');
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    fail(`header is not valid JSON: ${(e as Error).message}`);
  }
  if (!isPlainObject(header)) fail(`header must be a JSON object, got ${describe(header)}`);
  checkDuplicateKeys(text);

  // __metadata__
  const metadata: Record<string, string> = {};
  if (hasOwn(header, METADATA_KEY) && header[METADATA_KEY] !== null) {
    const meta = header[METADATA_KEY];
    if (!isPlainObject(meta)) fail(`"${METADATA_KEY}" must be an object of strings, got ${describe(meta)}`);
    for (const k of Object.keys(meta)) {
      const v = meta[k];
      if (typeof v !== 'string')
        fail(`"${METADATA_KEY}" value for key ${q(k)} must be a string, got ${describe(v)}`);
      setOwn(metadata, k, v);
    }
  }

  // entries
  const dataStart = 8 + n;
  const dataLength = total - dataStart;
  const entries: Entry[] = [];
  for (const name of Object.keys(header)) {
    if (name === METADATA_KEY) continue;
    entries.push(parseEntry(name, header[name], dataLength));
  }

  // the byte buffer must be covered exactly, in order of offsets
  const byOffset = entries.slice().sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  let prev: Entry | undefined;
  for (const e of byOffset) {
    if (e.begin > covered) {
      fail(
        `tensor ${q(e.name)}: data_offsets [${e.begin}, ${e.end}] leave a gap: bytes ${covered}..${e.begin} of the byte buffer belong to no tensor`,
      );
    }
    if (e.begin < covered) {
      fail(
        `tensor ${q(e.name)}: data_offsets [${e.begin}, ${e.end}] overlap tensor ${q(prev!.name)} [${prev!.begin}, ${prev!.end}]`,
      );
    }
    covered = e.end;
    prev = e;
  }
  if (covered !== dataLength) {
    fail(
      `byte buffer has ${dataLength - covered} trailing bytes (${covered}..${dataLength}) that belong to no tensor`,
    );
  }

  checkNameConflicts(entries.map((e) => e.name));

  // value ranges of the integer types that do not always fit in int32
  for (const e of entries) checkIntRange(e, view, dataStart);

  // everything is valid: allocate and convert
  const tensors: Record<string, RawTensor> = {};
  for (const e of entries) setOwn(tensors, e.name, convert(e, input, dataStart));
  return { tensors, metadata };
}

function parseEntry(name: string, info: unknown, dataLength: number): Entry {
  const where = `tensor ${q(name)}`;
  if (!isPlainObject(info)) fail(`${where}: header entry must be an object, got ${describe(info)}`);
  for (const field of ['dtype', 'shape', 'data_offsets']) {
    if (!hasOwn(info, field)) fail(`${where}: header entry is missing "${field}"`);
  }
  const dtype = info.dtype;
  if (typeof dtype !== 'string') fail(`${where}: "dtype" must be a string, got ${describe(dtype)}`);
  if (!hasOwn(ITEM_SIZE, dtype)) {
    if (UNSUPPORTED_DTYPES.has(dtype)) fail(`${where}: dtype ${JSON.stringify(dtype)} is not supported`);
    fail(`${where}: unknown dtype ${JSON.stringify(dtype)}`);
  }
  const st = dtype as StDType;
  const numel = checkShape(info.shape, where);
  const shape = (info.shape as number[]).slice();

  const offsets = info.data_offsets;
  if (!Array.isArray(offsets) || offsets.length !== 2) {
    fail(`${where}: "data_offsets" must be an array [begin, end], got ${JSON.stringify(offsets)}`);
  }
  for (const o of offsets) {
    if (typeof o !== 'number' || !Number.isSafeInteger(o) || o < 0) {
      fail(`${where}: data_offsets ${JSON.stringify(offsets)} must be non-negative integers`);
    }
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end) fail(`${where}: data_offsets [${begin}, ${end}] have begin > end`);
  if (end > dataLength) {
    fail(
      `${where}: data_offsets [${begin}, ${end}] are out of range: the byte buffer is ${dataLength} bytes`,
    );
  }
  const size = ITEM_SIZE[st];
  const expected = numel * size;
  if (expected !== end - begin) {
    fail(
      `${where}: dtype ${st} with shape ${shapeString(shape)} needs ${expected} bytes but data_offsets [${begin}, ${end}] span ${end - begin}`,
    );
  }
  return { name, dtype: st, shape, numel, begin, end };
}

/**
 * `JSON.parse` keeps the last of duplicate keys silently; this linear scan over the (already valid) JSON text
 * finds duplicates in any object of the header.
 */
function checkDuplicateKeys(text: string): void {
  interface Frame {
    keys: Set<string> | null; // null for arrays
    expectKey: boolean;
    lastKey: string;
    path: string[];
  }
  const stack: Frame[] = [];
  const len = text.length;
  for (let i = 0; i < len; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      let j = i + 1;
      for (;;) {
        j = text.indexOf('"', j);
        let backslashes = 0;
        for (let k = j - 1; text.charCodeAt(k) === 0x5c; k--) backslashes++;
        if (backslashes % 2 === 0) break;
        j++;
      }
      const top = stack[stack.length - 1];
      if (top?.keys && top.expectKey) {
        const raw = text.slice(i + 1, j);
        const key = raw.includes('\\') ? (JSON.parse(`"${raw}"`) as string) : raw;
        if (top.keys.has(key)) {
          if (top.path.length === 0) fail(`header has duplicate tensor name ${q(key)}`);
          fail(
            `header entry ${q(top.path[0]!)} has duplicate key ${q([...top.path.slice(1), key].join('.'))}`,
          );
        }
        top.keys.add(key);
        top.lastKey = key;
        top.expectKey = false;
      }
      i = j;
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      const top = stack[stack.length - 1];
      const path = top ? (top.keys ? [...top.path, top.lastKey] : top.path) : [];
      stack.push({ keys: c === 0x7b ? new Set() : null, expectKey: true, lastKey: '', path });
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
    } else if (c === 0x2c /* , */) {
      const top = stack[stack.length - 1];
      if (top) top.expectKey = true;
    }
  }
}

function checkIntRange(e: Entry, view: DataView, dataStart: number): void {
  const dtype = e.dtype;
  if (dtype !== 'I64' && dtype !== 'U64' && dtype !== 'U32') return;
  const base = dataStart + e.begin;
  const step = ITEM_SIZE[dtype];
  for (let i = 0; i < e.numel; i++) {
    const off = base + i * step;
    const lo = view.getInt32(off, true);
    let ok: boolean;
    if (dtype === 'U32') ok = lo >= 0;
    else {
      const hi = view.getInt32(off + 4, true);
      ok = dtype === 'I64' ? hi === lo >> 31 : hi === 0 && lo >= 0;
    }
    if (!ok) {
      const value =
        dtype === 'U32'
          ? view.getUint32(off, true)
          : dtype === 'I64'
            ? view.getBigInt64(off, true)
            : view.getBigUint64(off, true);
      fail(`tensor ${q(e.name)}: ${dtype} value ${value} at index ${i} does not fit in int32`);
    }
  }
}

/**
 * A typed-array-ready view of a tensor's bytes in host order: a view into the input when it is aligned and the host
 * is little-endian (only ever read, never returned), otherwise an aligned copy.
 */
function source(
  input: Uint8Array,
  abs: number,
  nbytes: number,
  size: number,
): { buffer: ArrayBufferLike; offset: number } {
  const offset = input.byteOffset + abs;
  if (LITTLE_ENDIAN_HOST && offset % size === 0) return { buffer: input.buffer, offset };
  const copy = input.slice(abs, abs + nbytes);
  if (!LITTLE_ENDIAN_HOST) byteSwap(copy, size);
  return { buffer: copy.buffer, offset: 0 };
}

function convert(e: Entry, input: Uint8Array, dataStart: number): RawTensor {
  const shape = e.shape;
  const n = e.numel;
  const abs = dataStart + e.begin;
  const nbytes = e.end - e.begin;
  const size = ITEM_SIZE[e.dtype];

  // Direct dtypes: one copy, which becomes the output.
  if (e.dtype === 'F32' || e.dtype === 'I32') {
    const copy = input.slice(abs, abs + nbytes);
    if (!LITTLE_ENDIAN_HOST) byteSwap(copy, 4);
    return e.dtype === 'F32'
      ? { dtype: 'float32', shape, data: new Float32Array(copy.buffer, 0, n) }
      : { dtype: 'int32', shape, data: new Int32Array(copy.buffer, 0, n) };
  }

  const { buffer, offset } = source(input, abs, nbytes, size);
  if (FLOAT_SOURCES.has(e.dtype)) {
    const out = new Float32Array(n);
    const bits = new Uint32Array(out.buffer);
    switch (e.dtype) {
      case 'F64':
        out.set(new Float64Array(buffer, offset, n));
        break;
      case 'BF16': {
        const src = new Uint16Array(buffer, offset, n);
        for (let i = 0; i < n; i++) bits[i] = src[i]! << 16;
        break;
      }
      case 'F16':
      case 'F8_E4M3':
      case 'F8_E5M2': {
        const half = e.dtype === 'F16';
        const src = half ? new Uint16Array(buffer, offset, n) : new Uint8Array(buffer, offset, n);
        const table = half
          ? minifloatTable(5, 10)
          : e.dtype === 'F8_E5M2'
            ? minifloatTable(5, 2)
            : minifloatTable(4, 3, true);
        for (let i = 0; i < n; i++) bits[i] = table[src[i]!]!;
        break;
      }
    }
    return { dtype: 'float32', shape, data: out };
  }

  const out = new Int32Array(n);
  switch (e.dtype) {
    case 'I8':
      out.set(new Int8Array(buffer, offset, n));
      break;
    case 'U8':
      out.set(new Uint8Array(buffer, offset, n));
      break;
    case 'BOOL': {
      const src = new Uint8Array(buffer, offset, n);
      for (let i = 0; i < n; i++) out[i] = src[i] === 0 ? 0 : 1;
      break;
    }
    case 'I16':
      out.set(new Int16Array(buffer, offset, n));
      break;
    case 'U16':
      out.set(new Uint16Array(buffer, offset, n));
      break;
    case 'U32':
      out.set(new Int32Array(buffer, offset, n)); // range-checked: all values < 2^31
      break;
    case 'I64':
    case 'U64': {
      // Range-checked, so the value is its low 32-bit word (the first word on little-endian hosts).
      const src = new Int32Array(buffer, offset, 2 * n);
      const low = LITTLE_ENDIAN_HOST ? 0 : 1;
      for (let i = 0; i < n; i++) out[i] = src[2 * i + low]!;
      break;
    }
  }
  return { dtype: 'int32', shape, data: out };
}

// ---------------------------------------------------------------------------------------------------------------
// narrow float formats -> float32 bit patterns (exact; NaN payloads kept where they fit)

const minifloatTables = new Map<string, Uint32Array>();

/**
 * The float32 bit pattern of every value of a narrow float format with 1 sign, e exponent and m
 * mantissa bits (IEEE bias and subnormals): F16 (5, 10), F8_E5M2 (5, 2), F8_E4M3 (4, 3, fn).
 * An all-ones exponent is infinity or NaN with its payload kept, except in the fn ("finite")
 * formats, where only the all-ones pattern is NaN and the rest of that binade are numbers.
 */
function minifloatTable(e: number, m: number, fn = false): Uint32Array {
  const key = `${e},${m},${fn}`;
  let table = minifloatTables.get(key);
  if (table) return table;
  const bias = (1 << (e - 1)) - 1;
  const top = (1 << e) - 1;
  const scratch = new Float32Array(1);
  const scratchBits = new Uint32Array(scratch.buffer);
  table = new Uint32Array(1 << (1 + e + m));
  for (let h = 0; h < table.length; h++) {
    const exp = (h >> m) & top;
    const mant = h & ((1 << m) - 1);
    let bits: number;
    if (exp === top && (!fn || mant === (1 << m) - 1))
      bits = fn ? 0x7fc00000 : 0x7f800000 | (mant << (23 - m));
    else if (exp === 0) {
      scratch[0] = mant * 2 ** (1 - bias - m); // zero or subnormal: exact in float32
      bits = scratchBits[0]!;
    } else bits = ((exp + 127 - bias) << 23) | (mant << (23 - m));
    table[h] = ((h >> (e + m)) << 31) | bits;
  }
  minifloatTables.set(key, table);
  return table;
}

// ---------------------------------------------------------------------------------------------------------------
// trees

/** A nested structure of plain objects and arrays with leaves of type `T`. */
export type Tree<T> = T | Tree<T>[] | { [key: string]: Tree<T> };

/**
 * Flattens nested plain objects and arrays into `{ 'path.to.leaf': leaf }`, e.g. `{ layers: [{ w }, { b }] }` ->
 * `{ 'layers.0.w': w, 'layers.1.b': b }`.
 *
 * - `isLeaf` is asked first for every value, so leaves may themselves be objects or arrays.
 * - `undefined` values and array holes are skipped; empty objects and arrays contribute no keys (and therefore do
 *   not survive a round trip through {@link unflattenTree}).
 * - Keys containing '.' are rejected (they would be ambiguous), as are cycles, a root that is itself a leaf, and
 *   any other value (numbers, null, class instances, ...) that `isLeaf` does not accept.
 */
export function flattenTree<L>(tree: unknown, isLeaf: (x: unknown) => x is L): Record<string, L>;
export function flattenTree(tree: unknown, isLeaf: (x: unknown) => boolean): Record<string, unknown>;
export function flattenTree(tree: unknown, isLeaf: (x: unknown) => boolean): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (isLeaf(tree)) fail('flattenTree: the root is a leaf; wrap it in an object, e.g. { weight: x }');
  const ancestors = new Set<object>();
  const visit = (node: unknown, path: string): void => {
    const label = path === '' ? 'the root' : q(path);
    if (Array.isArray(node) || isPlainObject(node)) {
      if (ancestors.has(node)) fail(`flattenTree: cycle at ${label}`);
      ancestors.add(node);
      const keys = Array.isArray(node) ? Array.from(node, (_, i) => String(i)) : Object.keys(node);
      for (const key of keys) {
        if (key.includes('.'))
          fail(`flattenTree: key ${q(key)} under ${label} contains '.', the path separator`);
        const child = (node as Record<string, unknown>)[key];
        const childPath = path === '' ? key : `${path}.${key}`;
        if (isLeaf(child)) setOwn(out, childPath, child);
        else if (child !== undefined) visit(child, childPath);
      }
      ancestors.delete(node);
      return;
    }
    fail(
      `flattenTree: value at ${label} is neither a leaf nor a plain object or array (got ${describe(node)})`,
    );
  };
  visit(tree, '');
  return out;
}

class Group<T> {
  readonly children = new Map<string, Group<T> | Leaf<T>>();
  constructor(readonly firstKey: string) {}
}
class Leaf<T> {
  constructor(readonly value: T) {}
}

const INDEX_RE = /^(?:0|[1-9][0-9]*)$/;

/**
 * Inverse of {@link flattenTree}: splits keys on '.' and rebuilds nested objects; a group whose keys are exactly
 * '0'..'n-1' becomes an array. Rejects conflicting keys such as 'a' and 'a.b'.
 */
export function unflattenTree<T>(flat: Record<string, T>): { [key: string]: Tree<T> } | Tree<T>[] {
  if (!isPlainObject(flat)) fail(`unflattenTree: expected a plain object, got ${describe(flat)}`);
  const root = new Group<T>('');
  for (const key of Object.keys(flat)) {
    const parts = key.split('.');
    let node = root;
    for (let i = 0; i < parts.length - 1; i++) {
      const prefix = parts.slice(0, i + 1).join('.');
      const child = node.children.get(parts[i]!);
      if (child instanceof Leaf)
        fail(`unflattenTree: keys ${q(prefix)} and ${q(key)} conflict: ${q(prefix)} is a leaf`);
      if (child) node = child;
      else {
        const group = new Group<T>(key);
        node.children.set(parts[i]!, group);
        node = group;
      }
    }
    const last = parts[parts.length - 1]!;
    const existing = node.children.get(last);
    if (existing instanceof Group) {
      fail(`unflattenTree: keys ${q(key)} and ${q(existing.firstKey)} conflict: ${q(key)} is a leaf`);
    }
    node.children.set(last, new Leaf(flat[key] as T));
  }
  return build(root) as { [key: string]: Tree<T> } | Tree<T>[];
}

function build<T>(node: Group<T> | Leaf<T>): Tree<T> {
  if (node instanceof Leaf) return node.value;
  const n = node.children.size;
  let isArray = n > 0;
  for (const k of node.children.keys()) {
    if (!INDEX_RE.test(k) || Number(k) >= n) {
      isArray = false;
      break;
    }
  }
  if (isArray) {
    const arr: Tree<T>[] = new Array(n);
    for (const [k, child] of node.children) arr[Number(k)] = build(child);
    return arr;
  }
  const obj: { [key: string]: Tree<T> } = {};
  for (const [k, child] of node.children) setOwn(obj, k, build(child));
  return obj;
}
