import { analyse, type CandidateAnalysis } from './analyse.js';
import { addCandidate, newCandidate, type CandidateStats, type DiscoverySummary } from './recorder.js';
import { singular } from './template.js';
import { canonicalRpcMethod } from '../flows/rpc.js';

/** A flow as proposed for the config file's `flows:` (passes `cutover validate`). */
export interface ProposedFlow {
  name: string;
  match: { method: string; path: string; rpc?: string; tool?: string };
  topic: string;
  key?: string;
  safe?: boolean;
  kind?: 'event';
}

/** One row of discovery: a candidate, what was learned of it, and the flow proposed for it (if new). */
export interface DiscoveredFlow {
  agent: string;
  candidate: CandidateStats;
  analysis: CandidateAnalysis;
  /** The configured flow these calls already match. */
  configured?: string;
  /** Why no flow is proposed for calls that match none (a health check). */
  skipped?: string;
  proposed?: ProposedFlow;
  /** The JSON-RPC method names one proposed flow carries when calls used several (A2A 0.3 and 1.0 aliases). */
  rpcMethods?: string[];
  /** Position in the suggested migration order (1 = first), proposed flows only. */
  order?: number;
  /** Why it sits where it does in the order. */
  reason?: string;
}

const VERBS: Record<string, string> = { GET: 'get', HEAD: 'head', OPTIONS: 'options', POST: 'create', PUT: 'update', PATCH: 'patch', DELETE: 'delete' };
const FACTS: Record<string, string> = { create: 'created', update: 'updated', patch: 'patched', delete: 'deleted' };

const slug = (s: string): string => s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '');

/**
 * An action name from method and template: `GET /orders` → `list-orders`, `GET /orders/:orderId` →
 * `get-order`, `POST /orders/:orderId/cancel` → `cancel-order`, JSON-RPC `message/send` → `message-send`,
 * MCP `tools/call` of `lookup_stock` → `lookup-stock`.
 */
export function actionName(c: Pick<CandidateStats, 'method' | 'template' | 'rpc' | 'tool'>): string {
  const segments = c.template.split('/').filter((s) => s !== '' && !/^(v\d+[a-z]*|api\d*)$/i.test(s));
  if (c.rpc !== undefined) return slug(c.tool ?? '') || slug(c.rpc) || slug(segments.at(-1) ?? 'rpc') || 'rpc';
  const literals = segments.filter((s) => !s.startsWith(':'));
  const last = segments.at(-1);
  if (literals.length === 0) return VERBS[c.method] ?? slug(c.method);
  const noun = literals.at(-1)!;
  // A literal after a parameter on a POST is an action on that entity: /orders/:id/cancel.
  if (c.method === 'POST' && segments.length >= 2 && segments.at(-2)!.startsWith(':') && last === noun && literals.length >= 2) {
    return slug(`${noun}-${singular(literals.at(-2)!)}`);
  }
  if (c.method === 'GET' && !last!.startsWith(':')) return slug(`list-${noun}`);
  return slug(`${VERBS[c.method] ?? c.method}-${singular(noun)}`);
}

/**
 * Candidates of one JSON-RPC method under its A2A 0.3 and 1.0 names, merged: `match.rpc` takes both names,
 * so they are one flow (named by the 1.0 name).
 */
function mergeAliases(group: CandidateStats[]): CandidateStats {
  if (group.length === 1) return group[0]!;
  const first = group[0]!;
  const merged = newCandidate(first.method, first.template, canonicalRpcMethod(first.rpc!), first.firstSeen, first.tool);
  for (const c of group) addCandidate(merged, c, group.length);
  return merged;
}

/** Endpoints of the platform, not of the agent's business: never proposed as flows. */
const INFRASTRUCTURE = /^(\/[a-z0-9_-]+)?\/(healthz?|livez?|readyz?|ready|alive|ping|metrics|status)$/i;

const SAFETY_SCORE = { yes: 3, likely: 2, no: 0 } as const;

