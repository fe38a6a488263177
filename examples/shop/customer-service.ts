import { randomUUID } from 'node:crypto';
import { CATALOG, customer } from './catalog.js';
import { createJsonServer, HttpError, JsonClient, listenAgent, readJson, type AgentHandle, type StartOptions } from './http.js';
import { startA2aAgent, startMcpServer, type RpcAgent } from './rpc-agents.js';

/**
 * The customer-service agent: answers a customer's question about a product, with the help of two agents
 * that speak JSON-RPC rather than REST.
 *
 * - the fraud desk, an A2A agent (`/a2a`): `SendMessage` asks whether the account may be helped, `GetTask`
 *   reads that task back, `SendStreamingMessage` drafts the reply as a stream of Server-Sent Events;
 * - inventory's stock tools, an MCP server (`/mcp`): `initialize` and `tools/list` once, then
 *   `tools/call lookup_stock` per question.
 *
 * `POST /questions` `{ customerId, sku, text }` → 200 `{ customerId, sku, check, available, reply }`;
 * 400 on a malformed body, 502 when a JSON-RPC agent answers with an error.
 */

type Deps = { fraudDesk: string; stockTools: string };

interface Task {
  id: string;
  status: { state: string };
  artifacts: Array<{ parts: Array<{ text?: string }> }>;
}

/** The text of a task's first artifact. */
const artifactText = (task: Task): string => task.artifacts[0]?.parts.map((p) => p.text ?? '').join('') ?? '';

/** What the fraud desk answers, from the customer's record (deterministic, so two instances agree). */
export function fraudDeskAnswer(text: string): string {
  const draft = /^draft a reply to (cus-\d+) about (\S+): (.*)$/.exec(text);
  if (draft) return `Dear ${customer(draft[1]!).tier} customer, thank you for asking about ${draft[2]}. ${draft[3]} We are happy to help.`;
  const id = /cus-\d+/.exec(text)?.[0];
  if (!id) return 'no customer named: cannot check';
  return customer(id).tier === 'standard' && id.endsWith('7') ? `${id}: review (new account)` : `${id}: approve (no chargebacks on record)`;
}

/** The fraud desk as an A2A agent (a second one serves as its shadow instance). */
export const startFraudDesk = (): Promise<RpcAgent> => startA2aAgent({ answer: fraudDeskAnswer, chunkSize: 24 });

/** Inventory's stock as MCP tools (read by `lookup_stock`). */
export const startStockTools = (): Promise<RpcAgent> => startMcpServer({ stock: Object.fromEntries(CATALOG.map((p, i) => [p.sku, 40 + i * 7])) });

function parseQuestion(value: unknown): { customerId: string; sku: string; text: string } {
  const q = value as Record<string, unknown> | null;
  for (const field of ['customerId', 'sku', 'text'] as const) {
    if (typeof q?.[field] !== 'string' || q[field] === '') throw new HttpError(400, 'BAD_REQUEST', `${field}: expected a non-empty string`);
  }
  return q as { customerId: string; sku: string; text: string };
}

export async function start(options: StartOptions<Deps> & { deps: Deps }): Promise<AgentHandle> {
  const served = new Map<string, number>();
  const client = new JsonClient('customer-service');
  const { fraudDesk, stockTools } = options.deps;
  const rpc = async <T>(endpoint: string, method: string, params: unknown): Promise<T> => {
    const res = await client.post<{ result?: T; error?: { message: string } }>(endpoint, { jsonrpc: '2.0', id: randomUUID(), method, params });
    if (res.status !== 200 || res.body.result === undefined) throw new HttpError(502, 'UPSTREAM', `${method}: ${res.body.error?.message ?? `status ${res.status}`}`);
    return res.body.result;
  };
  const message = (text: string, contextId: string): unknown => ({ message: { role: 'ROLE_USER', messageId: randomUUID(), contextId, parts: [{ text }] } });
  // The MCP handshake, once, before the first tool call.
  let mcpReady: Promise<unknown> | undefined;
  const server = createJsonServer('customer-service', [
    {
      method: 'POST',
      path: '/questions',
      handle: async ({ req }) => {
        const q = parseQuestion(await readJson(req));
        mcpReady ??= rpc(stockTools, 'initialize', { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'customer-service', version: '1.0.0' } }).then(() => rpc(stockTools, 'tools/list', {}));
        await mcpReady;
        const sent = await rpc<{ task: Task }>(fraudDesk, 'SendMessage', message(`may we help ${q.customerId}?`, q.customerId));
        const check = await rpc<{ task: Task }>(fraudDesk, 'GetTask', { id: sent.task.id });
        const stock = await rpc<{ structuredContent: { available: number } }>(stockTools, 'tools/call', { name: 'lookup_stock', arguments: { sku: q.sku } });
        const reply = await streamedReply(fraudDesk, message(`draft a reply to ${q.customerId} about ${q.sku}: ${q.text}`, q.customerId));
        return { status: 200, body: { customerId: q.customerId, sku: q.sku, check: artifactText(check.task), available: stock.structuredContent.available, reply } };
      },
    },
  ], served, options.logger);
  return listenAgent('customer-service', server, served, options);
}

/** `SendStreamingMessage`, read to its end: the artifact's chunks joined. */
async function streamedReply(endpoint: string, params: unknown): Promise<string> {
  const res = await fetch(endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: randomUUID(), method: 'SendStreamingMessage', params }),
  });
  const text = await res.text();
  if (res.status !== 200) throw new HttpError(502, 'UPSTREAM', `SendStreamingMessage: status ${res.status}`);
  let reply = '';
  for (const line of text.split('\n')) {
    if (!line.startsWith('data:')) continue;
    const update = (JSON.parse(line.slice(5)) as { result?: { artifactUpdate?: { artifact: { parts: Array<{ text?: string }> } } } }).result?.artifactUpdate;
    if (update) reply += update.artifact.parts.map((p) => p.text ?? '').join('');
  }
  return reply;
}
