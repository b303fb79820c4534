/**
 * Serializes attribute values for cache keys. Unlike JSON.stringify it keeps Infinity,
 * -Infinity, NaN and -0 apart (JSON writes the first three as null and -0 as 0, so graphs that
 * differ only in such a constant would share a key), and it is fast on the small objects and
 * arrays attributes are made of: it runs for every node of every realized graph.
 */
export function keyOf(v: unknown): string {
  switch (typeof v) {
    case 'number':
      return Number.isFinite(v) && !Object.is(v, -0) ? String(v) : `#${Object.is(v, -0) ? '-0' : String(v)}`;
    case 'string':
      return JSON.stringify(v);
    case 'object': {
      if (v === null) return 'null';
      if (Array.isArray(v)) {
        let s = '[';
        for (let i = 0; i < v.length; i++) s += (i ? ',' : '') + keyOf(v[i]);
        return `${s}]`;
      }
      let s = '{';
      let first = true;
      for (const k in v as Record<string, unknown>) {
        s += `${first ? '' : ','}${JSON.stringify(k)}:${keyOf((v as Record<string, unknown>)[k])}`;
        first = false;
      }
      return `${s}}`;
    }
    default:
      return String(v);
  }
}
