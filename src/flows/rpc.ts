import type { IncomingHttpHeaders } from 'node:http';

/**
 * The JSON-RPC 2.0 layer of agents that speak A2A or MCP: one URL, the operation in the body's `method`.
 * Flows may select calls by that method (and, for MCP, by the tool, prompt or resource named in `params`).
 */

/**
 * A2A 0.3 method names and their A2A 1.0 names. A flow naming either matches both: agents and callers
 * move between the versions independently, and one operation should stay one flow while they do.
 */
export const A2A_METHOD_ALIASES: Readonly<Record<string, string>> = {
  'message/send': 'SendMessage',
  'message/stream': 'SendStreamingMessage',
  'tasks/get': 'GetTask',
  'tasks/list': 'ListTasks',
  'tasks/cancel': 'CancelTask',
  'tasks/resubscribe': 'SubscribeToTask',
  'tasks/pushNotificationConfig/set': 'CreateTaskPushNotificationConfig',
  'tasks/pushNotificationConfig/get': 'GetTaskPushNotificationConfig',
  'tasks/pushNotificationConfig/list': 'ListTaskPushNotificationConfigs',
  'tasks/pushNotificationConfig/delete': 'DeleteTaskPushNotificationConfig',
  'agent/getAuthenticatedExtendedCard': 'GetExtendedAgentCard',
};

const CANONICAL = new Map<string, string>(Object.entries(A2A_METHOD_ALIASES));

/** One name for a method whatever the A2A version: the 1.0 name of an A2A 0.3 method, else the name itself. */
export function canonicalRpcMethod(method: string): string {
  return CANONICAL.get(method) ?? method;
}

/** MCP methods whose `params` name what they act on: the tool or prompt by `name`, the resource by `uri`. */
const NAMED_BY: Readonly<Record<string, 'name' | 'uri'>> = {
  'tools/call': 'name',
  'prompts/get': 'name',
  'resources/read': 'uri',
  'resources/subscribe': 'uri',
  'resources/unsubscribe': 'uri',
};

/** One JSON-RPC request (or notification) as read from a request body. */
export interface RpcCall {
  method: string;
  /** The request id; absent for a notification (no answer expected). */
  id?: string | number | null;
  /** `params` when it is an object or array. */
  params?: unknown;
  /** What an MCP call acts on: the tool or prompt name (`tools/call`, `prompts/get`) or resource URI. */
  name?: string;
}

/** Why a body is not one JSON-RPC call. */
export type RpcProblem = 'not_json' | 'not_jsonrpc' | 'batch';

/**
 * Reads one JSON-RPC 2.0 call from a request body. A batch (a JSON array) is refused as `batch`: its calls
 * may belong to different flows, and one HTTP exchange cannot take several modes at once.
 */
export function parseRpcCall(raw: Buffer): RpcCall | { problem: RpcProblem } {
  let value: unknown;
  try {
    value = JSON.parse(raw.toString('utf8'));
  } catch {
    return { problem: 'not_json' };
  }
  return readRpcCall(value);
}

/** {@link parseRpcCall} of a body parsed already (a call event's `data.body`). */
export function readRpcCall(value: unknown): RpcCall | { problem: RpcProblem } {
  if (Array.isArray(value)) return { problem: 'batch' };
  if (value === null || typeof value !== 'object') return { problem: 'not_jsonrpc' };
  const o = value as Record<string, unknown>;
  if (o.jsonrpc !== '2.0' || typeof o.method !== 'string' || o.method.length === 0) return { problem: 'not_jsonrpc' };
  const call: RpcCall = { method: o.method };
  if ('id' in o) {
    const id = o.id;
    if (typeof id !== 'string' && typeof id !== 'number' && id !== null) return { problem: 'not_jsonrpc' };
    call.id = id;
  }
  if (o.params !== undefined) {
    if (o.params === null || typeof o.params !== 'object') return { problem: 'not_jsonrpc' };
    call.params = o.params;
    const field = NAMED_BY[o.method];
    const named = field && !Array.isArray(o.params) ? (o.params as Record<string, unknown>)[field] : undefined;
    if (typeof named === 'string') call.name = named;
  }
  return call;
}

/** Whether `value` parses as a JSON-RPC 2.0 call (to tell JSON-RPC bodies from others). */
export function isRpcCall(value: RpcCall | { problem: RpcProblem }): value is RpcCall {
  return !('problem' in value);
}

/** MCP request headers that repeat the body's method and name, so that gateways need not parse it. */
export const MCP_HEADERS = { method: 'mcp-method', name: 'mcp-name' } as const;

/**
 * Which MCP headers disagree with the body: `mcp-method` with `method`, `mcp-name` with the tool, prompt
 * or resource the body names. Absent headers agree with anything (older clients do not send them).
 */
export function mcpHeaderMismatches(call: RpcCall, headers: IncomingHttpHeaders): Array<'mcp-method' | 'mcp-name'> {
  const out: Array<'mcp-method' | 'mcp-name'> = [];
  const method = headers[MCP_HEADERS.method];
  if (typeof method === 'string' && method !== call.method) out.push('mcp-method');
  const name = headers[MCP_HEADERS.name];
  if (typeof name === 'string' && name !== call.name) out.push('mcp-name');
  return out;
}

/** A flow's `match.rpc` / `match.tool`, compiled: does a call belong to the flow? */
export interface RpcSelector {
  /** Canonical method names (A2A 0.3 names mapped to 1.0). */
  readonly methods: ReadonlySet<string>;
  /** Tool, prompt or resource names; undefined for any. */
  readonly names: ReadonlySet<string> | undefined;
  matches(call: RpcCall): boolean;
}

function list(value: string | readonly string[] | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  return typeof value === 'string' ? [value] : [...value];
}

export function compileRpcSelector(rpc: string | readonly string[], tool?: string | readonly string[]): RpcSelector {
  const methods = new Set(list(rpc)!.map(canonicalRpcMethod));
  const toolList = list(tool);
  const names = toolList ? new Set(toolList) : undefined;
  return {
    methods,
    names,
    matches(call) {
      if (!methods.has(canonicalRpcMethod(call.method))) return false;
      return names === undefined || (call.name !== undefined && names.has(call.name));
    },
  };
}

/** The JSON-RPC `error.code` of an internal error (JSON-RPC 2.0 §5.1). */
export const RPC_INTERNAL_ERROR = -32603;

/** A JSON-RPC 2.0 response object. */
export type RpcResponse = { jsonrpc: '2.0'; id: string | number | null } & ({ result: unknown } | { error: { code: number; message: string; data?: unknown } });

/** A JSON-RPC error response for a call cutover answers itself: internal error, the cutover code in `data.code`. */
export function rpcError(id: string | number | null | undefined, code: string, message: string): RpcResponse {
  return { jsonrpc: '2.0', id: id ?? null, error: { code: RPC_INTERNAL_ERROR, message, data: { code } } };
}

/** Whether `value` is shaped like a JSON-RPC 2.0 response (a `result` or an `error` object). */
export function isRpcResponse(value: unknown): value is RpcResponse {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const o = value as Record<string, unknown>;
  return o.jsonrpc === '2.0' && ('result' in o || (typeof o.error === 'object' && o.error !== null));
}
