// The data plane imports the event body codec from here beside BodyCapture.

/**
 * Collects a copy of a stream's chunks up to `limit` bytes while the stream flows on to its real
 * destination. Past the limit it drops what it held and only counts: a large body never sits in memory
 * twice, and the direct path never waits for the copy.
 */
export class BodyCapture {
  private chunks: Buffer[] = [];
  private size = 0;
  private over = false;

  constructor(readonly limit: number) {}

  push(chunk: Buffer): void {
    this.size += chunk.length;
    if (this.over) return;
    if (this.size > this.limit) {
      this.over = true;
      this.chunks = [];
      return;
    }
    this.chunks.push(chunk);
  }

  /** Bytes seen so far (also past the limit). */
  get bytes(): number {
    return this.size;
  }

  get overLimit(): boolean {
    return this.over;
  }

  /** The captured bytes; empty once over the limit. */
  buffer(): Buffer {
    if (this.chunks.length === 1) return this.chunks[0]!;
    return this.chunks.length === 0 ? EMPTY : Buffer.concat(this.chunks, this.size);
  }
}

const EMPTY = Buffer.alloc(0);

