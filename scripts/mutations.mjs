#!/usr/bin/env node
/**
 * Mutation check: do the tests notice deliberate bugs?
 *
 *   npm run test:mutations                     every mutation (estimated 10-15 minutes on 2 cores)
 *   npm run test:mutations -- matmul cse       only mutations whose name contains a filter
 *   npm run test:mutations -- --list           list them, checking each search text (no run)
 *   npm run test:mutations -- --keep           keep the scratch copies (and their vitest logs)
 *   npm run test:mutations -- --baseline       first run the selected test files unmutated;
 *                                              stop if any fails (a failing file catches everything)
 *   npm run test:mutations -- --timeout=300    seconds per mutation's vitest run (default 300)
 *
 * Each mutation (the MUTATIONS table below) is data: { name, file, find, replace, tests,
 * rebuild?, why }, or { name, edits: [{ file?, find, replace }], ... } for a bug that spans
 * several places. `find` must occur exactly once in its file: a mutation whose text has
 * moved or changed is reported as an ERROR, never skipped. `replace` is a string or a
 * function of the found text. Optional: `grep` (vitest -t: only tests whose full name matches),
 * `timeout` (seconds; a run that hangs past it counts as caught), `wasmTargets` (with
 * rebuild 'wasm': asconfig targets to build instead of all four; the pool only loads the
 * shared ones).
 *
 * The working tree (git-tracked files plus untracked, non-ignored ones, with src/wasm/ and
 * dist/ when present) is copied once into a base under the OS temp dir; node_modules is a
 * directory of symlinks into this checkout's node_modules (so vite's cache stays in the
 * copy). Missing kernels are built in the base (and stale ones rebuilt: build-wasm's mtime
 * check), and so is dist/ when a selected mutation needs it (its tests include one that
 * reads dist/, DIST_TESTS, or it rebuilds dist), from the sources in the base. Then, one at a
 * time, each mutation gets a fresh copy of the base, is applied, rebuilt if it says so
 * (rebuild 'wasm': `node scripts/build-wasm.mjs --force`; 'dist': `rollup -c`), and its
 * test files run there with vitest's JSON reporter. The tests must FAIL: CAUGHT lists the
 * failed tests, SURVIVED means the bug went unnoticed. A test file that does not exist, a
 * stale search text, a rebuild that fails or a `grep` that selects no test is an ERROR.
 *
 * Exit status: 0 when every mutation was caught; 1 when one survived or had an error.
 */
import { spawn, spawnSync } from 'node:child_process';
import {
  closeSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stripVTControlCharacters } from 'node:util';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Test files that read dist/ (the base then gets a dist/ freshly built from its sources). */
const DIST_TESTS = ['test/demo.test.ts', 'test/runtime-promises.test.ts'];

// ---------------------------------------------------------------------------------------------
// The mutations. Keep each one's test list short: the whole table has to run in ~15 minutes.

