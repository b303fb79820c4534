// Timing: warm up (wasm starts on V8's baseline tier), then time repetitions until a rep count
// or a time budget is reached; report the median. Every timed call includes the readback.

const now = () => performance.now();

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * opts: {
 *   warmupRuns, warmupMs   — at least this many warm-up calls and this long (skipped when the first call is slow)
 *   slowWarmupRuns         — warm-up calls, the first included, when the first call is slow (default 1;
 *                            2 on a GPU, whose first call compiles pipelines)
 *   minReps, maxReps, budgetMs — timed reps: at least minReps, then until maxReps or budgetMs
 *   hardCapMs              — never start a rep that would take the timed phase past this
 *   slowMs, slowPolicy     — first call slower than slowMs: 'skip' (report it, no reps) or 'cold' (report it as the one rep)
 *   checkRuns              — how many leading outputs to keep for the correctness check
 *   probe                  — optional () => counters, read before and after the timed reps (→ probes)
 * }
 */
export async function measure(run, opts) {
  const outputs = [];
  const keep = (out) => {
    if (outputs.length < opts.checkRuns) outputs.push(out);
  };
  maybeGc();
  let t = now();
  keep(await run());
  const firstMs = now() - t;
  if (firstMs > opts.slowMs) {
    return {
      status: opts.slowPolicy === 'cold' ? 'cold' : 'skipped',
      firstMs,
      warmupRuns: 0,
      times: opts.slowPolicy === 'cold' ? [firstMs] : [],
      outputs,
    };
  }
  let warmupRuns = 1;
  const w0 = now() - firstMs;
  const fast = firstMs < 1000;
  const minWarmup = fast ? opts.warmupRuns : (opts.slowWarmupRuns ?? 1);
  while (warmupRuns < 5000 && (warmupRuns < minWarmup || (fast && now() - w0 < opts.warmupMs))) {
    keep(await run());
    warmupRuns++;
  }
  const before = opts.probe?.();
  const times = [];
  const start = now();
  for (;;) {
    const elapsed = now() - start;
    if (times.length >= opts.maxReps) break;
    if (times.length >= opts.minReps && elapsed >= opts.budgetMs) break;
    if (times.length >= 1 && elapsed + median(times) > opts.hardCapMs) break;
    t = now();
    const out = await run();
    times.push(now() - t);
    keep(out);
  }
  const probes = opts.probe ? [before, opts.probe()] : undefined;
  return { status: 'ok', firstMs, warmupRuns, times, outputs, probes };
}

function maybeGc() {
  if (typeof globalThis.gc === 'function') globalThis.gc();
}
