import { describe, expect, it } from 'vitest';
import { DEFAULT_REDACTED_HEADERS } from '../../src/config/sidecar.js';
import { headerPolicy, pickHeaders, redactQuery, redactSearch, REDACTED } from '../../proxy/redact.js';

describe('pickHeaders', () => {
  const headers = {
    'content-type': 'application/json',
    authorization: 'Bearer s3cret',
    'proxy-authorization': 'Basic x',
    cookie: 'sid=1',
    'set-cookie': ['a=1', 'b=2'],
    'x-api-key': 'k',
    'x-request-id': 'r1',
    accept: ['a', 'b'],
  };

  it('keeps allow-listed headers and joins repeated values', () => {
    expect(pickHeaders(headers, headerPolicy(['content-type', 'accept'], DEFAULT_REDACTED_HEADERS))).toEqual({ 'content-type': 'application/json', accept: 'a, b' });
  });

  it('drops credentials even when allow-listed or when everything is allowed', () => {
    const all = pickHeaders(headers, headerPolicy(['*'], DEFAULT_REDACTED_HEADERS));
    expect(Object.keys(all).sort()).toEqual(['accept', 'content-type', 'x-request-id']);
    expect(pickHeaders(headers, headerPolicy(['authorization', 'cookie'], DEFAULT_REDACTED_HEADERS))).toEqual({});
  });
});

describe('query redaction', () => {
  const names = new Set(['api_key', 'access_token']);
  it('masks values in a query string and leaves the rest byte for byte', () => {
    expect(redactSearch('sku=A&api_key=XYZ&x=%20', names)).toBe(`sku=A&api_key=${encodeURIComponent(REDACTED)}&x=%20`);
    const plain = 'sku=A&page=2';
    expect(redactSearch(plain, names)).toBe(plain);
  });

  it('masks values in a parsed query', () => {
    expect(redactQuery({ api_key: 'x', access_token: ['a', 'b'], sku: 'A' }, names)).toEqual({ api_key: REDACTED, access_token: [REDACTED, REDACTED], sku: 'A' });
  });
});