const MUTATIONS = [
  // ---- the test suite itself: a test that cannot fail is no test
  {
    name: 'kernels-test-matmul-call-deleted',
    file: 'test/kernels.test.ts',
    find: 'k.fillF32(pc, M * N, NaN);\n          k.matmul({ a: pa, b: pb, c: pc, M, N, K, transA: tA, transB: tB });',
    replace: 'k.fillF32(pc, M * N, NaN);',
    tests: ['test/kernels.test.ts'],
    grep: 'matmul: odd sizes',
    why: 'the matmul kernel test must fail when the kernel never runs (its output stays NaN)',
  },
  {
    name: 'kernels-test-sigmoid-expectations-wrong',
    file: 'test/kernels.test.ts',
    find: "check('sigmoid', [100, -100, 0, Infinity, -Infinity], [1, 0, 0.5, 1, 0]);",
    replace: "check('sigmoid', [100, -100, 0, Infinity, -Infinity], [7, 3, 9, -2, 0]);",
    tests: ['test/kernels.test.ts'],
    grep: 'special values',
    why: 'wrong expected special values must fail the comparison',
  },

  // ---- memory
  {
    name: 'wasm-backend-leaks-4k-per-run',
    file: 'src/backends/wasm/backend.ts',
    find: '    const outs: WasmStorage[] = [];\n',
    replace: '    const outs: WasmStorage[] = [];\n    this.kernels.alloc(4096); // never freed\n',
    tests: ['test/memory.test.ts'],
    why: 'a training loop leaking 4 KiB of wasm memory per realize must not look flat',
  },
  {
    name: 'finalizer-never-frees',
    file: 'src/tensor.ts',
    find: 'new FinalizationRegistry<Cell>(releaseCell)',
    replace: 'new FinalizationRegistry<Cell>(() => {})',
    tests: ['test/memory.test.ts'],
    why: 'unreachable tensors whose buffers are never reclaimed must show up as growth',
  },
  {
    name: 'oom-error-not-converted',
    file: 'src/backends/wasm/backend.ts',
    find: 'if (e instanceof WasmOutOfMemoryError) throw new OutOfMemoryError(',
    replace: 'if (e instanceof OutOfMemoryError) throw new OutOfMemoryError(',
    tests: ['test/memory.test.ts'],
    grep: 'out of memory',
    why: 'running out of wasm memory must surface as OutOfMemoryError (an AdjointError), not the raw allocator error',
  },
  {
    name: 'oom-leaks-buffers-allocated-before-it',
    file: 'src/backends/wasm/backend.ts',
    find: '    } catch (e) {\n      for (const o of outs) o.release();\n      throw e;\n',
    replace: '    } catch (e) {\n      throw e;\n',
    tests: ['test/memory.test.ts'],
    grep: 'out of memory',
    why: 'outputs allocated before a failed allocation (or a failing step) must be freed',
  },
  {
    name: 'allocator-split-at-unaligned-size',
    file: 'src/backends/wasm/memory.ts',
    find: 'this.freeStart[best] = ptr + size;',
    replace: 'this.freeStart[best] = ptr + bytes;',
    tests: ['test/kernels.test.ts'],
    grep: 'WasmAllocator',
    why: 'splitting a free block at the requested (unrounded) size leaves overlapping, misaligned blocks',
  },

  // ---- worker pool: task records (assembly/task.ts), partitioning, stall detection
  {
    name: 'task-where-and-fill-chunks-one-short',
    edits: [
      {
        file: 'assembly/task.ts',
        find: 'off(arg(rec, 6), u0, 1), n);',
        replace: 'off(arg(rec, 6), u0, 1), n - 1);',
      },
      {
        file: 'assembly/task.ts',
        find: 'fillRun(off(arg(rec, 0), u0, 1), arg(rec, 1), n);',
        replace: 'fillRun(off(arg(rec, 0), u0, 1), arg(rec, 1), n - 1);',
      },
    ],
    tests: ['test/workers.test.ts'],
    rebuild: 'wasm',
    wasmTargets: ['shared', 'relaxed-shared'],
    why: 'where and fill chunks that leave the last element of their range unwritten',
  },
  {
    name: 'task-reduce-split-changes-summation-order',
    edits: [
      {
        file: 'assembly/task.ts',
        find: "import { reduceAxis } from './reduce';",
        replace: "import { reduceAxis } from './reduce';\nimport { R_SUM } from './opcodes';",
      },
      {
        file: 'assembly/task.ts',
        find: '      reduceAxis(arg(rec, 0), off(arg(rec, 1), u0, len * inner), off(arg(rec, 2), u0, inner), n, len, inner);\n',
        replace: [
          '      if (u0 > 0 && arg(rec, 0) == R_SUM && inner == 1 && len > 1) {',
          "        // rows past a chunk boundary summed as two halves: not one thread's order",
          '        const h = len >> 1;',
          '        for (let r = u0; r < u1; r++) {',
          '          const row = off(arg(rec, 1), r, len);',
          '          reduceAxis(R_SUM, row, scratch, 1, h, 1);',
          '          reduceAxis(R_SUM, row + (<usize>h << 2), scratch + 4, 1, len - h, 1);',
          '          store<f32>(off(arg(rec, 2), r, 1), load<f32>(scratch) + load<f32>(scratch + 4));',
          '        }',
          '        return 0;',
          '      }',
          '      reduceAxis(arg(rec, 0), off(arg(rec, 1), u0, len * inner), off(arg(rec, 2), u0, inner), n, len, inner);',
          '',
        ].join('\n'),
      },
    ],
    tests: ['test/workers.test.ts'],
    rebuild: 'wasm',
    wasmTargets: ['shared', 'relaxed-shared'],
    why: 'a split sum must give the bits of the one-thread sum, not merely close numbers',
  },
  {
    name: 'task-softmax-rows-shifted',
    file: 'assembly/task.ts',
    find: 'else softmaxRows(off(arg(rec, 0), u0, cols), off(arg(rec, 1), u0, cols),',
    replace: 'else softmaxRows(off(arg(rec, 0), u0 > 0 ? u0 - 1 : 0, cols), off(arg(rec, 1), u0, cols),',
    tests: ['test/workers.test.ts'],
    rebuild: 'wasm',
    wasmTargets: ['shared', 'relaxed-shared'],
    why: 'softmax chunks after the first read the row before their own',
  },
  {
    name: 'task-norm-cotangent-not-offset',
    file: 'assembly/task.ts',
    find: 'const t = (flags & NORM_BACKWARD) != 0 ? off(arg(rec, 2), u0, cols) : <usize>arg(rec, 2);',
    replace: 'const t = <usize>arg(rec, 2);',
    tests: ['test/workers.test.ts'],
    rebuild: 'wasm',
    wasmTargets: ['shared', 'relaxed-shared'],
    why: "layerNormGrad chunks after the first read the first rows' cotangent",
  },
  {
    name: 'norm-backward-drops-mean',
    file: 'assembly/norm.ts',
    find: 'const m: f32 = rms ? 0 : a / <f32>cols;',
    replace: 'const m: f32 = 0;',
    tests: ['test/kernels.test.ts', 'test/backend-parity.test.ts'],
    rebuild: 'wasm',
    why: "layer norm's x-cotangent without the mean(h) term (right for rms only)",
  },
  {
    name: 'layer-norm-vjp-gamma-uses-x',
    file: 'src/ops/defs/norm.ts',
    find: 'xhat && o.sumTo(o.mul(ct, xhat), d),',
    replace: 'xhat && o.sumTo(o.mul(ct, x), d),',
    tests: ['test/op-derivatives.test.ts'],
    why: "gamma's gradient taken against x instead of the normalized x",
  },
  {
    name: 'wgsl-conv-dw4-drops-a-lane',
    file: 'src/backends/webgpu/conv.ts',
    find: '    acc[3] += xv.w * dy;',
    replace: '    acc[3] += xv.z * dy;',
    tests: ['test/webgpu.test.ts'],
    grep: 'blocked',
    why: "the blocked filter gradient's fourth input channel multiplies the third's values",
  },
  {
    name: 'wgsl-conv-dx4-ignores-stride',
    file: 'src/backends/webgpu/conv.ts',
    find: 'ok[j] = w0 + j < i32(u.W) && b >= 0 && b % u.sw == 0 && b / u.sw < i32(u.OW);',
    replace: 'ok[j] = w0 + j < i32(u.W) && b >= 0 && b / u.sw < i32(u.OW);',
    tests: ['test/webgpu.test.ts'],
    grep: 'blocked',
    why: 'the blocked input gradient takes taps that fall between strided output positions',
  },
  {
    name: 'wgsl-conv-slices-skip-one',
    file: 'src/backends/webgpu/conv.ts',
    find: '  for (var s = 1u; s < u.slices; s++) { acc += P[s * u.count + i]; }',
    replace: '  for (var s = 2u; s < u.slices; s++) { acc += P[s * u.count + i]; }',
    tests: ['test/webgpu.test.ts'],
    grep: 'blocked',
    why: "the filter gradient's slice sums leave out the second slice",
  },
  {
    name: 'task-softmax-backward-dy-not-offset',
    file: 'assembly/task.ts',
    find: 'softmaxBackwardRows(off(arg(rec, 0), u0, cols), off(arg(rec, 4), u0, cols),',
    replace: 'softmaxBackwardRows(off(arg(rec, 0), u0, cols), off(arg(rec, 4), 0, cols),',
    tests: ['test/workers.test.ts'],
    rebuild: 'wasm',
    wasmTargets: ['shared', 'relaxed-shared'],
    why: "softmax-gradient chunks after the first read the first rows' cotangent",
  },
  {
    name: 'softmax-grad-vjp-drops-a-term',
    file: 'src/ops/defs/linalg.ts',
    find: ': o.sub(o.mul(u, o.sub(g, S(o.mul(g, y)))), o.mul(g, S(o.mul(u, y))));',
    replace: ': o.mul(u, o.sub(g, S(o.mul(g, y))));',
    tests: ['test/op-derivatives.test.ts'],
    why: "softmaxGrad's y-cotangent (second order through softmax) without its cross term",
  },
  {
    name: 'partition-merges-dependent-levels',
    file: 'src/backends/wasm/scheduler/partition.ts',
    find: 'byLevel[levelOf[i]].push(s);',
    replace: 'byLevel[levelOf[i] >> 1].push(s);',
    tests: ['test/workers.test.ts'],
    why: 'pairs of levels merged: a step and the step it reads from run at the same time',
  },
  {
    name: 'pool-stall-detection-only-for-matmul-jobs',
    edits: [
      {
        file: 'src/backends/wasm/scheduler/pool.ts',
        find: 'const fault = this.finish(tag, total, failed);',
        replace:
          'const fault = this.finish(tag, total, failed, job.tasks.some((t) => t.step.par?.kind === 1));',
      },
      {
        file: 'src/backends/wasm/scheduler/pool.ts',
        find: 'private finish(tag: number, total: number, abort: boolean): WorkerFault | null {',
        replace:
          'private finish(tag: number, total: number, abort: boolean, ticking = true): WorkerFault | null {',
      },
      {
        file: 'src/backends/wasm/scheduler/pool.ts',
        find: '} else if (now - lastChange > this.stallMs) {',
        replace: '} else if (ticking && now - lastChange > this.stallMs) {',
      },
    ],
    tests: ['test/workers.test.ts'],
    timeout: 150,
    why: 'a worker that dies silently in a job without a matmul task is never noticed (the run hangs)',
  },

  // ---- demo (runs examples/demo.mjs on dist/)
  {
    name: 'demo-checkpoint-loader-corrupts-a-tensor',
    file: 'src/io/index.ts',
    find: '      const r = tensors[path]!;\n      return fromHost(r.data, r.shape, r.dtype);',
    replace:
      "      const r = tensors[path]!;\n      if (path === 'params.0.b') r.data[0] += 0.25;\n      return fromHost(r.data, r.shape, r.dtype);",
    tests: ['test/demo.test.ts'],
    rebuild: 'dist',
    why: 'the demo must check that every restored tensor is bit-identical, not only print the count',
  },
  {
    name: 'demo-fine-tunes-with-lr-0',
    file: 'examples/demo.mjs',
    find: '  lr: optim.cosineDecay(config.fineTuneLr, fineTuneSteps, { offset: restoredStep }),\n',
    replace: '  lr: 0,\n',
    tests: ['test/demo.test.ts'],
    why: 'fine-tuning that changes nothing must not pass: the loss on the fine-tuning digits has to drop',
  },

  // ---- runtime: host fallback, init({ wasmModule }), the bundle
  {
    name: 'host-fallback-off-by-one',
    file: 'src/backends/wasm/ops.ts',
    find: 'const r = def.reference(args, n.attrs, n);',
    replace: 'const r = def.reference(args, n.attrs, n).map((v) => v + 1);',
    tests: ['test/runtime-promises.test.ts'],
    why: 'ops without a wasm kernel run on the host: their values must be checked there too',
  },
  {
    name: 'init-ignores-wasm-module',
    edits: [
      {
        file: 'src/runtime/init.ts',
        find: '? await loadSharedKernels(opts.wasmModule)',
        replace: '? await loadSharedKernels()',
      },
      {
        file: 'src/runtime/init.ts',
        find: 'return new WasmBackend(await loadKernels({ module: opts.wasmModule }));',
        replace: 'return new WasmBackend(await loadKernels({}));',
      },
    ],
    tests: ['test/runtime-promises.test.ts'],
    why: 'init({ wasmModule }) must instantiate the module it is given (runtimes that cannot compile bytes)',
  },
  {
    name: 'dist-imports-comlink-bare',
    file: 'rollup.config.mjs',
    find: "const external = [/^node:/, 'web-worker'];",
    replace: "const external = [/^node:/, 'web-worker', 'comlink', /^comlink\\//];",
    tests: ['test/runtime-promises.test.ts'],
    rebuild: 'dist',
    why: 'dist/ must load in a browser without a bundler: no bare import of comlink',
  },

  // ---- compiler passes
  {
    name: 'cse-ignores-attrs',
    file: 'src/compiler/passes/cse.ts',
    find: `|\${keyOf(n.attrs)}|\${n.inputs.map((i) => ids.get(i))`,
    replace: `|\${n.inputs.map((i) => ids.get(i))`,
    tests: ['test/compiler.test.ts', 'test/regressions.test.ts'],
    why: 'nodes that differ only in attributes (fill values, axes, perms) merged into one',
  },
  {
    name: 'fold-sum-of-fill-drops-count',
    file: 'src/compiler/passes/fold.ts',
    find: 'round(vals[0] * (sizeOf(n.inputs[0].shape) / Math.max(1, sizeOf(n.shape))), n.dtype),',
    replace: 'round(vals[0], n.dtype),',
    tests: ['test/compiler.test.ts', 'test/transforms.test.ts'],
    why: 'sum of a constant folded to the constant, not constant x count (e.g. the gradient of a broadcast scalar)',
  },
  {
    name: 'dce-keeps-dead-nodes',
    file: 'src/compiler/passes/dce.ts',
    find: 'for (const n of g.nodes) if (live.has(n)) visit(n);',
    replace: 'for (const n of g.nodes) visit(n);',
    tests: ['test/compiler.test.ts', 'test/transforms.test.ts'],
    why: 'dead nodes (rewritten away, unused) kept: wasted kernels and buffers, graphs larger than shown',
  },
  {
    name: 'simplify-double-negation-keeps-one',
    file: 'src/compiler/passes/simplify.ts',
    find: "case 'neg':\n        return x.op === 'neg' ? x.inputs[0] : n;",
    replace: "case 'neg':\n        return x.op === 'neg' ? x : n;",
    tests: ['test/compiler.test.ts'],
    why: '-(-x) simplified to -x instead of x',
  },
  {
    name: 'fuse-ignores-cycles',
    file: 'src/compiler/passes/fuse.ts',
    find: 'if (!n.inputs.some((x) => groupOf.get(x) !== gi && dependsOn(x, gi))) joined = gi;',
    replace: 'joined = gi;',
    tests: ['test/compiler.test.ts', 'test/backend-parity.test.ts'],
    why: 'a node joins a fusion group although another of its inputs needs the group first (x / sum(exp x))',
  },
  {
    name: 'fuse-drops-output-used-outside',
    file: 'src/compiler/passes/fuse.ts',
    find: '(m) => outputs.has(m) || (used.get(m) ?? []).some((u) => groupOf.get(u) !== gi),',
    replace: '(m) => outputs.has(m) || (used.get(m) ?? []).every((u) => groupOf.get(u) !== gi),',
    tests: ['test/compiler.test.ts', 'test/backend-parity.test.ts'],
    why: 'a fused value read both inside and outside its group is never written out',
  },

  // ---- wasm plans
  {
    name: 'plan-cache-key-ignores-attrs',
    file: 'src/backends/wasm/backend.ts',
    find: "const attrs = n.op === 'const' ? '' : keyOf(n.attrs);",
    replace: "const attrs = '';",
    tests: ['test/regressions.test.ts', 'test/transforms.test.ts'],
    why: 'graphs differing only in attributes (a fill value, an axis) share a cached plan',
  },
  {
    name: 'realize-key-ignores-wiring',
    file: 'src/runtime/realize.ts',
    find: 'for (const x of t.inputs) codes.push(x.walkIndex);',
    replace: '',
    tests: ['test/regressions.test.ts', 'test/compiler.test.ts'],
    why: 'graphs of the same ops wired differently (a - b against b - a) must not share a compiled program',
  },
  {
    name: 'realize-key-ignores-signature',
    file: 'src/runtime/realize.ts',
    find: 'codes.push(t.signature(), t.inputs.length);',
    replace: 'codes.push(0, t.inputs.length);',
    tests: ['test/regressions.test.ts', 'test/compiler.test.ts'],
    why: 'graphs differing in an op, a shape or an attribute must not share a compiled program',
  },
  {
    name: 'plan-liveness-off-by-one',
    file: 'src/backends/wasm/plan.ts',
    find: '.filter((b) => b.def <= l.last && l.def <= b.last)',
    replace: '.filter((b) => b.def < l.last && l.def < b.last)',
    tests: ['test/backend-parity.test.ts'],
    why: 'a value defined by the step that last reads another may share its memory (matmul reads while it writes)',
  },

  // ---- transforms and derivative rules
  {
    name: 'sin-derivative-sign',
    file: 'src/ops/defs/elementwise.ts',
    find: "unary('sin', Math.sin, (x) => o.cos(x));",
    replace: "unary('sin', Math.sin, (x) => o.neg(o.cos(x)));",
    tests: ['test/op-derivatives.test.ts', 'test/transforms.test.ts'],
    why: "sin' = -cos (a sign error in one VJP/JVP rule)",
  },
  {
    name: 'minimum-uses-maximum-partials',
    file: 'src/ops/defs/elementwise.ts',
    find: "binary('minimum', Math.min, (a, b) => tieMask(b, a));",
    replace: "binary('minimum', Math.min, (a, b) => tieMask(a, b));",
    tests: ['test/op-derivatives.test.ts'],
    why: "minimum's derivative sent to the larger operand (a copy-paste of maximum's rule)",
  },
  {
    name: 'sum-to-wrong-axis',
    file: 'src/ops/api.ts',
    find: 'if (i < lead || (shape[i - lead] === 1 && x.shape[i] !== 1)) axes.push(i);',
    replace: 'if (i < lead || (shape[i] === 1 && x.shape[i] !== 1)) axes.push(i);',
    tests: ['test/op-derivatives.test.ts', 'test/transforms.test.ts'],
    why: 'unbroadcasting a cotangent sums the wrong axes when the operand had fewer dims',
  },
  {
    name: 'reverse-sweep-overwrites-fan-out',
    file: 'src/transforms/autodiff.ts',
    find: 'adj.set(t, prev ? add(prev, ct) : ct);',
    replace: 'adj.set(t, ct);',
    tests: ['test/transforms.test.ts'],
    why: 'a value used twice must get the sum of both cotangents, not the last one',
  },
  {
    name: 'grad-argnums-reversed',
    file: 'src/transforms/transforms.ts',
    find: "return [out, typeof argnums === 'number' ? grads[0] : grads];",
    replace: "return [out, typeof argnums === 'number' ? grads[0] : grads.reverse()];",
    tests: ['test/transforms.test.ts'],
    why: 'grad(f, [0, 1, 2]) must return the gradients in argnums order',
  },

  // ---- devices: placement, lowering, residency
  {
    name: 'placement-ignores-supports',
    file: 'src/runtime/placement-mixed.ts',
    find: '  if (!(gpu.supports?.(n) ?? true)) return primary.device;',
    replace: '',
    tests: ['test/placement.test.ts'],
    why: 'a node the GPU backend declines must stay on the primary device',
  },
  {
    name: 'program-frees-a-value-one-step-early',
    file: 'src/runtime/program.ts',
    find: 'for (const v of reads) lastUse[v] = k;',
    replace: 'for (const v of reads) lastUse[v] = Math.max(0, k - 1);',
    tests: ['test/placement.test.ts'],
    why: 'a value crossing devices must live until the last step that reads it',
  },
  {
    name: 'residency-never-keeps-copies',
    file: 'src/runtime/residency.ts',
    find: '  if (!reused(t, device)) temps.push(copy);',
    replace: '  temps.push(copy);',
    tests: ['test/placement.test.ts'],
    why: 'a value consumed on another device every step must stay there after its second use',
  },
  {
    name: 'fused-gathers-any-broadcast-once',
    file: 'assembly/fused.ts',
    find: 'if (d < 0 && TILE % block == 0) fixed',
    replace: 'if (d < 0) fixed',
    tests: ['test/kernels.test.ts'],
    grep: 'fused programs',
    rebuild: 'wasm',
    wasmTargets: ['simd'],
    why: 'only a broadcast block that divides the tile repeats the same values in every tile',
  },
  {
    name: 'fused-gathers-strided-input-once',
    file: 'assembly/fused.ts',
    find: 'while (d >= 0 && word(ib + 8, d) == 0) d--;',
    replace: 'while (d >= 0) d--;',
    tests: ['test/kernels.test.ts'],
    grep: 'fused',
    rebuild: 'wasm',
    wasmTargets: ['simd'],
    why: 'an input that moves along a leading axis differs from tile to tile',
  },
  {
    name: 'read-of-realized-value-never-yields',
    file: 'src/tensor.ts',
    find: '    if (!lazy) await runtimeHooks.turn?.(false);',
    replace: '',
    tests: ['test/memory.test.ts'],
    grep: 'jit computed',
    why: 'a loop reading values jit made must still let finalizers free unreachable buffers',
  },
  {
    name: 'eager-grad-key-without-variables',
    file: 'src/runtime/eager-grad.ts',
    find: '  for (const v of vars) key.push(v.walkEpoch === out.walkEpoch ? v.walkIndex : -1);',
    replace: '',
    tests: ['test/eager-grad.test.ts'],
    why: 'the same forward graph differentiated with respect to other nodes needs its own program',
  },
  {
    name: 'eager-grad-binds-the-recorded-constants',
    file: 'src/runtime/eager-grad.ts',
    find: 'fwdIndex.get(snap.consts[i]) ?? snap.consts[i]',
    replace: 'snap.consts[i]',
    tests: ['test/eager-grad.test.ts'],
    why: "a cached gradient program must read this call's arguments and closed-over tensors",
  },
  {
    name: 'eager-grad-caches-values-read-mid-function',
    file: 'src/runtime/eager-grad.ts',
    find: 't.inputs.length > 0 || ',
    replace: '',
    tests: ['test/eager-grad.test.ts'],
    why: 'a value realized inside f keeps its history: the backward reaches tensors the forward walk did not bind',
  },
  {
    name: 'eager-grad-caches-custom-rules',
    file: 'src/runtime/eager-grad.ts',
    find: '  if (custom || out.storage !== null',
    replace: '  if (out.storage !== null',
    tests: ['test/eager-grad.test.ts'],
    why: 'custom rules are user code: their backward graph may change from call to call',
  },
  {
    name: 'scalar-left-comparison-not-swapped',
    file: 'assembly/ops.ts',
    find: '    case B_GREATER_EQUAL: return B_LESS_EQUAL;',
    replace: '    case B_GREATER_EQUAL: return B_GREATER_EQUAL;',
    tests: ['test/kernels.test.ts', 'test/backend-parity.test.ts'],
    rebuild: 'wasm',
    wasmTargets: ['simd'],
    why: 's >= v computed as v >= s: a scalar on the left runs the scalar-right loop with the operands swapped',
  },
  {
    name: 'causal-softmax-rows-restart-per-chunk',
    file: 'assembly/softmax.ts',
    find: 'min(cols, (row0 + r) % q + 1 + cols - q)',
    replace: 'min(cols, r % q + 1 + cols - q)',
    tests: ['test/workers.test.ts'],
    grep: 'every task kind',
    rebuild: 'wasm',
    wasmTargets: ['shared', 'relaxed-shared'],
    why: "a worker's chunk of causal rows starts mid-block: its rows' positions count from the chunk's first row",
  },
  {
    name: 'masked-softmax-keep-row-per-chunk',
    file: 'assembly/softmax.ts',
    find: 'const kr = keep + ((<usize>((row0 + r) / group)',
    replace: 'const kr = keep + ((<usize>(r / group)',
    tests: ['test/workers.test.ts'],
    grep: 'every task kind',
    rebuild: 'wasm',
    wasmTargets: ['shared', 'relaxed-shared'],
    why: "a worker's chunk of rows reads the keep rows of its own rows, not the first chunk's",
  },
  {
    name: 'masked-softmax-row-keeping-nothing-not-zeroed',
    file: 'assembly/softmax.ts',
    find: '      if (!kept) {',
    replace: '      if (false) {',
    tests: ['test/backend-parity.test.ts', 'test/transformer.test.ts'],
    grep: 'maskedSoftmax|padding mask',
    rebuild: 'wasm',
    wasmTargets: ['relaxed', 'relaxed-shared'],
    why: 'a query that may see no key gets weights 0, not 0/0',
  },
  {
    name: 'masked-softmax-keep-ignored-on-webgpu',
    file: 'src/backends/webgpu/softmax.ts',
    find: 'return K[(r / u.group) * u.cols + i] != 0i;',
    replace: 'return true;',
    tests: ['test/webgpu.test.ts'],
    grep: 'maskedSoftmax',
    why: 'the WGSL softmax must mask what the wasm kernel and the reference mask',
  },
  {
    name: 'causal-softmax-mask-ignored-on-webgpu',
    file: 'src/backends/webgpu/softmax.ts',
    find: 'u.q > 0u); }',
    replace: 'false); }',
    tests: ['test/webgpu.test.ts'],
    grep: 'causalSoftmax',
    why: 'the WGSL softmax must mask what the wasm kernel and the reference mask',
  },
  {
    name: 'moments-without-the-shift',
    edits: [
      {
        file: 'assembly/norm.ts',
        find: 'const d = f32x4.sub(v128.load(row + p), v128.load(x + p));',
        replace: 'const d = v128.load(row + p);',
      },
      {
        file: 'assembly/norm.ts',
        find: 'const d = load<f32>(row + p) - load<f32>(x + p);',
        replace: 'const d = load<f32>(row + p);',
      },
      {
        file: 'assembly/norm.ts',
        find: 'const shift = rows > 0 ? <f64>load<f32>(x + (<usize>c << 2)) : 0;',
        replace: 'const shift: f64 = 0;',
      },
    ],
    tests: ['test/transformer.test.ts'],
    grep: 'moments node',
    rebuild: 'wasm',
    // under Node the runtime turns relaxed SIMD on: these are the builds the tests load
    wasmTargets: ['relaxed', 'relaxed-shared'],
    why: 'one-pass variance as E[x²] - E[x]² cancels catastrophically far from 0: sums are taken about a value of the column',
  },
  {
    name: 'max-pool-2x2-skips-the-last-position',
    file: 'assembly/pool.ts',
    find: 'for (let j = 1; j < 4; j++) {',
    replace: 'for (let j = 1; j < 3; j++) {',
    tests: ['test/max-pool.test.ts'],
    grep: '2×2 windows',
    rebuild: 'wasm',
    wasmTargets: ['relaxed', 'relaxed-shared'],
    why: "a 2×2 window's fourth position can hold the max",
  },
  {
    name: 'max-pool-2x2-gradient-to-the-last-tie',
    file: 'assembly/pool.ts',
    find: 'k = vsel(i32x4.splat(j), k, take);',
    replace: 'k = vsel(i32x4.splat(j), k, v128.or(take, f32x4.eq(v, bv)));',
    tests: ['test/max-pool.test.ts'],
    grep: '2×2 windows',
    rebuild: 'wasm',
    wasmTargets: ['relaxed', 'relaxed-shared'],
    why: 'ties send the gradient to the first position, as the reference and every other path do',
  },
  {
    name: 'max-pool-moves-a-bias-that-varies-over-the-window',
    file: 'src/ops/conv-api.ts',
    find: '(n < 3 || shape[n - 3] === 1) && (n < 2 || shape[n - 2] === 1)',
    replace: '(n < 3 || shape[n - 3] === 1)',
    tests: ['test/max-pool.test.ts'],
    grep: 'is built as relu',
    why: 'a bias that varies along W changes which position wins a window: it must be added before pooling',
  },
  {
    name: 'max-pool-pools-through-a-non-monotone-op',
    file: 'src/ops/conv-api.ts',
    find: "if (t.op === 'relu') return relu(",
    replace: "if (t.op === 'relu' || t.op === 'neg') return relu(",
    tests: ['test/max-pool.test.ts'],
    grep: 'is built as relu',
    why: 'only non-decreasing maps commute with max',
  },
  {
    name: 'residency-evicts-pinned-values',
    file: 'src/runtime/residency.ts',
    find: "if (freed >= bytes || pinned.has(t) || s?.device !== 'wasm') {",
    replace: "if (freed >= bytes || s?.device !== 'wasm') {",
    tests: ['test/memory.test.ts'],
    grep: 'soft limit',
    why: 'values a run is using must not move under memory pressure',
  },
  {
    name: 'batch-norm-rule-drops-the-statistics-cotangent',
    file: 'src/nn/transformer.ts',
    find: 'const c = div(sub(row(ctStats, 0), mul(gr, sumCt)), m);',
    replace: 'const c = div(mul(mul(gr, sumCt), -1), m);',
    tests: ['test/transformer.test.ts'],
    grep: 'batchNorm in training',
    why: "the rule must send back what the statistics' own cotangent contributes",
  },
  {
    name: 'batch-norm-rule-residual-without-history',
    file: 'src/nn/transformer.ts',
    find: '    [x, gamma, stats, r],',
    replace: '    [x, gamma, stats, stopGradient(r)],',
    tests: ['test/transformer.test.ts'],
    grep: 'batchNorm in training',
    why: 'second derivatives differentiate the rule through its residuals (first order is unchanged)',
  },
  {
    name: 'safetensors-e4m3fn-top-binade-all-nan',
    file: 'src/io/safetensors.ts',
    find: 'if (exp === top && (!fn || mant === (1 << m) - 1))',
    replace: 'if (exp === top)',
    tests: ['test/safetensors.test.ts'],
    grep: 'F8_E4M3',
    why: 'e4m3fn has no infinities: only S.1111.111 is NaN, the rest of the top binade are numbers up to 448',
  },
  {
    name: 'safetensors-subnormals-off-by-a-binade',
    file: 'src/io/safetensors.ts',
    find: 'scratch[0] = mant * 2 ** (1 - bias - m);',
    replace: 'scratch[0] = mant * 2 ** (-bias - m);',
    tests: ['test/safetensors.test.ts'],
    grep: 'float32',
    why: 'subnormals are mant · 2^(1 − bias − m), the same binade as the smallest normal',
  },
  {
    name: 'library-rules-counted-as-user-rules',
    file: 'src/ops/custom.ts',
    find: '  if (!structural.has(call.def)) wrapped++;',
    replace: '  wrapped++;',
    tests: ['test/eager-grad.test.ts'],
    grep: "the library's own rules",
    why: "eager valueAndGrad must compile by structure through the library's own rules (batch norm, logsumexp)",
  },
  {
    name: 'webgpu-backend-drops-the-gpu-object',
    file: 'src/backends/webgpu/backend.ts',
    find: '    this.instance = acq.instance;',
    replace: '    this.instance = null;',
    tests: ['test/webgpu-runtime.test.ts'],
    grep: 'holds the GPU object',
    why: 'dawn.node frees its instance when the GPU object is collected, even with work in flight: a crash',
  },
  {
    name: 'webgpu-backend-keeps-the-gpu-object-after-dispose',
    file: 'src/backends/webgpu/backend.ts',
    find: '    this.instance = null;\n  }',
    replace: '  }',
    tests: ['test/webgpu-runtime.test.ts'],
    grep: 'holds the GPU object',
    why: 'a disposed backend must let the instance go, or the process cannot exit',
  },
];

