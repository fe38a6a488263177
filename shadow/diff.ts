import type { FieldDiff } from '../src/parity/types.js';
import { bodyBytes, type EncodedBody } from '../src/events/body.js';
import { flowCompareSchema, type FlowCompareInput, type FlowCompareOptions } from '../src/config/shadow.js';
import { formatPointer, parsePointer, RuleTrie } from './pointer.js';
import { isEventStream } from '../src/events/sse.js';
import { foldEventStream } from './stream.js';

/**
 * The JSON-aware structural diff behind parity. Both results are seen as one document
 * `{ status, headers: { <selected> }, body }`, so every rule and every difference is a JSON pointer into it
 * (`/status`, `/headers/content-type`, `/body/items/0/price`).
 */

/** One side of a comparison: what a direct call or a bus-driven reply produced. */
export interface ComparableResult {
  status?: number;
  headers?: Record<string, string | string[] | undefined>;
  body?: unknown;
  bodyEncoding?: EncodedBody['bodyEncoding'];
  /** Set when the body was not captured (too large): bodies are then not compared. */
  bodySkipped?: string;
  /** The body's content type when it is not JSON: a `text/event-stream` is compared by its meaning ({@link foldEventStream}). */
  contentType?: string;
}

interface Rule {
  ignore?: boolean;
  /** |direct - bus| <= abs, or <= rel * |direct|. */
  abs?: number;
  rel?: number;
  unordered?: boolean;
  unorderedKey?: string;
}

type Node = RuleTrie<Rule>;

export interface CompiledRules {
  readonly root: Node;
  readonly status: boolean;
  readonly headers: readonly string[];
  readonly maxDiffs: number;
  /** True when no pointer rule exists: the walk skips rule lookups entirely. */
  readonly empty: boolean;
}

/** Differences collected before noise filtering; bounds the work on documents that differ everywhere. */
export const DIFF_HARD_CAP = 500;
/** Longest string kept in a FieldDiff value. */
export const VALUE_LIMIT = 200;

/** Validates (with defaults) and compiles a flow's `compare:` rules. Throws a ZodError on bad rules. */
export function compileRules(input: FlowCompareInput | FlowCompareOptions = {}): CompiledRules {
  const rules = flowCompareSchema.parse(input);
  const root: Node = new RuleTrie<Rule>();
  const add = (pointer: string, patch: Rule): void => {
    const segments = parsePointer(pointer);
    let node: Node = root;
    for (const s of segments) {
      let next = node.children.get(s);
      if (!next) node.children.set(s, (next = new RuleTrie<Rule>()));
      node = next;
    }
    node.value = { ...(node.value ?? {}), ...patch };
  };
  for (const p of rules.ignore) add(p, { ignore: true });
  for (const [p, tol] of Object.entries(rules.tolerance)) {
    add(p, typeof tol === 'number' ? { abs: tol } : { rel: Number(tol.slice(0, -1)) / 100 });
  }
  for (const u of rules.unordered) {
    if (typeof u === 'string') add(u, { unordered: true });
    else add(u.path, { unordered: true, unorderedKey: u.key });
  }
  return { root, status: rules.status, headers: rules.headers, maxDiffs: rules.maxDiffs, empty: root.children.size === 0 };
}

/**
 * Every difference between `direct` and `bus` under `rules` (up to `cap`), in document order.
 * Values in the result are truncated. Callers filter noise, then keep `rules.maxDiffs`.
 */
export function diffResults(direct: ComparableResult, bus: ComparableResult, rules: CompiledRules, cap = DIFF_HARD_CAP): FieldDiff[] {
  const w = new Walker(cap);
  const rootNodes: Node[] = rules.empty ? [] : [rules.root];

  if (rules.status) {
    const nodes = RuleTrie.step(rootNodes, 'status');
    if (!isIgnored(nodes)) w.walk(direct.status, bus.status, ['status'], nodes);
  }
  if (rules.headers.length > 0) {
    const hNodes = RuleTrie.step(rootNodes, 'headers');
    if (!isIgnored(hNodes)) {
      const dh = lowerHeaders(direct.headers);
      const bh = lowerHeaders(bus.headers);
      for (const name of rules.headers) {
        const nodes = RuleTrie.step(hNodes, name);
        if (!isIgnored(nodes)) w.walk(dh[name], bh[name], ['headers', name], nodes);
      }
    }
  }
  const bNodes = RuleTrie.step(rootNodes, 'body');
  if (!isIgnored(bNodes) && !direct.bodySkipped && !bus.bodySkipped) compareBodies(direct, bus, bNodes, w);
  return w.out;
}

