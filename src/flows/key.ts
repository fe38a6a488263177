import type { IncomingHttpHeaders } from 'node:http';
import { CutoverError, ErrorCodes } from '../errors.js';

/** Where a flow's partition key comes from. */
/** `rpc` reads the JSON-RPC call, which is the body of a flow with `match.rpc` (`rpc.params.message.contextId`). */
export type KeySource = 'body' | 'path' | 'query' | 'header' | 'rpc';

/** What key extraction may look at for one request. */
export interface KeyInput {
  /** Parsed JSON body; undefined when the body is not JSON. */
  body: unknown;
  params: Readonly<Record<string, string>>;
  query: Readonly<Record<string, string | string[]>>;
  headers: IncomingHttpHeaders;
}

export interface KeyExtractor {
  readonly spec: string;
  readonly source: KeySource;
  /** `body.customer.id` (or `rpc.customer.id`) → ['customer', 'id']: a path into the body; one element for the other sources. */
  readonly path: readonly string[];
  /** The key as a string, or undefined when the request does not carry it (or it is not a scalar). */
  extract(input: KeyInput): string | undefined;
}

function scalar(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  if (typeof value === 'boolean') return String(value);
  if (typeof value === 'bigint') return value.toString();
  return undefined;
}

function first(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/**
 * Compiles a key spec: `body.<field>[.<field>...]` (array elements by index, `body.items.0.sku`),
 * `path.<param>`, `query.<name>` (first value when repeated), `header.<name>` (case-insensitive), or
 * `rpc.<member>[.<field>...]`: the same walk as `body.` through the JSON-RPC call the body is
 * (`rpc.method`, `rpc.id`, `rpc.params.message.contextId`), for flows that select JSON-RPC methods.
 */
export function compileKey(spec: string): KeyExtractor {
  const dot = spec.indexOf('.');
  const source = spec.slice(0, dot) as KeySource;
  const rest = spec.slice(dot + 1);
  switch (source) {
    case 'body':
    case 'rpc': {
      const path = rest.split('.');
      return {
        spec,
        source,
        path,
        extract({ body }) {
          let node: unknown = body;
          for (const part of path) {
            if (node === null || typeof node !== 'object') return undefined;
            node = Array.isArray(node) ? (/^\d+$/.test(part) ? node[Number(part)] : undefined) : (node as Record<string, unknown>)[part];
          }
          return scalar(node);
        },
      };
    }
    case 'path':
      return { spec, source, path: [rest], extract: ({ params }) => params[rest] };
    case 'query':
      return { spec, source, path: [rest], extract: ({ query }) => first(query[rest]) };
    case 'header': {
      const name = rest.toLowerCase();
      return { spec, source, path: [name], extract: ({ headers }) => first(headers[name]) };
    }
    default:
      // The flow schema only lets the four sources through; reaching here is a bug.
      throw new CutoverError(ErrorCodes.INTERNAL, `unknown key source in ${JSON.stringify(spec)}`);
  }
}

/** Parses a query string into first-class values; repeated names become arrays. */
export function parseQuery(search: string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  if (!search) return out;
  for (const [name, value] of new URLSearchParams(search)) {
    const prev = out[name];
    if (prev === undefined) out[name] = value;
    else if (Array.isArray(prev)) prev.push(value);
    else out[name] = [prev, value];
  }
  return out;
}
