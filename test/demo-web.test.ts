/**
 * The browser demo (npm run demo:web: examples/web/serve.mjs and the page in examples/web/), run
 * in headless Chromium (Debian's, launched by test/runtimes/harness.ts) against the built dist/:
 * - the page is cross-origin isolated and adjoint runs its worker pool there;
 * - pressing Train trains the MNIST MLP to >= 95% accuracy on the 2,000 held-out digits;
 * - the loss and accuracy plot is drawn: a screenshot of its canvas has both curves' colours;
 * - held-out digits drawn on the drawing canvas with the mouse, stroke by stroke, are classified
 *   as their labels;
 * - the checkpoint downloads as safetensors, and loading it after a reset restores the accuracy.
 *
 * The server listens on 127.0.0.1, port 0; it and the browser are stopped in `finally`, pass or
 * fail. Takes ~20 s on this 2-core machine (training ~9-12 s of it).
 */
import { existsSync } from 'node:fs';
import { inflateSync } from 'node:zlib';
import type { Page } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { startServer } from '../examples/web/serve.mjs';
import { chromiumPath, launchChromium, missing, root, within } from './runtimes/harness';

const TEST_TIMEOUT_MS = 150_000;
const TRAIN_LIMIT_MS = 100_000;

interface DemoState {
  phase: string;
  error: string | null;
  device: {
    backend: string;
    threads: number;
    workers: number;
    crossOriginIsolated: boolean;
    paramsOn: string;
  };
  losses: { step: number; loss: number }[];
  accuracies: { step: number; accuracy: number; source: string }[];
  prediction: { label: number; probs: number[] } | null;
  predictions: number;
}

beforeAll(() => {
  if (!existsSync(`${root}/dist/index.js`))
    throw new Error('dist/index.js is missing: run `npm run build` first (`npm test` does)');
});

/** RGBA pixels of an 8-bit, non-interlaced PNG (what Chromium's screenshots are). */
function decodePng(png: Buffer): { width: number; height: number; rgba: Uint8Array } {
  expect(png.subarray(1, 4).toString('latin1')).toBe('PNG');
  let at = 8;
  let width = 0;
  let height = 0;
  let colorType = 0;
  const idat: Buffer[] = [];
  while (at < png.length) {
    const len = png.readUInt32BE(at);
    const type = png.subarray(at + 4, at + 8).toString('latin1');
    const body = png.subarray(at + 8, at + 8 + len);
    if (type === 'IHDR') {
      width = body.readUInt32BE(0);
      height = body.readUInt32BE(4);
      expect(body[8], 'bit depth').toBe(8);
      colorType = body[9];
      expect(body[12], 'interlace').toBe(0);
    } else if (type === 'IDAT') idat.push(body);
    at += 12 + len;
  }
  const channels = colorType === 6 ? 4 : colorType === 2 ? 3 : 0;
  expect(channels, `PNG colour type ${colorType}`).toBeGreaterThan(0);
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const px = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let i = 0; i < stride; i++) {
      const a = i >= channels ? px[y * stride + i - channels] : 0;
      const b = y > 0 ? px[(y - 1) * stride + i] : 0;
      const c = i >= channels && y > 0 ? px[(y - 1) * stride + i - channels] : 0;
      let v = line[i];
      if (filter === 1) v += a;
      else if (filter === 2) v += b;
      else if (filter === 3) v += (a + b) >> 1;
      else if (filter === 4) {
        const p = a + b - c;
        const pa = Math.abs(p - a);
        const pb = Math.abs(p - b);
        const pc = Math.abs(p - c);
        v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      px[y * stride + i] = v & 255;
    }
  }
  const rgba = new Uint8Array(width * height * 4);
  for (let i = 0; i < width * height; i++) {
    rgba.set(px.subarray(i * channels, i * channels + 3), i * 4);
    rgba[i * 4 + 3] = channels === 4 ? px[i * channels + 3] : 255;
  }
  return { width, height, rgba };
}

interface DemoPage {
  demo: DemoState & {
    testDigit(i: number): { pixels: number[]; label: number };
    classify(pixels: number[]): Promise<number[]>;
  };
}

