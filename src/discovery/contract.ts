import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { ConfigError, ErrorCodes } from '../errors.js';
import { FLOW_EXTENSION, PART_EXTENSION } from './asyncapi.js';
import { schemaMismatch, type JsonSchema } from './shape.js';

interface FlowContract {
  request?: JsonSchema;
  response?: JsonSchema;
}

/** What a call of a flow looked like, for {@link Contract.drift}. */
export interface CallPayloads {
  /** The request body, parsed; undefined when absent or not JSON. */
  request: unknown;
  /** The response body, parsed; undefined when absent or not JSON. */
  response: unknown;
  status: number;
}

const bodyOf = (message: { payload?: { properties?: { data?: { properties?: { body?: JsonSchema } } } } }): JsonSchema | undefined => {
  const body = message.payload?.properties?.data?.properties?.body;
  // A body schema without a type is the "nothing observed" placeholder: it accepts anything.
  return body && body.type !== undefined ? body : undefined;
};

/**
 * The payload contract of flows, read back from an AsyncAPI document written by `cutover asyncapi`: the
 * `data.body` schema of each flow's call and reply. A call that stops fitting them is contract drift.
 */
export class Contract {
  private constructor(private readonly flows: Map<string, FlowContract>) {}

  /** Reads the document; CUTOVER_CONFIG_INVALID naming `field` (and the file) when it cannot be used. */
  static load(file: string, field = 'contract'): Contract {
    let doc: { asyncapi?: unknown; components?: { messages?: Record<string, Record<string, unknown>> } };
    try {
      doc = parse(readFileSync(file, 'utf8')) as typeof doc;
    } catch (err) {
      throw new ConfigError(ErrorCodes.CONFIG_INVALID, `${field}: cannot read ${file} as an AsyncAPI document: ${(err as Error).message}`, [`${field}: ${(err as Error).message}`], { cause: err });
    }
    if (typeof doc?.asyncapi !== 'string' || !doc.asyncapi.startsWith('3.')) {
      throw new ConfigError(ErrorCodes.CONFIG_INVALID, `${field}: ${file} is not an AsyncAPI 3 document (write one with cutover asyncapi)`, [`${field}: expected asyncapi: 3.x`]);
    }
    const flows = new Map<string, FlowContract>();
    for (const message of Object.values(doc.components?.messages ?? {})) {
      const flow = message[FLOW_EXTENSION];
      const part = message[PART_EXTENSION];
      if (typeof flow !== 'string') continue;
      const schema = bodyOf(message);
      if (!schema) continue;
      const entry = flows.get(flow) ?? {};
      if (part === 'call') entry.request = schema;
      else if (part === 'reply') entry.response = schema;
      flows.set(flow, entry);
    }
    return new Contract(flows);
  }

  /** Flows with at least one payload schema. */
  get size(): number {
    return this.flows.size;
  }

  /**
   * Where a call stopped fitting its flow's contract (`request /qty: expected integer, got string`), or
   * undefined. Responses are checked for 2xx and 3xx only: error bodies have their own shape.
   */
  drift(flow: string, call: CallPayloads): string | undefined {
    const contract = this.flows.get(flow);
    if (!contract) return undefined;
    if (contract.request) {
      if (call.request === undefined) return 'request: no JSON body';
      const problem = schemaMismatch(contract.request, call.request);
      if (problem) return `request ${problem}`;
    }
    if (contract.response && call.status < 400) {
      if (call.response === undefined) return 'response: no JSON body';
      const problem = schemaMismatch(contract.response, call.response);
      if (problem) return `response ${problem}`;
    }
    return undefined;
  }
}
