// Terminal helpers for the demos: an in-place progress line and digit drawing.
//
// Progress: on a TTY one line is redrawn in place with `\r` (throttled); when
// output is not a TTY (CI logs, pipes) a plain line is printed every `logEvery`
// updates instead, with no control characters at all.

/**
 * @typedef {object} ProgressUpdate
 * @property {number} [epoch]           current epoch (shown 1-based as given).
 * @property {number} step              steps done so far, 0…total.
 * @property {number} [loss]            latest (or running) loss.
 * @property {number} [examplesPerSec]  throughput.
 */

/**
 * @param {number} n
 * @returns {string}
 */
function formatRate(n) {
  if (!Number.isFinite(n)) return '-';
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  return n.toFixed(0);
}

/**
 * A progress line for a loop of `total` steps (an epoch, or a whole run: the caller
 * chooses, and passes `step` in the same units).
 *
 * @param {{ total: number, width?: number, epochs?: number, label?: string, logEvery?: number,
 *   minIntervalMs?: number, stream?: { write(s: string): unknown, isTTY?: boolean } }} options
 *   `width`: bar width in cells; `epochs`: if set, shown as "epoch e/epochs";
 *   `logEvery`: non-TTY print interval in updates (default: about 10 lines per `total`);
 *   `minIntervalMs`: TTY redraw throttle (default 50); `stream`: defaults to process.stdout.
 * @returns {{ update(u: ProgressUpdate): void, done(message?: string): void }}
 */
export function progressBar({
  total,
  width = 30,
  epochs,
  label = '',
  logEvery,
  minIntervalMs = 50,
  stream = process.stdout,
}) {
  const tty = Boolean(stream.isTTY);
  const every = Math.max(1, logEvery ?? Math.ceil(total / 10));
  let updates = 0;
  let lastDraw = 0;
  let drawnInPlace = false;
  /** @type {string | null} */
  let pending = null; // latest non-TTY line not yet printed

  /** @param {ProgressUpdate} u */
  const format = ({ epoch, step, loss, examplesPerSec }) => {
    const frac = total > 0 ? Math.max(0, Math.min(1, step / total)) : 1;
    const filled = Math.round(frac * width);
    const parts = [];
    if (label) parts.push(label);
    if (epoch !== undefined) parts.push(epochs !== undefined ? `epoch ${epoch}/${epochs}` : `epoch ${epoch}`);
    const digits = String(total).length;
    parts.push(
      `[${'█'.repeat(filled)}${'░'.repeat(width - filled)}] ${String(step).padStart(digits)}/${total}`,
    );
    if (loss !== undefined) parts.push(`loss ${Number.isFinite(loss) ? loss.toFixed(4) : String(loss)}`);
    if (examplesPerSec !== undefined) parts.push(`${formatRate(examplesPerSec)} ex/s`);
    return parts.join('  ');
  };

  return {
    update(u) {
      updates++;
      const line = format(u);
      if (tty) {
        const now = Date.now();
        if (u.step >= total || now - lastDraw >= minIntervalMs) {
          stream.write(`\r${line}\x1b[K`);
          lastDraw = now;
          drawnInPlace = true;
        }
      } else if (updates % every === 0 || u.step >= total) {
        stream.write(`${line}\n`);
        pending = null;
      } else {
        pending = line;
      }
    },
    done(message) {
      if (tty) {
        if (drawnInPlace) stream.write('\n');
      } else if (pending !== null) {
        stream.write(`${pending}\n`);
      }
      pending = null;
      drawnInPlace = false;
      if (message) stream.write(`${message}\n`);
    },
  };
}

const SHADES = ' ░▒▓█';

/**
 * Draws a grayscale image (values in [0, 1], row-major) as text, two pixel rows per
 * line, so a 28×28 digit is 14 lines of 28 characters.
 *
 * style 'blocks' (default): each cell is ' ', '▀', '▄' or '█' depending on which of its
 * two pixels is above `threshold`. style 'shade': the two pixels are averaged and drawn
 * with ' ░▒▓█'.
 *
 * @param {ArrayLike<number>} pixels
 * @param {{ width?: number, style?: 'blocks' | 'shade', threshold?: number }} [options]
 * @returns {string[]}
 */
export function renderDigit(pixels, { width = 28, style = 'blocks', threshold = 0.4 } = {}) {
  const height = Math.floor(pixels.length / width);
  const at = (/** @type {number} */ r, /** @type {number} */ c) => (r < height ? pixels[r * width + c] : 0);
  const lines = [];
  for (let r = 0; r < height; r += 2) {
    let line = '';
    for (let c = 0; c < width; c++) {
      const top = at(r, c);
      const bottom = at(r + 1, c);
      if (style === 'shade') {
        const v = Math.max(0, Math.min(1, (top + bottom) / 2));
        line += SHADES[Math.min(SHADES.length - 1, Math.floor(v * SHADES.length))];
      } else {
        const t = top > threshold;
        const b = bottom > threshold;
        line += t ? (b ? '█' : '▀') : b ? '▄' : ' ';
      }
    }
    lines.push(line);
  }
  return lines;
}

/**
 * Places text blocks (e.g. from renderDigit) next to each other, `gap` spaces apart,
 * with an optional caption line under each (e.g. "pred 7 (true 7)"). Blocks of
 * different heights are padded with blank lines. Returns the lines; join with '\n'.
 *
 * @param {string[][]} blocks
 * @param {number} [gap]
 * @param {string[]} [captions]
 * @returns {string[]}
 */
export function sideBySide(blocks, gap = 3, captions = []) {
  const len = (/** @type {string} */ s) => [...s].length;
  const pad = (/** @type {string} */ s, /** @type {number} */ w) => s + ' '.repeat(Math.max(0, w - len(s)));
  const withCaptions = blocks.map((b, i) => (captions[i] !== undefined ? [...b, captions[i]] : b));
  const widths = withCaptions.map((b) => Math.max(0, ...b.map(len)));
  const height = Math.max(0, ...withCaptions.map((b) => b.length));
  const sep = ' '.repeat(gap);
  const out = [];
  for (let r = 0; r < height; r++) {
    // Captions sit on the last line; shorter blocks get blank lines above them.
    const row = withCaptions.map((b, i) => {
      const hasCaption = captions[i] !== undefined;
      let line;
      if (hasCaption && r === height - 1) line = b[b.length - 1];
      else if (hasCaption) line = r < b.length - 1 ? b[r] : '';
      else line = r < b.length ? b[r] : '';
      return pad(line, widths[i]);
    });
    out.push(row.join(sep).trimEnd());
  }
  return out;
}
