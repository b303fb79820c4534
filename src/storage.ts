import type { HostArray, Storage } from './tensor';

/** A buffer held in a JS typed array: constants made by tensor(), and the interpreter's results. */
export class HostStorage implements Storage {
  readonly device = 'host';
  constructor(public data: HostArray) {}
  view(): HostArray {
    return this.data;
  }
  read(): Promise<HostArray> {
    return Promise.resolve(this.data.slice());
  }
  release(): void {
    // Garbage-collected with the typed array.
  }
}
