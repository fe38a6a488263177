import { compileRpcSelector, type RpcCall, type RpcSelector } from './rpc.js';
import type { FlowConfig } from '../config/flow.js';

/** A request that matched a flow, with the path template's parameters (percent-decoded). */
export interface FlowMatch<F extends FlowConfig = FlowConfig> {
  flow: F;
  params: Record<string, string>;
}

/**
 * A request on a URL where flows select JSON-RPC calls (`match.rpc`): which flow it belongs to depends on
 * its body. `select` picks the first `rpc` flow that takes the call, else the URL's flow without `rpc`.
 */
export interface RpcRoute<F extends FlowConfig = FlowConfig> {
  rpc: true;
  params: Record<string, string>;
  /** The flow of a call, or of a body that is no single JSON-RPC call (undefined: `fallback`). */
  select(call: RpcCall | undefined): F | undefined;
}

/** Finds the flow of a request by method and path (no query string). */
export interface FlowMatcher<F extends FlowConfig = FlowConfig> {
  match(method: string, path: string): FlowMatch<F> | RpcRoute<F> | undefined;
}

/** Whether a match still needs the request body (JSON-RPC flows) to name its flow. */
export function isRpcRoute<F extends FlowConfig>(m: FlowMatch<F> | RpcRoute<F>): m is RpcRoute<F> {
  return 'rpc' in m;
}

type Segment = { literal: string } | { param: string };

/** A compiled path template like `/stock/:sku`: `:name` matches exactly one non-empty segment. */
export interface PathTemplate {
  readonly template: string;
  readonly params: readonly string[];
  /** Literal segments, used to rank overlapping templates (more literal wins). */
  readonly literals: number;
  match(path: string): Record<string, string> | undefined;
}

/** Splits a path into segments, ignoring one trailing slash (`/a/` matches `/a`, as in express). */
function split(path: string): string[] {
  const trimmed = path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
  return trimmed.split('/');
}

function decode(segment: string): string {
  if (!segment.includes('%')) return segment;
  try {
    return decodeURIComponent(segment);
  } catch {
    // A malformed escape is the caller's problem, not a reason to miss the flow: keep the raw text.
    return segment;
  }
}

export function compilePathTemplate(template: string): PathTemplate {
  const segments: Segment[] = split(template).map((s) => (s.startsWith(':') ? { param: s.slice(1) } : { literal: s }));
  const params = segments.flatMap((s) => ('param' in s ? [s.param] : []));
  const literals = segments.length - params.length;
  if (params.length === 0) {
    const exact = split(template).join('/');
    // The path less one trailing slash equals the template, compared without splitting it (every request).
    const matches = (path: string): boolean => path === exact || (path.length === exact.length + 1 && path.length > 1 && path.endsWith('/') && path.startsWith(exact));
    return { template, params, literals, match: (path) => (matches(path) ? {} : undefined) };
  }
  return {
    template,
    params,
    literals,
    match(path) {
      const parts = split(path);
      if (parts.length !== segments.length) return undefined;
      const out: Record<string, string> = {};
      for (let i = 0; i < segments.length; i++) {
        const seg = segments[i]!;
        const part = parts[i]!;
        if ('literal' in seg) {
          if (seg.literal !== part) return undefined;
        } else {
          if (part.length === 0) return undefined;
          out[seg.param] = decode(part);
        }
      }
      return out;
    },
  };
}

/** The flows of one method and path template: at most one plain flow, and the `rpc` flows in order. */
interface TemplateGroup<F extends FlowConfig> {
  template: PathTemplate;
  order: number;
  plain: F | undefined;
  rpc: Array<{ flow: F; selector: RpcSelector }>;
}

/**
 * Compiles flows into a matcher. When several templates match one request, the one with more literal
 * segments wins (`/stock/reserved` before `/stock/:sku`), then the one declared first. Flows of one
 * template with `match.rpc` are told apart by the body, in declaration order; a flow of that template
 * without `rpc` takes the rest.
 */
export function compileFlows<F extends FlowConfig>(flows: readonly F[]): FlowMatcher<F> {
  const byMethod = new Map<string, Array<TemplateGroup<F>>>();
  flows.forEach((flow, order) => {
    const list = byMethod.get(flow.match.method) ?? [];
    const template = compilePathTemplate(flow.match.path);
    const same = split(flow.match.path).join('/');
    let group = list.find((g) => split(g.template.template).join('/') === same);
    if (!group) list.push((group = { template, order, plain: undefined, rpc: [] }));
    if (flow.match.rpc !== undefined) group.rpc.push({ flow, selector: compileRpcSelector(flow.match.rpc, flow.match.tool) });
    // A second plain flow on one template never matched before either: the first declared wins.
    else group.plain ??= flow;
    byMethod.set(flow.match.method, list);
  });
  for (const list of byMethod.values()) {
    list.sort((a, b) => b.template.literals - a.template.literals || b.template.template.split('/').length - a.template.template.split('/').length || a.order - b.order);
  }
  return {
    match(method, path) {
      const list = byMethod.get(method);
      if (!list) return undefined;
      for (const group of list) {
        const params = group.template.match(path);
        if (!params) continue;
        if (group.rpc.length === 0) return { flow: group.plain!, params };
        return {
          rpc: true,
          params,
          select: (call) => (call ? group.rpc.find((r) => r.selector.matches(call))?.flow : undefined) ?? group.plain,
        };
      }
      return undefined;
    },
  };
}
