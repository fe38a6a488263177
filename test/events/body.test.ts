import { describe, expect, it } from 'vitest';
import { bodyBytes, encodeBody, type EncodedBody } from '../../src/events/body.js';
import type { Delivery } from '../../src/bus/types.js';
import { rebuildRequest } from '../../src/http/replay.js';
import { compileRules, diffResults } from '../../shadow/diff.js';

/** The body as a reader gets it after the bus: JSON out and back. */
const travelled = (encoded: EncodedBody): EncodedBody => JSON.parse(JSON.stringify(encoded)) as EncodedBody;

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s/g, ''), 'hex');

// `{"name":"<ff fe>"}`, `{"a":"<c3>"}` (a truncated two-byte sequence), `caf<e9>` (Latin-1), a lone surrogate.
const invalid = {
  json: hex('7b 22 6e 61 6d 65 22 3a 22 ff fe 22 7d'),
  truncated: hex('7b 22 61 22 3a 22 c3 22 7d'),
  latin1: hex('63 61 66 e9'),
  surrogate: hex('22 ed a0 80 22'),
};

describe('encodeBody: bytes that are not valid UTF-8', () => {
  it('travels as base64 whatever the declared type, and comes back byte for byte', () => {
    const cases: Array<[Buffer, string | undefined]> = [
      [invalid.json, 'application/json'],
      [invalid.json, 'application/problem+json; charset=utf-8'],
      [invalid.truncated, undefined],
      [invalid.latin1, 'text/plain; charset=utf-8'],
      [invalid.surrogate, 'application/json'],
    ];
    for (const [raw, contentType] of cases) {
      const encoded = encodeBody(raw, contentType);
      expect(encoded).toEqual({ body: raw.toString('base64'), bodyEncoding: 'base64', ...(contentType ? { contentType } : {}) });
      expect(bodyBytes(travelled(encoded)).equals(raw)).toBe(true);
    }
  });

  it('keeps valid UTF-8 as JSON or text, a leading BOM included', () => {
    expect(encodeBody(Buffer.from('{"name":"café"}'), 'application/json')).toEqual({ body: { name: 'café' } });
    const bom = Buffer.concat([hex('ef bb bf'), Buffer.from('plain')]);
    const encoded = encodeBody(bom, 'text/plain');
    expect(encoded.bodyEncoding).toBe('utf8');
    expect(bodyBytes(travelled(encoded)).equals(bom)).toBe(true);
  });

  it('is replayed with the exact bytes and its declared content type', () => {
    const data = { ...travelled(encodeBody(invalid.json, 'application/json')), params: {}, query: {} };
    const delivery = { topic: 't', key: null, event: { id: 'e1', data }, headers: {}, position: '1', publishedAt: 0, attempt: 1 } as unknown as Delivery;
    const req = rebuildRequest(delivery, { match: { method: 'POST', path: '/names' } });
    expect(req.body!.equals(invalid.json)).toBe(true);
    expect(req.headers['content-type']).toBe('application/json');
  });

  it('lets the comparator tell two different invalid bodies apart, and find equal ones equal', () => {
    const rules = compileRules({});
    const result = (raw: Buffer) => ({ status: 200, headers: {}, ...travelled(encodeBody(raw, 'application/json')) });
    // Decoded, both would have read {"name":"\uFFFD\uFFFD"} and compared equal.
    const other = hex('7b 22 6e 61 6d 65 22 3a 22 fe ff 22 7d');
    expect(diffResults(result(invalid.json), result(other), rules).map((d) => d.path)).toEqual(['/body']);
    expect(diffResults(result(invalid.json), result(Buffer.from(invalid.json)), rules)).toEqual([]);
  });
});
