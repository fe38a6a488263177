import { describe, expect, it } from 'vitest';
import { compileFlows, compilePathTemplate, isRpcRoute, type FlowMatch, type RpcRoute } from '../../src/flows/match.js';
import { parseRpcCall, mcpHeaderMismatches, type RpcCall } from '../../src/flows/rpc.js';
import { flowSchema, type FlowConfig } from '../../src/config/flow.js';

function flowName(m: FlowMatch | RpcRoute | undefined): string | undefined {
  return m && !isRpcRoute(m) ? m.flow.name : undefined;
}

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

  it('literal templates match exactly the paths that equal them less one trailing slash', () => {
    const paths = ['/', '//', '///', '/a', '/a/', '/a//', '/ab', '/a/b', '/a/b/', '/a/b//', '/b/a', 'a', '', '/a/bc', '/a/b/c'];
    for (const template of ['/', '/a', '/a/', '/a/b', '/a/b/']) {
      const t = compilePathTemplate(template);
      const want = template.length > 1 && template.endsWith('/') ? template.slice(0, -1) : template;
      for (const path of paths) {
        const trimmed = path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
        expect([template, path, t.match(path)]).toEqual([template, path, trimmed === want ? {} : undefined]);
      }
    }
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
    expect(flowName(matcher.match('POST', '/reservations'))).toBe('inventory.reserve');
    expect(matcher.match('GET', '/reservations')).toBeUndefined();
    expect(matcher.match('GET', '/stock/SKU-1')).toMatchObject({ flow: { name: 'stock.get' }, params: { sku: 'SKU-1' } });
  });

  it('prefers the template with more literal segments, whatever the declaration order', () => {
    expect(flowName(matcher.match('GET', '/stock/reserved'))).toBe('stock.reserved');
  });

  it('returns undefined for unmatched requests', () => {
    expect(matcher.match('DELETE', '/stock/x')).toBeUndefined();
    expect(matcher.match('GET', '/other')).toBeUndefined();
  });
});

const rpcFlow = (name: string, match: Record<string, unknown>): FlowConfig =>
  flowSchema.parse({ name, match: { method: 'POST', path: '/a2a', ...match }, topic: `commands.agent.travel.${name.replace(/\W/g, '')}` });

function call(body: unknown): RpcCall {
  const parsed = parseRpcCall(Buffer.from(JSON.stringify(body)));
  if ('problem' in parsed) throw new Error(`not a call: ${parsed.problem}`);
  return parsed;
}

describe('compileFlows with JSON-RPC flows', () => {
  const matcher = compileFlows([
    rpcFlow('a2a.send', { rpc: 'SendMessage' }),
    rpcFlow('a2a.read', { rpc: ['tasks/get', 'ListTasks'] }),
    rpcFlow('mcp.stock', { rpc: 'tools/call', tool: ['lookup_stock', 'reserve_stock'] }),
    rpcFlow('a2a.other', {}),
    flow('stock.get', 'GET', '/stock/:sku'),
  ]);
  const select = (body: unknown): string | undefined => {
    const route = matcher.match('POST', '/a2a');
    if (!route || !isRpcRoute(route)) throw new Error('expected a JSON-RPC route');
    return route.select(body === undefined ? undefined : call(body))?.name;
  };

  it('leaves plain URLs alone: no body needed', () => {
    expect(flowName(matcher.match('GET', '/stock/1'))).toBe('stock.get');
  });

  it('selects by method, A2A 0.3 and 1.0 names alike, in both directions', () => {
    expect(select({ jsonrpc: '2.0', id: 1, method: 'SendMessage', params: {} })).toBe('a2a.send');
    expect(select({ jsonrpc: '2.0', id: 1, method: 'message/send', params: {} })).toBe('a2a.send');
    expect(select({ jsonrpc: '2.0', id: 'x', method: 'GetTask', params: { id: 't' } })).toBe('a2a.read');
    expect(select({ jsonrpc: '2.0', id: 'x', method: 'tasks/list' })).toBe('a2a.read');
  });

  it('selects MCP tool calls by tool name; other tools fall to the plain flow of the URL', () => {
    expect(select({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'reserve_stock', arguments: {} } })).toBe('mcp.stock');
    expect(select({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'ship' } })).toBe('a2a.other');
    expect(select({ jsonrpc: '2.0', id: 3, method: 'tools/list' })).toBe('a2a.other');
  });

  it('without a plain flow on the URL, a call no flow selects is unmatched', () => {
    const only = compileFlows([rpcFlow('a2a.send', { rpc: 'SendMessage' })]);
    const route = only.match('POST', '/a2a');
    expect(route && isRpcRoute(route) && route.select(call({ jsonrpc: '2.0', id: 1, method: 'GetTask' }))).toBeUndefined();
    expect(route && isRpcRoute(route) && route.select(undefined)).toBeUndefined();
  });
});