function compareBodies(direct: ComparableResult, bus: ComparableResult, nodes: Node[], w: Walker): void {
  const d = asJson(direct);
  const b = asJson(bus);
  if (d.ok && b.ok) {
    w.walk(d.value, b.value, ['body'], nodes);
    return;
  }
  // At least one side is not JSON: bytes decide.
  const db = bodyBytes(direct);
  const bb = bodyBytes(bus);
  if (!db.equals(bb)) {
    w.push({ path: '/body', kind: 'changed', direct: previewBytes(db), bus: previewBytes(bb) });
  }
}

/**
 * JSON bodies as values; text that happens to parse as JSON counts as JSON too, and an SSE stream is the
 * document its events mean (final task, artifacts, messages), not its chunks.
 */
function asJson(r: ComparableResult): { ok: true; value: unknown } | { ok: false } {
  if (r.bodyEncoding === undefined) return { ok: true, value: r.body };
  if ((r.bodyEncoding === 'utf8' || r.bodyEncoding === 'text') && typeof r.body === 'string') {
    if (isEventStream(r.contentType)) return { ok: true, value: foldEventStream(r.body) };
    const t = r.body.trimStart();
    if (t.startsWith('{') || t.startsWith('[')) {
      try {
        return { ok: true, value: JSON.parse(r.body) as unknown };
      } catch {
        return { ok: false };
      }
    }
  }
  return { ok: false };
}

function lowerHeaders(h: ComparableResult['headers']): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  if (!h) return out;
  for (const [k, v] of Object.entries(h)) out[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v;
  return out;
}

function ruleOf(nodes: readonly Node[]): Rule | undefined {
  let rule: Rule | undefined;
  for (let i = 0; i < nodes.length; i++) {
    const n = nodes[i]!;
    if (n.value) rule = rule ? { ...n.value, ...rule } : n.value;
  }
  return rule;
}

function isIgnored(nodes: readonly Node[]): boolean {
  for (let i = 0; i < nodes.length; i++) if (nodes[i]!.value?.ignore) return true;
  return false;
}

type Kind = 'undefined' | 'null' | 'array' | 'object' | 'number' | 'string' | 'boolean' | 'other';

function kindOf(v: unknown): Kind {
  if (v === undefined) return 'undefined';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  const t = typeof v;
  return t === 'object' || t === 'number' || t === 'string' || t === 'boolean' ? t : 'other';
}

class Walker {
  readonly out: FieldDiff[] = [];
  constructor(private readonly cap: number) {}

  get full(): boolean {
    return this.out.length >= this.cap;
  }

  push(diff: FieldDiff): void {
    if (this.out.length < this.cap) this.out.push(diff);
  }

  /** Compares `a` (direct) and `b` (bus) at `path`; `nodes` are the rule nodes reached so far. */
  walk(a: unknown, b: unknown, path: (string | number)[], nodes: Node[]): void {
    if (a === b || this.full) return;
    const rule = nodes.length > 0 ? ruleOf(nodes) : undefined;
    if (rule?.ignore) return;
    const ka = kindOf(a);
    const kb = kindOf(b);
    if (ka !== kb) {
      if (ka === 'undefined') this.push({ path: formatPointer(path), kind: 'extra', bus: preview(b) });
      else if (kb === 'undefined') this.push({ path: formatPointer(path), kind: 'missing', direct: preview(a) });
      else this.push({ path: formatPointer(path), kind: 'type', direct: preview(a), bus: preview(b) });
      return;
    }
    switch (ka) {
      case 'number': {
        const x = a as number;
        const y = b as number;
        if (Number.isNaN(x) && Number.isNaN(y)) return;
        const delta = Math.abs(x - y);
        if (rule?.abs !== undefined && delta <= rule.abs + 1e-12) return;
        if (rule?.rel !== undefined && delta <= rule.rel * Math.abs(x) + 1e-12) return;
        this.push({ path: formatPointer(path), kind: 'changed', direct: x, bus: y });
        return;
      }
      case 'object':
        this.walkObject(a as Record<string, unknown>, b as Record<string, unknown>, path, nodes);
        return;
      case 'array':
        if (rule?.unordered) this.walkUnordered(a as unknown[], b as unknown[], path, nodes, rule.unorderedKey);
        else this.walkArray(a as unknown[], b as unknown[], path, nodes);
        return;
      default:
        this.push({ path: formatPointer(path), kind: 'changed', direct: preview(a), bus: preview(b) });
    }
  }

