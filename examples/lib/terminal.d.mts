// Types for terminal.mjs (the implementation is plain JS so `node examples/*.mjs` runs it as is).

export interface ProgressUpdate {
  epoch?: number;
  step: number;
  loss?: number;
  examplesPerSec?: number;
}

export interface ProgressBar {
  update(u: ProgressUpdate): void;
  done(message?: string): void;
}

export declare function progressBar(options: {
  total: number;
  width?: number;
  epochs?: number;
  label?: string;
  logEvery?: number;
  minIntervalMs?: number;
  stream?: { write(s: string): unknown; isTTY?: boolean };
}): ProgressBar;

export declare function renderDigit(
  pixels: ArrayLike<number>,
  options?: { width?: number; style?: 'blocks' | 'shade'; threshold?: number },
): string[];

export declare function sideBySide(blocks: string[][], gap?: number, captions?: string[]): string[];
