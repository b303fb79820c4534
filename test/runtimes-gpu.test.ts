/**
 * The GPU parity check (test/runtimes/gpu-parity.mjs: value and gradient of a representative set
 * of ops with init({ backend: 'webgpu' }) against init({ backend: 'wasm' })) in the other
 * runtimes, on the built package (dist/, which `npm test` builds first):
 * - Deno (npm 'deno', node_modules/.bin/deno): navigator.gpu over Mesa's lavapipe, no flags
 *   needed in Deno 2.9 (no --unstable-webgpu); reads limited to this repository, no prompts, no
 *   remote modules, no update check.
 * - headless Chromium (Debian's /usr/bin/chromium, .ci/run installs it; CHROMIUM overrides the
 *   path), driven by playwright-core: --enable-unsafe-webgpu gives a SwiftShader adapter (max 256
 *   invocations per workgroup). The page is served from 127.0.0.1 (a secure context: WebGPU needs
 *   one) with COOP/COEP, so it is cross-origin isolated and adjoint runs its worker pool.
 *
 * Each asserts no failures, an adapter reported, and every computed output on 'webgpu'. Under
 * CI a runtime that is missing or does not start is a failure; locally a missing binary skips its
 * test with the reason. Every child process is killed by its PID and the server closed when the
 * test ends, pass or fail; the runs' own limits sit inside the test's timeout.
 *
 * Time on this 2-core machine: Deno ~2-4 s (~12 s with a cold Mesa shader cache), Chromium
 * ~9-12 s, mostly shader compilation on the software adapters.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type ChromiumSession,
  chromiumPath,
  closeServer,
  launchChromium,
  missing as missingRuntime,
  root,
  runProcess,
  serve,
  serverPort,
  taggedJson,
} from './runtimes/harness';

/** One runtime's run, start to result; the test's own timeout is above it plus cleanup. */
const RUN_LIMIT_MS = 150_000;
const TEST_TIMEOUT_MS = RUN_LIMIT_MS + 30_000;

interface ParityResult {
  runtime: string;
  adapter: {
    vendor?: string;
    architecture?: string;
    device?: string;
    description?: string;
    isFallbackAdapter?: boolean;
    maxComputeInvocationsPerWorkgroup?: number;
  } | null;
  checks: number;
  failures: { check: string; error: string }[];
  gpuOutputs?: number;
  devices?: Record<string, number>;
  cases?: number;
  stats?: { gpu: string | null; gpuRuns: number; gpuDispatches: number; threads: number } | null;
  seconds?: { gpu: number; wasm: number; total: number };
  threads?: number;
  crossOriginIsolated?: boolean;
}

beforeAll(() => {
  if (!existsSync(join(root, 'dist/index.js')))
    throw new Error('dist/index.js is missing: run `npm run build` first (`npm test` does)');
});

/** A runtime binary that is not there: a failure under CI, a skip with the reason locally. */
function missing(ctx: { skip: (note?: string) => void }, why: string): void {
  missingRuntime(ctx, 'runtimes-gpu', why);
}

function summary(r: ParityResult): string {
  const a = r.adapter;
  return (
    `${r.runtime}: adapter ${JSON.stringify(a)}, ${r.checks} checks (${r.cases} cases), ` +
    `devices ${JSON.stringify(r.devices)}, ${r.stats?.gpuRuns} GPU runs / ${r.stats?.gpuDispatches} dispatches, ` +
    `${r.threads} wasm threads, gpu ${r.seconds?.gpu.toFixed(1)} s, wasm ${r.seconds?.wasm.toFixed(1)} s, ` +
    `total ${r.seconds?.total.toFixed(1)} s` +
    (r.crossOriginIsolated === undefined ? '' : `, crossOriginIsolated ${r.crossOriginIsolated}`)
  );
}