  private walkObject(a: Record<string, unknown>, b: Record<string, unknown>, path: (string | number)[], nodes: Node[]): void {
    const keysA = Object.keys(a);
    if (sameKeys(keysA, b)) {
      // The usual case (both sides serialized by the same code): every key of one is a key of the other,
      // so there is nothing extra to look for and no key needs an own-property check.
      for (let i = 0; i < keysA.length; i++) {
        const k = keysA[i]!;
        const va = a[k];
        const vb = b[k];
        // Equal primitives (most fields) cannot differ under any rule: skip the rule lookup and the call.
        if (va === vb) continue;
        path.push(k);
        this.walk(va, vb, path, nodes.length ? RuleTrie.step(nodes, k) : nodes);
        path.pop();
        if (this.full) return;
      }
      return;
    }
    for (const k in a) {
      if (!Object.prototype.hasOwnProperty.call(a, k)) continue;
      path.push(k);
      this.walk(a[k], Object.prototype.hasOwnProperty.call(b, k) ? b[k] : undefined, path, nodes.length ? RuleTrie.step(nodes, k) : nodes);
      path.pop();
      if (this.full) return;
    }
    for (const k in b) {
      if (!Object.prototype.hasOwnProperty.call(b, k) || Object.prototype.hasOwnProperty.call(a, k)) continue;
      const child = nodes.length ? RuleTrie.step(nodes, k) : nodes;
      if (child.length && isIgnored(child)) continue;
      path.push(k);
      this.push({ path: formatPointer(path), kind: 'extra', bus: preview(b[k]) });
      path.pop();
      if (this.full) return;
    }
  }

  private walkArray(a: unknown[], b: unknown[], path: (string | number)[], nodes: Node[]): void {
    const n = Math.max(a.length, b.length);
    for (let i = 0; i < n; i++) {
      const seg = String(i);
      const child = nodes.length ? RuleTrie.step(nodes, seg) : nodes;
      path.push(i);
      if (i >= b.length) {
        if (!(child.length && isIgnored(child))) this.push({ path: formatPointer(path), kind: 'missing', direct: preview(a[i]) });
      } else if (i >= a.length) {
        if (!(child.length && isIgnored(child))) this.push({ path: formatPointer(path), kind: 'extra', bus: preview(b[i]) });
      } else {
        this.walk(a[i], b[i], path, child);
      }
      path.pop();
      if (this.full) return;
    }
  }

  /**
   * Pairs the elements `ia` of `a` with the elements `ib` of `b` that equal them, silently: exactly equal
   * ones first, then ones equal under the rules below `nodes` (ignored fields, tolerances). Returns what is
   * left unpaired on each side, in order.
   */
  private pairEqual(a: unknown[], b: unknown[], ia: readonly number[], ib: readonly number[], path: (string | number)[], nodes: Node[]): { restA: number[]; restB: number[] } {
    const byCanon = new Map<string, number[]>();
    for (const j of ib) {
      const c = canonical(b[j]);
      (byCanon.get(c) ?? byCanon.set(c, []).get(c)!).push(j);
    }
    let restA: number[] = [];
    for (const i of ia) {
      const js = byCanon.get(canonical(a[i]));
      if (js && js.length > 0) js.shift();
      else restA.push(i);
    }
    const restB: number[] = [];
    for (const js of byCanon.values()) restB.push(...js);
    restB.sort(byIndex);
    if (restA.length > 0 && restB.length > 0 && nodes.some((n) => n.children.size > 0)) {
      const stillA: number[] = [];
      for (const i of restA) {
        const child = RuleTrie.step(nodes, String(i));
        const at = restB.findIndex((j) => {
          const probe = new Walker(1);
          probe.walk(a[i], b[j], [...path, i], child);
          return probe.out.length === 0;
        });
        if (at >= 0) restB.splice(at, 1);
        else stillA.push(i);
      }
      restA = stillA;
    }
    return { restA, restB };
  }

