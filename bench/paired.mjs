// Paired A/B timing of two adjoint configurations: adjoint 'auto' (the Dawn GPU offered) against
// adjoint 'wasm' on the rows of `npm run bench -- --webgpu`. Both run at once, each in its own
// warm process, and take turns rep by rep (A, B, A, B ...), so a change in the machine's load
// during the run falls on both alike; run.mjs instead runs one implementation after the other,
// minutes apart, which on a shared machine moves identical code by up to 2×.
//
//   npm run build && node bench/paired.mjs [--reps 200] [--only a,b,c,d] [--quick] [--threads N]
//
// Prints per case the median of each side's reps, their ratio, and how the two medians of the
// first and second halves of the reps compare (a check of the method: a ratio inside that spread
// is noise). The GPU counters are read after the reps: 'auto' reports how many dispatches it sent.
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { arg } from './lib/args.mjs';
import { casesFor, inputsFor } from './workloads.mjs';

if (process.argv[2] === '--child') await child(process.argv[3]);
else await parent();

async function parent() {
  const reps = Number(arg('reps', 200));
  const only = arg('only', 'a,b,c,d').split(',');
  const quick = process.argv.includes('--quick');
  const threads = arg('threads') === undefined ? undefined : Number(arg('threads'));
  // --sides wasm,wasm: the same configuration twice, to see how far apart identical code lands
  const sides = arg('sides', 'auto,wasm').split(',');
  if (sides.length !== 2 || !sides.every((x) => ['auto', 'wasm', 'webgpu'].includes(x)))
    throw new Error(`--sides: two of auto, wasm, webgpu, got '${sides.join(',')}'`);
  const kids = sides.map((side, i) => {
    const p = fork(fileURLToPath(import.meta.url), ['--child', side], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const waiting = [];
    p.on('message', (m) => waiting.shift()?.(m));
    p.on('exit', (code) => {
      for (const w of waiting.splice(0)) w({ error: `the ${side} process exited (${code})` });
    });
    const ask = (m) =>
      new Promise((resolve, reject) => {
        waiting.push((r) => (r.error ? reject(new Error(`${side}: ${r.error}`)) : resolve(r)));
        p.send(m);
      });
    return { side: `${side}${sides[0] === sides[1] ? ` ${i + 1}` : ''}`, p, ask };
  });
  const infos = await Promise.all(kids.map((k) => k.ask({ type: 'setup', threads })));
  for (const [i, k] of kids.entries()) console.log(`${k.side}: ${JSON.stringify(infos[i])}`);
  const [A, B] = kids.map((k) => k.side);
  console.log(`\n${reps} reps a side, alternating; median ms (first half / second half), ${A} ÷ ${B}\n`);
  console.log(`| case | ${A} | ${B} | ${A} ÷ ${B} | halves: ${A} ÷ ${B} | GPU dispatches (${A}) |`);
  console.log('|---|---:|---:|---:|---|---:|');
  for (const w of only)
    for (const c of casesFor(w, { quick, webgpu: true })) {
      const [{ rows }] = await Promise.all(
        kids.map((k) => k.ask({ type: 'prepare', workload: w, caseId: c.id })),
      );
      for (let row = 0; row < rows.length; row++) {
        const times = [[], []];
        const n = c.heavy ? Math.max(6, Math.round(reps / 4)) : reps;
        const before = await Promise.all(kids.map((k) => k.ask({ type: 'counters' })));
        for (let r = 0; r < n; r++)
          for (const k of r % 2 ? [...kids].reverse() : kids)
            times[kids.indexOf(k)].push((await k.ask({ type: 'rep', row })).ms);
        const after = await Promise.all(kids.map((k) => k.ask({ type: 'counters' })));
        const med = (xs) => {
          const s = [...xs].sort((x, y) => x - y);
          const m = s.length >> 1;
          return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
        };
        const half = (xs, h) => xs.slice(h * (xs.length >> 1), h ? xs.length : xs.length >> 1);
        const ratio = (h) =>
          h === undefined ? med(times[0]) / med(times[1]) : med(half(times[0], h)) / med(half(times[1], h));
        console.log(
          `| ${w} ${c.label}${rows[row] ? `, ${rows[row]}` : ''} | ${med(times[0]).toFixed(3)} | ${med(times[1]).toFixed(3)} | ${ratio().toFixed(3)} | ${ratio(0).toFixed(3)} / ${ratio(1).toFixed(3)} | ${after[0].dispatches - before[0].dispatches} |`,
        );
      }
    }
  for (const k of kids) k.p.kill();
}

async function child(side) {
  const impl = await import('./impl/adjoint.mjs');
  let rows = [];
  const reply = (m) => process.send(m);
  process.on('message', async (m) => {
    try {
      if (m.type === 'setup') reply(await impl.setup({ gpuBackend: side, threads: m.threads }));
      else if (m.type === 'prepare') {
        const c = casesFor(m.workload, { webgpu: true }).find((x) => x.id === m.caseId);
        rows = impl.prepare(c, inputsFor(c), `adjoint-${side}`).rows;
        // warm-up, as run.mjs's: 3 runs and at least 500 ms (plans compiled, weights resident, JS optimized)
        for (const r of rows) {
          const t0 = performance.now();
          for (let i = 0; i < 3 || performance.now() - t0 < 500; i++) await r.run();
        }
        reply({ rows: rows.map((r) => r.row.replace(`adjoint-${side}`, '').replace(/^-/, '')) });
      } else if (m.type === 'rep') {
        const t0 = performance.now();
        await rows[m.row].run();
        reply({ ms: performance.now() - t0 });
      } else if (m.type === 'counters') reply({ dispatches: impl.counters().gpuDispatches });
    } catch (e) {
      reply({ error: `${e?.name ?? 'Error'}: ${e?.message ?? e}` });
    }
  });
}
