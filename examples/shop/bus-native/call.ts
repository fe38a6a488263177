import type { AgentBus } from '../../../src/sdk/index.js';

/**
 * What a bus-native agent receives for a call the sidecar dual-wrote: `data` is the HTTP request's business
 * payload (`body`, the path template's `params`, `query`), see docs/sdk.md.
 */
export interface CallData {
  body?: unknown;
  /** Set when the body is not JSON (then it is text or base64). */
  bodyEncoding?: 'utf8' | 'base64';
  params?: Record<string, string>;
  query?: Record<string, string | string[]>;
}

/** The REST agents' error body, so that a bus-native agent's refusals compare equal to theirs. */
export function errorBody(code: string, message: string, extra: Record<string, unknown> = {}): { error: Record<string, unknown> } {
  return { error: { code, message, ...extra } };
}

/** The JSON body of a call, or undefined when it was not JSON. */
export function jsonBody(data: CallData | undefined): unknown {
  return data?.bodyEncoding ? undefined : data?.body;
}

/** Options every bus-native agent of the shop takes. */
export interface BusNativeOptions {
  /** Consumer group; every instance of the agent shares it. Default `agent.<name>`. */
  group?: string;
  /** Where a new group starts reading. Default `start`. */
  from?: 'start' | 'end';
  /** Events handled in parallel (per key one at a time). Default 16. */
  concurrency?: number;
}

/** A running bus-native agent. */
export interface BusAgent {
  readonly agents: AgentBus;
  /** Events handled (redeliveries of handled events excluded). */
  readonly handled: number;
  /** Stops consuming (handlers in flight finish). The bus stays open: it is the caller's. */
  close(): Promise<void>;
}
