import { isUtf8 } from 'node:buffer';
import { brotliDecompressSync, gunzipSync, inflateSync } from 'node:zlib';

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

/** A body as it travels in an event: parsed JSON, or raw text/base64 with its content type beside it. */
export interface EncodedBody {
  body?: unknown;
  /** Present when `body` is not parsed JSON: `utf8` text or `base64` bytes. */
  bodyEncoding?: 'utf8' | 'base64';
  /** The original content type, present when `body` is not parsed JSON. */
  contentType?: string;
}

const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json\b|^text\/json\b/i;
/** Types whose bytes are not text even when they happen to be valid UTF-8. */
const BINARY_TYPE = /^(?:image|audio|video|font)\/|octet-stream|zip|pdf|protobuf|msgpack|cbor/i;

/**
 * Encodes a captured body for an event. JSON content types (and bodies without a content type that parse
 * as JSON) become parsed JSON; anything else, including malformed JSON, travels raw: utf8 text when the
 * bytes are valid UTF-8, base64 otherwise, with the content type beside it. An empty body has no `body`.
 */
export function encodeBody(raw: Buffer, contentType: string | undefined): EncodedBody {
  if (raw.length === 0) return {};
  const ct = contentType ?? '';
  if (ct === '' || JSON_TYPE.test(ct)) {
    const first = raw[0];
    // Cheap pre-check before a parse attempt on untyped bodies: JSON text starts with one of these.
    if (ct !== '' || first === 0x7b || first === 0x5b || first === 0x22) {
      try {
        return { body: JSON.parse(raw.toString('utf8')) };
      } catch {
        // malformed JSON: forwarded as is, published raw below
      }
    }
  }
  const typed = ct === '' ? {} : { contentType: ct };
  if (!BINARY_TYPE.test(ct) && isUtf8(raw)) return { body: raw.toString('utf8'), bodyEncoding: 'utf8', ...typed };
  return { body: raw.toString('base64'), bodyEncoding: 'base64', ...typed };
}

/**
 * Undoes a response's content-encoding for the observation, bounded by `limit` output bytes. Returns
 * undefined when the encoding is unknown or the bytes do not decode (the observation then carries the raw
 * bytes base64-encoded and the encoding).
 */
export function decodeContent(raw: Buffer, encoding: string | undefined, limit: number): Buffer | undefined {
  if (!encoding || encoding === 'identity') return raw;
  const options = { maxOutputLength: Math.max(1, limit) };
  try {
    switch (encoding.trim().toLowerCase()) {
      case 'gzip':
      case 'x-gzip':
        return gunzipSync(raw, options);
      case 'deflate':
        return inflateSync(raw, options);
      case 'br':
        return brotliDecompressSync(raw, options);
      default:
        return undefined;
    }
  } catch {
    return undefined;
  }
}
