import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { BodyCapture } from '../../proxy/capture.js';
import { decodeContent, encodeBody } from '../../src/events/body.js';

describe('BodyCapture', () => {
  it('keeps chunks up to the limit', () => {
    const c = new BodyCapture(10);
    c.push(Buffer.from('hello '));
    c.push(Buffer.from('you!'));
    expect(c.overLimit).toBe(false);
    expect(c.buffer().toString()).toBe('hello you!');
    expect(c.bytes).toBe(10);
  });

  it('drops what it held once over the limit but keeps counting', () => {
    const c = new BodyCapture(10);
    c.push(Buffer.from('hello '));
    c.push(Buffer.from('world!'));
    c.push(Buffer.from('more'));
    expect(c.overLimit).toBe(true);
    expect(c.buffer().length).toBe(0);
    expect(c.bytes).toBe(16);
  });
});

describe('encodeBody', () => {
  it('parses JSON content types', () => {
    expect(encodeBody(Buffer.from('{"sku":"A"}'), 'application/json; charset=utf-8')).toEqual({ body: { sku: 'A' } });
    expect(encodeBody(Buffer.from('[1]'), 'application/vnd.api+json')).toEqual({ body: [1] });
  });

  it('parses untyped bodies that look like JSON', () => {
    expect(encodeBody(Buffer.from('{"a":1}'), undefined)).toEqual({ body: { a: 1 } });
  });

  it('carries malformed JSON raw, with its content type', () => {
    expect(encodeBody(Buffer.from('{"sku":'), 'application/json')).toEqual({ body: '{"sku":', bodyEncoding: 'utf8', contentType: 'application/json' });
  });

  it('carries text as utf8 and binary as base64', () => {
    expect(encodeBody(Buffer.from('a=1&b=2'), 'application/x-www-form-urlencoded')).toEqual({ body: 'a=1&b=2', bodyEncoding: 'utf8', contentType: 'application/x-www-form-urlencoded' });
    const bin = Buffer.from([0xff, 0x00, 0xfe, 0x10]);
    expect(encodeBody(bin, 'application/octet-stream')).toEqual({ body: bin.toString('base64'), bodyEncoding: 'base64', contentType: 'application/octet-stream' });
    expect(encodeBody(bin, 'text/plain')).toEqual({ body: bin.toString('base64'), bodyEncoding: 'base64', contentType: 'text/plain' });
  });

  it('omits the body when empty', () => {
    expect(encodeBody(Buffer.alloc(0), 'application/json')).toEqual({});
  });
});

describe('decodeContent', () => {
  it('gunzips within the limit and gives up past it or on unknown encodings', () => {
    const raw = gzipSync(Buffer.from('{"a":1}'));
    expect(decodeContent(raw, 'gzip', 100)?.toString()).toBe('{"a":1}');
    expect(decodeContent(raw, 'gzip', 3)).toBeUndefined();
    expect(decodeContent(raw, 'zstd', 100)).toBeUndefined();
    expect(decodeContent(raw, undefined, 100)).toBe(raw);
  });
});