describe('parseRpcCall', () => {
  it('refuses batches, non-JSON and non-JSON-RPC bodies with the reason', () => {
    expect(parseRpcCall(Buffer.from('[{"jsonrpc":"2.0","id":1,"method":"GetTask"}]'))).toEqual({ problem: 'batch' });
    expect(parseRpcCall(Buffer.from('{"jsonrpc":'))).toEqual({ problem: 'not_json' });
    expect(parseRpcCall(Buffer.from('{"id":1,"method":"GetTask"}'))).toEqual({ problem: 'not_jsonrpc' });
    expect(parseRpcCall(Buffer.from('{"jsonrpc":"2.0","id":{},"method":"GetTask"}'))).toEqual({ problem: 'not_jsonrpc' });
    expect(parseRpcCall(Buffer.from('{"jsonrpc":"2.0","id":1,"method":"GetTask","params":3}'))).toEqual({ problem: 'not_jsonrpc' });
  });

  it('reads the named target of MCP calls (tool, prompt, resource)', () => {
    expect(call({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'lookup' } })).toMatchObject({ method: 'tools/call', id: 1, name: 'lookup' });
    expect(call({ jsonrpc: '2.0', id: 1, method: 'resources/read', params: { uri: 'file:///a' } }).name).toBe('file:///a');
    expect(call({ jsonrpc: '2.0', method: 'notifications/initialized' })).toEqual({ method: 'notifications/initialized' });
  });

  it('tells which MCP headers disagree with the body', () => {
    const c = call({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'lookup' } });
    expect(mcpHeaderMismatches(c, {})).toEqual([]);
    expect(mcpHeaderMismatches(c, { 'mcp-method': 'tools/call', 'mcp-name': 'lookup' })).toEqual([]);
    expect(mcpHeaderMismatches(c, { 'mcp-method': 'tools/list', 'mcp-name': 'delete_all' })).toEqual(['mcp-method', 'mcp-name']);
  });
});

describe('flowSchema', () => {
  it('validates match.rpc and match.tool, naming the field', () => {
    const base = { name: 'a2a.send', topic: 'commands.agent.travel.send' };
    const issue = (match: Record<string, unknown>, key?: string) => {
      const r = flowSchema.safeParse({ ...base, match, ...(key ? { key } : {}) });
      return r.success ? undefined : { path: r.error.issues[0]!.path.join('.'), message: r.error.issues[0]!.message };
    };
    expect(issue({ method: 'POST', path: '/a2a', rpc: 'SendMessage' }, 'rpc.params.message.contextId')).toBeUndefined();
    expect(issue({ method: 'GET', path: '/a2a', rpc: 'GetTask' })).toMatchObject({ path: 'match.method', message: expect.stringContaining('POST') });
    expect(issue({ method: 'POST', path: '/a2a', rpc: 'bad name' })).toMatchObject({ path: 'match.rpc' });
    expect(issue({ method: 'POST', path: '/a2a', rpc: [] })).toMatchObject({ path: 'match.rpc' });
    expect(issue({ method: 'POST', path: '/mcp', rpc: 'tools/list', tool: 'lookup' })).toMatchObject({ path: 'match.tool' });
    expect(issue({ method: 'POST', path: '/mcp', tool: 'lookup' })).toMatchObject({ path: 'match.tool' });
    expect(issue({ method: 'POST', path: '/a2a' }, 'rpc.params.id')).toMatchObject({ path: 'key', message: expect.stringContaining('match.rpc') });
  });

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
