/**
 * What the runtime suites share (test/runtimes-gpu.test.ts, test/runtimes-cross.test.ts,
 * test/runtimes-edge.test.ts): the CI rule for missing runtimes, time limits, child processes
 * run and killed by PID, a static server on 127.0.0.1, and headless Chromium.
 *
 * Every process started here is killed by its PID (its process group where it leads one) when
 * the caller's test ends, pass or fail; every server is closed.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, type BrowserServer, chromium, type Page } from 'playwright-core';

export const root = fileURLToPath(new URL('../..', import.meta.url));
export const CI = !!process.env.CI && process.env.CI !== 'false' && process.env.CI !== '0';
export const CLEANUP_MS = 10_000;

/** A runtime binary that is not there: a failure under CI, a skip with the reason locally. */
export function missing(ctx: { skip: (note?: string) => void }, suite: string, why: string): void {
  if (CI) throw new Error(`${why} (CI: a runtime that cannot start is a failure)`);
  console.warn(`${suite}: skipped: ${why}`);
  ctx.skip(why);
}

/** Rejects after ms with `what` (the timer does not keep the process alive). */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms / 1000} s`)), ms);
    timer.unref?.();
  });
  return Promise.race([p, limit]).finally(() => clearTimeout(timer));
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Kills pid's process group (when it leads one: Playwright's browser, detached children), else pid. */
export function killTree(pid: number | undefined, signal: NodeJS.Signals = 'SIGKILL'): void {
  if (!pid) return;
  for (const target of [-pid, pid]) {
    try {
      process.kill(target, signal);
    } catch {
      // already gone, or not a group leader
    }
  }
}

/**
 * Children started by these suites and not yet exited. Killed by PID when the test process
 * exits, should a test's own finally block not have run (a vitest timeout abandons the test's
 * promise; the process may end before it settles).
 */
const live = new Set<ChildProcess>();
let exitHook = false;

/** Registers a child to be killed by PID if it outlives the test process. */
export function track(child: ChildProcess): ChildProcess {
  if (!child.pid) return child;
  live.add(child);
  child.once('exit', () => live.delete(child));
  if (!exitHook) {
    exitHook = true;
    process.once('exit', () => {
      for (const c of live) killTree(c.pid);
    });
  }
  return child;
}

/** Waits up to ms for a child to exit after a signal, then SIGKILLs it. */
export async function stopChild(
  child: ChildProcess | undefined,
  signal: NodeJS.Signals = 'SIGTERM',
): Promise<void> {
  if (!child?.pid || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    process.kill(child.pid, signal);
  } catch {
    return;
  }
  await within(exited, CLEANUP_MS, `stopping pid ${child.pid}`).catch(() => killTree(child.pid));
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a command to its end within limitMs (killed by PID on the limit or when the caller's
 * test fails); rejects with the output's tail when it cannot start or runs too long.
 */
export async function runProcess(
  cmd: string,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; limitMs: number; what: string },
): Promise<RunResult> {
  let child: ChildProcess | undefined;
  let stdout = '';
  let stderr = '';
  try {
    child = track(
      spawn(cmd, args, {
        cwd: opts.cwd ?? root,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: opts.env ?? process.env,
      }),
    );
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
      opts.limitMs,
      `${opts.what} (pid ${proc.pid})`,
    );
    return { ...exit, stdout, stderr };
  } catch (e) {
    (e as Error).message += `\nstdout: ${stdout.slice(-4000)}\nstderr: ${stderr.slice(-4000)}`;
    throw e;
  } finally {
    if (child?.pid && child.exitCode === null && child.signalCode === null) killTree(child.pid);
  }
}

/** The line `${tag} {json}` a runtime printed, parsed; null when there is none. */
export function taggedJson<T>(stdout: string, tag: string): T | null {
  const line = stdout.split('\n').find((l) => l.startsWith(`${tag} `));
  return line ? (JSON.parse(line.slice(tag.length + 1)) as T) : null;
}

const TYPES: Record<string, string> = {
  '.js': 'text/javascript',
  '.mjs': 'text/javascript',
  '.wasm': 'application/wasm',
  '.html': 'text/html',
  '.map': 'application/json',
};

/**
 * dist/ and test/runtimes/ from 127.0.0.1 on a free port. isolated (default true): COOP
 * same-origin + COEP require-corp on every response, so pages are cross-origin isolated.
 */
export function serve(opts: { isolated?: boolean } = {}): Promise<Server> {
  const isolated = opts.isolated ?? true;
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
        'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
        ...(isolated
          ? {
              'cross-origin-opener-policy': 'same-origin',
              'cross-origin-embedder-policy': 'require-corp',
              'cross-origin-resource-policy': 'same-origin',
            }
          : {}),
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

export function serverPort(server: Server): number {
  const address = server.address();
  return typeof address === 'object' && address ? address.port : 0;
}

export async function closeServer(server: Server | undefined): Promise<void> {
  if (!server) return;
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
}

export const chromiumPath = (): string => process.env.CHROMIUM ?? '/usr/bin/chromium';

/** A headless Chromium (Debian's, never a downloaded one) and what is needed to stop it. */
export interface ChromiumSession {
  browser: Browser;
  /** The browser process (a process group leader). */
  pid: number | undefined;
  /** Opens a page that records console messages, page errors, crashes and failed requests in `logs`. */
  page(logs: string[]): Promise<Page>;
  close(): Promise<void>;
}

export async function launchChromium(extraArgs: string[] = []): Promise<ChromiumSession> {
  let browserServer: BrowserServer | undefined;
  let browser: Browser | undefined;
  let pid: number | undefined;
  const close = async () => {
    await within(browser?.close() ?? Promise.resolve(), CLEANUP_MS, 'closing the browser').catch(() => {});
    await within(browserServer?.close() ?? Promise.resolve(), CLEANUP_MS, 'closing Chromium').catch(() => {});
    if (pid && alive(pid)) killTree(pid);
  };
  try {
    browserServer = await within(
      chromium.launchServer({
        executablePath: chromiumPath(),
        headless: true,
        args: [
          ...extraArgs,
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
    browser = await within(chromium.connect(browserServer.wsEndpoint()), 30_000, 'connecting to Chromium');
  } catch (e) {
    await close();
    throw e;
  }
  const b = browser;
  return {
    browser: b,
    pid,
    async page(logs) {
      const page = await b.newPage();
      page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
      page.on('pageerror', (e) => logs.push(`pageerror: ${e.stack ?? e.message}`));
      page.on('crash', () => logs.push('the page crashed'));
      page.on('response', (res) => {
        if (res.status() >= 400) logs.push(`HTTP ${res.status()}: ${res.url()}`);
      });
      page.on('requestfailed', (req) =>
        logs.push(`request failed: ${req.url()} ${req.failure()?.errorText}`),
      );
      return page;
    },
    close,
  };
}
