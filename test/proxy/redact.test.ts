import { describe, expect, it } from 'vitest';
import { DEFAULT_REDACTED_HEADERS } from '../../src/config/sidecar.js';
import { headerPolicy, pickHeaders, queryNameKey, redactQuery, redactSearch, REDACTED } from '../../proxy/redact.js';

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

  it('matches names whatever their case, separators, array brackets or percent-encoding', () => {
    const masked = encodeURIComponent(REDACTED);
    const shapes = ['API_KEY', 'api-key', 'Api_Key', 'api.key', 'api+key', 'apiKey', '%41PI_KEY', 'api%5Fkey', 'api%2dkey', 'access_token[]', 'Access-Token[0]', 'access%5Ftoken%5B%5D', 'access%5Ftoken[%ZZ]'];
    for (const name of shapes) {
      expect(redactSearch(`sku=A&${name}=s3cret&page=2`, names)).toBe(`sku=A&${name}=${masked}&page=2`);
    }
    for (const name of ['api_keys', 'apikey_id', 'api_key%ZZ', 'token', 'access', 'key']) {
      expect(redactSearch(`${name}=visible`, names)).toBe(`${name}=visible`);
    }
  });

  it('normalises the configured names the same way', () => {
    expect(redactSearch('api_key=1&ACCESS_TOKEN=2', new Set(['API-Key', 'Access.Token']))).toBe(`api_key=${encodeURIComponent(REDACTED)}&ACCESS_TOKEN=${encodeURIComponent(REDACTED)}`);
    expect(queryNameKey('Access%5FToken[]')).toBe(queryNameKey('access_token'));
  });

  it('masks every shape in a parsed query', () => {
    const parsed = { API_KEY: 'a', 'api-key': ['b', 'c'], 'access_token[]': ['d'], sku: 'A' };
    expect(redactQuery(parsed, names)).toEqual({ API_KEY: REDACTED, 'api-key': [REDACTED, REDACTED], 'access_token[]': [REDACTED], sku: 'A' });
  });
});
