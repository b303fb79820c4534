import { devices } from './devices';
import { placementPolicy } from './placement';

/**
 * Values keyed by a graph's structure as numbers (see realize.ts's snapshot): buckets by hash,
 * exact comparison within a bucket, least recently used evicted past `max` entries.
 */
export class StructureCache<V> {
  private readonly buckets = new Map<number, { codes: readonly number[]; value: V }[]>();
  private count = 0;

  constructor(private readonly max: number) {}

  get(codes: readonly number[]): V | undefined {
    const h = hashCodes(codes);
    const bucket = this.buckets.get(h);
    if (!bucket) return undefined;
    // most recently used last
    this.buckets.delete(h);
    this.buckets.set(h, bucket);
    return bucket.find((e) => sameCodes(e.codes, codes))?.value;
  }

  set(codes: readonly number[], value: V): void {
    const h = hashCodes(codes);
    const bucket = this.buckets.get(h);
    const hit = bucket?.find((e) => sameCodes(e.codes, codes));
    if (hit) {
      hit.value = value;
      return;
    }
    if (bucket) bucket.push({ codes, value });
    else this.buckets.set(h, [{ codes, value }]);
    if (++this.count > this.max) {
      const [oldest, entries] = this.buckets.entries().next().value as [
        number,
        { codes: number[]; value: V }[],
      ];
      entries.shift();
      if (entries.length === 0) this.buckets.delete(oldest);
      this.count--;
    }
  }
}

/** Codes for what a compiled program depends on besides the graph: the devices in use and the forced GPU threshold. */
export function placementCodes(): number[] {
  const forced = placementPolicy.gpuMinWork;
  return [devices().epoch, forced === null ? 0 : 1, forced ?? 0];
}

function hashCodes(codes: readonly number[]): number {
  let h = 0x811c9dc5;
  for (const c of codes) h = Math.imul(h ^ c, 0x01000193);
  return h;
}

function sameCodes(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
