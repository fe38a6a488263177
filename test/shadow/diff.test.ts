import { describe, expect, it } from 'vitest';
import { encodeBody } from '../../src/events/body.js';
import { canonical, compileRules, diffResults, type ComparableResult } from '../../shadow/diff.js';
import type { FlowCompareInput } from '../../src/config/shadow.js';

const json = (body: unknown, status = 200, headers: Record<string, string> = {}): ComparableResult => ({ status, headers, body });
const diff = (a: ComparableResult, b: ComparableResult, rules: FlowCompareInput = {}) => diffResults(a, b, compileRules(rules));
const paths = (a: ComparableResult, b: ComparableResult, rules: FlowCompareInput = {}) => diff(a, b, rules).map((d) => d.path);

describe('diff engine: structure', () => {
  it('finds nothing between equal documents, whatever the key order', () => {
    expect(diff(json({ a: 1, b: { c: [1, 2, { d: 'x' }] } }), json({ b: { c: [1, 2, { d: 'x' }] }, a: 1 }))).toEqual([]);
  });

  it('reports changed, missing, extra and type differences with JSON pointers and both values', () => {
    const d = diff(json({ price: 10, name: 'a', gone: true, nested: { n: 1 } }), json({ price: 11, name: 'a', added: 'x', nested: 'flat' }));
    expect(d).toEqual([
      { path: '/body/price', kind: 'changed', direct: 10, bus: 11 },
      { path: '/body/gone', kind: 'missing', direct: true },
      { path: '/body/nested', kind: 'type', direct: { n: 1 }, bus: 'flat' },
      { path: '/body/added', kind: 'extra', bus: 'x' },
    ]);
  });

  it('compares arrays by position by default, reporting the extra and missing tail', () => {
    expect(diff(json({ xs: [1, 2, 3] }), json({ xs: [1, 5] }))).toEqual([
      { path: '/body/xs/1', kind: 'changed', direct: 2, bus: 5 },
      { path: '/body/xs/2', kind: 'missing', direct: 3 },
    ]);
  });

  it('escapes ~ and / in pointer segments', () => {
    expect(paths(json({ 'a/b': 1, 'c~d': 1 }), json({ 'a/b': 2, 'c~d': 2 }))).toEqual(['/body/a~1b', '/body/c~0d']);
  });

  it('truncates long values so records stay small', () => {
    const [d] = diff(json({ s: 'x'.repeat(1000) }), json({ s: 'y'.repeat(1000) }));
    expect((d!.direct as string).length).toBeLessThanOrEqual(201);
    const [o] = diff(json({ o: { big: 'z'.repeat(500) } }), json({ o: 1 }));
    expect(typeof o!.direct).toBe('string');
    expect((o!.direct as string).length).toBeLessThanOrEqual(201);
  });
});

describe('diff engine: ignore', () => {
  it('ignores exact pointers', () => {
    expect(paths(json({ reservedAt: 1, sku: 'a' }), json({ reservedAt: 2, sku: 'a' }), { ignore: ['/body/reservedAt'] })).toEqual([]);
  });

  it('ignores with * wildcards, one level each, at any depth', () => {
    const a = json({ items: [{ id: 1, ts: 1 }, { id: 2, ts: 2 }], meta: { a: { ts: 1 }, b: { ts: 1 } } });
    const b = json({ items: [{ id: 1, ts: 9 }, { id: 2, ts: 9 }], meta: { a: { ts: 9 }, b: { ts: 9 } } });
    expect(paths(a, b, { ignore: ['/body/items/*/ts'] })).toEqual(['/body/meta/a/ts', '/body/meta/b/ts']);
    expect(paths(a, b, { ignore: ['/body/items/*/ts', '/body/meta/*/ts'] })).toEqual([]);
    expect(paths(a, b, { ignore: ['/body/*'] })).toEqual([]);
  });

  it('a wildcard matches one level only', () => {
    expect(paths(json({ a: { b: { ts: 1 } } }), json({ a: { b: { ts: 2 } } }), { ignore: ['/body/*/ts'] })).toEqual(['/body/a/b/ts']);
  });

  it('ignores missing and extra fields under an ignored path', () => {
    expect(paths(json({ a: 1, t: 5 }), json({ a: 1 }), { ignore: ['/body/t'] })).toEqual([]);
    expect(paths(json({ a: 1 }), json({ a: 1, t: 5 }), { ignore: ['/body/t'] })).toEqual([]);
  });

  it('ignores a whole header or the status when asked', () => {
    expect(paths(json({}, 200, { etag: 'a' }), json({}, 201, { etag: 'b' }), { headers: ['etag'], ignore: ['/headers/etag', '/status'] })).toEqual([]);
  });
});

