import { describe, expect, it } from 'vitest';
import { DiscoveryRecorder, type ObservedCall } from '../../src/discovery/recorder.js';
import { discoverFlows } from '../../src/discovery/propose.js';
import { actionName } from '../../src/discovery/propose.js';
import { discoveryTable } from '../../src/discovery/table.js';
import { flowSchema } from '../../src/config/flow.js';

const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v));
const call = (c: Partial<ObservedCall> & { method: string; path: string }): ObservedCall => ({ status: 200, latencyMs: 5, ...c });

function recorder(options: Partial<{ maxTemplates: number; foldAfter: number }> = {}): DiscoveryRecorder {
  return new DiscoveryRecorder({ agent: 'shop', maxTemplates: 50, maxSamples: 2, foldAfter: 4, ...options });
}

describe('discovery recorder', () => {
  it('groups calls by method and inferred template, counting volume, errors and latency', () => {
    const r = recorder();
    for (let i = 0; i < 10; i++) r.record(call({ method: 'GET', path: `/orders/${i % 3}`, status: i === 9 ? 503 : 200, latencyMs: i }));
    r.record(call({ method: 'get', path: '/orders/7/' }));
    const [c] = r.current().candidates;
    expect(r.current().candidates).toHaveLength(1);
    expect(c).toMatchObject({ method: 'GET', template: '/orders/:orderId', calls: 11, errors: 1, statuses: { 200: 10, 503: 1 } });
    expect(c!.latencyMs).toHaveLength(11);
    expect(c!.examples).toHaveLength(2);
    expect(c!.params.orderId!.values).toEqual(['"0"', '"1"', '"2"', '"7"']);
  });

  it('splits a JSON-RPC endpoint by method and counts JSON-RPC errors as errors', () => {
    const r = recorder();
    r.record(call({ method: 'POST', path: '/rpc', request: json({ jsonrpc: '2.0', id: 1, method: 'tasks/get', params: { taskId: 't1' } }), response: json({ jsonrpc: '2.0', id: 1, result: { state: 'done' } }) }));
    r.record(call({ method: 'POST', path: '/rpc', request: json({ jsonrpc: '2.0', id: 2, method: 'tasks/get', params: { taskId: 't2' } }), response: json({ jsonrpc: '2.0', id: 2, error: { code: -32001, message: 'no task' } }) }));
    r.record(call({ method: 'POST', path: '/rpc', request: json({ jsonrpc: '2.0', id: 3, method: 'message/send', params: { text: 'hi' } }) }));
    const byRpc = Object.fromEntries(r.current().candidates.map((c) => [c.rpc, c]));
    expect(Object.keys(byRpc).sort()).toEqual(['message/send', 'tasks/get']);
    expect(byRpc['tasks/get']).toMatchObject({ calls: 2, errors: 1 });
    expect(Object.keys(byRpc['tasks/get']!.request!.props!)).toEqual(['taskId']);
    expect(byRpc['tasks/get']!.response!.n).toBe(1);
  });

  it('folds literal siblings into one parameter, keeping their figures', () => {
    const r = recorder({ foldAfter: 4 });
    for (const name of ['red-shoe', 'blue-hat', 'green-sock']) r.record(call({ method: 'GET', path: `/products/${name}` }));
    expect(r.current().candidates).toHaveLength(3);
    r.record(call({ method: 'GET', path: '/products/pink-scarf' }));
    r.record(call({ method: 'GET', path: '/products/red-shoe' }));
    const [c] = r.current().candidates;
    expect(r.current().candidates).toHaveLength(1);
    expect(c).toMatchObject({ template: '/products/:productId', calls: 5 });
    expect(c!.params.productId!.n).toBe(5);
    expect(c!.params.productId!.repeats).toBe(1);
  });

  it('caps the candidates it keeps and counts what it could not place', () => {
    const r = recorder({ maxTemplates: 2 });
    for (const p of ['/a', '/b', '/c', '/d']) r.record(call({ method: 'GET', path: p }));
    expect(r.current().candidates.map((c) => c.template)).toEqual(['/a', '/b']);
    expect(r.current()).toMatchObject({ seen: 4, sampled: 4, overflow: 2 });
  });

  it('notices a repeated request answered differently (not safe to repeat)', () => {
    const r = recorder();
    r.record(call({ method: 'POST', path: '/charges', request: json({ amount: 5 }), response: json({ id: 'ch_1' }) }));
    r.record(call({ method: 'POST', path: '/charges', request: json({ amount: 5 }), response: json({ id: 'ch_2' }) }));
    r.record(call({ method: 'PUT', path: '/prefs', request: json({ a: 1 }), response: json({ a: 1 }) }));
    r.record(call({ method: 'PUT', path: '/prefs', request: json({ a: 1 }), response: json({ a: 1 }) }));
    const [charges, prefs] = discoverFlows([r.current()]);
    expect(charges!.analysis.safety).toEqual({ level: 'no', reason: 'a repeated request got a different answer 1×' });
    expect(prefs!.analysis.safety.level).toBe('likely');
    expect(prefs!.proposed!.safe).toBe(true);
  });
});

