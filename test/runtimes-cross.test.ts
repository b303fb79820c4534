/**
 * The cross-runtime checks (test/runtimes/checks.mjs: value and gradient of a small program, a
 * jitted Adam step, a safetensors round trip, and a jitted MLP training step at 1, 2 and 3
 * threads that must agree bit for bit) on the built package (dist/, which `npm test` builds first) in:
 * - Deno (npm 'deno'): its Web Workers; reads limited to this repository, no prompts, no remote
 *   modules, no update check;
 * - Bun (npm 'bun'): its workers;
 * - headless Chromium (Debian's /usr/bin/chromium, .ci/run installs it; CHROMIUM overrides the
 *   path) driven by playwright-core, in a cross-origin isolated page (COOP same-origin + COEP
 *   require-corp: SharedArrayBuffer, two threads) and in a plain one (one thread, and exactly one
 *   console message from adjoint: the notice that threads are unavailable).
 * workerd has its own suite (test/runtimes-edge.test.ts).
 *
 * Under CI a runtime that is missing or does not start is a failure; locally a missing binary
 * skips its test with the reason. Every child process is killed by its PID and every server
 * closed when the test ends, pass or fail.
 *
 * Time on this 2-core machine: Deno ~1-2 s, Bun ~0.5-1 s, Chromium ~3-5 s per page.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  alive,
  type ChromiumSession,
  chromiumPath,
  closeServer,
  launchChromium,
  missing,
  root,
  runProcess,
  serve,
  serverPort,
  taggedJson,
} from './runtimes/harness';

const SUITE = 'runtimes-cross';
const RUN_LIMIT_MS = 60_000;
const TEST_TIMEOUT_MS = RUN_LIMIT_MS + 30_000;

interface ChecksResult {
  runtime: string;
  checks: number;
  failures: { check: string; error: string }[];
  runs: { requested: number; threads: number; workers: number; losses: number[] }[];
  notices: { level: string; text: string }[];
  details?: Record<string, unknown>;
  crossOriginIsolated?: boolean;
  seconds?: number;
  /** Workers started with the global Worker constructor (checks-cli.mjs counts them). */
  webWorkers?: number;
}

beforeAll(() => {
  if (!existsSync(join(root, 'dist/index.js')))
    throw new Error('dist/index.js is missing: run `npm run build` first (`npm test` does)');
});

/** Every check ran and passed. */
function expectPassed(r: ChecksResult): void {
  console.log(
    `${r.runtime}: ${r.checks} checks, ${r.failures.length} failures, runs ${JSON.stringify(
      r.runs.map(({ requested, threads, workers }) => ({ requested, threads, workers })),
    )}, ${r.seconds} s`,
  );
  const failures = r.failures.map((f) => `${f.check}: ${f.error}`).join('\n');
  expect(r.failures, `${r.runtime}: ${r.failures.length} failures\n${failures}`).toEqual([]);
  expect(r.checks).toBe(8); // init, 3 checks, MLP at 1, 2 and 3 threads, shutdown
  expect(r.runs.map((x) => x.requested)).toEqual([1, 2, 3]);
  expect(r.runs[0].threads).toBe(1);
  expect(r.runs[1].losses).toEqual(r.runs[0].losses);
  expect(r.runs[2].losses).toEqual(r.runs[0].losses);
}

/** Threads really ran: the 2- and 3-thread runs had their workers. */
function expectThreads(r: ChecksResult): void {
  expect(r.runs[1].threads, `${r.runtime}: threads at init({ threads: 2 })`).toBe(2);
  expect(r.runs[1].workers, `${r.runtime}: workers at init({ threads: 2 })`).toBe(1);
  expect(r.runs[2].threads, `${r.runtime}: threads at init({ threads: 3 })`).toBe(3);
  expect(r.runs[2].workers, `${r.runtime}: workers at init({ threads: 3 })`).toBe(2);
  expect(r.notices, `${r.runtime}: adjoint printed`).toEqual([]);
}

async function runCli(
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  what: string,
): Promise<ChecksResult> {
  const out = await runProcess(cmd, args, { env, limitMs: RUN_LIMIT_MS, what });
  const r = taggedJson<ChecksResult>(out.stdout, 'RUNTIME-CHECKS');
  if (!r)
    throw new Error(
      `${what} printed no result (exit ${out.code}, signal ${out.signal})\n` +
        `stdout: ${out.stdout.slice(-4000)}\nstderr: ${out.stderr.slice(-4000)}`,
    );
  if (out.stderr.trim()) console.log(`${what} stderr:\n${out.stderr.slice(-2000)}`);
  expect(out.code, `${what} exit code`).toBe(0);
  return r;
}

