import { describe, expect, it } from 'vitest';
import { compileFlows, compilePathTemplate } from '../../src/flows/match.js';
import { flowSchema, type FlowConfig } from '../../src/config/flow.js';

const flow = (name: string, method: string, path: string): FlowConfig =>
  flowSchema.parse({ name, match: { method, path }, topic: `commands.agent.inventory.${name.replace(/\W/g, '')}`, mode: 'shadow' });

describe('compilePathTemplate', () => {
  it('matches literal paths exactly, ignoring one trailing slash', () => {
    const t = compilePathTemplate('/reservations');
    expect(t.match('/reservations')).toEqual({});
    expect(t.match('/reservations/')).toEqual({});
    expect(t.match('/reservations/1')).toBeUndefined();
    expect(t.match('/Reservations')).toBeUndefined();
  });

  it('extracts :params, one non-empty segment each, percent-decoded', () => {
    const t = compilePathTemplate('/stock/:sku/warehouses/:wh');
    expect(t.params).toEqual(['sku', 'wh']);
    expect(t.match('/stock/SKU-1/warehouses/berlin')).toEqual({ sku: 'SKU-1', wh: 'berlin' });
    expect(t.match('/stock/red%20mug/warehouses/a%2Fb')).toEqual({ sku: 'red mug', wh: 'a/b' });
    expect(t.match('/stock//warehouses/x')).toBeUndefined();
    expect(t.match('/stock/a/warehouses')).toBeUndefined();
  });

  it('keeps a malformed escape raw instead of failing', () => {
    expect(compilePathTemplate('/stock/:sku').match('/stock/%E0%A4%A')).toEqual({ sku: '%E0%A4%A' });
  });
});

describe('compileFlows', () => {
  const flows = [flow('stock.get', 'GET', '/stock/:sku'), flow('stock.reserved', 'GET', '/stock/reserved'), flow('inventory.reserve', 'POST', '/reservations')];
  const matcher = compileFlows(flows);

  it('matches by method and path', () => {
    expect(matcher.match('POST', '/reservations')?.flow.name).toBe('inventory.reserve');
    expect(matcher.match('GET', '/reservations')).toBeUndefined();
    expect(matcher.match('GET', '/stock/SKU-1')).toMatchObject({ flow: { name: 'stock.get' }, params: { sku: 'SKU-1' } });
  });

  it('prefers the template with more literal segments, whatever the declaration order', () => {
    expect(matcher.match('GET', '/stock/reserved')?.flow.name).toBe('stock.reserved');
  });

  it('returns undefined for unmatched requests', () => {
    expect(matcher.match('DELETE', '/stock/x')).toBeUndefined();
    expect(matcher.match('GET', '/other')).toBeUndefined();
  });
});

describe('flowSchema', () => {
  it('rejects a path key that names no parameter of the template, with the path of the problem', () => {
    const result = flowSchema.safeParse({ name: 'stock.get', match: { method: 'get', path: '/stock/:sku' }, topic: 'commands.agent.inventory.stock', key: 'path.id' });
    expect(result.success).toBe(false);
    expect(result.error!.issues[0]).toMatchObject({ path: ['key'] });
    expect(result.error!.issues[0]!.message).toContain(':sku');
  });

  it('rejects malformed :param segments', () => {
    expect(flowSchema.safeParse({ name: 'x', match: { method: 'GET', path: '/stock/:' }, topic: 'commands.agent.inventory.stock' }).success).toBe(false);
  });

  it('uppercases methods and defaults mode and schemaVersion', () => {
    expect(flowSchema.parse({ name: 'x', match: { method: 'post', path: '/r' }, topic: 'commands.agent.inventory.r' })).toMatchObject({ match: { method: 'POST' }, mode: 'direct', schemaVersion: '1' });
  });
});
