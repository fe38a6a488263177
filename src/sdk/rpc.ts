import { canonicalRpcMethod, readRpcCall, isRpcCall, type RpcCall, type RpcResponse } from '../flows/rpc.js';

/**
 * Serving A2A and MCP operations bus-natively: a handler per JSON-RPC method (and per MCP tool), answered
 * with JSON-RPC responses carrying the caller's id. The call event's `data.body` is the JSON-RPC request
 * the caller sent through the sidecar; the reply is what the sidecar hands back in bus mode and what the
 * comparator pairs with the direct answer in shadow mode.
 */

/** JSON-RPC 2.0 error codes the dispatcher answers with itself. */
export const RpcErrorCodes = { invalidRequest: -32600, methodNotFound: -32601, invalidParams: -32602 } as const;

const FAILURE = Symbol('cutover.rpcFailure');

/** A JSON-RPC error a handler returns (a protocol answer like "task not found", not a crash to retry). */
export interface RpcFailure {
  readonly [FAILURE]: true;
  code: number;
  message: string;
  data?: unknown;
}

/** The JSON-RPC error response for this call: `return rpcFailure(-32001, 'Task not found')`. */
export function rpcFailure(code: number, message: string, data?: unknown): RpcFailure {
  return { [FAILURE]: true, code, message, ...(data === undefined ? {} : { data }) };
}

function isFailure(value: unknown): value is RpcFailure {
  return typeof value === 'object' && value !== null && FAILURE in value;
}

/** What the dispatcher needs of a handler context (AgentBus's HandlerContext). */
export interface RpcEventContext {
  data: unknown;
  reply(data: unknown): void;
  streamEvent(data: unknown): Promise<void>;
}

/** What an RPC handler gets: the call, and the AgentBus context of its event (publish, shadow flag, logger). */
export interface RpcContext<C extends RpcEventContext = RpcEventContext> {
  call: RpcCall;
  event: C;
}

/**
 * Handles one JSON-RPC method: gets `params` (for an MCP tool, the tool's `arguments`), returns the
 * `result` or an {@link rpcFailure}. A streaming method (`SendStreamingMessage`, `SubscribeToTask`)
 * returns an async iterable of results instead (an async generator): each becomes one Server-Sent Event
 * `{ jsonrpc, id, result }`, relayed to the caller as it is produced; a yielded {@link rpcFailure} ends the
 * stream with an error event. Throwing is a failure of the agent: retried, then dead-lettered with an
 * error reply, as for any AgentBus handler.
 */
export type RpcMethodHandler<C extends RpcEventContext = RpcEventContext> = (params: unknown, ctx: RpcContext<C>) => unknown;

export interface RpcHandlers<C extends RpcEventContext = RpcEventContext> {
  /** By method name; A2A 0.3 and 1.0 names are aliases (a `SendMessage` handler serves `message/send`). */
  methods?: Record<string, RpcMethodHandler<C>>;
  /** MCP `tools/call` by tool name; the handler gets `params.arguments` and returns the CallToolResult. */
  tools?: Record<string, RpcMethodHandler<C>>;
}

/**
 * An AgentBus handler that dispatches JSON-RPC calls to `handlers` and replies with JSON-RPC responses:
 * an unknown method answers -32601, an unknown tool -32602, a body that is no JSON-RPC call -32600.
 */
export function rpcDispatcher<C extends RpcEventContext>(handlers: RpcHandlers<C>): (ctx: C) => Promise<void> {
  const methods = new Map(Object.entries(handlers.methods ?? {}).map(([name, h]) => [canonicalRpcMethod(name), h]));
  const tools = new Map(Object.entries(handlers.tools ?? {}));
  return async (ctx) => {
    const body = (ctx.data as { body?: unknown } | undefined)?.body;
    const parsed = body === undefined ? undefined : readRpcCall(body);
    if (!parsed || !isRpcCall(parsed)) {
      ctx.reply(response(null, rpcFailure(RpcErrorCodes.invalidRequest, 'Invalid Request: the call event carries no JSON-RPC 2.0 call')));
      return;
    }
    const call = parsed;
    let handler: RpcMethodHandler<C> | undefined;
    let params: unknown = call.params;
    if (call.method === 'tools/call' && tools.size > 0) {
      handler = call.name === undefined ? undefined : tools.get(call.name);
      if (!handler) {
        ctx.reply(response(call.id, rpcFailure(RpcErrorCodes.invalidParams, `Unknown tool: ${call.name ?? '(none)'}`)));
        return;
      }
      params = (call.params as { arguments?: unknown } | undefined)?.arguments ?? {};
    } else {
      handler = methods.get(canonicalRpcMethod(call.method));
      if (!handler) {
        ctx.reply(response(call.id, rpcFailure(RpcErrorCodes.methodNotFound, `Method not found: ${call.method}`)));
        return;
      }
    }
    const result = await handler(params, { call, event: ctx });
    if (!isAsyncIterable(result)) {
      ctx.reply(response(call.id, result));
      return;
    }
    for await (const item of result) {
      await ctx.streamEvent(response(call.id, item));
      if (isFailure(item)) break;
    }
  };
}

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return typeof value === 'object' && value !== null && Symbol.asyncIterator in value;
}

function response(id: string | number | null | undefined, result: unknown): RpcResponse {
  if (isFailure(result)) {
    return { jsonrpc: '2.0', id: id ?? null, error: { code: result.code, message: result.message, ...(result.data === undefined ? {} : { data: result.data }) } };
  }
  return { jsonrpc: '2.0', id: id ?? null, result: result ?? null };
}
