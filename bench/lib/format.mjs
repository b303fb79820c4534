// Number formatting and aligned Markdown tables (readable in a terminal, pasteable into docs).

export function fmtMs(ms) {
  if (ms === undefined || ms === null || !Number.isFinite(ms)) return '—';
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  if (ms >= 100) return `${ms.toFixed(0)} ms`;
  if (ms >= 10) return `${ms.toFixed(1)} ms`;
  if (ms >= 1) return `${ms.toFixed(2)} ms`;
  return `${ms.toFixed(3)} ms`;
}

export function fmtNum(x) {
  if (x === undefined || x === null || !Number.isFinite(x)) return '—';
  const a = Math.abs(x);
  if (a >= 1e6) return x.toExponential(2);
  if (a >= 100) return x.toFixed(0);
  if (a >= 10) return x.toFixed(1);
  if (a >= 1) return x.toFixed(2);
  return x.toPrecision(2);
}

export function fmtRatio(x) {
  if (x === undefined || x === null || !Number.isFinite(x)) return '—';
  if (x >= 100) return `${x.toFixed(0)}×`;
  if (x >= 10) return `${x.toFixed(1)}×`;
  if (x >= 0.1) return `${x.toFixed(2)}×`;
  return `${x.toPrecision(2)}×`;
}

export function fmtDiff(d) {
  if (d === undefined || d === null) return '—';
  if (!Number.isFinite(d)) return String(d);
  if (d === 0) return '0';
  return d.toExponential(1);
}

/** rows: array of arrays of strings; align: per column 'l' | 'r'. */
export function table(header, rows, align = []) {
  const all = [header, ...rows];
  const width = header.map((_, j) => Math.max(...all.map((r) => [...String(r[j] ?? '')].length)));
  const pad = (s, j) => {
    s = String(s ?? '');
    const fill = ' '.repeat(width[j] - [...s].length);
    return align[j] === 'r' ? fill + s : s + fill;
  };
  const line = (r) => `| ${r.map(pad).join(' | ')} |`;
  const sep = `|${width.map((w, j) => (align[j] === 'r' ? `${'-'.repeat(w + 1)}:` : `${'-'.repeat(w + 2)}`)).join('|')}|`;
  return [line(header), sep, ...rows.map(line)].join('\n');
}