/** The page's window.demo, without its methods and big fields (as data). */
const state = (page: Page) =>
  page.evaluate(() => {
    const {
      trainer: _t,
      data: _d,
      ...rest
    } = (window as unknown as DemoPage).demo as DemoState & {
      trainer?: unknown;
      data?: unknown;
    };
    return JSON.parse(JSON.stringify(rest)) as DemoState;
  });

async function waitPhase(page: Page, phases: string[], timeout: number): Promise<DemoState> {
  await page.waitForFunction(
    (ps) => {
      const d = (window as unknown as { demo?: DemoState }).demo;
      return d && (ps.includes(d.phase) || d.phase === 'error');
    },
    phases,
    { timeout, polling: 200 },
  );
  const s = await state(page);
  expect(s.error, 'the page reported an error').toBe(null);
  return s;
}

/**
 * Draws a 28×28 digit on the 280×280 canvas with the mouse: one stroke along each horizontal run
 * of inked pixels (> 0.5), through the centres of its 10×10-pixel cells.
 */
async function drawDigit(page: Page, pixels: number[]): Promise<number> {
  const box = await page.locator('#draw').boundingBox();
  if (!box) throw new Error('no drawing canvas');
  const cell = box.width / 28;
  let strokes = 0;
  for (let y = 0; y < 28; y++) {
    let x = 0;
    while (x < 28) {
      if (pixels[y * 28 + x] <= 0.5) {
        x++;
        continue;
      }
      let end = x;
      while (end + 1 < 28 && pixels[y * 28 + end + 1] > 0.5) end++;
      const cy = box.y + (y + 0.5) * cell;
      await page.mouse.move(box.x + (x + 0.5) * cell, cy);
      await page.mouse.down();
      await page.mouse.move(box.x + (end + 0.5) * cell, cy, { steps: 2 });
      await page.mouse.up();
      strokes++;
      x = end + 1;
    }
  }
  return strokes;
}

