import { brotliDecompressSync, gunzipSync, inflateSync } from 'node:zlib';

/**
 * How an HTTP body travels inside a call event or an observation: parsed JSON when it is JSON, else the
 * raw `utf8` text or `base64` bytes with `bodyEncoding` and the content type beside it. The sidecar and the
 * shadow side both encode with this one codec, so the comparator tells JSON from bytes alike on both sides.
 */
export type BodyEncoding = 'utf8' | 'base64';

export interface EncodedBody {
  /** Parsed JSON (no `bodyEncoding`), raw text (`utf8`) or base64 bytes (`base64`); absent for an empty body. */
  body?: unknown;
  /** `text` is accepted on read as a synonym of `utf8`. */
  bodyEncoding?: BodyEncoding | 'text';
  contentType?: string;
}

const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json\b|^text\/json\b/i;
/** Types whose bytes are not text even when they happen to be valid UTF-8. */
const BINARY_TYPE = /^(?:image|audio|video|font)\/|octet-stream|zip|pdf|protobuf|msgpack|cbor/i;

/** Whether a content type names JSON (`application/json`, `application/problem+json`...). */
export function isJsonContentType(contentType: string | undefined): boolean {
  return contentType !== undefined && JSON_TYPE.test(contentType);
}

/**
 * Encodes raw body bytes for the bus, with the sidecar's rules: JSON content types (and untyped bodies
 * that parse as JSON) become the parsed value; anything else travels raw, `utf8` when valid UTF-8 and not a
 * binary type, else `base64`. A body that is not valid UTF-8 travels as `base64` whatever its declared type.
 * An empty body has no `body`.
 */
export function encodeBody(raw: Buffer, contentType: string | undefined): EncodedBody {
  if (raw.length === 0) return {};
  const ct = contentType ?? '';
  const json = ct === '' || JSON_TYPE.test(ct);
  const text = json || !BINARY_TYPE.test(ct) ? utf8(raw) : undefined;
  // Decoding would put U+FFFD where the invalid bytes were: the replay and the comparison need the bytes.
  if (text === undefined) return base64Body(raw, contentType);
  if (json) {
    const first = raw[0];
    if (ct !== '' || first === 0x7b || first === 0x5b || first === 0x22) {
      try {
        return { body: JSON.parse(text) as unknown };
      } catch {
        // Declared JSON but malformed: keep the exact bytes so the comparison sees what the caller got.
      }
    }
  }
  if (BINARY_TYPE.test(ct)) return base64Body(raw, contentType);
  return { body: text, bodyEncoding: 'utf8', ...(ct === '' ? {} : { contentType: ct }) };
}

// ignoreBOM keeps a leading BOM in the text, so utf8 bodies still round-trip byte for byte.
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The bytes as text, or undefined when they are not valid UTF-8. */
function utf8(raw: Buffer): string | undefined {
  try {
    return UTF8.decode(raw);
  } catch {
    return undefined;
  }
}

/** Bytes as they travel when they cannot travel as JSON or text: base64, with their content type when known. */
export function base64Body(raw: Buffer, contentType: string | undefined): EncodedBody {
  return { body: raw.toString('base64'), bodyEncoding: 'base64', ...(contentType ? { contentType } : {}) };
}

/** An encoded response body, with the `contentEncoding` it still has when it could not be decoded. */
export type EncodedContent = EncodedBody & { contentEncoding?: string };

/**
 * Encodes a response body as received (possibly compressed): {@link encodeBody} of the decoded bytes, or,
 * when the content-encoding is unknown or the bytes do not decode within `limit`, the raw bytes in base64
 * with `contentEncoding` so that a reader can still undo it.
 */
export function encodeContent(raw: Buffer, contentType: string | undefined, contentEncoding: string | undefined, limit: number): EncodedContent {
  const decoded = decodeContent(raw, contentEncoding, limit);
  if (decoded) return encodeBody(decoded, contentType);
  return { ...base64Body(raw, contentType), ...(contentEncoding ? { contentEncoding } : {}) };
}

/** The bytes an encoded body stands for (JSON re-serialized compactly). */
export function bodyBytes(encoded: EncodedBody): Buffer {
  const { body, bodyEncoding } = encoded;
  if (body === undefined) return Buffer.alloc(0);
  if (bodyEncoding === 'base64') return Buffer.from(String(body), 'base64');
  return Buffer.from(bodyText(encoded) ?? '', 'utf8');
}

/** The text an encoded body stands for (JSON re-serialized compactly); undefined when absent or base64 bytes. */
export function bodyText(encoded: EncodedBody): string | undefined {
  const { body, bodyEncoding } = encoded;
  if (body === undefined || bodyEncoding === 'base64') return undefined;
  if (bodyEncoding === 'utf8' || bodyEncoding === 'text') return String(body);
  return JSON.stringify(body);
}

/** Undoes a response's content-encoding; undefined when unknown or undecodable (the raw bytes are kept). */
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
