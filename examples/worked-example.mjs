/**
 * The worked example: f(x, y) = (x + y)^3 + x·y built three ways, differentiated node by node
 * in forward mode (d node / d x, sources to sink) and reverse mode (d f / d node, sink to
 * sources). `run(lib)` takes the library module so the tests can pass the sources in.
 */

/** Each builder returns the named nodes of its graph; the last one is f. */
export const builders = {
  'unary square node': (a, x, y) => {
    const s = a.add(x, y);
    const q = a.square(s);
    const c = a.mul(q, s);
    const p = a.mul(x, y);
    return { x, y, 's = x+y': s, 'q = square(s)': q, 'c = q·s': c, 'p = x·y': p, 'f = c+p': a.add(c, p) };
  },
  'shared node s': (a, x, y) => {
    const s = a.add(x, y);
    const ss = a.mul(s, s);
    const c = a.mul(ss, s);
    const p = a.mul(x, y);
    return { x, y, 's = x+y': s, 'ss = s·s': ss, 'c = ss·s': c, 'p = x·y': p, 'f = c+p': a.add(c, p) };
  },
  'tree (x+y repeated)': (a, x, y) => {
    const s1 = a.add(x, y);
    const s2 = a.add(x, y);
    const s3 = a.add(x, y);
    const m = a.mul(s1, s2);
    const c = a.mul(m, s3);
    const p = a.mul(x, y);
    return {
      x,
      y,
      's1 = x+y': s1,
      's2 = x+y': s2,
      's3 = x+y': s3,
      'm = s1·s2': m,
      'c = m·s3': c,
      'p = x·y': p,
      'f = c+p': a.add(c, p),
    };
  },
};

/** Value, forward table, reverse table and optimized node counts for each construction. */
export function run(a, x0 = 2, y0 = 3) {
  const results = [];
  for (const [name, build] of Object.entries(builders)) {
    const x0t = a.tensor(x0);
    const y0t = a.tensor(y0);
    // Fresh variables so the sweeps differentiate with respect to exactly these nodes.
    const x = a.add(x0t, 0);
    const y = a.add(y0t, 0);
    const nodes = build(a, x, y);
    const entries = Object.entries(nodes);
    const f = entries[entries.length - 1][1];
    const tape = a.recordTape([f], [x, y]);
    const tangents = a.forwardSweep(tape, [x, y], [a.tensor(1), a.tensor(0)]);
    const adjoints = a.reverseSweep(tape, [f], [a.tensor(1)]);
    const num = (t) => (t ? t.dataSync()[0] : 0);
    results.push({
      name,
      value: num(f),
      forward: entries.map(([k, t]) => [k, num(t), num(tangents.get(t))]),
      reverse: entries.map(([k, t]) => [k, num(adjoints.get(t))]).reverse(),
      dfdx: num(adjoints.get(x)),
      dfdy: num(adjoints.get(y)),
      recorded: tape.entries.length,
      graph: a.trace((xi, yi) => Object.values(build(a, xi, yi)).pop(), x0t, y0t),
    });
  }
  return results;
}

function table(rows, header) {
  const cells = [
    header,
    ...rows.map((r) => r.map((c) => (typeof c === 'number' ? String(+c.toFixed(6)) : c))),
  ];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => r[i].length)));
  return cells.map((r) => `  ${r.map((c, i) => c.padEnd(widths[i])).join('  ')}`).join('\n');
}

export function print(results, log = console.log) {
  for (const r of results) {
    log(`\n== f(x, y) = (x + y)^3 + x·y at x = 2, y = 3, built as: ${r.name}`);
    log(`value f = ${r.value}   df/dx = ${r.dfdx}   df/dy = ${r.dfdy}`);
    log('\nforward mode (tangent x = 1, y = 0), sources to sink:');
    log(table(r.forward, ['node', 'value', 'd node / d x']));
    log('\nreverse mode (adjoint of f = 1), sink to sources:');
    log(table(r.reverse, ['node', 'd f / d node']));
    log(
      `\nrecorded graph: ${r.recorded} nodes; after CSE, constant folding and dead-code removal: ${r.graph.size} nodes`,
    );
    log(r.graph.toString());
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const a = await import('../dist/index.js');
  print(run(a));
}
