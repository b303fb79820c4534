import { describe, expect, it } from 'vitest';
import { print, run } from '../examples/worked-example.mjs';
import * as a from '../src/index';

describe('worked example: f(x, y) = (x + y)^3 + x·y', () => {
  const results = run(a);

  it('all three constructions give the same value and derivatives in both modes', () => {
    for (const r of results) {
      expect(r.value).toBe(131);
      expect(r.dfdx).toBe(78);
      expect(r.dfdy).toBe(77);
      // Forward: d f / d x at the sink equals reverse: d f / d x at the source.
      expect(r.forward[r.forward.length - 1][2]).toBe(78);
      expect(r.reverse[0]).toEqual(['f = c+p', 1]);
    }
  });

  it('per-node derivatives match the hand-computed chain rule', () => {
    const shared = results.find((r) => r.name === 'shared node s')!;
    expect(shared.forward).toEqual([
      ['x', 2, 1],
      ['y', 3, 0],
      ['s = x+y', 5, 1],
      ['ss = s·s', 25, 10],
      ['c = ss·s', 125, 75],
      ['p = x·y', 6, 3],
      ['f = c+p', 131, 78],
    ]);
    const adj = Object.fromEntries(shared.reverse);
    expect(adj['s = x+y']).toBe(75); // 3 s^2
    expect(adj['ss = s·s']).toBe(5); // s
    expect(adj['p = x·y']).toBe(1);
    const tree = results.find((r) => r.name.startsWith('tree'))!;
    const tadj = Object.fromEntries(tree.reverse);
    // Each copy of x+y receives s^2 = 25; together 75, as the shared node does.
    expect(tadj['s1 = x+y'] + tadj['s2 = x+y'] + tadj['s3 = x+y']).toBe(75);
  });

  it('CSE turns the tree into the DAG: same node count as the shared-node graph', () => {
    const [square, shared, tree] = results;
    expect(tree.recorded).toBeGreaterThan(shared.recorded);
    expect(tree.graph.size).toBe(shared.graph.size);
    expect(square.graph.size).toBe(shared.graph.size);
    expect(tree.graph.toString()).toBe(shared.graph.toString());
  });

  it('prints both tables and the graph', () => {
    const lines: string[] = [];
    print(results, (s: string) => lines.push(s));
    const text = lines.join('\n');
    expect(text).toContain('forward mode');
    expect(text).toContain('reverse mode');
    expect(text).toContain('return %6');
  });
});