describe('diff engine: numeric tolerance', () => {
  it('absolute: within is equal, beyond is a change', () => {
    const rules = { tolerance: { '/body/price': 0.01 } };
    expect(paths(json({ price: 10.0 }), json({ price: 10.01 }), rules)).toEqual([]);
    expect(paths(json({ price: 10.0 }), json({ price: 9.995 }), rules)).toEqual([]);
    expect(paths(json({ price: 10.0 }), json({ price: 10.02 }), rules)).toEqual(['/body/price']);
  });

  it('relative: a percentage of the direct value', () => {
    const rules = { tolerance: { '/body/items/*/price': '1%' } };
    expect(paths(json({ items: [{ price: 200 }] }), json({ items: [{ price: 201.9 }] }), rules)).toEqual([]);
    expect(paths(json({ items: [{ price: 200 }] }), json({ items: [{ price: 202.5 }] }), rules)).toEqual(['/body/items/0/price']);
  });

  it('does not apply to other paths, nor to non-numbers', () => {
    const rules = { tolerance: { '/body/price': 1 } };
    expect(paths(json({ price: 1, qty: 1 }), json({ price: 1.5, qty: 1.5 }), rules)).toEqual(['/body/qty']);
    expect(paths(json({ price: '1' }), json({ price: '1.5' }), rules)).toEqual(['/body/price']);
  });
});

describe('diff engine: unordered arrays', () => {
  it('without key: same elements in another order are equal', () => {
    const a = json({ items: [{ sku: 'a', qty: 1 }, { sku: 'b', qty: 2 }, 3, 'x'] });
    const b = json({ items: ['x', 3, { qty: 2, sku: 'b' }, { sku: 'a', qty: 1 }] });
    expect(paths(a, b, { unordered: ['/body/items'] })).toEqual([]);
    expect(paths(a, b)).not.toEqual([]);
  });

  it('without key: counts duplicates (a multiset), and a changed element shows its field', () => {
    const rules = { unordered: ['/body/xs'] };
    expect(paths(json({ xs: [1, 1, 2] }), json({ xs: [1, 2, 2] }), rules)).toEqual(['/body/xs/1']);
    expect(paths(json({ xs: [{ s: 'a', q: 1 }, { s: 'b', q: 1 }] }), json({ xs: [{ s: 'b', q: 1 }, { s: 'a', q: 2 }] }), rules)).toEqual(['/body/xs/0/q']);
  });

  it('without key: elements equal under ignore/tolerance rules pair silently', () => {
    const rules = { unordered: ['/body/xs'], ignore: ['/body/xs/*/ts'] };
    expect(paths(json({ xs: [{ s: 'a', ts: 1 }, { s: 'b', ts: 2 }] }), json({ xs: [{ s: 'b', ts: 8 }, { s: 'a', ts: 9 }] }), rules)).toEqual([]);
  });

  it('without key: extra and missing elements', () => {
    const d = diff(json({ xs: [1, 2] }), json({ xs: [2] }), { unordered: ['/body/xs'] });
    expect(d).toEqual([{ path: '/body/xs/0', kind: 'missing', direct: 1 }]);
    const e = diff(json({ xs: [2] }), json({ xs: [3, 2] }), { unordered: ['/body/xs'] });
    expect(e).toEqual([{ path: '/body/xs/0', kind: 'extra', bus: 3 }]);
  });

  it('with key: elements pair by the key field and differences point into the direct element', () => {
    const rules = { unordered: [{ path: '/body/items', key: 'sku' }] };
    const a = json({ items: [{ sku: 'a', qty: 1 }, { sku: 'b', qty: 2 }, { sku: 'c', qty: 3 }] });
    const b = json({ items: [{ sku: 'c', qty: 3 }, { sku: 'b', qty: 5 }, { sku: 'd', qty: 1 }] });
    expect(diff(a, b, rules)).toEqual([
      { path: '/body/items/1/qty', kind: 'changed', direct: 2, bus: 5 },
      { path: '/body/items/0', kind: 'missing', direct: { sku: 'a', qty: 1 } },
      { path: '/body/items/2', kind: 'extra', bus: { sku: 'd', qty: 1 } },
    ]);
  });

  it('with key: elements without the key pair with an equal element without it, in any place', () => {
    const rules = { unordered: [{ path: '/body/items', key: 'sku' }], ignore: ['/body/items/*/at'] };
    const body = { items: [{ sku: 'a', qty: 1 }, { note: 'gift wrap' }, { sku: 'b', qty: 2 }, { note: 'fragile' }] };
    // Identical answers never differ, whether or not every element has the key (small arrays are scanned,
    // large ones go through a map: both ways).
    expect(diff(json(body), json(structuredClone(body)), rules)).toEqual([]);
    const many = { items: [...Array.from({ length: 20 }, (_, i) => ({ sku: `s${i}`, qty: i })), { note: 'gift wrap' }] };
    expect(diff(json(many), json(structuredClone(many)), rules)).toEqual([]);
    // In another place, or equal under the rules: still the same element.
    const moved = { items: [{ note: 'fragile' }, { sku: 'b', qty: 2 }, { note: 'gift wrap', at: 2 }, { sku: 'a', qty: 1 }] };
    expect(diff(json({ items: [...body.items.slice(0, 1), { note: 'gift wrap', at: 1 }, ...body.items.slice(2)] }), json(moved), rules)).toEqual([]);
    // A keyless element with no equal on the other side is missing there, and the other one extra, as before.
    expect(diff(json(body), json({ items: [{ sku: 'a', qty: 1 }, { note: 'gift wrapped' }, { sku: 'b', qty: 2 }, { note: 'fragile' }] }), rules)).toEqual([
      { path: '/body/items/1', kind: 'missing', direct: { note: 'gift wrap' } },
      { path: '/body/items/1', kind: 'extra', bus: { note: 'gift wrapped' } },
    ]);
  });

  it('with key under a wildcard path', () => {
    const rules = { unordered: [{ path: '/body/orders/*/lines', key: 'id' }] };
    const a = json({ orders: [{ lines: [{ id: 1 }, { id: 2 }] }] });
    const b = json({ orders: [{ lines: [{ id: 2 }, { id: 1 }] }] });
    expect(paths(a, b, rules)).toEqual([]);
  });
});

