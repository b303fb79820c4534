#!/usr/bin/env node
// Builds the four kernel modules (asconfig.json targets), two at a time, skipping any whose
// output is newer than every kernel source: a rebuild costs ~30 s of a 2-core machine.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import './gen-opcodes.mjs';

const config = JSON.parse(readFileSync('asconfig.json', 'utf8'));
const sources = [
  'asconfig.json',
  'package-lock.json',
  ...readdirSync('assembly').map((f) => `assembly/${f}`),
];
const newestSource = Math.max(...sources.filter(existsSync).map((f) => statSync(f).mtimeMs));
const force = process.argv.includes('--force');

const stale = Object.entries(config.targets)
  .filter(([, t]) => force || !existsSync(t.outFile) || statSync(t.outFile).mtimeMs < newestSource)
  .map(([name]) => name);

if (stale.length === 0) {
  console.log('build-wasm: kernels are up to date');
  process.exit(0);
}

const asc = (target) =>
  new Promise((resolve, reject) => {
    const p = spawn(
      process.execPath,
      ['node_modules/assemblyscript/bin/asc.js', '--config', 'asconfig.json', '--target', target],
      {
        stdio: 'inherit',
      },
    );
    p.on('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`asc --target ${target} exited with ${code}`)),
    );
  });

const queue = [...stale];
const worker = async () => {
  while (queue.length) await asc(queue.shift());
};
const t0 = Date.now();
await Promise.all([worker(), worker()]);
console.log(`build-wasm: built ${stale.join(', ')} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
