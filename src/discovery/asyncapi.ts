import type { FlowConfig } from '../config/flow.js';
import { CallHeaders, ObservationTypes } from '../events/wire.js';
import { templateParams } from '../config/flow.js';
import type { CandidateStats, DiscoverySummary } from './recorder.js';
import { mergeShapes, shapeToSchema, type JsonSchema, type ShapeNode } from './shape.js';
import { pathSegments } from './template.js';

/** Marks the messages of a flow in the document, so a contract can be read back (`loadContract`). */
export const FLOW_EXTENSION = 'x-cutover-flow';
/** `call` (the call event on the flow's topic) or `reply` (the result on the call's `replyto`). */
export const PART_EXTENSION = 'x-cutover-part';

export interface AsyncApiOptions {
  agent: string;
  flows: readonly Pick<FlowConfig, 'name' | 'match' | 'topic' | 'schemaVersion' | 'kind' | 'key'>[];
  /** Discovery summaries whose observed calls give the payload schemas. */
  summaries?: readonly DiscoverySummary[];
  /** `info.version` of the document. */
  version?: string;
}

/** Observed calls of a flow: the candidates that matched it, or whose template is the flow's. */
function observedCalls(flow: AsyncApiOptions['flows'][number], summaries: readonly DiscoverySummary[]): CandidateStats[] {
  const mine = pathSegments(flow.match.path);
  const sameTemplate = (template: string): boolean => {
    const theirs = pathSegments(template);
    return theirs.length === mine.length && theirs.every((s, i) => (s.startsWith(':') ? mine[i]!.startsWith(':') : s === mine[i]));
  };
  return summaries.flatMap((s) => s.candidates).filter((c) => c.flow === flow.name || (c.flow === undefined && c.method === flow.match.method && sameTemplate(c.template)));
}

const mergeAll = (nodes: Array<ShapeNode | undefined>): ShapeNode | undefined => nodes.reduce<ShapeNode | undefined>((a, b) => mergeShapes(a, b), undefined);

/** The observed payloads, or a note that none were observed (the schema then accepts anything). */
function bodySchema(node: ShapeNode | undefined, what: string): JsonSchema {
  if (!node) return { description: `${what}: no JSON observed yet (run the sidecar with observe: to infer it)` };
  return { ...shapeToSchema(node), description: `${what}: inferred from ${node.n} observed call${node.n === 1 ? '' : 's'}` };
}

const string = { type: 'string' };

/**
 * Discovery records a JSON-RPC call by its `params` and `result`; the body on the bus is the whole
 * JSON-RPC message around them.
 */
function jsonRpcSchema(methods: string[], member: 'params' | 'result', inner: JsonSchema): JsonSchema {
  const { description, ...schema } = inner;
  return {
    type: 'object',
    required: member === 'params' ? ['jsonrpc', 'method'] : ['jsonrpc', 'id'],
    properties: {
      jsonrpc: { const: '2.0' },
      id: { type: ['string', 'integer', 'null'] },
      ...(member === 'params' ? { method: { enum: methods } } : {}),
      // Not required: a JSON-RPC error travels in the body of a 200, without a result.
      [member]: schema,
      ...(member === 'result' ? { error: { type: 'object', properties: { code: { type: 'integer' }, message: string } } } : {}),
    },
    description: `JSON-RPC 2.0 (${methods.join(', ')}): ${description as string}`,
  };
}