// ---------------------------------------------------------------------------------------------

const args = process.argv.slice(2);
const opts = { list: false, keep: false, baseline: false, timeout: 300, filters: [] };
for (const a of args) {
  if (a === '--list') opts.list = true;
  else if (a === '--keep') opts.keep = true;
  else if (a === '--baseline') opts.baseline = true;
  else if (a.startsWith('--timeout=')) opts.timeout = Number(a.slice('--timeout='.length));
  else if (a === '--help' || a === '-h') {
    console.log(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('*/')[0]);
    process.exit(0);
  } else if (a.startsWith('-')) {
    console.error(`mutations: unknown option ${a} (see --help)`);
    process.exit(2);
  } else opts.filters.push(a.toLowerCase());
}
if (!(opts.timeout > 0)) {
  console.error('mutations: --timeout needs a positive number of seconds');
  process.exit(2);
}

const names = new Set();
for (const m of MUTATIONS) {
  if (names.has(m.name)) throw new Error(`mutations: duplicate name ${m.name}`);
  names.add(m.name);
}
const selected = MUTATIONS.filter(
  (m) => opts.filters.length === 0 || opts.filters.some((f) => m.name.toLowerCase().includes(f)),
);
if (selected.length === 0) {
  console.error(`mutations: no mutation matches ${opts.filters.join(', ')} (see --list)`);
  process.exit(1);
}