  /**
   * Order-free comparison. With `key`, elements pair by that field; otherwise equal elements pair first
   * (exactly, then under the rules), and the leftovers pair in order so that a changed element reports
   * its changed fields rather than one missing and one extra element.
   */
  private walkUnordered(a: unknown[], b: unknown[], path: (string | number)[], nodes: Node[], key: string | undefined): void {
    /** Index pairs (`a`, `b`) to compare, flat: a0, b0, a1, b1, … */
    const pairs: number[] = [];
    let restA: number[] = [];
    let restB: number[] = [];
    if (key !== undefined && a.length * b.length <= SMALL_UNORDERED) {
      // Few elements: each element of `a` takes the first unpaired element of `b` with its key, as the
      // map below pairs them, without building the map.
      const keysB: unknown[] = new Array<unknown>(b.length);
      for (let j = 0; j < b.length; j++) keysB[j] = scanKeyOf(b[j], key);
      for (let i = 0; i < a.length; i++) {
        const k = scanKeyOf(a[i], key);
        let found = -1;
        if (k !== undefined) {
          for (let j = 0; j < b.length; j++) {
            if (sameScanKey(k, keysB[j])) {
              found = j;
              break;
            }
          }
        }
        if (found >= 0) {
          pairs.push(i, found);
          keysB[found] = PAIRED;
        } else restA.push(i);
      }
      // Unpaired elements of `b` (keyless or left over), in order.
      for (let j = 0; j < b.length; j++) if (keysB[j] !== PAIRED) restB.push(j);
    } else if (key !== undefined) {
      const byKey = new Map<string, number[]>();
      b.forEach((el, j) => {
        const k = keyOf(el, key);
        if (k === undefined) restB.push(j);
        else (byKey.get(k) ?? byKey.set(k, []).get(k)!).push(j);
      });
      a.forEach((el, i) => {
        const k = keyOf(el, key);
        const js = k === undefined ? undefined : byKey.get(k);
        if (js && js.length > 0) pairs.push(i, js.shift()!);
        else restA.push(i);
      });
      for (const js of byKey.values()) restB.push(...js);
      restB.sort(byIndex);
    } else {
      ({ restA, restB } = this.pairEqual(a, b, indices(a.length), indices(b.length), path, nodes));
    }
    if (key !== undefined && restA.length > 0 && restB.length > 0) {
      // Elements without the key cannot pair by it; one equal to an element without the key on the other
      // side is that element (identical answers never differ), as in an array without a key.
      const keyed = (arr: unknown[]) => (i: number) => scanKeyOf(arr[i], key) !== undefined;
      const loneA = restA.filter((i) => !keyed(a)(i));
      const loneB = restB.filter((j) => !keyed(b)(j));
      if (loneA.length > 0 && loneB.length > 0) {
        const left = this.pairEqual(a, b, loneA, loneB, path, nodes);
        restA = restA.filter(keyed(a)).concat(left.restA).sort(byIndex);
        restB = restB.filter(keyed(b)).concat(left.restB).sort(byIndex);
      }
    }
    // Keyed elements without a partner are different entities: missing and extra, never paired by position.
    const n = key === undefined ? Math.min(restA.length, restB.length) : 0;
    for (let x = 0; x < n; x++) pairs.push(restA[x]!, restB[x]!);
    // `pairs` is in the order of `a` already: keyed pairs are made walking `a`, positional ones from `restA`.
    for (let x = 0; x < pairs.length; x += 2) {
      const i = pairs[x]!;
      const j = pairs[x + 1]!;
      if (a[i] === b[j]) continue;
      path.push(i);
      this.walk(a[i], b[j], path, nodes.length ? RuleTrie.step(nodes, String(i)) : nodes);
      path.pop();
      if (this.full) return;
    }
    // Past the first n, the rest of each side is missing (direct) and extra (bus).
    for (let x = n; x < restA.length; x++) {
      const i = restA[x]!;
      path.push(i);
      this.push({ path: formatPointer(path), kind: 'missing', direct: preview(a[i]) });
      path.pop();
    }
    for (let x = n; x < restB.length; x++) {
      const j = restB[x]!;
      path.push(j);
      this.push({ path: formatPointer(path), kind: 'extra', bus: preview(b[j]) });
      path.pop();
    }
  }
}

