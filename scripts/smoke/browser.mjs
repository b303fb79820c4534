#!/usr/bin/env node
// Manual smoke check in headless Chromium: loads dist/ in a page served with and without the
// COOP/COEP headers and prints what it computed (2 threads when cross-origin isolated, one
// thread and a notice otherwise). Not part of `npm test` yet.
//   apt-get install chromium; npm i --no-save playwright-core; npm run build
//   node scripts/smoke/browser.mjs
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = fileURLToPath(new URL('../..', import.meta.url));
const types = {
  '.js': 'text/javascript',
  '.wasm': 'application/wasm',
  '.html': 'text/html',
  '.map': 'application/json',
};

function serve(isolated) {
  return new Promise((resolve) => {
    const srv = createServer(async (req, res) => {
      const path = new URL(req.url, 'http://x').pathname;
      const file = path === '/' ? join(root, 'scripts/smoke/page.html') : join(root, path);
      try {
        const headers = { 'content-type': types[extname(file)] ?? 'application/octet-stream' };
        if (isolated) {
          headers['cross-origin-opener-policy'] = 'same-origin';
          headers['cross-origin-embedder-policy'] = 'require-corp';
        }
        const body = await readFile(file);
        res.writeHead(200, headers);
        res.end(body);
      } catch {
        res.writeHead(404);
        res.end();
      }
    });
    srv.listen(0, '127.0.0.1', () => resolve(srv));
  });
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--no-first-run',
  ],
});
for (const isolated of [true, false]) {
  const srv = await serve(isolated);
  const page = await browser.newPage();
  const logs = [];
  page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
  await page.goto(`http://127.0.0.1:${srv.address().port}/`);
  await page.waitForFunction(() => window.__result, null, { timeout: 30_000 });
  console.log(
    isolated ? 'cross-origin isolated:' : 'not isolated:',
    JSON.stringify(await page.evaluate(() => window.__result)),
  );
  for (const l of logs) console.log(`  ${l}`);
  await page.close();
  srv.close();
}
await browser.close();
