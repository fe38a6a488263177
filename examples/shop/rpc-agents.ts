import { randomUUID } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * Agents that speak JSON-RPC 2.0 over HTTP on one URL, as A2A agents and MCP servers do: an A2A agent
 * (`/a2a`: SendMessage, GetTask, CancelTask, SendStreamingMessage as Server-Sent Events; A2A 0.3 names
 * too) and an MCP server (`/mcp`: initialize, tools/list, tools/call lookup_stock and reserve_stock).
 * Plain node:http. The demo stands them behind sidecars; the JSON-RPC tests use them too.
 */

export interface RpcAgent {
  url: string;
  /** The JSON-RPC endpoint (`url` + path). */
  endpoint: string;
  /** Calls served, by method, as the body named them. */
  readonly served: Map<string, number>;
  /** Header lines of every call, in order (to check what the sidecar forwarded). */
  readonly requests: Array<{ headers: http.IncomingHttpHeaders; body: string }>;
  close(): Promise<void>;
}

interface Call {
  id: string | number | null;
  method: string;
  params: Record<string, unknown>;
}

type Answer = { result: unknown } | { error: { code: number; message: string } } | { stream: AsyncIterable<unknown> } | { none: true };

async function startRpcServer(path: string, dispatch: (call: Call, req: IncomingMessage) => Promise<Answer> | Answer, cutAfter?: number): Promise<RpcAgent> {
  const served = new Map<string, number>();
  const requests: RpcAgent['requests'] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      requests.push({ headers: req.headers, body: text });
      void handle(text, req, res);
    });
  });
  async function handle(text: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'POST' || (req.url ?? '').split('?')[0] !== path) return json(res, 404, { error: 'not found' });
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(text) as Record<string, unknown>;
    } catch {
      return json(res, 200, { jsonrpc: '2.0', id: null, error: { code: -32700, message: 'Parse error' } });
    }
    if (Array.isArray(body)) return json(res, 200, { jsonrpc: '2.0', id: null, error: { code: -32600, message: 'batches are not supported' } });
    const call: Call = { id: (body.id as Call['id']) ?? null, method: String(body.method), params: (body.params as Record<string, unknown>) ?? {} };
    served.set(call.method, (served.get(call.method) ?? 0) + 1);
    const answer = await dispatch(call, req);
    if ('none' in answer) {
      res.writeHead(202).end();
      return;
    }
    if ('stream' in answer) {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      // Headers now, so that the caller sees the stream open before the first event.
      res.flushHeaders();
      let sent = 0;
      for await (const result of answer.stream) {
        if (res.destroyed) return;
        if (sent++ === cutAfter) {
          // After what was written has gone out: the stream stops mid-response, without its last chunk.
          res.socket?.destroySoon();
          return;
        }
        res.write(`data: ${JSON.stringify({ jsonrpc: '2.0', id: call.id, result })}\n\n`);
      }
      res.end();
      return;
    }
    json(res, 200, { jsonrpc: '2.0', id: call.id, ...answer });
  }
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    endpoint: url + path,
    served,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const payload = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': payload.length });
  res.end(payload);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface A2aAgentOptions {
  /** The answer to a message's text (what the agent "thinks"). Default: the text upper-cased. */
  answer?: (text: string) => string;
  /** Characters per streamed artifact chunk. Default 4. */
  chunkSize?: number;
  /** Pause before each streamed event, ms. Default 0. */
  streamDelayMs?: number;
  /** Resolves when a stream may send its final event (to hold a stream open in a test). */
  holdFinal?: () => Promise<void>;
  /** Cut the connection after this many streamed events (a stream cut short). */
  cutAfter?: number;
}

interface Task {
  id: string;
  contextId: string;
  status: { state: string; timestamp: string };
  artifacts: Array<{ artifactId: string; name: string; parts: Array<{ text: string }> }>;
  history: unknown[];
}

/** A2A 1.0 and 0.3 names of one method. */
const A2A = {
  send: ['SendMessage', 'message/send'],
  stream: ['SendStreamingMessage', 'message/stream'],
  get: ['GetTask', 'tasks/get'],
  cancel: ['CancelTask', 'tasks/cancel'],
};

function textOf(message: unknown): string {
  const parts = (message as { parts?: Array<{ text?: string }> } | undefined)?.parts ?? [];
  return parts.map((p) => p.text ?? '').join('');
}

/**
 * An A2A agent: every message becomes a completed task with one artifact, the answer to its text; ids and
 * timestamps are generated per call, as real agents do. A2A 1.0 methods answer `{ task }` (1.0 wraps the
 * result), A2A 0.3 methods the task itself with `kind: "task"`.
 */