const editsOf = (m) =>
  m.edits?.map((e) => ({ file: m.file, ...e })) ?? [{ file: m.file, find: m.find, replace: m.replace }];
const filesOf = (m) => [...new Set(editsOf(m).map((e) => e.file))];
const needsDist = (m) => m.rebuild === 'dist' || m.tests.some((t) => DIST_TESTS.includes(t));

function occurrences(text, find) {
  let n = 0;
  for (let i = text.indexOf(find); i >= 0; i = text.indexOf(find, i + find.length)) n++;
  return n;
}

/** What is wrong with a mutation against the tree at `dir` (empty: it can run). */
function problems(m, dir) {
  const out = [];
  for (const e of editsOf(m)) {
    const f = path.join(dir, e.file ?? '');
    if (!e.file || !existsSync(f)) {
      out.push(`file ${e.file} does not exist`);
      continue;
    }
    const n = occurrences(readFileSync(f, 'utf8'), e.find);
    if (n !== 1)
      out.push(
        `search text found ${n} times in ${e.file} (must be exactly once): ${JSON.stringify(e.find.slice(0, 80))}`,
      );
  }
  for (const t of m.tests) if (!existsSync(path.join(dir, t))) out.push(`test file ${t} does not exist`);
  if (m.rebuild && m.rebuild !== 'wasm' && m.rebuild !== 'dist') out.push(`unknown rebuild '${m.rebuild}'`);
  return out;
}