function expectPassed(r: ParityResult): void {
  console.log(summary(r));
  const failures = r.failures.map((f) => `${f.check}: ${f.error}`).join('\n');
  expect(r.failures, `${r.runtime}: ${r.failures.length} failures\n${failures}`).toEqual([]);
  // the GPU adapter was really used
  expect(r.adapter, 'no adapter reported').not.toBe(null);
  expect(`${r.adapter?.description}${r.adapter?.architecture}${r.adapter?.vendor}`).not.toBe('');
  expect(r.stats?.gpu).toBe('webgpu');
  expect(r.stats?.gpuDispatches ?? 0).toBeGreaterThan(0);
  expect(r.checks).toBeGreaterThanOrEqual(60);
  expect(r.devices).toEqual({ webgpu: r.checks });
}

describe('GPU parity in other runtimes', () => {
  it(
    'Deno: navigator.gpu (lavapipe) agrees with wasm, value and gradient',
    async (ctx) => {
      const deno = join(root, 'node_modules/.bin/deno');
      if (!existsSync(deno))
        return missing(ctx, `no Deno binary at ${deno} (npm i: 'deno' is a devDependency)`);
      const home = mkdtempSync(join(tmpdir(), 'adjoint-deno-'));
      try {
        const out = await runProcess(
          deno,
          [
            'run',
            '--no-prompt',
            '--no-remote',
            `--allow-read=${root}`,
            'test/runtimes/cli.mjs',
            'dist/index.js',
          ],
          {
            env: {
              ...process.env,
              DENO_NO_UPDATE_CHECK: '1',
              DENO_DIR: join(home, 'deno'),
              XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR || home,
              NO_COLOR: '1',
            },
            limitMs: RUN_LIMIT_MS,
            what: 'Deno',
          },
        );
        const r = taggedJson<ParityResult>(out.stdout, 'GPU-PARITY');
        if (!r)
          throw new Error(
            `Deno printed no result (exit ${out.code}, signal ${out.signal})\n` +
              `stdout: ${out.stdout.slice(-4000)}\nstderr: ${out.stderr.slice(-4000)}`,
          );
        if (out.stderr.trim()) console.log(`Deno stderr:\n${out.stderr.slice(-2000)}`);
        expectPassed(r);
        expect(r.runtime).toMatch(/^deno /);
        expect(out.code).toBe(0);
      } finally {
        rmSync(home, { recursive: true, force: true });
      }
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'headless Chromium: navigator.gpu (SwiftShader) agrees with wasm in a cross-origin isolated page',
    async (ctx) => {
      if (!existsSync(chromiumPath()))
        return missing(ctx, `no Chromium at ${chromiumPath()} (apt-get install chromium; .ci/run does)`);
      let server: Server | undefined;
      let session: ChromiumSession | undefined;
      const logs: string[] = [];
      try {
        server = await serve({ isolated: true });
        session = await launchChromium(['--enable-unsafe-webgpu']);
        const page = await session.page(logs);
        await page.goto(`http://127.0.0.1:${serverPort(server)}/test/runtimes/gpu-parity.html`);
        await page.waitForFunction(() => (window as unknown as { __parity?: unknown }).__parity, null, {
          timeout: RUN_LIMIT_MS,
          polling: 250,
        });
        const r = await page.evaluate(() => (window as unknown as { __parity: ParityResult }).__parity);
        if (logs.length) console.log(`Chromium console:\n${logs.join('\n').slice(-4000)}`);
        expectPassed(r);
        expect(r.crossOriginIsolated).toBe(true);
        expect(r.threads).toBeGreaterThan(1); // the worker pool started (SharedArrayBuffer)
        expect(r.adapter?.architecture).toBe('swiftshader');
      } catch (e) {
        if (logs.length) (e as Error).message += `\nChromium console:\n${logs.join('\n').slice(-4000)}`;
        throw e;
      } finally {
        await session?.close();
        await closeServer(server);
      }
    },
    TEST_TIMEOUT_MS,
  );
});
