import type { FlowConfig } from '../config/flow.js';

/** A request that matched a flow, with the path template's parameters (percent-decoded). */
export interface FlowMatch<F extends FlowConfig = FlowConfig> {
  flow: F;
  params: Record<string, string>;
}

/** Finds the flow of a request by method and path (no query string). */
export interface FlowMatcher<F extends FlowConfig = FlowConfig> {
  match(method: string, path: string): FlowMatch<F> | undefined;
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
    return { template, params, literals, match: (path) => (split(path).join('/') === exact ? {} : undefined) };
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

/**
 * Compiles flows into a matcher. When several templates match one request, the one with more literal
 * segments wins (`/stock/reserved` before `/stock/:sku`), then the one declared first.
 */
export function compileFlows<F extends FlowConfig>(flows: readonly F[]): FlowMatcher<F> {
  const byMethod = new Map<string, Array<{ flow: F; template: PathTemplate; order: number }>>();
  flows.forEach((flow, order) => {
    const list = byMethod.get(flow.match.method) ?? [];
    list.push({ flow, template: compilePathTemplate(flow.match.path), order });
    byMethod.set(flow.match.method, list);
  });
  for (const list of byMethod.values()) {
    list.sort((a, b) => b.template.literals - a.template.literals || b.template.template.split('/').length - a.template.template.split('/').length || a.order - b.order);
  }
  return {
    match(method, path) {
      const list = byMethod.get(method);
      if (!list) return undefined;
      for (const entry of list) {
        const params = entry.template.match(path);
        if (params) return { flow: entry.flow, params };
      }
      return undefined;
    },
  };
}