describe('proposed flows', () => {
  it('names actions after method and template', () => {
    expect(actionName({ method: 'GET', template: '/orders' })).toBe('list-orders');
    expect(actionName({ method: 'GET', template: '/api/v1/orders/:orderId' })).toBe('get-order');
    expect(actionName({ method: 'POST', template: '/orders/:orderId/cancel' })).toBe('cancel-order');
    expect(actionName({ method: 'POST', template: '/reservations' })).toBe('create-reservation');
    expect(actionName({ method: 'POST', template: '/a2a', rpc: 'message/send' })).toBe('message-send');
    expect(actionName({ method: 'POST', template: '/mcp', rpc: 'tools/call', tool: 'lookup_stock' })).toBe('lookup-stock');
  });

  it('proposes one flow per JSON-RPC method, one for both A2A names of a method, and per MCP tool', () => {
    const r = recorder();
    const send = (method: string, i: number) => r.record(call({ method: 'POST', path: '/a2a', request: json({ jsonrpc: '2.0', id: i, method, params: { message: { contextId: `ctx-${i % 3}`, text: `t${i}` } } }) }));
    for (let i = 0; i < 6; i++) send(i % 2 ? 'message/send' : 'SendMessage', i);
    for (let i = 0; i < 6; i++) r.record(call({ method: 'POST', path: '/mcp', request: json({ jsonrpc: '2.0', id: i, method: 'tools/call', params: { name: i % 2 ? 'lookup_stock' : 'reserve', arguments: { sku: `SKU-${i % 2 ? i % 4 : i}` } } }) }));
    r.record(call({ method: 'POST', path: '/mcp', status: 202, request: json({ jsonrpc: '2.0', method: 'notifications/initialized' }) }));
    const rows = discoverFlows([r.current()]);
    // lookup_stock was asked the same thing again and answered alike: likely safe; reserve never repeated.
    const flows = rows.map((x) => x.proposed!).sort((a, b) => a.name.localeCompare(b.name));
    expect(flows).toEqual([
      { name: 'shop.lookup-stock', match: { method: 'POST', path: '/mcp', rpc: 'tools/call', tool: 'lookup_stock' }, topic: 'commands.agent.shop.lookup-stock', key: 'rpc.params.arguments.sku', safe: true },
      { name: 'shop.notifications-initialized', match: { method: 'POST', path: '/mcp', rpc: 'notifications/initialized' }, topic: 'events.shop.notifications-initialized-accepted', kind: 'event' },
      { name: 'shop.reserve', match: { method: 'POST', path: '/mcp', rpc: 'tools/call', tool: 'reserve' }, topic: 'commands.agent.shop.reserve', key: 'rpc.params.arguments.sku' },
      { name: 'shop.sendmessage', match: { method: 'POST', path: '/a2a', rpc: 'SendMessage' }, topic: 'commands.agent.shop.sendmessage', key: 'rpc.params.message.contextId' },
    ]);
    const send2 = rows.find((x) => x.proposed!.name === 'shop.sendmessage')!;
    expect(send2.candidate.calls).toBe(6);
    expect(send2.rpcMethods!.sort()).toEqual(['SendMessage', 'message/send']);
    for (const f of flows) expect(flowSchema.safeParse(f).success, f.name).toBe(true);
    expect(discoveryTable(rows)).toMatch(/POST\s+\/mcp\s+tools\/call lookup_stock\s+3 /);
  });

  it('proposes a key whose values recur and ranks safe, busy, healthy flows first', () => {
    const r = recorder();
    for (let i = 0; i < 40; i++) {
      r.record(call({ method: 'GET', path: `/stock/SKU-${i % 10}` }));
      r.record(call({ method: 'POST', path: '/orders', status: i % 4 === 0 ? 500 : 201, request: json({ customerId: `c${i % 7}`, requestId: `r${i}`, sentAt: `2026-01-01T00:00:${i}` }) }));
    }
    r.record(call({ method: 'GET', path: '/healthz' }));
    const rows = discoverFlows([r.current()], { names: ['shop.get-stock'] });
    const stock = rows.find((x) => x.candidate.template === '/stock/:stockId')!;
    const orders = rows.find((x) => x.candidate.template === '/orders')!;
    expect(stock.proposed).toEqual({ name: 'shop.get-stock-2', match: { method: 'GET', path: '/stock/:stockId' }, topic: 'commands.agent.shop.get-stock-2', key: 'path.stockId' });
    expect(orders.proposed!.key).toBe('body.customerId');
    expect(orders.analysis.keys.map((k) => k.key)).not.toContain('body.sentAt');
    expect(stock.order).toBe(1);
    expect(orders.order).toBe(2);
    expect(orders.reason).toContain('25.0% errors: fix the direct path first');
    const health = rows.find((x) => x.candidate.template === '/healthz')!;
    expect(health.proposed).toBeUndefined();
    const table = discoveryTable(rows);
    expect(table).toContain('1. shop.get-stock-2: safe to repeat: GET is safe by HTTP semantics, 40 calls');
    expect(table).toMatch(/GET\s+\/healthz .*- \(health, readiness or metrics endpoint: not a flow\)/);
  });
});