export async function startA2aAgent(options: A2aAgentOptions = {}): Promise<RpcAgent & { tasks: Map<string, Task> }> {
  const tasks = new Map<string, Task>();
  const answer = options.answer ?? ((t: string) => t.toUpperCase());
  const chunkSize = options.chunkSize ?? 4;
  const newTask = (message: Record<string, unknown>, state: string): Task => {
    const task: Task = {
      id: randomUUID(),
      contextId: typeof message.contextId === 'string' ? message.contextId : randomUUID(),
      status: { state, timestamp: new Date().toISOString() },
      artifacts: [],
      history: [{ ...message, messageId: message.messageId ?? randomUUID() }],
    };
    tasks.set(task.id, task);
    return task;
  };
  const shape = (method: string, task: Task): unknown => (method.includes('/') ? { kind: 'task', ...task } : { task });
  const agent = await startRpcServer('/a2a', (call) => {
    if (A2A.send.includes(call.method)) {
      const message = (call.params.message ?? {}) as Record<string, unknown>;
      const task = newTask(message, 'completed');
      task.artifacts.push({ artifactId: randomUUID(), name: 'answer', parts: [{ text: answer(textOf(message)) }] });
      return { result: shape(call.method, task) };
    }
    if (A2A.get.includes(call.method) || A2A.cancel.includes(call.method)) {
      const task = tasks.get(String(call.params.id));
      if (!task) return { error: { code: -32001, message: 'Task not found' } };
      if (A2A.cancel.includes(call.method)) {
        if (task.status.state === 'completed') return { error: { code: -32002, message: 'Task cannot be canceled' } };
        task.status = { state: 'canceled', timestamp: new Date().toISOString() };
      }
      return { result: shape(call.method, task) };
    }
    if (A2A.stream.includes(call.method)) {
      const message = (call.params.message ?? {}) as Record<string, unknown>;
      const task = newTask(message, 'working');
      const text = answer(textOf(message));
      const artifactId = randomUUID();
      const v03 = call.method.includes('/');
      async function* events(): AsyncGenerator<unknown> {
        const status = (state: string, final: boolean): unknown => {
          const update = { taskId: task.id, contextId: task.contextId, status: { state, timestamp: new Date().toISOString() }, final };
          return v03 ? { kind: 'status-update', ...update } : { statusUpdate: update };
        };
        yield v03 ? { kind: 'task', ...task } : { task };
        for (let i = 0; i < text.length; i += chunkSize) {
          if (options.streamDelayMs) await sleep(options.streamDelayMs);
          const update = { taskId: task.id, contextId: task.contextId, artifact: { artifactId, name: 'answer', parts: [{ text: text.slice(i, i + chunkSize) }] }, append: i > 0, lastChunk: i + chunkSize >= text.length };
          yield v03 ? { kind: 'artifact-update', ...update } : { artifactUpdate: update };
        }
        if (options.holdFinal) await options.holdFinal();
        task.status = { state: 'completed', timestamp: new Date().toISOString() };
        task.artifacts.push({ artifactId, name: 'answer', parts: [{ text }] });
        yield status('completed', true);
      }
      return { stream: events() };
    }
    return { error: { code: -32601, message: `Method not found: ${call.method}` } };
  }, options.cutAfter);
  return Object.assign(agent, { tasks });
}

export interface McpServerOptions {
  /** Stock per SKU. Default SKU-1: 12. */
  stock?: Record<string, number>;
}

/** An MCP server (streamable HTTP, JSON answers): tools lookup_stock and reserve_stock. */
export async function startMcpServer(options: McpServerOptions = {}): Promise<RpcAgent> {
  const stock = new Map(Object.entries(options.stock ?? { 'SKU-1': 12 }));
  const text = (value: unknown): unknown => ({ content: [{ type: 'text', text: JSON.stringify(value) }], structuredContent: value });
  return startRpcServer('/mcp', (call) => {
    switch (call.method) {
      case 'initialize':
        return { result: { protocolVersion: '2025-06-18', capabilities: { tools: {} }, serverInfo: { name: 'stock', version: '1.0.0' } } };
      case 'notifications/initialized':
        return { none: true };
      case 'tools/list':
        return { result: { tools: [{ name: 'lookup_stock', inputSchema: { type: 'object' } }, { name: 'reserve_stock', inputSchema: { type: 'object' } }] } };
      case 'tools/call': {
        const args = (call.params.arguments ?? {}) as { sku?: string; qty?: number };
        const available = stock.get(String(args.sku));
        if (available === undefined) return { result: { content: [{ type: 'text', text: `unknown sku ${args.sku}` }], isError: true } };
        if (call.params.name === 'lookup_stock') return { result: text({ sku: args.sku, available }) };
        if (call.params.name === 'reserve_stock') {
          const qty = args.qty ?? 1;
          if (qty > available) return { result: { content: [{ type: 'text', text: 'insufficient stock' }], isError: true } };
          stock.set(String(args.sku), available - qty);
          return { result: text({ sku: args.sku, reservationId: randomUUID(), remaining: available - qty }) };
        }
        return { error: { code: -32602, message: `Unknown tool: ${String(call.params.name)}` } };
      }
      default:
        return { error: { code: -32601, message: `Method not found: ${call.method}` } };
    }
  });
}
