import { SAFE_METHODS } from '../config/flow.js';
import type { CandidateStats } from './recorder.js';
import { scalarLeaves, type ShapeNode } from './shape.js';

/** Whether a candidate's calls look safe to repeat, and the evidence. */
export interface Safety {
  level: 'yes' | 'likely' | 'no';
  reason: string;
}

/** A field that could key the flow's events (`flows[].key`), with the evidence for it. */
export interface KeyCandidate {
  /** In `flows[].key` form: `path.<param>` or `body.<field>`. */
  key: string;
  /** Distinct values seen (a lower bound when `more`). */
  distinct: number;
  more: boolean;
  /** Values seen again in later calls: related calls share it, so keeping their order matters. */
  recurring: boolean;
  score: number;
  reason: string;
}

export interface CandidateAnalysis {
  errorRate: number;
  p50: number | undefined;
  p95: number | undefined;
  safety: Safety;
  keys: KeyCandidate[];
}

/** JSON-RPC methods that read: `tasks/get`, `tools/list`, `resources/read`, `search`. */
const READ_RPC = /(^|[/._-])(get|list|read|search|find|query|describe|status|ping)([/._-]|$)/i;
/** Field names that change per call without naming an entity. */
const VOLATILE = /(time|date|timestamp|nonce|trace|span|request_?id|correlation|created|updated|expires)/i;
/** Field names that name an entity. */
const ENTITY = /(id|key|sku|code|number|no|ref|account|customer|order|user|session|cart)$/i;

export function percentile(values: readonly number[], q: number): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/** Safe to repeat: by method, then by what was observed (repeats answered alike, idempotency keys). */
export function safetyOf(c: CandidateStats): Safety {
  if (c.repeats.differed > 0) return { level: 'no', reason: `a repeated request got a different answer ${c.repeats.differed}×` };
  if (c.rpc === undefined && SAFE_METHODS.has(c.method)) return { level: 'yes', reason: `${c.method} is safe by HTTP semantics` };
  if (c.rpc !== undefined && READ_RPC.test(c.rpc)) return { level: 'likely', reason: `JSON-RPC ${c.rpc} reads` };
  if (c.calls > 0 && c.idempotencyKeys === c.calls) return { level: 'likely', reason: 'every call carries an Idempotency-Key' };
  if (c.repeats.same > 0) return { level: 'likely', reason: `repeated requests got the same answer ${c.repeats.same}×` };
  if (c.rpc === undefined && (c.method === 'PUT' || c.method === 'DELETE')) return { level: 'likely', reason: `${c.method} is idempotent by HTTP semantics` };
  return { level: 'no', reason: `${c.rpc ?? c.method} may change state; no repeat was observed` };
}

function judgeKey(key: string, name: string, node: ShapeNode, calls: number, isParam: boolean): KeyCandidate | undefined {
  const types = Object.keys(node.types);
  // A key must be in every call, and a plain string or integer.
  if (node.n < calls || !types.every((t) => t === 'string' || t === 'integer')) return undefined;
  const distinct = node.values?.length ?? 0;
  const more = node.more === true;
  if (distinct < 2 && !more) return undefined;
  const recurring = (node.repeats ?? 0) > 0;
  let score = 0;
  const why: string[] = [];
  if (recurring && !more) {
    score += 3;
    why.push('values recur across calls (related calls share one)');
  } else if (recurring) {
    score += 2.5;
    why.push('many values, some recurring');
  } else {
    score += 1;
    why.push('a new value every call (spreads load, orders nothing)');
  }
  if (distinct >= 8 || more) {
    score += 1;
    why.push(`${more ? `>${distinct}` : distinct} values`);
  } else if (calls >= 20 && distinct <= 3) {
    score -= 2;
    why.push(`only ${distinct} values: hot partitions`);
  } else why.push(`${distinct} values`);
  if (VOLATILE.test(name) || /[a-z]At$|_at$/.test(name)) {
    score -= 3;
    why.push('named like a per-call value');
  } else if (ENTITY.test(name)) {
    score += 1;
    why.push('named like an entity');
  }
  if (isParam) score += 0.5;
  return { key, distinct, more, recurring, score, reason: why.join('; ') };
}

/** Candidate partition keys, best first: path parameters and request body fields present in every call. */
export function keyCandidates(c: CandidateStats): KeyCandidate[] {
  const out: KeyCandidate[] = [];
  for (const [name, node] of Object.entries(c.params)) {
    const k = judgeKey(`path.${name}`, name, node, c.calls, true);
    if (k) out.push(k);
  }
  // JSON-RPC bodies were recorded by their params; a flow with match.rpc reads them as rpc.params.
  const prefix = c.rpc !== undefined ? 'rpc.params.' : 'body.';
  for (const { path, node } of scalarLeaves(c.request)) {
    if (!/^[A-Za-z0-9_.-]+$/.test(path)) continue;
    const k = judgeKey(prefix + path, path.split('.').pop()!, node, c.calls, false);
    if (k) out.push(k);
  }
  return out.filter((k) => k.score > 0).sort((a, b) => b.score - a.score || a.key.localeCompare(b.key));
}

export function analyse(c: CandidateStats): CandidateAnalysis {
  return {
    errorRate: c.calls === 0 ? 0 : c.errors / c.calls,
    p50: percentile(c.latencyMs, 0.5),
    p95: percentile(c.latencyMs, 0.95),
    safety: safetyOf(c),
    keys: keyCandidates(c),
  };
}