const byIndex = (x: number, y: number): number => x - y;

/** 0, 1, …, n - 1. */
function indices(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/** Key-paired arrays up to this many element pairs (length × length) are paired by scanning, not a map. */
const SMALL_UNORDERED = 256;
/** Marks a paired element of `b` while scanning. */
const PAIRED: unknown = Object.freeze({});

/**
 * {@link keyOf} without building a string for the usual string key: the string itself, or `{ text }` with
 * keyOf's text for another value; two scan keys are equal exactly when their keyOf texts are.
 */
function scanKeyOf(el: unknown, key: string): unknown {
  if (typeof el !== 'object' || el === null || Array.isArray(el)) return undefined;
  const v = (el as Record<string, unknown>)[key];
  if (v === undefined) return undefined;
  return typeof v === 'string' ? v : { text: keyOf(el, key) };
}

function sameScanKey(x: unknown, y: unknown): boolean {
  if (typeof x === 'string') return x === y;
  return typeof y === 'object' && y !== null && y !== PAIRED && (x as { text: string }).text === (y as { text: string }).text;
}

/**
 * Whether the enumerable keys of `b` are `keys`, in that order, all its own. Walks `b` without allocating:
 * for-in lists own keys before inherited ones, so a plain object whose keys differ fails on the way.
 */
function sameKeys(keys: readonly string[], b: Record<string, unknown>): boolean {
  const proto = Object.getPrototypeOf(b) as unknown;
  if (proto !== Object.prototype && proto !== null) return false;
  let i = 0;
  for (const k in b) {
    if (i >= keys.length || keys[i] !== k) return false;
    i++;
  }
  return i === keys.length;
}

function keyOf(el: unknown, key: string): string | undefined {
  if (typeof el !== 'object' || el === null || Array.isArray(el)) return undefined;
  const v = (el as Record<string, unknown>)[key];
  if (v === undefined) return undefined;
  return typeof v === 'string' ? 's' + v : 'j' + JSON.stringify(v);
}

/** A JSON text with sorted object keys, so equal values give equal strings. */
export function canonical(v: unknown): string {
  if (v === null || typeof v !== 'object') return v === undefined ? 'u' : JSON.stringify(v);
  if (Array.isArray(v)) return '[' + v.map(canonical).join(',') + ']';
  const keys = Object.keys(v).sort();
  let out = '{';
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]!;
    out += (i ? ',' : '') + JSON.stringify(k) + ':' + canonical((v as Record<string, unknown>)[k]);
  }
  return out + '}';
}

/** A value small enough for a parity record: long strings and big structures become truncated text. */
export function preview(v: unknown): unknown {
  if (typeof v === 'string') return v.length > VALUE_LIMIT ? v.slice(0, VALUE_LIMIT) + '…' : v;
  if (v === null || typeof v !== 'object') return v;
  const text = JSON.stringify(v);
  return text.length > VALUE_LIMIT ? text.slice(0, VALUE_LIMIT) + '…' : v;
}

function previewBytes(b: Buffer): string {
  const head = b.subarray(0, VALUE_LIMIT * 2);
  const text = head.toString('utf8');
  const printable = !text.includes('\uFFFD');
  const shown = printable ? text : 'base64:' + head.toString('base64');
  return shown.length > VALUE_LIMIT || b.length > head.length ? shown.slice(0, VALUE_LIMIT) + `… (${b.length} bytes)` : shown;
}
