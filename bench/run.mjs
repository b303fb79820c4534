#!/usr/bin/env node
// adjoint benchmark harness: adjoint vs TensorFlow.js (wasm and cpu backends), side by side, in
// one run; with --webgpu, adjoint's 'webgpu' backend vs TF.js's WebGPU backend and adjoint's
// 'auto' placement vs 'wasm'. Each (workload, implementation) runs in its own child process
// (bench/child.mjs), one at a time, so a crash, a hang or a slow case in one of them costs only
// its own rows.
//
//   node bench/run.mjs [--quick] [--webgpu] [--only a,b,c,d,t] [--impl adjoint,tfjs-wasm,tfjs-cpu]
//                      [--threads N] [--skip-adjoint-slow] [--case-timeout S] [--json out.json]
import { execFileSync, fork } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fmtDiff, fmtMs, fmtNum, fmtRatio, table } from './lib/format.mjs';
import { median } from './lib/measure.mjs';
import { casesFor, ORDER, WORKLOADS } from './workloads.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.dirname(here);
/**
 * The two kinds of run. impls: in run order, the reference (outputs compared against) first;
 * rows: table order (an adjoint row's -jit variant follows it); bases: the rows ratios are taken
 * against. --webgpu offers the Dawn GPU to every adjoint row ('wasm' leaves it unused).
 */
const MODES = {
  cpu: {
    impls: ['tfjs-wasm', 'adjoint', 'tfjs-cpu'],
    rows: ['adjoint', 'tfjs-wasm', 'tfjs-cpu'],
    ref: 'tfjs-wasm',
    bases: ['adjoint'],
    workloads: ORDER,
  },
  webgpu: {
    impls: ['adjoint-wasm', 'adjoint-webgpu', 'tfjs-webgpu', 'adjoint-auto'],
    rows: ['adjoint-webgpu', 'tfjs-webgpu', 'adjoint-auto', 'adjoint-wasm'],
    ref: 'adjoint-wasm',
    bases: ['adjoint-webgpu', 'adjoint-wasm'],
    workloads: ['a', 'b', 'c', 'd'],
  },
};
const modeOf = (opts) => MODES[opts.webgpu ? 'webgpu' : 'cpu'];
const rowRank = (mode, row) =>
  2 * mode.rows.indexOf(row.replace(/-(jit|kept)$/, '')) + (/-(jit|kept)$/.test(row) ? 1 : 0);

const USAGE = `usage: node bench/run.mjs [options]     (npm run bench -- [options])
  --quick              fewer reps; skips the two largest matmul sizes (one without --webgpu) and 2^24
  --webgpu             GPU run: adjoint 'webgpu' vs tfjs-webgpu, adjoint 'auto' vs 'wasm' (GPU offered
                       to both), on a (n = 256…2048), b (with readback), c, d; Dawn from npm 'webgpu'
  --only a,b,...       workloads: a matmul, b relu(a·b+c), c MLP SGD step, d 200-op chain,
                       t adjoint threads 1 vs 2 (default: all; a–d with --webgpu)
  --impl x,y           implementations: adjoint, tfjs-wasm, tfjs-cpu; with --webgpu adjoint-webgpu,
                       tfjs-webgpu, adjoint-auto, adjoint-wasm (default: all)
  --threads N          adjoint rows of a–d run after init({ threads: N }) (default: init() as is)
  --skip-adjoint-slow  skip an adjoint case predicted (from the previous size) to take > 30 s a rep
  --case-timeout S     kill a case that produces no result within S seconds (default 120)
  --relaxed-simd       start every child with node --experimental-wasm-relaxed-simd (Node 20 hides
                       relaxed SIMD behind it; adjoint picks its relaxed-SIMD kernels by detection)
  --json FILE          also write the raw numbers (every rep's time) to FILE
  --tfjs-layers        afterwards, run bench/tfjs-layers.mjs (tf.layers model.fit on TF.js's
                       'adjoint' backend vs tfjs-backend-wasm)
  -h, --help`;

