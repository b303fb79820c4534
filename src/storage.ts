import type { HostArray, Storage } from './tensor';

/** A buffer held in a JS typed array: constants made by tensor(), and the interpreter's results. */
export class HostStorage implements Storage {
  readonly backend = 'host';
  constructor(public data: HostArray) {}
  toHost(): HostArray {
    return this.data;
  }
  release(): void {
    // Garbage-collected with the typed array.
  }
}
