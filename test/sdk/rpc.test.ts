import { describe, expect, it } from 'vitest';
import { rpcDispatcher, rpcFailure, type RpcEventContext } from '../../src/sdk/rpc.js';

/** A handler context that records what the dispatcher answers. */
function context(body: unknown): RpcEventContext & { replies: unknown[]; streamed: unknown[] } {
  const replies: unknown[] = [];
  const streamed: unknown[] = [];
  return { data: { body, params: {}, query: {} }, replies, streamed, reply: (d) => void replies.push(d), streamEvent: async (d) => void streamed.push(d) };
}

const dispatch = rpcDispatcher({
  methods: {
    'tasks/get': (params) => ((params as { id: string }).id === 't-1' ? { task: { id: 't-1' } } : rpcFailure(-32001, 'Task not found', { id: (params as { id: string }).id })),
    SendStreamingMessage: async function* () {
      yield { statusUpdate: { state: 'working' } };
      yield rpcFailure(-32603, 'model unavailable');
      yield { statusUpdate: { state: 'never sent' } };
    },
  },
  tools: { lookup_stock: (args) => ({ content: [{ type: 'text', text: String((args as { sku: string }).sku) }] }) },
});

async function answer(body: unknown): Promise<unknown> {
  const ctx = context(body);
  await dispatch(ctx);
  return ctx.replies[0];
}

describe('rpcDispatcher', () => {
  it('dispatches by method, A2A 0.3 and 1.0 names alike, answering with the caller id', async () => {
    expect(await answer({ jsonrpc: '2.0', id: 'a', method: 'GetTask', params: { id: 't-1' } })).toEqual({ jsonrpc: '2.0', id: 'a', result: { task: { id: 't-1' } } });
    expect(await answer({ jsonrpc: '2.0', id: 9, method: 'tasks/get', params: { id: 'zz' } })).toEqual({ jsonrpc: '2.0', id: 9, error: { code: -32001, message: 'Task not found', data: { id: 'zz' } } });
  });

  it('dispatches MCP tools by name with their arguments', async () => {
    expect(await answer({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'lookup_stock', arguments: { sku: 'S-1' } } })).toEqual({ jsonrpc: '2.0', id: 1, result: { content: [{ type: 'text', text: 'S-1' }] } });
    expect(await answer({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'drop_table' } })).toMatchObject({ id: 2, error: { code: -32602, message: 'Unknown tool: drop_table' } });
  });

  it('answers unknown methods and events without a JSON-RPC call with the standard errors', async () => {
    expect(await answer({ jsonrpc: '2.0', id: 3, method: 'CancelTask', params: {} })).toMatchObject({ id: 3, error: { code: -32601 } });
    expect(await answer({ sku: 'not json-rpc' })).toMatchObject({ id: null, error: { code: -32600 } });
  });

  it('streams the results of a generator, and ends the stream at a failure', async () => {
    const ctx = context({ jsonrpc: '2.0', id: 's', method: 'message/stream', params: {} });
    await dispatch(ctx);
    expect(ctx.replies).toEqual([]);
    expect(ctx.streamed).toEqual([
      { jsonrpc: '2.0', id: 's', result: { statusUpdate: { state: 'working' } } },
      { jsonrpc: '2.0', id: 's', error: { code: -32603, message: 'model unavailable' } },
    ]);
  });
});
