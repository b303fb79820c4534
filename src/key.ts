/**
 * Serializes attribute values for cache keys. JSON.stringify would write Infinity, -Infinity and
 * NaN all as null and -0 as 0, so graphs differing only in such a constant would share a key.
 */
export function keyOf(value: unknown): string {
  return JSON.stringify(value, (_k, v) =>
    typeof v === 'number' && (!Number.isFinite(v) || Object.is(v, -0))
      ? `#${Object.is(v, -0) ? '-0' : String(v)}`
      : v,
  );
}
