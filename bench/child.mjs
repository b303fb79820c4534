// One implementation, one workload, in its own process: the parent (run.mjs) forks this with a
// JSON config, gets results over IPC, and kills it if a case runs past its time limit.

import { measure } from './lib/measure.mjs';
import { casesFor, inputsFor } from './workloads.mjs';

const cfg = JSON.parse(process.argv[2]);
// 'adjoint' | 'adjoint-webgpu' | 'adjoint-auto' | 'adjoint-wasm' | 'tfjs-wasm' | 'tfjs-cpu' | 'tfjs-webgpu'
const [lib, backend] = cfg.impl.split('-');
const send = (m) => new Promise((res) => process.send(m, res));
const note = (text) => send({ type: 'note', text });

// tfjs prints a banner suggesting tfjs-node; keep the bench output clean.
const origWarn = console.warn;
console.warn = (...a) => {
  if (typeof a[0] === 'string' && a[0].includes('tfjs-node')) return;
  origWarn(...a);
};

function timingFor(c) {
  const q = cfg.quick;
  const o = {
    warmupRuns: q ? 2 : 3,
    warmupMs: q ? 200 : 500,
    minReps: q ? 3 : 5,
    maxReps: q ? 10 : 30,
    budgetMs: q ? 800 : 2500,
    hardCapMs: q ? 6000 : 12000,
    slowMs: cfg.impl === 'tfjs-cpu' ? 20000 : 30000,
    slowPolicy: lib === 'adjoint' ? 'cold' : 'skip',
    slowWarmupRuns: cfg.webgpu ? 2 : 1, // a GPU's first call compiles its pipelines
    checkRuns: c.kind === 'mlp' ? 3 : 1,
  };
  if (c.heavy) {
    o.minReps = q ? 2 : 3;
    o.maxReps = q ? 5 : 10;
    o.hardCapMs = q ? 5000 : cfg.webgpu ? 20000 : 10000; // lavapipe: 6–10 s a rep at n = 2048
  }
  if (cfg.impl === 'tfjs-cpu' && c.heavy) {
    o.minReps = 1;
    o.maxReps = 2;
  }
  return o;
}

/** A result without its outputs; with the GPU counters' increase per timed rep, where probed. */
function summary(r) {
  const { outputs, probes, ...rest } = r;
  if (!probes || !r.times.length) return rest;
  const [a, b] = probes;
  return {
    ...rest,
    perRep: Object.fromEntries(Object.keys(b).map((k) => [k, (b[k] - a[k]) / r.times.length])),
  };
}

async function runCases(impl, cases, rowSuffix = '') {
  let prev = null; // previous case's median (ms), for the "would be too slow" prediction
  for (const c of cases) {
    if (cfg.skip?.includes(c.id)) continue;
    await send({ type: 'start', caseId: c.id });
    prev = await runCase(impl, c, prev, rowSuffix);
    await send({ type: 'end', caseId: c.id });
  }
}

/** Runs every row of one case; returns the time (ms) to base the next case's prediction on. */
async function runCase(impl, c, prev, rowSuffix) {
  const opts = { ...timingFor(c), probe: cfg.webgpu ? impl.counters : undefined };
  const predictSkip = cfg.impl === 'tfjs-cpu' || (lib === 'adjoint' && cfg.skipAdjointSlow);
  if (predictSkip && prev !== null && c.grow) {
    const predicted = prev * c.grow;
    if (predicted > opts.slowMs) {
      await send({
        type: 'result',
        caseId: c.id,
        row: cfg.impl + rowSuffix,
        status: 'skipped',
        predictedMs: predicted,
      });
      return predicted;
    }
  }
  let prepared;
  try {
    prepared = impl.prepare(c, inputsFor(c), cfg.impl + rowSuffix, (t) => note(`${c.id}: ${t}`));
  } catch (e) {
    await send({
      type: 'result',
      caseId: c.id,
      row: cfg.impl + rowSuffix,
      status: 'error',
      error: errText(e),
    });
    return null;
  }
  for (const { row, run, how } of prepared.rows) {
    let r;
    try {
      r = await measure(run, opts);
    } catch (e) {
      r = { status: 'error', error: errText(e), outputs: [] };
    }
    if (r.status === 'ok' || r.status === 'cold') prev = r.times.length ? median(r.times) : r.firstMs;
    else if (r.status === 'skipped') prev = r.firstMs;
    await send({ type: 'result', caseId: c.id, row, ...summary(r), how: how?.(), outputs: r.outputs.flat() });
  }
  try {
    prepared.dispose?.();
  } catch {}
  return prev;
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function errText(e) {
  const msg = `${e?.name ?? 'Error'}: ${e?.message ?? String(e)}`;
  return msg.length > 300 ? `${msg.slice(0, 300)}…` : msg;
}

async function main() {
  const cases = casesFor(cfg.workload, cfg);
  if (lib === 'adjoint') {
    const impl = await import('./impl/adjoint.mjs');
    if (cfg.workload === 't') {
      // Worker-pool scaling: the same process, init({ threads }) called again to switch.
      const base = await impl.setup({});
      await send({ type: 'info', info: base });
      for (const n of cfg.threadCounts) {
        const st = await impl.setThreads(n);
        await send({ type: 'threads', threads: n, ...st });
        if (st.error || st.backend === 'reference') {
          for (const c of cases)
            await send({ type: 'result', caseId: c.id, row: `adjoint@${n}`, status: 'n/a', error: st.error });
          continue;
        }
        await runCases(impl, cases, `@${n}`);
      }
    } else {
      const info = await impl.setup({ threads: cfg.threads, gpuBackend: backend });
      await send({ type: 'info', info });
      await runCases(impl, cases);
    }
  } else {
    const impl = await import('./impl/tfjs.mjs');
    const info = await impl.setup({ backend });
    await send({ type: 'info', info });
    await runCases(impl, cases);
  }
  await send({ type: 'done' });
}

main().then(
  () => process.exit(0),
  async (e) => {
    await send({ type: 'fatal', error: errText(e), stack: e?.stack });
    process.exit(1);
  },
);
