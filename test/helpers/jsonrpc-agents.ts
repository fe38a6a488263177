import { randomUUID } from 'node:crypto';
import http from 'node:http';

/**
 * Calling JSON-RPC agents in tests: a POST, a request body, an A2A message, a streamed answer read as it
 * comes. The agents themselves (an A2A agent, an MCP server) are the shop's, in examples/shop/rpc-agents.ts.
 */
export { startA2aAgent, startMcpServer, type A2aAgentOptions, type McpServerOptions, type RpcAgent } from '../../examples/shop/rpc-agents.js';

/** POSTs one JSON-RPC body (object, array or raw text) and returns the status, headers and parsed body. */
export async function rpcPost(endpoint: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; text: string; json: unknown }> {
  const payload = Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = http.request(endpoint, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'content-length': payload.length, ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode!, headers: res.headers, text, json });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/** A JSON-RPC request body. */
export function rpcBody(method: string, params: unknown, id: string | number = randomUUID()): { jsonrpc: '2.0'; id: string | number; method: string; params: unknown } {
  return { jsonrpc: '2.0', id, method, params };
}

/** An A2A message with text. */
export function a2aMessage(text: string, extra: Record<string, unknown> = {}): { message: Record<string, unknown> } {
  return { message: { role: 'ROLE_USER', messageId: randomUUID(), parts: [{ text }], ...extra } };
}

/** A streamed answer as its caller reads it: events as they arrive. */
export interface RpcStream {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** Data of every event received so far, parsed. */
  readonly events: unknown[];
  /** Resolves once `count` events arrived (rejects if the stream ends first). */
  waitForEvents(count: number): Promise<void>;
  /** Resolves when the stream ends: `complete` false when the connection was cut. */
  readonly done: Promise<{ complete: boolean }>;
}

/** POSTs a streaming JSON-RPC call and reads its Server-Sent Events as they come. */
export function openRpcStream(endpoint: string, body: unknown): Promise<RpcStream> {
  const payload = Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = http.request(endpoint, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'text/event-stream', 'content-length': payload.length } }, (res) => {
      const events: unknown[] = [];
      const waiters: Array<{ count: number; resolve: () => void; reject: (e: Error) => void }> = [];
      let buffer = '';
      let ended = false;
      const settle = (): void => {
        for (const w of [...waiters]) {
          if (events.length >= w.count) w.resolve();
          else if (ended) w.reject(new Error(`the stream ended after ${events.length} events, expected ${w.count}`));
          else continue;
          waiters.splice(waiters.indexOf(w), 1);
        }
      };
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffer += chunk;
        for (let at = buffer.indexOf('\n\n'); at !== -1; at = buffer.indexOf('\n\n')) {
          const block = buffer.slice(0, at);
          buffer = buffer.slice(at + 2);
          const data = block.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n');
          if (data) events.push(JSON.parse(data));
        }
        settle();
      });
      const done = new Promise<{ complete: boolean }>((resolveDone) => {
        res.on('end', () => {
          ended = true;
          settle();
          resolveDone({ complete: true });
        });
        res.on('error', () => undefined);
        res.on('close', () => {
          ended = true;
          settle();
          resolveDone({ complete: res.complete });
        });
      });
      resolve({
        status: res.statusCode!,
        headers: res.headers,
        events,
        done,
        waitForEvents: (count) =>
          new Promise<void>((res2, rej) => {
            waiters.push({ count, resolve: res2, reject: rej });
            settle();
          }),
      });
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/** A promise with its resolve function outside: a gate a test opens. */
export function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}
