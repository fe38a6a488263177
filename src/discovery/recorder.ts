import { createHash } from 'node:crypto';
import { addToShape, jsonBody, mergeShapes, type ShapeNode } from './shape.js';
import { foldSiblings, inferTemplate, matchTemplate } from './template.js';
import { isRpcCall, readRpcCall } from '../flows/rpc.js';

/** One call as the sidecar saw it, handed to {@link DiscoveryRecorder.record}. */
export interface ObservedCall {
  method: string;
  /** Path without the query string. */
  path: string;
  status: number;
  latencyMs: number;
  /** Request body (possibly cut at the capture limit: then `requestTruncated`). */
  request?: Buffer | undefined;
  requestTruncated?: boolean;
  response?: Buffer | undefined;
  responseTruncated?: boolean;
  /** The configured flow the call matched, if any. */
  flow?: string | undefined;
  /** The caller sent an Idempotency-Key header: it expects the call may be repeated. */
  idempotencyKey?: boolean;
}

/** A sample call kept as an example (bodies parsed, or their first characters). */
export interface CallExample {
  path: string;
  status: number;
  request?: unknown;
  response?: unknown;
}

/** What discovery knows of one candidate flow: method, path template, JSON-RPC method. */
export interface CandidateStats {
  method: string;
  template: string;
  /** The JSON-RPC method, for calls whose body is a JSON-RPC 2.0 request. */
  rpc?: string;
  /** What an MCP call names in `params` (`tools/call`, `prompts/get`: the name; `resources/read`: the URI). */
  tool?: string;
  /** The configured flow these calls matched, when one did. */
  flow?: string;
  calls: number;
  /** Server errors: 5xx, or a JSON-RPC error reply. */
  errors: number;
  /** 4xx answers. */
  clientErrors: number;
  statuses: Record<string, number>;
  /** A uniform sample of latencies (ms), at most {@link LATENCY_SAMPLES}. */
  latencyMs: number[];
  /** The same request body seen again: answered the same way (`same`) or not (`differed`). */
  repeats: { same: number; differed: number };
  /** Recent request digests with the digest of their answer, oldest first, to spot repeats (bounded). */
  recent: Array<[request: string, answer: string]>;
  /** Calls sent with an Idempotency-Key header. */
  idempotencyKeys: number;
  /** Values of the path parameters. */
  params: Record<string, ShapeNode>;
  /** Shape of JSON request bodies (JSON-RPC: `params`). */
  request?: ShapeNode;
  /** Shape of JSON response bodies (JSON-RPC: `result`). */
  response?: ShapeNode;
  /** Calls whose request body was present but not JSON (or cut at the capture limit). */
  opaque: number;
  examples: CallExample[];
  firstSeen: string;
  lastSeen: string;
}

/** The discovery state of one sidecar: what it writes to its data dir and serves on the admin API. */
export interface DiscoverySummary {
  format: 'cutover.discovery/1';
  agent: string;
  since: string;
  updated: string;
  /** Calls the sidecar forwarded while observing. */
  seen: number;
  /** Calls recorded (the sampled share of `seen`). */
  sampled: number;
  /** Sampled calls not recorded because `observe.maxTemplates` was reached. */
  overflow: number;
  candidates: CandidateStats[];
}

export interface RecorderOptions {
  agent: string;
  /** Most candidates kept; calls of new ones past it are counted in `overflow`. */
  maxTemplates: number;
  /** Example calls kept per candidate. */
  maxSamples: number;
  /** Literal segments are folded into a parameter once this many paths differ only there. */
  foldAfter: number;
  now?: () => Date;
}

export const LATENCY_SAMPLES = 200;
const RECENT_REQUESTS = 32;
const EXAMPLE_CHARS = 2_000;

/** A short digest of the parts, to recognise a repeated request or answer (not a security measure). */
function digestOf(...parts: Array<string | Buffer | undefined>): string {
  const hash = createHash('sha1');
  for (const part of parts) if (part !== undefined) hash.update(part);
  return hash.digest('base64url').slice(0, 12);
}

function withoutId(message: unknown): string {
  const { id: _id, ...rest } = message as Record<string, unknown>;
  return JSON.stringify(rest);
}

/** Only objects and arrays: a bare string or number body says too little to be worth parsing. */
function parseJson(body: Buffer | undefined, truncated: boolean | undefined): { ok: true; value: unknown } | { ok: false } {
  const value = truncated ? undefined : jsonBody(body);
  return value === undefined ? { ok: false } : { ok: true, value };
}

/** The JSON-RPC 2.0 method of a request body, if it is one (batches are not split). */
export function jsonRpcMethod(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return undefined;
  const rpc = body as { jsonrpc?: unknown; method?: unknown };
  return rpc.jsonrpc === '2.0' && typeof rpc.method === 'string' && rpc.method.length > 0 && rpc.method.length <= 200 ? rpc.method : undefined;
}

/** The tool, prompt or resource an MCP request names, when it is short enough to be a flow's `match.tool`. */
function namedTarget(body: unknown): string | undefined {
  const call = readRpcCall(body);
  return isRpcCall(call) && call.name !== undefined && call.name.length > 0 && call.name.length <= 256 ? call.name : undefined;
}