describe('cross-runtime checks', () => {
  it(
    'Deno: value and gradient, jitted Adam, safetensors, 1, 2 and 3 threads (Web Workers) identical',
    async (ctx) => {
      const deno = join(root, 'node_modules/.bin/deno');
      if (!existsSync(deno))
        return missing(ctx, SUITE, `no Deno binary at ${deno} (npm i: 'deno' is a devDependency)`);
      const home = mkdtempSync(join(tmpdir(), 'adjoint-deno-'));
      try {
        const r = await runCli(
          deno,
          [
            'run',
            '--no-prompt',
            '--no-remote',
            `--allow-read=${root}`,
            'test/runtimes/checks-cli.mjs',
            'dist/index.js',
          ],
          {
            ...process.env,
            DENO_NO_UPDATE_CHECK: '1',
            DENO_DIR: join(home, 'deno'),
            XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR || home,
            NO_COLOR: '1',
          },
          'Deno',
        );
        expect(r.runtime).toMatch(/^deno /);
        expectPassed(r);
        expectThreads(r);
        // Deno's workers are Web Workers: 1 + 2 started by the 2- and 3-thread runs
        expect(r.webWorkers).toBe(3);
      } finally {
        rmSync(home, { recursive: true, force: true });
      }
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'Bun: value and gradient, jitted Adam, safetensors, 1, 2 and 3 threads (worker_threads) identical',
    async (ctx) => {
      const bun = join(root, 'node_modules/.bin/bun');
      if (!existsSync(bun))
        return missing(ctx, SUITE, `no Bun binary at ${bun} (npm i: 'bun' is a devDependency)`);
      const home = mkdtempSync(join(tmpdir(), 'adjoint-bun-'));
      try {
        const r = await runCli(
          bun,
          ['test/runtimes/checks-cli.mjs', 'dist/index.js'],
          { ...process.env, BUN_INSTALL_CACHE_DIR: join(home, 'cache'), NO_COLOR: '1' },
          'Bun',
        );
        expect(r.runtime).toMatch(/^bun /);
        expectPassed(r);
        expectThreads(r);
        // the workers are worker_threads: none came from the global (Web) Worker
        expect(r.webWorkers).toBe(0);
      } finally {
        rmSync(home, { recursive: true, force: true });
      }
    },
    TEST_TIMEOUT_MS,
  );

  /**
   * The console without Chromium's own 'No available adapters.' (the browser logs it for each
   * navigator.gpu.requestAdapter() that finds no GPU, as init()'s 'auto' probe does here: headless,
   * no --enable-unsafe-webgpu), which must appear at most once however often init() runs (adjoint
   * asks a GPU source once); everything else, adjoint's messages included, is kept.
   */
  const browserOnly = (logs: string[]) => {
    const noAdapter = 'warning: No available adapters.';
    expect(logs.filter((l) => l === noAdapter).length).toBeLessThanOrEqual(1);
    return logs.filter((l) => l !== noAdapter);
  };

  /** Loads checks.html from a server (isolated or not) in a fresh page; returns the result and the console. */
  async function inChromium(isolated: boolean): Promise<{ r: ChecksResult; logs: string[] }> {
    let server: Server | undefined;
    let session: ChromiumSession | undefined;
    const logs: string[] = [];
    try {
      server = await serve({ isolated });
      session = await launchChromium();
      const page = await session.page(logs);
      await page.goto(`http://127.0.0.1:${serverPort(server)}/test/runtimes/checks.html`);
      await page.waitForFunction(() => (window as unknown as { __checks?: unknown }).__checks, null, {
        timeout: RUN_LIMIT_MS,
        polling: 100,
      });
      const r = await page.evaluate(() => (window as unknown as { __checks: ChecksResult }).__checks);
      return { r, logs };
    } catch (e) {
      if (logs.length) (e as Error).message += `\nChromium console:\n${logs.join('\n').slice(-4000)}`;
      throw e;
    } finally {
      await session?.close();
      await closeServer(server);
      if (session?.pid) expect(alive(session.pid), 'Chromium still running after close').toBe(false);
      expect(server?.listening).toBe(false);
    }
  }

  it(
    'headless Chromium, cross-origin isolated page: the checks with 2 and 3 threads (workers over SharedArrayBuffer)',
    async (ctx) => {
      if (!existsSync(chromiumPath()))
        return missing(
          ctx,
          SUITE,
          `no Chromium at ${chromiumPath()} (apt-get install chromium; .ci/run does)`,
        );
      const { r, logs } = await inChromium(true);
      if (logs.length) console.log(`Chromium console (isolated):\n${logs.join('\n').slice(-4000)}`);
      expect(r.crossOriginIsolated).toBe(true);
      expectPassed(r);
      expectThreads(r);
      expect(browserOnly(logs)).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'headless Chromium, plain page (not cross-origin isolated): one thread and exactly one notice',
    async (ctx) => {
      if (!existsSync(chromiumPath()))
        return missing(
          ctx,
          SUITE,
          `no Chromium at ${chromiumPath()} (apt-get install chromium; .ci/run does)`,
        );
      const { r, logs } = await inChromium(false);
      console.log(`Chromium console (plain):\n${logs.join('\n').slice(-4000)}`);
      expect(r.crossOriginIsolated).toBe(false);
      expectPassed(r);
      // threads 2 and 3 asked, one thread given each time, without workers
      expect(r.runs.map((x) => [x.threads, x.workers])).toEqual([
        [1, 0],
        [1, 0],
        [1, 0],
      ]);
      // exactly one notice over two inits that asked for threads, and it says why; nothing else on the console
      expect(r.notices).toHaveLength(1);
      expect(r.notices[0].level).toBe('warn');
      expect(r.notices[0].text).toMatch(
        /^adjoint: SharedArrayBuffer is not available .*Cross-Origin-Opener-Policy.*; running on one thread\.$/,
      );
      expect(browserOnly(logs)).toEqual([`warning: ${r.notices[0].text}`]);
    },
    TEST_TIMEOUT_MS,
  );
});
