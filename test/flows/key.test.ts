import { describe, expect, it } from 'vitest';
import { compileKey, parseQuery } from '../../src/flows/key.js';

const input = {
  body: { sku: 'SKU-1', qty: 2, ok: true, customer: { id: 'c-9', tags: ['a'] }, items: [{ sku: 'I-1' }], none: null },
  params: { sku: 'P-1' },
  query: { region: ['eu', 'us'], page: '2' },
  headers: { 'x-tenant': 'acme', 'x-multi': ['m1', 'm2'] } as Record<string, string | string[]>,
};

describe('compileKey', () => {
  it('reads body fields, nested fields and array elements', () => {
    expect(compileKey('body.sku').extract(input)).toBe('SKU-1');
    expect(compileKey('body.qty').extract(input)).toBe('2');
    expect(compileKey('body.ok').extract(input)).toBe('true');
    expect(compileKey('body.customer.id').extract(input)).toBe('c-9');
    expect(compileKey('body.items.0.sku').extract(input)).toBe('I-1');
  });

  it('returns undefined for missing or non-scalar body values and non-JSON bodies', () => {
    expect(compileKey('body.missing').extract(input)).toBeUndefined();
    expect(compileKey('body.customer').extract(input)).toBeUndefined();
    expect(compileKey('body.none').extract(input)).toBeUndefined();
    expect(compileKey('body.sku').extract({ ...input, body: undefined })).toBeUndefined();
    expect(compileKey('body.sku').extract({ ...input, body: 'text' })).toBeUndefined();
  });

  it('reads path params, the first query value and headers case-insensitively', () => {
    expect(compileKey('path.sku').extract(input)).toBe('P-1');
    expect(compileKey('query.region').extract(input)).toBe('eu');
    expect(compileKey('query.page').extract(input)).toBe('2');
    expect(compileKey('header.X-Tenant').extract(input)).toBe('acme');
    expect(compileKey('header.x-multi').extract(input)).toBe('m1');
    expect(compileKey('header.absent').extract(input)).toBeUndefined();
  });

  it('reads the JSON-RPC call of the body with rpc.: method, id and params', () => {
    const rpc = { ...input, body: { jsonrpc: '2.0', id: 7, method: 'SendMessage', params: { message: { contextId: 'ctx-1', parts: [{ text: 'hi' }] } } } };
    expect(compileKey('rpc.params.message.contextId').extract(rpc)).toBe('ctx-1');
    expect(compileKey('rpc.method').extract(rpc)).toBe('SendMessage');
    expect(compileKey('rpc.id').extract(rpc)).toBe('7');
    expect(compileKey('rpc.params.message').extract(rpc)).toBeUndefined();
    expect(compileKey('rpc.params.message.contextId')).toMatchObject({ source: 'rpc', path: ['params', 'message', 'contextId'] });
  });

  it('describes its source and path', () => {
    expect(compileKey('body.customer.id')).toMatchObject({ source: 'body', path: ['customer', 'id'] });
  });
});

describe('parseQuery', () => {
  it('keeps single values as strings and repeated names as arrays', () => {
    expect(parseQuery('a=1&b=2&a=3&c=x%20y')).toEqual({ a: ['1', '3'], b: '2', c: 'x y' });
    expect(parseQuery('')).toEqual({});
  });
});