/** A candidate with nothing recorded yet. */
export function newCandidate(method: string, template: string, rpc: string | undefined, at: string, tool?: string): CandidateStats {
  return {
    method,
    template,
    ...(rpc !== undefined ? { rpc } : {}),
    ...(tool !== undefined ? { tool } : {}),
    calls: 0,
    errors: 0,
    clientErrors: 0,
    statuses: {},
    latencyMs: [],
    repeats: { same: 0, differed: 0 },
    recent: [],
    idempotencyKeys: 0,
    params: {},
    opaque: 0,
    examples: [],
    firstSeen: at,
    lastSeen: at,
  };
}

/** Adds one candidate's figures, shapes and examples (up to `maxExamples`) to another's. */
export function addCandidate(into: CandidateStats, from: CandidateStats, maxExamples: number): void {
  into.calls += from.calls;
  into.errors += from.errors;
  into.clientErrors += from.clientErrors;
  for (const [s, n] of Object.entries(from.statuses)) into.statuses[s] = (into.statuses[s] ?? 0) + n;
  into.latencyMs = [...into.latencyMs, ...from.latencyMs].slice(0, LATENCY_SAMPLES);
  into.repeats.same += from.repeats.same;
  into.repeats.differed += from.repeats.differed;
  into.idempotencyKeys += from.idempotencyKeys;
  into.opaque += from.opaque;
  const request = mergeShapes(into.request, from.request);
  if (request) into.request = request;
  const response = mergeShapes(into.response, from.response);
  if (response) into.response = response;
  for (const [name, shape] of Object.entries(from.params)) into.params[name] = mergeShapes(into.params[name], shape)!;
  for (const e of from.examples) if (into.examples.length < maxExamples) into.examples.push(e);
  if (from.flow !== undefined) into.flow = from.flow;
  if (from.firstSeen < into.firstSeen) into.firstSeen = from.firstSeen;
  if (from.lastSeen > into.lastSeen) into.lastSeen = from.lastSeen;
}

/** A JSON-RPC method, and for MCP methods that name a target the target too: `tools/call lookup_stock`. */
type RpcTarget = { rpc: string; tool?: string | undefined } | undefined;

const keyOf = (method: string, template: string, rpc: RpcTarget): string =>
  `${method} ${template}${rpc === undefined ? '' : ` ${rpc.rpc}${rpc.tool === undefined ? '' : ` ${rpc.tool}`}`}`;

const targetOf = (c: CandidateStats): RpcTarget => (c.rpc === undefined ? undefined : { rpc: c.rpc, tool: c.tool });
const sameTarget = (c: CandidateStats, t: RpcTarget): boolean => c.rpc === t?.rpc && c.tool === t?.tool;

/**
 * Groups observed calls into candidate flows and keeps, per candidate, bounded statistics and payload
 * shapes. Memory is bounded by `maxTemplates` × (shape limits + `maxSamples` examples + latency sample).
 */
export class DiscoveryRecorder {
  private readonly opts: RecorderOptions;
  private readonly now: () => Date;
  private summary: DiscoverySummary;
  private readonly byKey = new Map<string, CandidateStats>();

  constructor(options: RecorderOptions, previous?: DiscoverySummary) {
    this.opts = options;
    this.now = options.now ?? (() => new Date());
    const at = this.now().toISOString();
    this.summary = previous && previous.format === 'cutover.discovery/1' && previous.agent === options.agent
      ? previous
      : { format: 'cutover.discovery/1', agent: options.agent, since: at, updated: at, seen: 0, sampled: 0, overflow: 0, candidates: [] };
    for (const c of this.summary.candidates) this.byKey.set(keyOf(c.method, c.template, targetOf(c)), c);
  }

  /** Counts a forwarded call that was not sampled. */
  seen(): void {
    this.summary.seen++;
  }

