// Types for mnist-data.mjs (the implementation is plain JS so `node examples/*.mjs` runs it as is).

export declare const IMAGE_SIDE: 28;
export declare const IMAGE_SIZE: 784;
export declare const NUM_CLASSES: 10;

export interface MnistSplit {
  /** count×784 pixel intensities in [0, 1], row-major. */
  images: Float32Array;
  /** count digit labels 0–9. */
  labels: Int32Array;
  count: number;
  /** Position of each image in the package's full set (digit files read in order 0…9). */
  indices: Int32Array;
}

export interface MnistBatch {
  images: Float32Array;
  labels: Int32Array;
  indices: Int32Array;
  count: number;
}

export declare function mulberry32(seed: number): () => number;

export declare function mnistInfo(): { total: number; perDigit: number[]; dir: string };

export declare function loadMnist(options?: { testSize?: number; seed?: number }): {
  train: MnistSplit;
  test: MnistSplit;
  total: number;
  perDigit: number[];
};

export declare function batches(
  split: MnistSplit,
  batchSize: number,
  options?: { seed?: number; epoch?: number; dropLast?: boolean },
): Generator<MnistBatch, void, unknown>;

export declare function slice(split: MnistSplit, start: number, end?: number): MnistSplit;

export declare function image(split: MnistSplit, i: number): Float32Array;