/** The CloudEvent envelope (structured mode) of docs/events.md, with `data` and the fixed attributes of one message. */
function envelope(fixed: { source?: string; type: string; flow: string; schemaVersion: string; replyto: boolean }, data: JsonSchema): JsonSchema {
  const required = ['specversion', 'id', 'source', 'type', 'time', 'datacontenttype', 'correlationid', 'cutoverflow', 'data'];
  return {
    type: 'object',
    required: fixed.replyto ? [...required, 'replyto'] : required,
    properties: {
      specversion: { const: '1.0' },
      id: { ...string, description: 'unique per event; the call event\u2019s id is the correlation id' },
      source: fixed.source ? { const: fixed.source } : { ...string, description: '/agents/<agent>, /cutover/shadow or /cutover/deliver' },
      type: { const: fixed.type },
      time: { type: 'string', format: 'date-time' },
      datacontenttype: { const: 'application/json' },
      schemaversion: { const: fixed.schemaVersion },
      correlationid: { ...string, description: 'the call event\u2019s id: ties the call, its direct observation and its replies together' },
      ...(fixed.replyto ? { replyto: { ...string, description: 'topic where the result goes: the flow\u2019s observation topic cutover.observations.<flow> in shadow mode, the waiting sidecar\u2019s reply topic in bus mode' } } : {}),
      partitionkey: { ...string, description: 'the message key' },
      traceparent: { type: 'string', pattern: '^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$', description: 'W3C trace context' },
      cutoverflow: { const: fixed.flow },
      cutovermode: { type: 'string', pattern: '^(direct|shadow|bus|canary:[0-9]{1,2})$' },
      cutoverkid: { ...string, description: 'key id of encrypted fields of data' },
      signature: string,
      signaturekeyid: string,
      signatureagent: string,
      data,
    },
  };
}

/**
 * An AsyncAPI 3.0 document of the configured flows: a channel per flow topic with the call event, the
 * `send` (sidecar) and `receive` (bus-native agent) operations, and for request flows the reply on the
 * address the call's `replyto` names, correlated by `correlationid`. Payloads are the CloudEvents of
 * docs/events.md; `data.body` of calls and replies is the JSON Schema inferred from observed calls.
 */