/** Higher first: safe to repeat, healthy, busy (more value, evidence sooner) and well keyed. */
function orderScore(d: DiscoveredFlow): { score: number; reason: string } {
  const a = d.analysis;
  const c = d.candidate;
  const why: string[] = [];
  let score = SAFETY_SCORE[a.safety.level];
  why.push(a.safety.level === 'no' ? `not known safe to repeat (${a.safety.reason})` : `safe to repeat: ${a.safety.reason}`);
  score += Math.log10(c.calls + 1);
  why.push(`${c.calls} calls`);
  if (a.errorRate > 0.05) {
    score -= 2;
    why.push(`${(a.errorRate * 100).toFixed(1)}% errors: fix the direct path first`);
  } else why.push(`${(a.errorRate * 100).toFixed(1)}% errors`);
  const key = d.proposed?.key;
  if (key) {
    score += 1;
    why.push(`keyed by ${key}`);
  } else {
    score -= 1;
    why.push('no good partition key seen');
  }
  return { score, reason: why.join(', ') };
}

/**
 * Turns discovery summaries into rows: candidates that already match a configured flow are marked as
 * such; the others get a proposed flow, ranked in a suggested migration order.
 */
export function discoverFlows(summaries: readonly DiscoverySummary[], taken: { names: readonly string[] } = { names: [] }): DiscoveredFlow[] {
  const names = new Set(taken.names);
  const rows: DiscoveredFlow[] = [];
  for (const summary of summaries) {
    const agent = summary.agent;
    const rpcGroups = new Map<string, CandidateStats[]>();
    for (const c of summary.candidates) {
      if (c.flow !== undefined) {
        rows.push({ agent, candidate: c, analysis: analyse(c), configured: c.flow });
        continue;
      }
      if (c.rpc === undefined && INFRASTRUCTURE.test(c.template)) {
        rows.push({ agent, candidate: c, analysis: analyse(c), skipped: 'health, readiness or metrics endpoint: not a flow' });
        continue;
      }
      if (c.rpc !== undefined) {
        const k = `${c.method} ${c.template} ${canonicalRpcMethod(c.rpc)} ${c.tool ?? ''}`;
        rpcGroups.set(k, [...(rpcGroups.get(k) ?? []), c]);
        continue;
      }
      rows.push(propose(agent, c, names));
    }
    for (const group of rpcGroups.values()) {
      const row = propose(agent, mergeAliases(group), names);
      if (group.length === 1) {
        rows.push(row);
        continue;
      }
      row.rpcMethods = group.map((c) => c.rpc!);
      // Not safe unless the calls under every name are.
      const worst = group.map((c) => analyse(c).safety).sort((a, b) => SAFETY_SCORE[a.level] - SAFETY_SCORE[b.level])[0]!;
      row.analysis.safety = worst;
      if (row.proposed) {
        if (worst.level === 'no') delete row.proposed.safe;
        else row.proposed.safe = true;
      }
      rows.push(row);
    }
  }
  const proposed = rows.filter((r) => r.proposed);
  const ranked = proposed.map((r) => ({ r, ...orderScore(r) })).sort((a, b) => b.score - a.score || b.r.candidate.calls - a.r.candidate.calls);
  ranked.forEach(({ r, reason }, i) => {
    r.order = i + 1;
    r.reason = reason;
  });
  return rows;
}

function propose(agent: string, c: CandidateStats, names: Set<string>): DiscoveredFlow {
  const analysis = analyse(c);
  // JSON-RPC notifications are answered 202 without a body, like a fire-and-forget POST.
  const isEvent = c.method === 'POST' && (c.statuses['202'] ?? 0) >= 0.8 * c.calls;
  const action = actionName(c);
  let name = `${agent}.${action}`;
  for (let i = 2; names.has(name); i++) name = `${agent}.${action}-${i}`;
  names.add(name);
  const verb = action.split('-')[0]!;
  const fact = FACTS[verb] ? `${action.slice(verb.length + 1) || agent}-${FACTS[verb]}` : `${action}-accepted`;
  const flow: ProposedFlow = {
    name,
    match: { method: c.method, path: c.template, ...(c.rpc !== undefined ? { rpc: c.rpc } : {}), ...(c.tool !== undefined ? { tool: c.tool } : {}) },
    topic: isEvent ? `events.${agent}.${fact}` : `commands.agent.${agent}.${name.slice(agent.length + 1)}`,
  };
  const best = analysis.keys[0];
  if (best) flow.key = best.key;
  if (analysis.safety.level !== 'no' && !['GET', 'HEAD', 'OPTIONS'].includes(c.method)) flow.safe = true;
  if (isEvent) flow.kind = 'event';
  return { agent, candidate: c, analysis, proposed: flow };
}
