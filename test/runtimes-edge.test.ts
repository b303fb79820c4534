/**
 * The edge story (docs/EDGE.md):
 * - where the kernels cannot be located, fetched or compiled, init() rejects with a
 *   WasmUnavailableError that says to pass init({ wasmModule }) (simulated in Node: a refused
 *   WebAssembly.compile, a kernel URL that does not exist, one whose fetch fails); the same
 *   init then succeeds with wasmModule;
 * - the kernel binaries resolve as package subpaths (adjoint/wasm/kernels.wasm and the relaxed
 *   build) the way bundlers and Node resolve them;
 * - Cloudflare's workerd (npm 'workerd') runs the Cloudflare recipe of docs/EDGE.md as written:
 *   the test extracts it, bundles it as wrangler would (esbuild; .wasm imports kept as compiled
 *   wasm modules, .safetensors as data modules), writes a config, starts `workerd serve` on
 *   127.0.0.1 port 0, reads the port from --control-fd, posts a batch: inference equals Node's on
 *   the same checkpoint, and a few fine-tuning steps make the loss fall. A second worker in the
 *   same process calls init() without wasmModule (a WasmUnavailableError, no import.meta.url
 *   there) and with threads it cannot have (one thread, a single notice, nothing else printed).
 *   workerd is stopped by its PID (SIGTERM, then SIGKILL) in a finally block;
 * - the Deno Deploy recipe of docs/EDGE.md, as written, under `deno serve` on 127.0.0.1 port 0
 *   (an import map points npm:adjoint at dist/: the tests run offline); its answer equals Node's.
 *
 * Time on this 2-core machine: ~3-5 s, most of it workerd starting and the esbuild bundle.
 */
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import type { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { init, memoryStats, WasmUnavailableError } from '../src/index';
import { alive, missing, root, runProcess, stopChild, track, within } from './runtimes/harness';

const override = vi.hoisted(() => ({ wasmUrl: undefined as undefined | ((name: string) => URL) }));
vi.mock('../src/wasm-url', async (importOriginal) => {
  const real = await importOriginal<typeof import('../src/wasm-url')>();
  return { wasmUrl: (name: string) => (override.wasmUrl ? override.wasmUrl(name) : real.wasmUrl(name)) };
});

const SUITE = 'runtimes-edge';
const WORKERD_LIMIT_MS = 30_000;

function compiled(name: string): WebAssembly.Module {
  return new WebAssembly.Module(readFileSync(join(root, 'src/wasm', name)));
}

async function expectUnavailable(p: Promise<unknown>): Promise<WasmUnavailableError> {
  const e = await p.then(
    () => {
      throw new Error('init() resolved; a WasmUnavailableError was expected');
    },
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(WasmUnavailableError);
  const err = e as WasmUnavailableError;
  expect(err.name).toBe('WasmUnavailableError');
  expect(err.message).toContain('init({ wasmModule })');
  expect(err.message).toContain("'adjoint/wasm/kernels.wasm'");
  return err;
}

describe('init() where the kernels cannot be located or compiled', () => {
  afterEach(async () => {
    vi.restoreAllMocks();
    override.wasmUrl = undefined;
    await init({ threads: 1 });
  });

  it('WebAssembly.compile refused (as on edge runtimes): a typed error that says to pass wasmModule; then wasmModule works', async () => {
    const plain = compiled('kernels.wasm');
    const refusal = new WebAssembly.CompileError(
      'WebAssembly.compile(): Wasm code generation disallowed by embedder',
    );
    vi.spyOn(WebAssembly, 'compile').mockRejectedValue(refusal);
    for (const threads of [1, 2]) {
      const err = await expectUnavailable(init({ backend: 'wasm', threads }));
      expect(err.message).toContain('Wasm code generation disallowed by embedder');
      expect(err.cause).toBe(refusal);
    }
    // the same init with the module passed in works, compile still refused
    await init({ backend: 'wasm', threads: 1, wasmModule: plain });
    expect(memoryStats().threads).toBe(1);
    const { tensor } = await import('../src/index');
    expect(Array.from(await tensor([1, 2, 3]).mul(2).data())).toEqual([2, 4, 6]);
  });

  it('a kernel file that is not there, and a fetch that fails: the same typed error', async () => {
    override.wasmUrl = (name) => pathToFileURL(join(tmpdir(), `adjoint-missing-${process.pid}`, name));
    const missingFile = await expectUnavailable(init({ threads: 1 }));
    expect(missingFile.message).toMatch(/ENOENT/);
    // port 9 on 127.0.0.1 (discard): nothing listens there, the fetch is refused at once
    override.wasmUrl = (name) => new URL(`http://127.0.0.1:9/${name}`);
    await expectUnavailable(init({ threads: 1 }));
    await expectUnavailable(init({ threads: 2 }));
  });
});

describe('the kernel binaries are package subpaths', () => {
  it('adjoint/wasm/kernels.wasm and kernels-relaxed.wasm resolve through package.json exports (Node and esbuild)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'adjoint-resolve-'));
    try {
      mkdirSync(join(dir, 'node_modules'));
      symlinkSync(root, join(dir, 'node_modules/adjoint'), 'dir');
      writeFileSync(join(dir, 'package.json'), '{"type":"module"}');
      const names = ['kernels.wasm', 'kernels-relaxed.wasm'];
      const script = names.map((n) => `console.log(import.meta.resolve('adjoint/wasm/${n}'));`).join('');
      const r = await runProcess(process.execPath, ['--input-type=module', '-e', script], {
        cwd: dir,
        limitMs: 20_000,
        what: 'node import.meta.resolve',
      });
      expect(r.code, r.stderr).toBe(0);
      const resolved = r.stdout.trim().split('\n');
      expect(resolved).toEqual(
        names.map((n) => pathToFileURL(join(realpathSync(root), 'dist/wasm', n)).href),
      );
      for (const n of names) expect(existsSync(join(root, 'dist/wasm', n)), `dist/wasm/${n}`).toBe(true);
      const esbuild = await import('esbuild');
      const seen: string[] = [];
      await esbuild.build({
        stdin: { contents: names.map((n) => `import '${`adjoint/wasm/${n}`}';`).join('\n'), resolveDir: dir },
        bundle: true,
        write: false,
        logLevel: 'silent',
        plugins: [
          {
            name: 'record-wasm',
            setup(build) {
              build.onResolve({ filter: /\.wasm$/ }, async (args) => {
                if (args.pluginData === 'inner') return undefined;
                const r = await build.resolve(args.path, {
                  kind: args.kind,
                  resolveDir: args.resolveDir,
                  pluginData: 'inner',
                });
                seen.push(r.path);
                return { path: r.path, external: true };
              });
            },
          },
        ],
      });
      expect(seen.map((p) => realpathSync(p))).toEqual(
        names.map((n) => join(realpathSync(root), 'dist/wasm', n)),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});

/** The code block that follows `<!-- recipe: name -->` in docs/EDGE.md. */
function recipe(name: string): string {
  const md = readFileSync(join(root, 'docs/EDGE.md'), 'utf8');
  const at = md.indexOf(`<!-- recipe: ${name} -->`);
  if (at < 0) throw new Error(`docs/EDGE.md has no recipe ${name}`);
  const m = /```[a-z]*\n([\s\S]*?)```/.exec(md.slice(at));
  if (!m) throw new Error(`docs/EDGE.md: recipe ${name} has no code block`);
  return m[1];
}

/** A worker that reports what init() does in workerd without wasmModule, and with threads it cannot have. */
const PROBE = `
import * as A from 'adjoint';
import wasmModule from 'adjoint/wasm/kernels.wasm';
import relaxedModule from 'adjoint/wasm/kernels-relaxed.wasm';
export default {
  async fetch() {
    const notices = [];
    const saved = {};
    for (const level of ['warn', 'error', 'info', 'log']) {
      saved[level] = console[level];
      console[level] = (...args) => { notices.push(level + ': ' + args.join(' ')); };
    }
    const out = { importMetaUrl: String(import.meta.url), hasWorker: typeof Worker };
    try {
      try {
        await A.init();
        out.bare = { resolved: true };
      } catch (e) {
        out.bare = { name: e.name, message: e.message, typed: e instanceof A.WasmUnavailableError };
      }
      await A.init({ wasmModule });
      out.plain = { threads: A.memoryStats().threads, notices: notices.length };
      await A.init({ wasmModule, threads: 2 });
      out.two = { threads: A.memoryStats().threads };
      await A.init({ wasmModule, threads: 4 });
      out.four = { threads: A.memoryStats().threads };
      out.sum = Array.from(await A.tensor([1, 2, 3]).mul(A.tensor([4, 5, 6])).data());
      await A.init({ wasmModule: relaxedModule });
      const [v, g] = A.valueAndGrad((x) => x.square().sum())(A.tensor([1, -2, 3]));
      out.relaxed = { threads: A.memoryStats().threads, value: await v.item(), grad: Array.from(await g.data()) };
    } catch (e) {
      out.error = String(e && e.stack || e);
    } finally {
      for (const level of Object.keys(saved)) console[level] = saved[level];
    }
    out.notices = notices;
    return Response.json(out);
  },
};
`;

interface Bundled {
  file: string;
  /** Modules the bundle imports by name: [name, kind, path]. */
  modules: [string, 'wasm' | 'data', string][];
}

/**
 * Bundles `entry` as wrangler does: one ES module, with imports of .wasm files kept as compiled
 * wasm modules and of .safetensors files as data modules, each named by its file name.
 */
async function bundle(dir: string, entry: string, out: string): Promise<Bundled> {
  const esbuild = await import('esbuild');
  const modules = new Map<string, ['wasm' | 'data', string]>();
  await esbuild.build({
    entryPoints: [join(dir, entry)],
    outfile: join(dir, out),
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    target: 'es2022',
    mainFields: ['module', 'main'],
    conditions: ['workerd', 'worker', 'browser', 'import'],
    external: ['node:*'],
    logLevel: 'silent',
    plugins: [
      {
        name: 'edge-modules',
        setup(build) {
          build.onResolve({ filter: /\.(wasm|safetensors)$/ }, async (args) => {
            if (args.pluginData === 'inner') return undefined;
            const r = await build.resolve(args.path, {
              kind: args.kind,
              resolveDir: args.resolveDir,
              pluginData: 'inner',
            });
            if (r.errors.length) return { errors: r.errors };
            const name = basename(r.path);
            modules.set(name, [name.endsWith('.wasm') ? 'wasm' : 'data', r.path]);
            return { path: `./${name}`, external: true };
          });
        },
      },
    ],
  });
  return { file: out, modules: [...modules].map(([name, [kind, path]]) => [name, kind, path]) };
}

/** A worker's part of the config; its modules are copied beside the config (embed paths are relative to it). */
function capnpWorker(dir: string, id: string, b: Bundled): string {
  for (const [name, , path] of b.modules) if (join(dir, name) !== path) copyFileSync(path, join(dir, name));
  const mods = [
    `(name = "${b.file}", esModule = embed "${b.file}")`,
    ...b.modules.map(([name, kind]) => `(name = "${name}", ${kind} = embed "${name}")`),
  ];
  return `const ${id} :Workerd.Worker = (\n  modules = [\n    ${mods.join(',\n    ')}\n  ],\n  compatibilityDate = "2025-09-01",\n);\n`;
}

/** A small classifier's checkpoint (made with dist/, as an app would ship it), and the batch to post. */
async function fixture(dir: string) {
  const A = await import(pathToFileURL(join(root, 'dist/index.js')).href);
  await A.init({ threads: 1 });
  const params = A.nn.mlp.init([4, 16, 3], { seed: 5 });
  writeFileSync(join(dir, 'model.safetensors'), A.io.saveSafetensors(params));
  const inputs: number[][] = [];
  const labels: number[] = [];
  const x = await A.random.normal([24, 4], { seed: 6 }).array();
  for (const row of x as number[][]) {
    inputs.push(row.map((v) => Math.round(v * 1000) / 1000));
    labels.push(row[0] + row[1] > 0.5 ? 2 : row[2] > 0 ? 1 : 0);
  }
  const probabilities = (await A.softmax(A.nn.mlp.apply(params, A.tensor(inputs))).array()) as number[][];
  await A.shutdown();
  return { inputs, labels, probabilities };
}

/** Reads `{"event":"listen","socket":name,"port":N}` lines from workerd's control fd until every socket listens. */
function listenPorts(control: Readable, sockets: string[]): Promise<Record<string, number>> {
  return new Promise((resolve, reject) => {
    const ports: Record<string, number> = {};
    let buf = '';
    control.on('data', (d) => {
      buf += d;
      let nl = buf.indexOf('\n');
      while (nl >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        nl = buf.indexOf('\n');
        try {
          const ev = JSON.parse(line);
          if (ev.event === 'listen') ports[ev.socket] = ev.port;
        } catch {
          // not a JSON line
        }
        if (sockets.every((s) => ports[s])) resolve(ports);
      }
    });
    control.on('error', reject);
    control.on('close', () =>
      reject(new Error(`workerd's control fd closed; ports so far ${JSON.stringify(ports)}`)),
    );
  });
}

function workerdBinary(): string | undefined {
  const bin = join(root, 'node_modules/workerd/bin/workerd');
  return existsSync(bin) ? bin : undefined;
}

describe("Cloudflare's workerd", () => {
  beforeAll(() => {
    if (!existsSync(join(root, 'dist/index.js')))
      throw new Error('dist/index.js is missing: run `npm run build` first (`npm test` does)');
  });

  it(
    'runs the Cloudflare recipe of docs/EDGE.md: checkpoint as a data module, kernels as a wasm module; inference and fine-tuning',
    async (ctx) => {
      const bin = workerdBinary();
      if (!bin)
        return missing(
          ctx,
          SUITE,
          `no workerd binary at node_modules/workerd/bin (npm i: 'workerd' is a devDependency)`,
        );
      const dir = mkdtempSync(join(tmpdir(), 'adjoint-workerd-'));
      let child: ChildProcess | undefined;
      let stderr = '';
      let stdout = '';
      try {
        mkdirSync(join(dir, 'node_modules'));
        symlinkSync(root, join(dir, 'node_modules/adjoint'), 'dir');
        writeFileSync(join(dir, 'package.json'), '{"type":"module","private":true}');
        writeFileSync(join(dir, 'worker.js'), recipe('cloudflare/worker.js'));
        writeFileSync(join(dir, 'probe.js'), PROBE);
        const data = await fixture(dir);
        const main = await bundle(dir, 'worker.js', 'main.bundle.js');
        const probe = await bundle(dir, 'probe.js', 'probe.bundle.js');
        // the bundler resolved the kernels through the package's exports map
        expect(main.modules.map(([n, k, p]) => [n, k, realpathSync(p)])).toEqual(
          expect.arrayContaining([
            ['kernels.wasm', 'wasm', realpathSync(join(root, 'dist/wasm/kernels.wasm'))],
            ['model.safetensors', 'data', realpathSync(join(dir, 'model.safetensors'))],
          ]),
        );
        writeFileSync(
          join(dir, 'config.capnp'),
          `using Workerd = import "/workerd/workerd.capnp";\n\n` +
            `const config :Workerd.Config = (\n` +
            `  services = [(name = "main", worker = .mainWorker), (name = "probe", worker = .probeWorker)],\n` +
            `  sockets = [\n` +
            `    (name = "main", address = "127.0.0.1:0", http = (), service = "main"),\n` +
            `    (name = "probe", address = "127.0.0.1:0", http = (), service = "probe"),\n` +
            `  ],\n);\n\n` +
            capnpWorker(dir, 'mainWorker', main) +
            capnpWorker(dir, 'probeWorker', probe),
        );
        child = track(
          spawn(bin, ['serve', 'config.capnp', '--control-fd=3'], {
            cwd: dir,
            stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
          }),
        );
        child.stdout?.on('data', (d) => {
          stdout += d;
        });
        child.stderr?.on('data', (d) => {
          stderr += d;
        });
        const started = new Promise<never>((_, reject) => {
          child?.on('error', reject);
          child?.on('exit', (code, signal) =>
            reject(new Error(`workerd exited (code ${code}, signal ${signal})`)),
          );
        });
        const ports = await within(
          Promise.race([listenPorts(child.stdio[3] as Readable, ['main', 'probe']), started]),
          WORKERD_LIMIT_MS,
          `workerd (pid ${child.pid}) listening`,
        );

        // the recipe: inference, then fine-tuning
        const res = await within(
          fetch(`http://127.0.0.1:${ports.main}/`, {
            method: 'POST',
            body: JSON.stringify({ inputs: data.inputs, labels: data.labels, steps: 12 }),
          }),
          WORKERD_LIMIT_MS,
          'POST to the recipe worker',
        );
        const text = await res.text();
        expect(res.status, text).toBe(200);
        const out = JSON.parse(text) as {
          probabilities: number[][];
          losses: number[];
          checkpointBytes: number;
        };
        expect(out.probabilities).toHaveLength(24);
        out.probabilities.forEach((row, i) => {
          expect(row).toHaveLength(3);
          row.forEach((p, j) => {
            expect(Math.abs(p - data.probabilities[i][j]), `probability [${i}][${j}] vs Node`).toBeLessThan(
              1e-5,
            );
          });
        });
        expect(out.losses).toHaveLength(12);
        expect(out.losses.every(Number.isFinite)).toBe(true);
        expect(out.losses[11]).toBeLessThan(out.losses[0] * 0.8);
        expect(out.checkpointBytes).toBeGreaterThan((4 * 16 + 16 + 16 * 3 + 3) * 4);
        console.log(
          `workerd: recipe losses ${out.losses[0].toFixed(4)} -> ${out.losses[11].toFixed(4)} in 12 steps`,
        );

        // init() without wasmModule there, and threads it cannot have
        const probeRes = await within(fetch(`http://127.0.0.1:${ports.probe}/`), WORKERD_LIMIT_MS, 'probe');
        const p = (await probeRes.json()) as Record<string, any>;
        expect(p.error, p.error).toBeUndefined();
        expect(p.importMetaUrl).toBe('undefined');
        expect(p.hasWorker).toBe('undefined');
        expect(p.bare.typed).toBe(true);
        expect(p.bare.name).toBe('WasmUnavailableError');
        expect(p.bare.message).toContain('init({ wasmModule })');
        expect(p.bare.message).toContain('import.meta.url');
        expect(p.plain).toEqual({ threads: 1, notices: 0 }); // the default: one thread, silent
        expect(p.two.threads).toBe(1);
        expect(p.four.threads).toBe(1);
        expect(p.notices).toHaveLength(1);
        expect(p.notices[0]).toMatch(/^warn: adjoint: this runtime has no Worker; running on one thread\.$/);
        expect(p.sum).toEqual([4, 10, 18]);
        // the relaxed-SIMD build, as a package subpath too, runs there
        expect(p.relaxed).toEqual({ threads: 1, value: 14, grad: [2, -4, 6] });
        expect(probe.modules.map(([n, k]) => [n, k]).sort()).toEqual([
          ['kernels-relaxed.wasm', 'wasm'],
          ['kernels.wasm', 'wasm'],
        ]);
        // workerd itself logged no errors (uncaught exceptions in the workers land on stderr)
        expect(stderr).not.toMatch(/uncaught|error/i);
      } catch (e) {
        (e as Error).message +=
          `\nworkerd stdout: ${stdout.slice(-3000)}\nworkerd stderr: ${stderr.slice(-3000)}`;
        throw e;
      } finally {
        await stopChild(child, 'SIGTERM');
        rmSync(dir, { recursive: true, force: true });
      }
      // stopped by its PID: SIGTERM ended it (a SIGKILL fallback would show as signalCode SIGKILL)
      expect(child.pid && alive(child.pid)).toBe(false);
      expect(child.signalCode ?? `exit code ${child.exitCode}`).toMatch(/^(SIGTERM|exit code 0)$/);
    },
    WORKERD_LIMIT_MS * 4 + 15_000,
  );
});

describe('Deno Deploy recipe', () => {
  it(
    'runs the Deno recipe of docs/EDGE.md as written under `deno serve` on 127.0.0.1; inference equals Node',
    async (ctx) => {
      const deno = join(root, 'node_modules/.bin/deno');
      if (!existsSync(deno))
        return missing(ctx, SUITE, `no Deno binary at ${deno} (npm i: 'deno' is a devDependency)`);
      const dir = mkdtempSync(join(tmpdir(), 'adjoint-deno-serve-'));
      let child: ChildProcess | undefined;
      let output = '';
      try {
        writeFileSync(join(dir, 'main.js'), recipe('deno/main.js'));
        // offline: npm:adjoint is the built package of this repository
        writeFileSync(
          join(dir, 'import-map.json'),
          JSON.stringify({ imports: { 'npm:adjoint': pathToFileURL(join(root, 'dist/index.js')).href } }),
        );
        const data = await fixture(dir);
        child = track(
          spawn(
            deno,
            [
              'serve',
              '--no-prompt',
              '--no-remote',
              `--allow-read=${root},${dir}`,
              '--import-map=import-map.json',
              '--host',
              '127.0.0.1',
              '--port',
              '0',
              'main.js',
            ],
            {
              cwd: dir,
              stdio: ['ignore', 'pipe', 'pipe'],
              env: { ...process.env, DENO_NO_UPDATE_CHECK: '1', DENO_DIR: join(dir, '.deno'), NO_COLOR: '1' },
            },
          ),
        );
        const proc = child;
        const port = await within(
          new Promise<number>((resolve, reject) => {
            const seen = (d: Buffer) => {
              output += d;
              const m = /Listening on http:\/\/127\.0\.0\.1:(\d+)\//.exec(output);
              if (m) resolve(Number(m[1]));
            };
            proc.stdout?.on('data', seen);
            proc.stderr?.on('data', seen);
            proc.on('error', reject);
            proc.on('exit', (code, signal) =>
              reject(new Error(`deno serve exited (code ${code}, signal ${signal})`)),
            );
          }),
          WORKERD_LIMIT_MS,
          `deno serve (pid ${proc.pid}) listening`,
        );
        const res = await within(
          fetch(`http://127.0.0.1:${port}/`, {
            method: 'POST',
            body: JSON.stringify({ inputs: data.inputs }),
          }),
          WORKERD_LIMIT_MS,
          'POST to the Deno recipe',
        );
        const text = await res.text();
        expect(res.status, text).toBe(200);
        const out = JSON.parse(text) as { probabilities: number[][] };
        expect(out.probabilities).toHaveLength(24);
        out.probabilities.forEach((row, i) => {
          expect(row).toHaveLength(3);
          row.forEach((p, j) => {
            expect(Math.abs(p - data.probabilities[i][j]), `probability [${i}][${j}] vs Node`).toBeLessThan(
              1e-5,
            );
          });
        });
        expect(output).not.toMatch(/adjoint:|error|warning/i);
      } catch (e) {
        (e as Error).message += `\ndeno serve output: ${output.slice(-3000)}`;
        throw e;
      } finally {
        await stopChild(child, 'SIGTERM');
        rmSync(dir, { recursive: true, force: true });
      }
      expect(child.pid && alive(child.pid)).toBe(false);
    },
    WORKERD_LIMIT_MS * 3 + 15_000,
  );
});