function describeMutation(m) {
  const extra = [
    m.rebuild && `rebuild: ${m.rebuild}${m.wasmTargets ? ` (${m.wasmTargets.join(', ')})` : ''}`,
    m.grep && `-t ${JSON.stringify(m.grep)}`,
  ].filter(Boolean);
  return `  ${filesOf(m).join(', ')} -> ${m.tests.join(', ')}${extra.length ? `  [${extra.join('; ')}]` : ''}`;
}

if (opts.list) {
  let bad = 0;
  for (const m of selected) {
    const p = problems(m, ROOT);
    console.log(`${p.length ? 'ERROR ' : ''}${m.name}`);
    console.log(describeMutation(m));
    console.log(`  why: ${m.why}`);
    for (const x of p) console.log(`  ! ${x}`);
    if (p.length) bad++;
  }
  console.log(`\n${selected.length} mutations${bad ? `, ${bad} with errors` : ''}`);
  process.exit(bad ? 1 : 0);
}

// ---------------------------------------------------------------------------------------------
// Scratch copies

const t0 = Date.now();
const secs = (ms) => `${(ms / 1000).toFixed(1)} s`;
const scratch = mkdtempSync(path.join(tmpdir(), 'adjoint-mutations-'));
const base = path.join(scratch, 'base');
let current = null; // the running child, killed on Ctrl-C

