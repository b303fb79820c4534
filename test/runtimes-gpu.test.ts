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
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, type BrowserServer, chromium } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const CI = !!process.env.CI && process.env.CI !== 'false' && process.env.CI !== '0';
/** One runtime's run, start to result; the test's own timeout is above it plus cleanup. */
const RUN_LIMIT_MS = 150_000;
const TEST_TIMEOUT_MS = RUN_LIMIT_MS + 30_000;
const CLEANUP_MS = 10_000;

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
  if (CI) throw new Error(`${why} (CI: a runtime that cannot start is a failure)`);
  console.warn(`runtimes-gpu: skipped: ${why}`);
  ctx.skip(why);
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

/** Rejects after ms with `what` (the timer does not keep the process alive). */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms / 1000} s`)), ms);
    timer.unref?.();
  });
  return Promise.race([p, limit]).finally(() => clearTimeout(timer));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Kills pid's process group (Playwright starts the browser as a group leader), else pid. */
function killTree(pid: number | undefined): void {
  if (!pid) return;
  for (const target of [-pid, pid]) {
    try {
      process.kill(target, 'SIGKILL');
    } catch {
      // already gone, or not a group leader
    }
  }
}

function parseResult(stdout: string): ParityResult | null {
  const line = stdout.split('\n').find((l) => l.startsWith('GPU-PARITY '));
  return line ? (JSON.parse(line.slice('GPU-PARITY '.length)) as ParityResult) : null;
}

describe('GPU parity in other runtimes', () => {
  it(
    'Deno: navigator.gpu (lavapipe) agrees with wasm, value and gradient',
    async (ctx) => {
      const deno = join(root, 'node_modules/.bin/deno');
      if (!existsSync(deno))
        return missing(ctx, `no Deno binary at ${deno} (npm i: 'deno' is a devDependency)`);
      const home = mkdtempSync(join(tmpdir(), 'adjoint-deno-'));
      let child: ChildProcess | undefined;
      try {
        child = spawn(
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
            cwd: root,
            stdio: ['ignore', 'pipe', 'pipe'],
            env: {
              ...process.env,
              DENO_NO_UPDATE_CHECK: '1',
              DENO_DIR: join(home, 'deno'),
              XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR || home,
              NO_COLOR: '1',
            },
          },
        );
        let stdout = '';
        let stderr = '';
        child.stdout?.on('data', (d) => {
          stdout += d;
        });
        child.stderr?.on('data', (d) => {
          stderr += d;
        });
        const proc = child;
        const exit = await within(
          new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
            proc.on('error', reject);
            proc.on('close', (code, signal) => resolve({ code, signal }));
          }),
          RUN_LIMIT_MS,
          `Deno (pid ${proc.pid})`,
        ).catch((e: Error) => {
          throw new Error(`${e.message}\nstdout: ${stdout.slice(-4000)}\nstderr: ${stderr.slice(-4000)}`);
        });
        const r = parseResult(stdout);
        if (!r)
          throw new Error(
            `Deno printed no result (exit ${exit.code}, signal ${exit.signal})\n` +
              `stdout: ${stdout.slice(-4000)}\nstderr: ${stderr.slice(-4000)}`,
          );
        if (stderr.trim()) console.log(`Deno stderr:\n${stderr.slice(-2000)}`);
        expectPassed(r);
        expect(r.runtime).toMatch(/^deno /);
        expect(exit.code).toBe(0);
      } finally {
        if (child?.pid && child.exitCode === null && child.signalCode === null) killTree(child.pid);
        rmSync(home, { recursive: true, force: true });
      }
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'headless Chromium: navigator.gpu (SwiftShader) agrees with wasm in a cross-origin isolated page',
    async (ctx) => {
      const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';
      if (!existsSync(executablePath))
        return missing(ctx, `no Chromium at ${executablePath} (apt-get install chromium; .ci/run does)`);
      let server: Server | undefined;
      let browserServer: BrowserServer | undefined;
      let browser: Browser | undefined;
      let pid: number | undefined;
      const logs: string[] = [];
      try {
        server = await serve();
        const address = server.address();
        const port = typeof address === 'object' && address ? address.port : 0;
        browserServer = await within(
          chromium.launchServer({
            executablePath,
            headless: true,
            args: [
              '--enable-unsafe-webgpu',
              '--no-sandbox',
              '--disable-background-networking',
              '--disable-component-update',
              '--disable-default-apps',
              '--disable-sync',
              '--no-default-browser-check',
              '--no-first-run',
            ],
          }),
          30_000,
          'starting Chromium',
        );
        pid = browserServer.process().pid;
        browser = await within(
          chromium.connect(browserServer.wsEndpoint()),
          30_000,
          'connecting to Chromium',
        );
        const page = await browser.newPage();
        page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
        page.on('pageerror', (e) => logs.push(`pageerror: ${e.stack ?? e.message}`));
        page.on('crash', () => logs.push('the page crashed'));
        page.on('response', (res) => {
          if (res.status() >= 400) logs.push(`HTTP ${res.status()}: ${res.url()}`);
        });
        page.on('requestfailed', (req) =>
          logs.push(`request failed: ${req.url()} ${req.failure()?.errorText}`),
        );
        await page.goto(`http://127.0.0.1:${port}/test/runtimes/gpu-parity.html`);
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
        await within(browser?.close() ?? Promise.resolve(), CLEANUP_MS, 'closing the browser').catch(
          () => {},
        );
        await within(browserServer?.close() ?? Promise.resolve(), CLEANUP_MS, 'closing Chromium').catch(
          () => {},
        );
        if (pid && alive(pid)) killTree(pid);
        if (server) {
          server.closeAllConnections();
          await new Promise((r) => server?.close(r));
        }
      }
    },
    TEST_TIMEOUT_MS,
  );
});

/** dist/ and test/runtimes/ from 127.0.0.1 on a free port, cross-origin isolated. */
function serve(): Promise<Server> {
  const types: Record<string, string> = {
    '.js': 'text/javascript',
    '.mjs': 'text/javascript',
    '.wasm': 'application/wasm',
    '.html': 'text/html',
    '.map': 'application/json',
  };
  const server = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname));
    const file = join(root, path);
    const allowed = [join(root, 'dist') + sep, join(root, 'test/runtimes') + sep].some((d) =>
      file.startsWith(d),
    );
    try {
      if (!allowed) throw new Error('not served');
      const body = await readFile(file);
      res.writeHead(200, {
        'content-type': types[extname(file)] ?? 'application/octet-stream',
        'cross-origin-opener-policy': 'same-origin',
        'cross-origin-embedder-policy': 'require-corp',
        'cross-origin-resource-policy': 'same-origin',
        'cache-control': 'no-store',
      });
      res.end(body);
    } catch {
      res.writeHead(404);
      res.end();
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}