describe('diff engine: status, headers, bytes', () => {
  it('compares status codes unless turned off', () => {
    expect(diff(json({}, 200), json({}, 500))).toEqual([{ path: '/status', kind: 'changed', direct: 200, bus: 500 }]);
    expect(diff(json({}, 200), json({}, 500), { status: false })).toEqual([]);
  });

  it('compares only the selected headers, case-insensitively', () => {
    const a = json({}, 200, { 'Content-Type': 'application/json', etag: '"1"', date: 'x' });
    const b = json({}, 200, { 'content-type': 'text/plain', etag: '"2"', date: 'y' });
    expect(paths(a, b)).toEqual([]);
    expect(paths(a, b, { headers: ['Content-Type'] })).toEqual(['/headers/content-type']);
    expect(paths(a, b, { headers: ['content-type', 'etag'] })).toEqual(['/headers/content-type', '/headers/etag']);
    expect(diff(json({}, 200, {}), json({}, 200, { etag: 'x' }), { headers: ['etag'] })).toEqual([{ path: '/headers/etag', kind: 'extra', bus: 'x' }]);
  });

  it('compares non-JSON bodies as bytes', () => {
    const text = (s: string) => ({ status: 200, ...encodeBody(Buffer.from(s), 'text/plain') });
    const bin = (b: number[]) => ({ status: 200, ...encodeBody(Buffer.from(b), 'application/octet-stream') });
    expect(diff(text('hello'), text('hello'))).toEqual([]);
    expect(diff(text('hello'), text('hellO'))).toEqual([{ path: '/body', kind: 'changed', direct: 'hello', bus: 'hellO' }]);
    expect(diff(bin([0, 1, 255]), bin([0, 1, 255]))).toEqual([]);
    const [d] = diff(bin([0, 1, 255]), bin([0, 1, 254]));
    expect(d!.path).toBe('/body');
    expect(String(d!.direct)).toMatch(/^base64:/);
  });

  it('JSON against the same JSON sent as text compares structurally; against other bytes it differs', () => {
    expect(diff(json({ a: 1 }), { status: 200, body: '{"a": 1}', bodyEncoding: 'utf8' })).toEqual([]);
    expect(paths(json({ a: 1 }), { status: 200, body: 'a=1', bodyEncoding: 'utf8' })).toEqual(['/body']);
  });

  it('skips bodies that were too large to capture', () => {
    expect(diff({ status: 200, bodySkipped: 'too_large' }, json({ a: 1 }))).toEqual([]);
  });

  it('caps the number of differences collected', () => {
    const a = Object.fromEntries(Array.from({ length: 2000 }, (_, i) => [`k${i}`, i]));
    const b = Object.fromEntries(Array.from({ length: 2000 }, (_, i) => [`k${i}`, i + 1]));
    expect(diffResults(json(a), json(b), compileRules({}), 50)).toHaveLength(50);
  });

  it('rejects bad rules with the path of the problem', () => {
    expect(() => compileRules({ ignore: ['reservedAt'] })).toThrow(/JSON pointer/);
    expect(() => compileRules({ tolerance: { '/body/price': '1 percent' } })).toThrow(/percentage/);
  });
});