  /** Records one sampled call (counted as seen too). */
  record(call: ObservedCall): void {
    this.summary.seen++;
    this.summary.sampled++;
    const method = call.method.toUpperCase();
    const req = parseJson(call.request, call.requestTruncated);
    const rpc = req.ok ? jsonRpcMethod(req.value) : undefined;
    const found = this.find(method, call.path, rpc === undefined ? undefined : { rpc, tool: namedTarget(req.ok ? req.value : undefined) });
    if (!found) {
      this.summary.overflow++;
      return;
    }
    const { candidate: c, params } = found;
    const at = this.now().toISOString();
    c.lastSeen = at;
    this.summary.updated = at;
    c.calls++;
    if (call.flow !== undefined) c.flow = call.flow;
    c.statuses[call.status] = (c.statuses[call.status] ?? 0) + 1;
    if (call.status >= 400 && call.status < 500) c.clientErrors++;
    const res = parseJson(call.response, call.responseTruncated);
    const rpcError = rpc !== undefined && res.ok && typeof res.value === 'object' && res.value !== null && 'error' in res.value;
    if (call.status >= 500 || rpcError) c.errors++;
    if (c.latencyMs.length < LATENCY_SAMPLES) c.latencyMs.push(Math.round(call.latencyMs * 10) / 10);
    else {
      // Reservoir sampling: every call has the same chance to be in the sample.
      const slot = Math.floor(Math.random() * c.calls);
      if (slot < LATENCY_SAMPLES) c.latencyMs[slot] = Math.round(call.latencyMs * 10) / 10;
    }
    if (call.idempotencyKey) c.idempotencyKeys++;
    for (const [name, value] of Object.entries(params)) c.params[name] = addToShape(c.params[name], value);
    if (req.ok) c.request = addToShape(c.request, rpc !== undefined ? ((req.value as { params?: unknown }).params ?? {}) : req.value);
    else if (call.request && call.request.length > 0) c.opaque++;
    if (res.ok && !rpcError && call.status < 400) c.response = addToShape(c.response, rpc !== undefined ? (res.value as { result?: unknown }).result : res.value);
    this.noteRepeat(c, call, rpc !== undefined ? { request: req.ok ? req.value : undefined, response: res.ok ? res.value : undefined } : undefined);
    if (c.examples.length < this.opts.maxSamples) {
      const example: CallExample = { path: call.path, status: call.status };
      const reqText = req.ok ? req.value : call.request?.length ? call.request.toString('utf8', 0, EXAMPLE_CHARS) : undefined;
      const resText = res.ok ? res.value : call.response?.length ? call.response.toString('utf8', 0, EXAMPLE_CHARS) : undefined;
      if (reqText !== undefined) example.request = reqText;
      if (resText !== undefined) example.response = resText;
      c.examples.push(example);
    }
  }

  /** The current state (the live object: serialize it, do not keep it across records). */
  current(): DiscoverySummary {
    return this.summary;
  }

  /** A repeated request answered with another status or body is evidence the call is not safe to repeat. */
  private noteRepeat(c: CandidateStats, call: ObservedCall, rpc: { request: unknown; response: unknown } | undefined): void {
    // A JSON-RPC id differs per call: the digests leave it out so that a repeated call is recognised.
    const reqDigest = digestOf(call.path, '\n', rpc ? withoutId(rpc.request) : call.request);
    const resDigest = `${call.status}:${digestOf(rpc && typeof rpc.response === 'object' && rpc.response !== null ? withoutId(rpc.response) : call.response)}`;
    const seen = c.recent.find((r) => r[0] === reqDigest);
    if (seen) {
      if (seen[1] === resDigest) c.repeats.same++;
      else c.repeats.differed++;
      seen[1] = resDigest;
      return;
    }
    c.recent.push([reqDigest, resDigest]);
    if (c.recent.length > RECENT_REQUESTS) c.recent.shift();
  }

  /** The candidate of a call: an existing template that fits, or a new one (folding siblings), or none past the cap. */
  private find(method: string, path: string, rpc: RpcTarget): { candidate: CandidateStats; params: Record<string, string> } | undefined {
    const inferred = inferTemplate(path);
    const exact = this.byKey.get(keyOf(method, inferred.template, rpc));
    if (exact) return { candidate: exact, params: inferred.params };
    for (const c of this.summary.candidates) {
      if (c.method !== method || !sameTarget(c, rpc) || !c.template.includes(':')) continue;
      const params = matchTemplate(c.template, path);
      if (params) return { candidate: c, params };
    }
    const same = this.summary.candidates.filter((c) => c.method === method && sameTarget(c, rpc));
    const fold = foldSiblings(same.map((c) => c.template), inferred.template, this.opts.foldAfter);
    if (fold) {
      const merged = this.create(method, fold.template, rpc);
      for (const template of fold.folded) this.absorb(merged, this.byKey.get(keyOf(method, template, rpc))!);
      const params = matchTemplate(fold.template, path) ?? inferred.params;
      return { candidate: merged, params };
    }
    if (this.summary.candidates.length >= this.opts.maxTemplates) return undefined;
    return { candidate: this.create(method, inferred.template, rpc), params: inferred.params };
  }

  private create(method: string, template: string, rpc: RpcTarget): CandidateStats {
    const c = newCandidate(method, template, rpc?.rpc, this.now().toISOString(), rpc?.tool);
    this.summary.candidates.push(c);
    this.byKey.set(keyOf(method, template, rpc), c);
    return c;
  }

  /** Moves a folded candidate's figures into the template that replaces it. */
  private absorb(into: CandidateStats, from: CandidateStats): void {
    this.summary.candidates.splice(this.summary.candidates.indexOf(from), 1);
    this.byKey.delete(keyOf(from.method, from.template, targetOf(from)));
    addCandidate(into, from, this.opts.maxSamples);
    // The folded segment's literal becomes a value of the new parameter, once per call it had.
    const theirs = from.template.split('/');
    const folded = into.template.split('/').findIndex((s, i) => s.startsWith(':') && !theirs[i]!.startsWith(':'));
    if (folded !== -1) {
      const name = into.template.split('/')[folded]!.slice(1);
      for (let i = 0; i < from.calls; i++) into.params[name] = addToShape(into.params[name], theirs[folded]);
    }
  }
}