function cleanup() {
  if (current) {
    try {
      process.kill(-current.pid, 'SIGKILL');
    } catch {}
  }
  if (!opts.keep) rmSync(scratch, { recursive: true, force: true });
}
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    cleanup();
    process.exit(130);
  });
}

/** node_modules as a directory of symlinks: packages resolve here, caches (.vite) stay in the copy. */
function linkNodeModules(dir) {
  const src = path.join(ROOT, 'node_modules');
  const dst = path.join(dir, 'node_modules');
  mkdirSync(dst);
  for (const e of readdirSync(src)) {
    if (e === '.vite' || e === '.vite-temp' || e === '.cache') continue;
    symlinkSync(path.join(src, e), path.join(dst, e));
  }
}

function makeBase() {
  const git = spawnSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
    cwd: ROOT,
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  if (git.status !== 0) throw new Error(`git ls-files failed: ${git.stderr}`);
  const files = git.stdout.split('\0').filter((f) => f && existsSync(path.join(ROOT, f)));
  for (const f of files) {
    const to = path.join(base, f);
    mkdirSync(path.dirname(to), { recursive: true });
    if (statSync(path.join(ROOT, f)).isFile()) cpSync(path.join(ROOT, f), to, { preserveTimestamps: true });
  }
  // build outputs, and the generated op-code files (scripts/gen-opcodes.mjs)
  for (const d of ['src/wasm', 'dist', 'assembly/opcodes.ts', 'src/backends/opcodes.ts'])
    if (existsSync(path.join(ROOT, d)))
      cpSync(path.join(ROOT, d), path.join(base, d), { recursive: true, preserveTimestamps: true });
  return files.length;
}