function parseArgs(argv) {
  const o = {
    quick: false,
    webgpu: false,
    only: null,
    impls: null,
    threads: undefined,
    skipAdjointSlow: false,
    caseTimeoutS: 120,
    json: null,
    relaxedSimd: false,
    tfjsLayers: false,
  };
  const val = (i, flag) => {
    if (i + 1 >= argv.length) die(`${flag} needs a value`);
    return argv[i + 1];
  };
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i];
    let inline;
    if (a.startsWith('--') && a.includes('=')) {
      inline = a.slice(a.indexOf('=') + 1);
      a = a.slice(0, a.indexOf('='));
    }
    const take = () => (inline !== undefined ? inline : val(i++, a));
    switch (a) {
      case '--quick':
        o.quick = true;
        break;
      case '--webgpu':
        o.webgpu = true;
        break;
      case '--only':
        o.only = list(take()).map((s) => s.toLowerCase());
        break;
      case '--impl':
        o.impls = list(take());
        break;
      case '--threads': {
        const n = Number(take());
        if (!Number.isInteger(n) || n < 1) die('--threads needs a positive integer');
        o.threads = n;
        break;
      }
      case '--skip-adjoint-slow':
        o.skipAdjointSlow = true;
        break;
      case '--case-timeout': {
        const s = Number(take());
        if (!(s > 0)) die('--case-timeout needs a number of seconds');
        o.caseTimeoutS = s;
        break;
      }
      case '--relaxed-simd':
        o.relaxedSimd = true;
        break;
      case '--json':
        o.json = take();
        break;
      case '--tfjs-layers':
        o.tfjsLayers = true;
        break;
      case '-h':
      case '--help':
        console.log(USAGE);
        process.exit(0);
        break;
      default:
        die(`unknown option '${argv[i]}'\n${USAGE}`);
    }
  }
  // Checked after the loop: what is valid depends on --webgpu, wherever it stands.
  const mode = modeOf(o);
  o.only ??= [...mode.workloads];
  o.impls ??= [...mode.impls];
  for (const w of o.only)
    if (!mode.workloads.includes(w)) die(`--only: unknown workload '${w}' (use ${mode.workloads.join(',')})`);
  for (const m of o.impls)
    if (!mode.impls.includes(m)) die(`--impl: unknown implementation '${m}' (use ${mode.impls.join(',')})`);
  o.impls = mode.impls.filter((m) => o.impls.includes(m)); // run order: the reference first
  return o;
}

const list = (s) =>
  s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);

function die(msg) {
  console.error(msg);
  process.exit(2);
}

const log = (...a) => console.error(...a); // progress goes to stderr, tables to stdout