export function asyncApiDocument(options: AsyncApiOptions): Record<string, unknown> {
  const channels: Record<string, unknown> = {};
  const operations: Record<string, unknown> = {};
  const messages: Record<string, unknown> = {};
  for (const flow of options.flows) {
    const seen = observedCalls(flow, options.summaries ?? []);
    const request = mergeAll(seen.map((c) => c.request));
    const response = mergeAll(seen.map((c) => c.response));
    const rpcMethods = seen.length > 0 && seen.every((c) => c.rpc !== undefined) ? seen.map((c) => c.rpc!) : undefined;
    let requestBody = bodySchema(request, 'request body');
    let responseBody = bodySchema(response, 'response body (2xx and 3xx)');
    if (rpcMethods) {
      requestBody = jsonRpcSchema(rpcMethods, 'params', requestBody);
      responseBody = jsonRpcSchema(rpcMethods, 'result', responseBody);
    }
    const calls = seen.reduce((n, c) => n + c.calls, 0);
    const params = templateParams(flow.match.path);
    const isEvent = flow.kind === 'event';
    const callId = `${flow.name}.call`;
    const replyId = `${flow.name}.reply`;
    messages[callId] = {
      name: callId,
      title: `${flow.match.method} ${flow.match.path}`,
      summary: `The call event of flow ${flow.name}${flow.key ? `, keyed by ${flow.key}` : ''}.`,
      contentType: 'application/cloudevents+json',
      correlationId: { $ref: '#/components/correlationIds/cutover' },
      headers: {
        type: 'object',
        description: 'Transport headers: what an exact HTTP replay needs, kept out of data',
        properties: {
          [CallHeaders.method]: { const: flow.match.method },
          [CallHeaders.target]: { ...string, description: 'path and query as the caller sent them, secret query values masked' },
          [CallHeaders.headers]: { ...string, contentMediaType: 'application/json', description: 'allow-listed request headers, never credentials' },
        },
      },
      payload: envelope(
        { source: `/agents/${options.agent}`, type: flow.name, flow: flow.name, schemaVersion: flow.schemaVersion, replyto: !isEvent },
        {
          type: 'object',
          properties: {
            body: requestBody,
            params: { type: 'object', properties: Object.fromEntries(params.map((p) => [p, string])), required: params },
            query: { type: 'object', additionalProperties: { oneOf: [string, { type: 'array', items: string }] } },
            bodyEncoding: { enum: ['utf8', 'base64'] },
            contentType: string,
          },
        },
      ),
      [FLOW_EXTENSION]: flow.name,
      [PART_EXTENSION]: 'call',
      ...(calls ? { 'x-cutover-observed-calls': calls } : {}),
    };
    channels[flow.name] = {
      address: flow.topic,
      title: flow.name,
      description: `${flow.match.method} ${flow.match.path} as ${isEvent ? 'fire-and-forget events' : 'commands'} on ${flow.topic}`,
      messages: { call: { $ref: `#/components/messages/${callId}` } },
    };
    const callRef = { $ref: `#/channels/${flow.name}/messages/call` };
    let reply: Record<string, unknown> | undefined;
    if (!isEvent) {
      const statuses = [...new Set(seen.flatMap((c) => Object.keys(c.statuses).map(Number)))].sort();
      messages[replyId] = {
        name: replyId,
        title: `Result of ${flow.name}`,
        summary: 'The bus-driven result, published on the call\u2019s replyto with the call\u2019s correlationid.',
        contentType: 'application/cloudevents+json',
        correlationId: { $ref: '#/components/correlationIds/cutover' },
        payload: envelope(
          { type: ObservationTypes.bus, flow: flow.name, schemaVersion: flow.schemaVersion, replyto: false },
          {
            type: 'object',
            required: ['status'],
            properties: {
              status: { type: 'integer', ...(statuses.length ? { examples: statuses } : {}) },
              headers: { type: 'object', additionalProperties: string },
              body: responseBody,
              error: { type: 'object', properties: { code: string, message: string } },
              latencyMs: { type: 'number' },
            },
          },
        ),
        [FLOW_EXTENSION]: flow.name,
        [PART_EXTENSION]: 'reply',
      };
      channels[`${flow.name}.reply`] = {
        address: null,
        title: `${flow.name} replies`,
        description: 'The topic the call event\u2019s replyto names (set at run time).',
        messages: { reply: { $ref: `#/components/messages/${replyId}` } },
      };
      reply = {
        address: { location: '$message.payload#/replyto', description: 'the call event\u2019s replyto' },
        channel: { $ref: `#/channels/${flow.name}.reply` },
        messages: [{ $ref: `#/channels/${flow.name}.reply/messages/reply` }],
      };
    }
    operations[`${flow.name}.send`] = {
      action: 'send',
      title: `Send ${flow.name}`,
      summary: `The sidecar in front of ${options.agent} publishes each ${flow.match.method} ${flow.match.path} call.`,
      channel: { $ref: `#/channels/${flow.name}` },
      messages: [callRef],
      ...(reply ? { reply } : {}),
    };
    operations[`${flow.name}.receive`] = {
      action: 'receive',
      title: `Handle ${flow.name}`,
      summary: `A bus-native ${options.agent} (or a shadow replay) consumes the calls${reply ? ' and replies to replyto' : ''}.`,
      channel: { $ref: `#/channels/${flow.name}` },
      messages: [callRef],
      ...(reply ? { reply } : {}),
    };
  }
  return {
    asyncapi: '3.0.0',
    info: {
      title: `${options.agent} flows`,
      version: options.version ?? '1.0.0',
      description: `Flows of ${options.agent} on the bus, written by cutover asyncapi. Events are CloudEvents 1.0 in structured JSON mode.`,
    },
    defaultContentType: 'application/cloudevents+json',
    channels,
    operations,
    components: {
      messages,
      correlationIds: {
        cutover: { description: 'The call event\u2019s id, carried by every result of the call', location: '$message.payload#/correlationid' },
      },
    },
  };
}