/** Runs a command in `cwd` with its output appended to `log`; resolves { code, timedOut, ms }. */
function run(cmd, argv, cwd, log, timeoutS = 0) {
  const fd = openSync(log, 'a');
  writeFileSync(fd, `\n$ ${[cmd, ...argv].join(' ')}\n`);
  const env = { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' };
  delete env.ADJOINT_VITEST_JSON;
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(cmd, argv, { cwd, env, detached: true, stdio: ['ignore', fd, fd] });
    current = child;
    let timedOut = false;
    const timer =
      timeoutS > 0
        ? setTimeout(() => {
            timedOut = true;
            try {
              process.kill(-child.pid, 'SIGKILL');
            } catch {}
          }, timeoutS * 1000)
        : null;
    const done = (code) => {
      if (timer) clearTimeout(timer);
      current = null;
      closeSync(fd);
      resolve({ code, timedOut, ms: Date.now() - started });
    };
    child.on('error', (e) => {
      writeFileSync(log, `\n${e.message}\n`, { flag: 'a' });
      done(-1);
    });
    child.on('exit', (code, signal) => done(code ?? (signal ? 128 : -1)));
  });
}

const tail = (file, n = 15) =>
  existsSync(file)
    ? readFileSync(file, 'utf8')
        .trimEnd()
        .split('\n')
        .slice(-n)
        .map((l) => `      | ${l}`)
        .join('\n')
    : '';

const node = process.execPath;
const bin = (dir, name) => path.join(dir, 'node_modules', '.bin', name);

async function buildWasm(dir, log, { force, targets }) {
  if (!targets) return run(node, ['scripts/build-wasm.mjs', ...(force ? ['--force'] : [])], dir, log);
  // The same asc invocations as scripts/build-wasm.mjs, for the named targets only, two at a time.
  const asc = (t) =>
    run(
      node,
      ['node_modules/assemblyscript/bin/asc.js', '--config', 'asconfig.json', '--target', t],
      dir,
      log,
    );
  const gen = await run(node, ['scripts/gen-opcodes.mjs'], dir, log);
  if (gen.code !== 0) return gen;
  const started = Date.now();
  const queue = [...targets];
  let code = 0;
  const worker = async () => {
    while (queue.length) {
      const r = await asc(queue.shift());
      if (r.code !== 0) code = r.code;
    }
  };
  await Promise.all([worker(), worker()]);
  return { code, timedOut: false, ms: Date.now() - started };
}

const buildDist = (dir, log) => run(bin(dir, 'rollup'), ['-c'], dir, log);