describe('canonical', () => {
  it('sorts keys so that equal values give equal text', () => {
    expect(canonical({ b: 1, a: [{ d: 1, c: 2 }] })).toBe(canonical({ a: [{ c: 2, d: 1 }], b: 1 }));
  });
});

describe('diff engine: identical and changed answers', () => {
  let seed = 7;
  const rand = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  const names = ['id', 'sku', 'qty', 'note', 'at', 'items', 'tags'];
  const value = (depth: number): unknown => {
    const r = rand(depth > 3 ? 4 : 7);
    if (r === 0) return rand(5);
    if (r === 1) return ['a', 'b', 'x'][rand(3)];
    if (r === 2) return null;
    if (r === 3) return rand(2) === 0;
    if (r === 4) return Array.from({ length: rand(5) }, () => value(depth + 1));
    const o: Record<string, unknown> = {};
    for (let i = rand(4); i > 0; i--) o[names[rand(names.length)]!] = value(depth + 1);
    return o;
  };
  /** Pointers to the arrays of `v`, some through a `*` segment. */
  const arrays = (v: unknown, p: string, out: string[]): string[] => {
    if (Array.isArray(v)) {
      out.push(p);
      v.forEach((e, i) => arrays(e, `${p}/${rand(3) === 0 ? '*' : i}`, out));
    } else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) arrays(x, `${p}/${k}`, out);
    return out;
  };
  /** Random unordered rules over the arrays of `body`, with and without a key. */
  const unorderedOf = (body: unknown): FlowCompareInput['unordered'] =>
    arrays(body, '/body', []).filter(() => rand(2) === 0).map((p) => (rand(2) === 0 ? p : { path: p, key: names[rand(names.length)]! }));

  it('identical answers never differ, under any mix of unordered (with and without keys), ignore and tolerance rules', () => {
    const differing: string[] = [];
    for (let t = 0; t < 20_000; t++) {
      const body = value(0);
      const unordered = unorderedOf(body);
      const rules: FlowCompareInput = { unordered, ...(rand(3) === 0 ? { ignore: ['/body/*/at'] } : {}), ...(rand(2) === 0 ? { tolerance: { '/body/qty': 1 } } : {}) };
      const found = diff(json(body), json(structuredClone(body)), rules);
      if (found.length > 0) differing.push(`${JSON.stringify(body)} ${JSON.stringify(unordered)}: ${JSON.stringify(found)}`);
    }
    expect(differing.slice(0, 3)).toEqual([]);
  });

  it('one changed value is a difference both ways, under any mix of unordered rules', () => {
    const missed: string[] = [];
    let tried = 0;
    for (let t = 0; t < 60_000; t++) {
      const body = value(0);
      if (body === null || typeof body !== 'object') continue;
      const leaves: Array<[Record<string | number, unknown>, string | number]> = [];
      const collect = (x: unknown): void => {
        if (x === null || typeof x !== 'object') return;
        for (const k of Object.keys(x)) {
          const v = (x as Record<string, unknown>)[k];
          if (v !== null && typeof v === 'object') collect(v);
          else leaves.push([x as Record<string, unknown>, Array.isArray(x) ? Number(k) : k]);
        }
      };
      const changed = structuredClone(body);
      collect(changed);
      if (leaves.length === 0) continue;
      const [holder, at] = leaves[rand(leaves.length)]!;
      holder[at] = 'changed';
      tried++;
      const rules: FlowCompareInput = { unordered: unorderedOf(body) };
      if (diff(json(body), json(changed), rules).length === 0 || diff(json(changed), json(body), rules).length === 0) missed.push(`${JSON.stringify(body)} -> ${JSON.stringify(changed)}`);
    }
    expect(tried).toBeGreaterThan(3_000);
    expect(missed.slice(0, 3)).toEqual([]);
  });
});