describe('browser demo (npm run demo:web)', () => {
  it(
    'trains to >= 95% held-out accuracy, plots, classifies drawn digits, round-trips a checkpoint',
    async (ctx) => {
      if (!existsSync(chromiumPath()))
        return missing(
          ctx,
          'demo-web',
          `no Chromium at ${chromiumPath()} (apt-get install chromium; .ci/run does)`,
        );
      let server: { url: string; close(): Promise<void> } | undefined;
      let session: Awaited<ReturnType<typeof launchChromium>> | undefined;
      const logs: string[] = [];
      try {
        server = await startServer({ port: 0 });
        session = await launchChromium(['--enable-unsafe-webgpu']);
        const page = await session.page(logs);
        await page.setViewportSize({ width: 1100, height: 800 });
        await page.goto(server?.url ?? '');
        const ready = await waitPhase(page, ['ready'], 60_000);
        expect(ready.device.crossOriginIsolated).toBe(true);
        expect(ready.device.backend).toBe('wasm');
        expect(ready.device.threads, 'the worker pool runs in the page').toBeGreaterThan(1);
        expect(await page.locator('#device').textContent()).toMatch(/device: wasm on \d+ threads/);

        // train
        const t0 = performance.now();
        await page.click('#train');
        const trained = await waitPhase(page, ['trained'], TRAIN_LIMIT_MS);
        const seconds = (performance.now() - t0) / 1000;
        const final = trained.accuracies[trained.accuracies.length - 1];
        console.log(
          `demo-web: trained in ${seconds.toFixed(1)} s; held-out accuracy by epoch ` +
            `${trained.accuracies.map((a) => (a.accuracy * 100).toFixed(2)).join(', ')}%; ` +
            `${trained.device.threads} threads, params on ${trained.device.paramsOn}`,
        );
        expect(final.accuracy).toBeGreaterThanOrEqual(0.95);
        expect(trained.losses.length).toBeGreaterThan(50);
        expect(trained.losses[trained.losses.length - 1].loss).toBeLessThan(trained.losses[0].loss / 3);
        expect(await page.locator('#status').textContent()).toMatch(/held-out accuracy 9\d\.\d\d%/);

        // the plot: both curves are on the screenshot
        const shot = decodePng(await page.locator('#plot').screenshot());
        const near = (r: number, g: number, b: number) => {
          let n = 0;
          for (let i = 0; i < shot.width * shot.height; i++) {
            const d =
              Math.abs(shot.rgba[4 * i] - r) +
              Math.abs(shot.rgba[4 * i + 1] - g) +
              Math.abs(shot.rgba[4 * i + 2] - b);
            if (d < 60) n++;
          }
          return n;
        };
        const lossPixels = near(0x33, 0x66, 0xcc);
        const accPixels = near(0x22, 0xaa, 0x77);
        const white = near(255, 255, 255);
        expect(shot.width).toBeGreaterThan(200);
        expect(lossPixels, 'loss curve pixels').toBeGreaterThan(300);
        expect(accPixels, 'accuracy curve pixels').toBeGreaterThan(100);
        expect(white, 'a plot, not a filled rectangle').toBeGreaterThan(shot.width * shot.height * 0.5);

        // draw held-out digits the model gets right from their pixels, and read the page's answer
        const chosen: { i: number; label: number }[] = [];
        for (let i = 0; chosen.length < 3 && i < 200; i++) {
          const { pixels, label } = await page.evaluate(
            (k) => (window as unknown as DemoPage).demo.testDigit(k),
            i,
          );
          const probs: number[] = await page.evaluate(
            (px) => (window as unknown as DemoPage).demo.classify(px),
            pixels,
          );
          if (probs[label] > 0.9 && !chosen.some((c) => c.label === label)) chosen.push({ i, label });
        }
        expect(chosen).toHaveLength(3);
        for (const { i, label } of chosen) {
          await page.click('#clear');
          const { pixels } = await page.evaluate((k) => (window as unknown as DemoPage).demo.testDigit(k), i);
          const before = (await state(page)).predictions;
          const strokes = await drawDigit(page, pixels);
          await page.waitForFunction(
            (n) => (window as unknown as { demo: DemoState }).demo.predictions >= n,
            before + strokes,
            { timeout: 20_000, polling: 100 },
          );
          const s = await state(page);
          console.log(
            `demo-web: drew held-out digit #${i} (a ${label}) in ${strokes} strokes: the page says ` +
              `${s.prediction?.label} (${((s.prediction?.probs[s.prediction.label] ?? 0) * 100).toFixed(1)}%)`,
          );
          expect(s.prediction?.label, `held-out digit #${i}`).toBe(label);
          expect(await page.locator('#prediction').textContent()).toMatch(new RegExp(`^${label}\\b`));
          expect(await page.locator('#bars .bar').count()).toBe(10);
        }

        // checkpoint: download, reset, load
        const [download] = await Promise.all([page.waitForEvent('download'), page.click('#save')]);
        const chunks: Buffer[] = [];
        for await (const c of await download.createReadStream()) chunks.push(c as Buffer);
        const bytes = Buffer.concat(chunks);
        expect(download.suggestedFilename()).toMatch(/\.safetensors$/);
        const headerLength = Number(bytes.readBigUInt64LE(0));
        const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8'));
        expect(
          Object.keys(header)
            .filter((k) => k !== '__metadata__')
            .sort(),
        ).toEqual(['0.b', '0.w', '1.b', '1.w']);
        expect(header['0.w'].shape).toEqual([784, 256]);
        await page.click('#reset');
        expect((await state(page)).accuracies).toEqual([]);
        await page.setInputFiles('#load', {
          name: 'checkpoint.safetensors',
          mimeType: 'application/octet-stream',
          buffer: bytes,
        });
        const loaded = await waitPhase(page, ['loaded'], 30_000);
        expect(loaded.accuracies).toHaveLength(1);
        expect(loaded.accuracies[0].accuracy).toBe(final.accuracy);
        if (logs.some((l) => /^(error|pageerror)/.test(l)))
          console.log(`Chromium console:\n${logs.join('\n')}`);
        expect(logs.filter((l) => l.startsWith('pageerror'))).toEqual([]);
      } catch (e) {
        if (logs.length) (e as Error).message += `\nChromium console:\n${logs.join('\n').slice(-4000)}`;
        throw e;
      } finally {
        await within(session?.close() ?? Promise.resolve(), 20_000, 'closing Chromium').catch(() => {});
        await server?.close();
      }
    },
    TEST_TIMEOUT_MS,
  );
});