/** Runs test files with vitest's JSON reporter; returns the failed tests and counts. */
async function runTests(dir, tests, grep, timeoutS, tag) {
  const log = path.join(dir, `.mutation-${tag}.log`);
  const report = path.join(dir, `.mutation-${tag}.json`);
  const argv = ['run', ...tests, '--reporter=json', `--outputFile=${report}`, '--no-file-parallelism'];
  if (grep) argv.push('-t', grep);
  const r = await run(bin(dir, 'vitest'), argv, dir, log, timeoutS);
  let json = null;
  try {
    json = JSON.parse(readFileSync(report, 'utf8'));
  } catch {}
  const failed = [];
  let ran = 0;
  if (json) {
    ran = (json.numPassedTests ?? 0) + (json.numFailedTests ?? 0);
    for (const f of json.testResults ?? []) {
      const rel = path.relative(dir, f.name ?? '');
      const bad = (f.assertionResults ?? []).filter((a) => a.status === 'failed');
      for (const a of bad) {
        const why = stripVTControlCharacters(String(a.failureMessages?.[0] ?? ''))
          .trim()
          .split('\n')[0]
          .slice(0, 160);
        failed.push(
          `${[rel, ...(a.ancestorTitles ?? []), a.title].join(' > ')}${why ? `\n        ${why}` : ''}`,
        );
      }
      if (f.status === 'failed' && bad.length === 0)
        failed.push(
          `${rel}: ${String(f.message ?? 'failed')
            .trim()
            .split('\n')[0]
            .slice(0, 200)}`,
        );
    }
  }
  return { ...r, json, failed, ran, log };
}

// ---------------------------------------------------------------------------------------------

const fileCount = makeBase();
linkNodeModules(base);
console.log(`mutations: ${selected.length} of ${MUTATIONS.length}; scratch copies under ${scratch}`);
console.log(`base: ${fileCount} files from ${ROOT}${existsSync(path.join(base, 'dist')) ? ' + dist/' : ''}`);

const setupLog = path.join(scratch, 'setup.log');
{
  // Kernels: built when missing, rebuilt when older than their sources (build-wasm's own check).
  const r = await buildWasm(base, setupLog, { force: false });
  if (r.code !== 0) {
    console.error(`mutations: building the kernels in the base failed:\n${tail(setupLog)}`);
    cleanup();
    process.exit(1);
  }
  if (selected.some(needsDist)) {
    const d = await buildDist(base, setupLog);
    if (d.code !== 0) {
      console.error(`mutations: building dist/ in the base failed:\n${tail(setupLog)}`);
      cleanup();
      process.exit(1);
    }
    console.log(`base: dist/ built from the copied sources in ${secs(d.ms)}`);
  }
}

if (opts.baseline) {
  const tests = [...new Set(selected.flatMap((m) => m.tests))].filter((t) => existsSync(path.join(base, t)));
  console.log(`\nbaseline: ${tests.join(', ')} unmutated ...`);
  const r = await runTests(base, tests, undefined, opts.timeout * 2, 'baseline');
  if (r.code !== 0 || r.failed.length > 0) {
    console.log(`baseline FAILED in ${secs(r.ms)}${r.timedOut ? ' (timed out)' : ''}:`);
    for (const f of r.failed) console.log(`    x ${f}`);
    if (r.failed.length === 0) console.log(tail(r.log));
    console.log('mutation results would mean nothing: fix the tests first');
    cleanup();
    process.exit(1);
  }
  console.log(`baseline passed: ${r.ran} tests in ${secs(r.ms)}`);
}

const results = [];
for (const [i, m] of selected.entries()) {
  const started = Date.now();
  const dir = path.join(scratch, `${String(i + 1).padStart(2, '0')}-${m.name}`);
  console.log(`\n[${i + 1}/${selected.length}] ${m.name}`);
  console.log(describeMutation(m));
  const report = (status, lines = []) => {
    const ms = Date.now() - started;
    results.push({ name: m.name, status, ms });
    console.log(`  ${status} in ${secs(ms)}`);
    for (const l of lines) console.log(l);
    if (status === 'SURVIVED') console.log(`  why it matters: ${m.why}`);
    if (opts.keep) console.log(`  kept: ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  };

  cpSync(base, dir, {
    recursive: true,
    preserveTimestamps: true,
    filter: (src) => path.relative(base, src) !== 'node_modules',
  });
  linkNodeModules(dir);

  const p = problems(m, dir);
  if (p.length) {
    report(
      'ERROR',
      p.map((x) => `    ! ${x}`),
    );
    continue;
  }
  for (const e of editsOf(m)) {
    const f = path.join(dir, e.file);
    const text = readFileSync(f, 'utf8');
    const at = text.indexOf(e.find);
    const by = typeof e.replace === 'function' ? e.replace(e.find) : e.replace;
    writeFileSync(f, text.slice(0, at) + by + text.slice(at + e.find.length));
  }

  const buildLog = path.join(dir, '.mutation-build.log');
  if (m.rebuild === 'wasm') {
    const r = await buildWasm(dir, buildLog, { force: true, targets: m.wasmTargets });
    if (r.code !== 0) {
      report('ERROR', ['    ! the mutated kernels do not build:', tail(buildLog)]);
      continue;
    }
    console.log(`  kernels rebuilt in ${secs(r.ms)}`);
  } else if (m.rebuild === 'dist') {
    const r = await buildDist(dir, buildLog);
    if (r.code !== 0) {
      report('ERROR', ['    ! dist/ does not build:', tail(buildLog)]);
      continue;
    }
    console.log(`  dist/ rebuilt in ${secs(r.ms)}`);
  }

  const r = await runTests(dir, m.tests, m.grep, m.timeout ?? opts.timeout, 'vitest');
  const shown = r.failed.slice(0, 12).map((f) => `    x ${f}`);
  if (r.failed.length > 12) shown.push(`    ... and ${r.failed.length - 12} more`);
  if (r.timedOut) {
    report('CAUGHT', [
      `    (no result: the tests ran past ${m.timeout ?? opts.timeout} s and were stopped; a hang fails CI too)`,
      ...shown,
    ]);
  } else if (r.failed.length > 0) {
    report('CAUGHT', [`    ${r.failed.length} failed:`, ...shown]);
  } else if (r.ran === 0) {
    report('ERROR', [
      `    ! no test ran (vitest exited with code ${r.code})${m.grep ? `; does -t ${JSON.stringify(m.grep)} still match a test name?` : ''}`,
      tail(r.log, 10),
    ]);
  } else if (r.code !== 0) {
    report('CAUGHT', [
      `    vitest exited with code ${r.code}, no failed test in its report:`,
      tail(r.log, 10),
    ]);
  } else {
    report('SURVIVED', [`    all ${r.ran} tests passed`]);
  }
}

const count = (s) => results.filter((r) => r.status === s).length;
const errors = count('ERROR');
console.log(
  `\n${count('CAUGHT')} caught, ${count('SURVIVED')} survived${errors ? `, ${errors} errors` : ''} ` +
    `(${selected.length} mutations in ${secs(Date.now() - t0)})`,
);
for (const r of results) if (r.status !== 'CAUGHT') console.log(`  ${r.status}: ${r.name}`);
cleanup();
process.exit(count('SURVIVED') || errors ? 1 : 0);