function sh(cmd, args) {
  try {
    return execFileSync(cmd, args, {
      cwd: root,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    return null;
  }
}

function machine() {
  let cpu = os.cpus()[0]?.model ?? '?';
  try {
    const m = fs.readFileSync('/proc/cpuinfo', 'utf8').match(/^model name\s*:\s*(.*)$/m);
    if (m) cpu = m[1].trim();
  } catch {}
  const commit = sh('git', ['rev-parse', '--short', 'HEAD']);
  const dirty = sh('git', [
    'status',
    '--porcelain',
    '--untracked-files=no',
    '--',
    'src',
    'assembly',
    'workers',
  ]);
  let distBuilt = null;
  try {
    distBuilt = fs.statSync(path.join(root, 'dist/index.js')).mtime.toISOString();
  } catch {}
  return {
    date: new Date().toISOString(),
    node: process.version,
    v8: process.versions.v8,
    platform: `${process.platform}-${process.arch}`,
    cpu,
    cores: os.cpus().length,
    memoryGiB: +(os.totalmem() / 2 ** 30).toFixed(1),
    commit,
    srcModified: dirty === null ? null : dirty.length > 0,
    distBuilt,
    loadavgStart: os.loadavg().map((x) => +x.toFixed(2)),
  };
}

// ---------------------------------------------------------------------------------------------
// child processes

/**
 * Runs one (workload, impl) child. Resolves to { info, notes, results: Map(caseId -> Map(row -> r)) }.
 * A case that sends nothing for caseTimeout seconds is killed and marked 'timeout'; the child
 * is then restarted for the cases still to run.
 */
async function runChild(workload, impl, opts, sink) {
  const cases = casesFor(workload, opts);
  const done = new Set();
  const out = { info: null, notes: [], threadInfo: [] };
  for (let attempt = 0; attempt <= cases.length; attempt++) {
    const cfg = {
      workload,
      impl,
      quick: opts.quick,
      webgpu: opts.webgpu,
      threads: opts.threads,
      threadCounts: [1, 2],
      skipAdjointSlow: opts.skipAdjointSlow,
      skip: [...done],
    };
    const r = await oneChild(cfg, opts, sink, out);
    for (const id of r.finished) done.add(id);
    if (r.outcome === 'done') break;
    const status = r.outcome === 'timeout' ? 'timeout' : 'crashed';
    const why =
      r.outcome === 'timeout'
        ? `no result within ${opts.caseTimeoutS} s, killed (--case-timeout)`
        : `${r.outcome}${r.tail ? `: ${r.tail}` : ''}`;
    // The threads workload switches init() inside one process: no restart, the rest is marked.
    if (workload === 't' || (!r.current && r.finished.length === 0)) {
      for (const c of cases) if (!done.has(c.id)) sink.markMissing(workload, c.id, impl, status, why);
      break;
    }
    if (r.current) {
      done.add(r.current);
      sink.markMissing(workload, r.current, impl, status, why);
    }
    if (done.size >= cases.length) break;
    log(`      restarting ${impl} for the remaining cases`);
  }
  return out;
}

function oneChild(cfg, opts, sink, out) {
  return new Promise((resolve) => {
    const child = fork(path.join(here, 'child.mjs'), [JSON.stringify(cfg)], {
      cwd: root,
      serialization: 'advanced', // typed arrays (outputs for the correctness check) over IPC
      execArgv: [
        '--max-old-space-size=8192',
        '--expose-gc',
        ...(opts.relaxedSimd ? ['--experimental-wasm-relaxed-simd'] : []),
      ],
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    const finished = [];
    let current = null;
    let outcome = null;
    let tail = '';
    let timer = null;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        outcome = 'timeout';
        child.kill('SIGKILL');
      }, opts.caseTimeoutS * 1000);
    };
    arm();
    const relay = (stream) => {
      let buf = '';
      stream.setEncoding('utf8');
      stream.on('data', (d) => {
        buf += d;
        const lines = buf.split('\n');
        buf = lines.pop();
        for (const l of lines) {
          if (!l.trim()) continue;
          tail = l.trim().slice(0, 240);
          log(`      [${cfg.impl}] ${l}`);
        }
      });
    };
    relay(child.stdout);
    relay(child.stderr);
    child.on('message', (m) => {
      arm();
      switch (m.type) {
        case 'info':
          out.info = m.info;
          break;
        case 'note':
          out.notes.push(m.text);
          log(`      note (${cfg.impl}): ${m.text}`);
          break;
        case 'threads':
          out.threadInfo.push(m);
          break;
        case 'start':
          current = m.caseId;
          break;
        case 'end':
          finished.push(m.caseId);
          current = null;
          break;
        case 'result':
          sink.add(cfg.workload, m.caseId, m);
          break;
        case 'fatal':
          tail = m.error;
          break;
        case 'done':
          outcome = 'done';
          break;
      }
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (outcome !== 'done' && outcome !== 'timeout')
        outcome = signal ? `killed by ${signal}` : `exit code ${code}`;
      resolve({ outcome, finished, current: outcome === 'done' ? null : current, tail });
    });
  });
}

// ---------------------------------------------------------------------------------------------
// results, correctness, tables

function relDiff(outs, refs) {
  if (!outs?.length || !refs?.length) return { diff: undefined };
  let worst = 0;
  const n = Math.min(outs.length, refs.length);
  for (let k = 0; k < n; k++) {
    const a = outs[k];
    const r = refs[k];
    if (a.length !== r.length) return { diff: Infinity, why: `length ${a.length} vs ${r.length}` };
    let maxRef = 0;
    let maxErr = 0;
    for (let i = 0; i < r.length; i++) {
      const ri = r[i];
      const ai = a[i];
      if (Number.isNaN(ai) !== Number.isNaN(ri)) return { diff: Number.NaN, why: `NaN at ${i}` };
      if (Math.abs(ri) > maxRef) maxRef = Math.abs(ri);
      const e = Math.abs(ai - ri);
      if (e > maxErr || Number.isNaN(e)) maxErr = e;
    }
    const d = maxErr / Math.max(maxRef, 1e-30);
    if (!(d <= worst)) worst = d;
  }
  return { diff: worst, compared: n, of: Math.max(outs.length, refs.length) };
}

function rowTime(r) {
  if (!r) return undefined;
  if (r.status === 'ok') return r.times.length ? median(r.times) : undefined;
  if (r.status === 'cold') return r.firstMs;
  return undefined;
}

function statusNote(r) {
  if (!r) return 'not run';
  switch (r.status) {
    case 'ok':
      return '';
    case 'cold':
      return `one cold rep only (first call > 30 s)`;
    case 'skipped':
      return r.predictedMs !== undefined
        ? `skipped (too slow): predicted ~${fmtMs(r.predictedMs)} a rep from the previous size`
        : `skipped (too slow): one rep took ${fmtMs(r.firstMs)}`;
    case 'n/a':
      return `n/a${r.error ? ` (${r.error})` : ''}`;
    default:
      return `${r.status}: ${r.error ?? ''}`.trim();
  }
}

function makeSink(opts) {
  const byCase = new Map(); // caseId -> Map(row -> result)
  const refs = new Map(); // caseId -> outputs of the reference row
  const pending = new Map(); // caseId -> [results waiting for the reference]
  const refRowFor = (workload) => (workload === 't' ? 'adjoint@1' : modeOf(opts).ref);
  const check = (workload, caseId, r) => {
    if (!r.outputs?.length) return;
    const ref = refs.get(caseId);
    if (!ref) return false;
    if (r.row === refRowFor(workload) || r.row === ref.row) return true;
    const { diff, why, compared, of } = relDiff(r.outputs, ref.outputs);
    r.maxRelDiff = diff;
    r.diffAgainst = ref.row;
    if (why) r.diffNote = why;
    else if (compared < of) r.diffNote = `compared ${compared} of ${of} outputs`;
    const tol = WORKLOADS[workload].tol;
    r.diffOk = Number.isFinite(diff) && diff <= tol;
    delete r.outputs;
    return true;
  };
  return {
    byCase,
    add(workload, caseId, m) {
      const r = { workload, ...m };
      delete r.type;
      if (!byCase.has(caseId)) byCase.set(caseId, new Map());
      byCase.get(caseId).set(r.row, r);
      const t = rowTime(r);
      const c = casesFor(workload, opts).find((x) => x.id === caseId);
      const tp =
        t !== undefined && c?.throughput ? ` ${fmtNum(c.throughput(t))} ${WORKLOADS[workload].unit}` : '';
      const isRef = r.row === refRowFor(workload) && r.outputs?.length;
      if (isRef) {
        refs.set(caseId, { row: r.row, outputs: r.outputs });
        delete r.outputs;
        for (const p of pending.get(caseId) ?? []) check(workload, caseId, p);
        pending.delete(caseId);
      } else if (check(workload, caseId, r) === false) {
        if (!pending.has(caseId)) pending.set(caseId, []);
        pending.get(caseId).push(r);
      }
      const reps = r.times?.length ? ` (median of ${r.times.length})` : '';
      const diff = r.maxRelDiff !== undefined ? `  max rel diff ${fmtDiff(r.maxRelDiff)}` : '';
      log(
        `    ${caseId.padEnd(14)} ${r.row.padEnd(18)} ${t !== undefined ? fmtMs(t) : statusNote(r)}${reps}${tp}${diff}`,
      );
    },
    markMissing(workload, caseId, impl, status, reason) {
      if (!byCase.has(caseId)) byCase.set(caseId, new Map());
      const rows =
        workload === 't'
          ? ['adjoint@1', 'adjoint@2']
          : impl.startsWith('adjoint') && caseId.startsWith('chain')
            ? [impl, `${impl}-jit`]
            : [impl];
      for (const row of rows) {
        if (byCase.get(caseId).has(row)) continue;
        byCase.get(caseId).set(row, { workload, caseId, row, status, error: reason });
        log(`    ${caseId.padEnd(14)} ${row.padEnd(18)} ${status}: ${reason}`);
      }
    },
    /** Rows still waiting for a reference that never came: compare with tfjs-cpu instead. */
    finishWorkload(workload) {
      for (const [caseId, list] of pending) {
        const rows = byCase.get(caseId);
        const alt = rows?.get('tfjs-cpu');
        for (const r of list) {
          if (alt?.outputs?.length && r.row !== 'tfjs-cpu') {
            refs.set(caseId, { row: 'tfjs-cpu', outputs: alt.outputs });
            check(workload, caseId, r);
          }
          delete r.outputs;
        }
        if (alt) delete alt.outputs;
      }
      pending.clear();
      for (const c of casesFor(workload, opts)) refs.delete(c.id);
    },
  };
}

function workloadTable(w, opts, sink) {
  const cases = casesFor(w, opts);
  const unit = WORKLOADS[w].unit;
  const mode = modeOf(opts);
  const adjointRows = mode.bases
    .flatMap((b) => [b, `${b}-jit`])
    .filter((row) => cases.some((c) => sink.byCase.get(c.id)?.has(row)));
  const header = ['case', 'implementation', 'median', 'min', 'reps', unit];
  for (const a of adjointRows) header.push(`ratio vs ${a}`);
  if (opts.webgpu) header.push('GPU dispatches / runs per rep');
  header.push(`max rel diff vs ${mode.ref}`, 'note');
  const rows = [];
  for (const c of cases) {
    const m = sink.byCase.get(c.id);
    if (!m) continue;
    const names = [...m.keys()].sort((x, y) => rowRank(mode, x) - rowRank(mode, y));
    let first = true;
    for (const name of names) {
      const r = m.get(name);
      const t = rowTime(r);
      const row = [first ? c.label : '', name];
      first = false;
      row.push(fmtMs(t));
      row.push(r.status === 'ok' && r.times.length ? fmtMs(Math.min(...r.times)) : '—');
      row.push(r.status === 'ok' ? String(r.times.length) : r.status === 'cold' ? '1 cold' : '—');
      row.push(t !== undefined ? fmtNum(c.throughput(t)) : '—');
      for (const a of adjointRows) {
        const ta = rowTime(m.get(a));
        row.push(t !== undefined && ta !== undefined ? (name === a ? '1' : fmtRatio(t / ta)) : '—');
      }
      if (opts.webgpu) row.push(gpuWork(r));
      let diff = '';
      if (name === mode.ref) diff = '(reference)';
      else if (r.maxRelDiff !== undefined) {
        diff = `${fmtDiff(r.maxRelDiff)} ${r.diffOk ? 'ok' : 'MISMATCH'}`;
        if (r.diffAgainst && r.diffAgainst !== mode.ref) diff += ` (vs ${r.diffAgainst})`;
      } else diff = '—';
      row.push(diff);
      const notes = [statusNote(r), r.diffNote].filter(Boolean);
      row.push(notes.join('; '));
      rows.push(row);
    }
  }
  const align = header.map((_h, j) => (j >= 2 && j < header.length - 2 ? 'r' : 'l'));
  return table(header, rows, align);
}

/** adjoint's GPU dispatches and runs (command encoders) per timed rep, from memoryStats(). */
function gpuWork(r) {
  const p = r?.perRep;
  const n = (x) => (Number.isInteger(x) ? String(x) : x.toFixed(1));
  return p ? `${n(p.gpuDispatches)} / ${n(p.gpuRuns)}` : '—';
}

function threadsTable(opts, sink) {
  const cases = casesFor('t', opts);
  const header = [
    'workload (adjoint only)',
    'threads=1',
    'threads=2',
    'speedup',
    'threads=2 vs threads=1 max rel diff',
    'note',
  ];
  const rows = [];
  for (const c of cases) {
    const m = sink.byCase.get(c.id) ?? new Map();
    const r1 = m.get('adjoint@1');
    const r2 = m.get('adjoint@2');
    const t1 = rowTime(r1);
    const t2 = rowTime(r2);
    const na = (r) => (r?.status === 'n/a' ? 'n/a' : undefined);
    const notes = [];
    if (r1 && r1.status !== 'ok' && r1.status !== 'n/a') notes.push(`t=1 ${statusNote(r1)}`);
    if (r2 && r2.status !== 'ok' && r2.status !== 'n/a') notes.push(`t=2 ${statusNote(r2)}`);
    rows.push([
      c.label,
      na(r1) ?? fmtMs(t1),
      na(r2) ?? fmtMs(t2),
      t1 !== undefined && t2 !== undefined ? fmtRatio(t1 / t2) : 'n/a',
      r2?.maxRelDiff !== undefined ? `${fmtDiff(r2.maxRelDiff)}` : '—',
      notes.join('; '),
    ]);
  }
  return table(header, rows, ['l', 'r', 'r', 'r', 'r', 'l']);
}

/** One line per case; with --webgpu one per case and variant (d has eager and jit rows). */
function summaryTable(opts, sink) {
  const header = opts.webgpu
    ? [
        'workload',
        'case',
        'adjoint-webgpu',
        'tfjs-webgpu',
        'tfjs-webgpu ÷ adjoint-webgpu',
        'GPU dispatches / runs per rep',
        'adjoint-auto',
        'adjoint-wasm',
        'adjoint-auto ÷ adjoint-wasm',
      ]
    : [
        'workload',
        'case',
        'adjoint',
        'adjoint-jit',
        'tfjs-wasm',
        'tfjs-cpu',
        'tfjs-wasm ÷ adjoint',
        'tfjs-cpu ÷ adjoint',
      ];
  const rows = [];
  for (const w of opts.only) {
    if (w === 't') continue;
    for (const c of casesFor(w, opts)) {
      const m = sink.byCase.get(c.id);
      if (!m) continue;
      const t = (row) => rowTime(m.get(row));
      const cell = (row) => {
        const r = m.get(row);
        if (!r) return '';
        const v = t(row);
        return v !== undefined ? fmtMs(v) : r.status === 'skipped' ? 'skipped' : r.status;
      };
      const ratio = (a, b) => (a !== undefined && b !== undefined ? fmtRatio(a / b) : '—');
      if (!opts.webgpu) {
        const best = [t('adjoint'), t('adjoint-jit')].filter((x) => x !== undefined);
        const ta = best.length ? Math.min(...best) : undefined;
        rows.push([
          w,
          c.label,
          cell('adjoint'),
          cell('adjoint-jit'),
          cell('tfjs-wasm'),
          cell('tfjs-cpu'),
          ratio(t('tfjs-wasm'), ta),
          ratio(t('tfjs-cpu'), ta),
        ]);
        continue;
      }
      for (const v of ['', '-jit']) {
        const [gpu, auto, wasm] = ['adjoint-webgpu', 'adjoint-auto', 'adjoint-wasm'].map((x) => x + v);
        if (v && ![gpu, auto, wasm].some((x) => m.has(x))) continue;
        rows.push([
          w,
          v ? `${c.label}, jit` : c.label,
          cell(gpu),
          cell('tfjs-webgpu'),
          ratio(t('tfjs-webgpu'), t(gpu)),
          gpuWork(m.get(gpu)),
          cell(auto),
          cell(wasm),
          ratio(t(auto), t(wasm)),
        ]);
      }
    }
  }
  return table(
    header,
    rows,
    header.map((_h, j) => (j < 2 ? 'l' : 'r')),
  );
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const meta = machine();
  const t0 = performance.now();
  const sink = makeSink(opts);
  const infos = {};
  const notes = [];
  const threadInfo = [];
  const cmd = `node bench/run.mjs ${process.argv.slice(2).join(' ')}`.trim();

  log(`adjoint bench — ${meta.cpu}, ${meta.cores} cores, Node ${meta.node}, commit ${meta.commit ?? '?'}`);
  log(`  ${cmd}`);
  for (const w of opts.only) {
    const impls = w === 't' ? (opts.impls.includes('adjoint') ? ['adjoint'] : []) : opts.impls;
    if (!impls.length) continue;
    log(`\n  ${WORKLOADS[w].title}`);
    for (const impl of impls) {
      const r = await runChild(w, impl, opts, sink);
      if (r.info) infos[impl] = { ...(infos[impl] ?? {}), ...r.info };
      for (const n of r.notes) notes.push(`${impl} (${w}): ${n}`);
      threadInfo.push(...r.threadInfo);
    }
    sink.finishWorkload(w);
  }
  const elapsedS = (performance.now() - t0) / 1000;
  meta.loadavgEnd = os.loadavg().map((x) => +x.toFixed(2));

  // ---- report (stdout)
  const mode = modeOf(opts);
  const ai = infos[opts.impls.find((m) => m.startsWith('adjoint'))]; // the adjoint rows' common facts
  const out = [];
  out.push(`# adjoint benchmark — ${meta.date}`);
  out.push('');
  out.push(`command: ${cmd}${opts.quick ? '   (quick mode)' : ''}`);
  out.push(
    `machine: ${meta.cpu}, ${meta.cores} cores, ${meta.memoryGiB} GiB; Node ${meta.node} (V8 ${meta.v8}), ${meta.platform}; ` +
      `load average (1/5/15 min) ${meta.loadavgStart.join(' ')} at start, ${meta.loadavgEnd.join(' ')} at end`,
  );
  out.push(
    `adjoint: commit ${meta.commit ?? '?'}${meta.srcModified ? ' + uncommitted changes under src/' : ''}, dist built ${meta.distBuilt ?? '?'}` +
      (ai
        ? `; backend '${ai.backend}', init threads ${ai.threads}` +
          `; nn/optim exports: ${ai.features?.nn ? 'nn.mlp' : 'no nn'}, ${ai.features?.optim ? 'optim.sgd' : 'no optim'}`
        : ''),
  );
  for (const [impl, i] of Object.entries(infos))
    if (i.adapter)
      out.push(
        `${impl}: ${i.gpuBackend ? `init({ backend: '${i.gpuBackend}', gpu }), GPU for placement: ${i.gpuPlaced ?? 'none'}` : `@tensorflow/tfjs ${i.tfjs} + tfjs-backend-webgpu ${i.webgpu}`}; adapter ${i.adapter} (Dawn, npm 'webgpu')`,
      );
  const busy = Math.max(meta.loadavgStart[0], meta.loadavgEnd[0]);
  if (busy > meta.cores)
    out.push(
      `  WARNING: the machine was busy (1-min load average up to ${busy} on ${meta.cores} cores): times are noisy ` +
        'and pessimistic; the min column is the less disturbed figure.',
    );
  if (ai?.initError)
    out.push(`  note: init({ threads: ${opts.threads} }) rejected: ${ai.initError}; ran with init()`);
  if (infos['tfjs-wasm'])
    out.push(
      `tfjs-wasm: @tensorflow/tfjs ${infos['tfjs-wasm'].tfjs}, SIMD ${infos['tfjs-wasm'].simd}, multithread ${infos['tfjs-wasm'].multithread}, threads ${infos['tfjs-wasm'].threads ?? '?'}`,
    );
  if (infos['tfjs-cpu'])
    out.push(`tfjs-cpu: @tensorflow/tfjs ${infos['tfjs-cpu'].tfjs} (pure JavaScript kernels)`);
  out.push(
    "times: median of the timed reps after warm-up, each rep = compute + readback of the result; ratio vs X = that row's time ÷ X's time (> 1: X is faster).",
  );
  if (opts.webgpu)
    out.push(
      'GPU dispatches / runs per rep: compute dispatches and graph runs (command encoders) adjoint issued per timed rep (memoryStats().gpuDispatches, gpuRuns).',
    );
  out.push(
    `max rel diff = max|x − ref| / max|ref| over the outputs, ref = ${mode.ref} on the same inputs; "ok" within the workload's float32 tolerance.`,
  );
  for (const w of opts.only) {
    if (!casesFor(w, opts).some((c) => sink.byCase.has(c.id))) continue;
    out.push('');
    out.push(`## ${WORKLOADS[w].title}`);
    const how = w === 'c' && [...(sink.byCase.get('mlp-step')?.values() ?? [])].find((r) => r.how)?.how;
    if (how) out.push(`adjoint: ${how}`);
    if (w === 't') {
      for (const ti of threadInfo) {
        const ts = Object.keys(ti.threadStats ?? {}).length
          ? ` memoryStats: ${JSON.stringify(ti.threadStats)}`
          : '';
        out.push(
          `init({ threads: ${ti.threads} }): ${ti.error ? `rejected — ${ti.error}` : 'accepted'}; backend '${ti.backend}'${ts}` +
            (ti.backend === 'reference' ? ' — the reference interpreter has no worker pool: n/a' : ''),
        );
      }
      out.push('');
      out.push(threadsTable(opts, sink));
      const r1 = casesFor('t', opts).map((c) => sink.byCase.get(c.id)?.get('adjoint@1'));
      const r2 = casesFor('t', opts).map((c) => sink.byCase.get(c.id)?.get('adjoint@2'));
      const sp = r1
        .map((r, i) => (rowTime(r) && rowTime(r2[i]) ? rowTime(r) / rowTime(r2[i]) : undefined))
        .filter((x) => x !== undefined);
      if (sp.length && Math.max(...sp) < 1.1)
        out.push(
          'note: threads=2 is not measurably faster than threads=1 — the option seems to have no effect yet.',
        );
      continue;
    }
    out.push(`throughput unit: ${WORKLOADS[w].unit}; tolerance for "ok": ${WORKLOADS[w].tol}`);
    out.push('');
    out.push(workloadTable(w, opts, sink));
  }
  if (opts.only.some((w) => w !== 't')) {
    out.push('');
    out.push(
      opts.webgpu
        ? '## Summary (median times; ratios: tfjs-webgpu ÷ adjoint-webgpu, adjoint-auto ÷ adjoint-wasm)'
        : '## Summary (median times; ratio = peer ÷ adjoint, using the faster adjoint row)',
    );
    out.push('');
    out.push(summaryTable(opts, sink));
  }
  if (notes.length) {
    out.push('');
    out.push('notes:');
    for (const n of notes) out.push(`  - ${n}`);
  }
  const mism = [];
  for (const [caseId, m] of sink.byCase)
    for (const [row, r] of m) if (r.diffOk === false) mism.push(`${caseId} ${row}`);
  if (mism.length) {
    out.push('');
    out.push(`WARNING: results outside tolerance: ${mism.join(', ')}`);
  }
  out.push('');
  out.push(`total wall time: ${elapsedS.toFixed(0)} s`);
  console.log(out.join('\n'));

  if (opts.json) {
    const results = [];
    for (const [caseId, m] of sink.byCase)
      for (const [row, r] of m) {
        const { outputs, ...rest } = r;
        const w = r.workload;
        const c = casesFor(w, opts).find((x) => x.id === caseId);
        const t = rowTime(r);
        results.push({
          workload: w,
          ...rest,
          caseId,
          row,
          medianMs: t,
          minMs: r.times?.length ? Math.min(...r.times) : undefined,
          throughput: t !== undefined && c?.throughput ? c.throughput(t) : undefined,
          unit: WORKLOADS[w].unit || undefined,
        });
      }
    const doc = {
      meta: { ...meta, command: cmd, options: opts, elapsedS, implementations: infos, threads: threadInfo },
      notes,
      results,
    };
    fs.writeFileSync(opts.json, `${JSON.stringify(doc, null, 2)}\n`);
    log(`\nraw numbers written to ${opts.json}`);
  }
}

async function mainAndLayers() {
  await main();
  if (parseArgs(process.argv.slice(2)).tfjsLayers)
    execFileSync(process.execPath, [path.join(here, 'tfjs-layers.mjs')], { stdio: 'inherit' });
}

mainAndLayers().catch((e) => {
  console.error(e);
  process.exit(1);
});
