// Options of the standalone bench scripts, given as `--name value`.

/** The value after `--name`, or `fallback` where the flag is absent. */
export function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
}

/** `--name 2048x512,512x768` as [[2048, 512], [512, 768]]. */
export function shapesArg(name, fallback) {
  return String(arg(name, fallback))
    .split(',')
    .map((s) => s.split('x').map(Number));
}
