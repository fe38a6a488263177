import { describe, expect, it } from 'vitest';
import type { BusReplyData } from '../../src/events/wire.js';
import type { Observation } from '../../shadow/observations.js';
import { PairingEngine, type PairingOptions } from '../../shadow/pairing.js';

function obs(side: Observation['side'], id: string, data: BusReplyData, extra: Partial<Observation> = {}): Observation {
  return { side, correlationId: id, flow: 'inventory.reserve', mode: 'shadow', data, publishedAt: 0, ...extra };
}
const ok = (body: unknown, extra: BusReplyData = {}): BusReplyData => ({ status: 200, headers: {}, body, ...extra });

function engine(options: Partial<PairingOptions> = {}): PairingEngine {
  return new PairingEngine({ window: 30_000, maxOpenPairs: 1_000, ...options });
}

describe('PairingEngine: pairing', () => {
  it('pairs a direct and a bus observation by correlation id, in either order', () => {
    const e = engine();
    expect(e.ingest(obs('direct', 'c1', ok({ a: 1 }, { latencyMs: 12 })), 1_000)).toEqual([]);
    const [r] = e.ingest(obs('bus', 'c1', ok({ a: 1 }, { eventPublishedAt: 1_000, consumedAt: 1_004, repliedAt: 1_020 }), { publishedAt: 1_021 }), 1_030);
    expect(r).toMatchObject({ v: 1, flow: 'inventory.reserve', correlationId: 'c1', outcome: 'match', mode: 'shadow', diffs: [], directStatus: 200, busStatus: 200, directLatencyMs: 12, busLagMs: 4, busLatencyMs: 21 });
    expect(r!.at).toBe(new Date(1_030).toISOString());

    const [r2] = [...e.ingest(obs('bus', 'c2', ok({ a: 1 })), 2_000), ...e.ingest(obs('direct', 'c2', ok({ a: 2 })), 2_001)];
    expect(r2).toMatchObject({ correlationId: 'c2', outcome: 'mismatch', diffs: [{ path: '/body/a', kind: 'changed', direct: 2, bus: 1 }] });
    expect(e.stats()).toMatchObject({ open: 0, records: { match: 1, mismatch: 1 } });
  });

  it('carries each side\'s code version into the record without comparing it', () => {
    const e = engine();
    e.ingest(obs('direct', 'v1', ok({ a: 1 }, { version: '7.0' })), 1_000);
    const [r] = e.ingest(obs('bus', 'v1', ok({ a: 1 }, { version: '1.4.2' })), 1_001);
    expect(r).toMatchObject({ outcome: 'match', diffs: [], directVersion: '7.0', busVersion: '1.4.2' });
    e.ingest(obs('direct', 'v2', ok({ a: 1 })), 1_002);
    const [plain] = e.ingest(obs('bus', 'v2', ok({ a: 1 })), 1_003);
    expect(plain!.directVersion).toBeUndefined();
    expect(plain!.busVersion).toBeUndefined();
  });

  it('takes the call sample from the direct observation when the bus reply has none (SDK agents), else from the reply', () => {
    const e = engine();
    const sample = { method: 'POST', target: '/reservations?src=test', headers: { 'content-type': 'application/json' }, body: '{"sku":"SKU-TEAPOT"}' };
    e.ingest(obs('direct', 'c1', ok({ a: 1 }, { request: sample })), 0);
    const [sdk] = e.ingest(obs('bus', 'c1', ok({ a: 2 })), 0);
    expect(sdk).toMatchObject({ outcome: 'mismatch', request: sample });

    e.ingest(obs('direct', 'c2', ok({ a: 1 })), 0);
    const [delivered] = e.ingest(obs('bus', 'c2', ok({ a: 2 }, { request: { method: 'POST', target: '/r' } })), 0);
    expect(delivered!.request).toEqual({ method: 'POST', target: '/r' });

    e.ingest(obs('direct', 'c3', ok({ a: 1 }, { request: sample })), 0);
    const [missing] = e.expire(60_000);
    expect(missing).toMatchObject({ correlationId: 'c3', outcome: 'missing_bus', request: sample });

    e.ingest(obs('direct', 'c4', ok({ a: 1 }, { request: sample })), 100_000);
    const [match] = e.ingest(obs('bus', 'c4', ok({ a: 1 })), 100_000);
    expect(match!.outcome).toBe('match');
    expect(match!.request).toBeUndefined();
  });

  it('applies the flow rules and keeps at most maxDiffs differences', () => {
    const e = engine({ flows: { 'inventory.reserve': { compare: { ignore: ['/body/at'], maxDiffs: 2 } } } });
    e.ingest(obs('direct', 'c1', ok({ at: 1, x: 1, y: 1, z: 1 })), 0);
    const [r] = e.ingest(obs('bus', 'c1', ok({ at: 2, x: 2, y: 2, z: 2 })), 0);
    expect(r!.diffs.map((d) => d.path)).toEqual(['/body/x', '/body/y']);
  });

  it('records error_direct and error_bus with the error code (and the DLQ flag)', () => {
    const e = engine();
    e.ingest(obs('direct', 'c1', { status: 502, error: { code: 'CUTOVER_UPSTREAM_UNREACHABLE', message: 'down' } }), 0);
    const [r1] = e.ingest(obs('bus', 'c1', ok({})), 0);
    expect(r1).toMatchObject({ outcome: 'error_direct', errorCode: 'CUTOVER_UPSTREAM_UNREACHABLE' });
    e.ingest(obs('direct', 'c2', ok({})), 0);
    const [r2] = e.ingest(obs('bus', 'c2', { error: { code: 'CUTOVER_HANDLER_FAILED' }, dlq: true, request: { method: 'POST', target: '/r' } }), 0);
    expect(r2).toMatchObject({ outcome: 'error_bus', errorCode: 'CUTOVER_HANDLER_FAILED', dlq: true, request: { method: 'POST', target: '/r' } });
  });

  it('ignores duplicates of open and decided pairs', () => {
    const e = engine();
    e.ingest(obs('direct', 'c1', ok(1)), 0);
    expect(e.ingest(obs('direct', 'c1', ok(2)), 1)).toEqual([]);
    expect(e.ingest(obs('bus', 'c1', ok(1)), 2)).toMatchObject([{ outcome: 'match' }]);
    expect(e.ingest(obs('bus', 'c1', ok(1)), 3)).toEqual([]);
    expect(e.ingest(obs('direct', 'c1', ok(1)), 4)).toEqual([]);
    expect(e.stats()).toMatchObject({ open: 0, duplicates: 3 });
  });

  it('observations of flows without rules use the default rules', () => {
    const e = engine();
    e.ingest(obs('direct', 'c1', ok({ a: 1 }), { flow: 'other.flow' }), 0);
    expect(e.ingest(obs('bus', 'c1', ok({ a: 1 }), { flow: 'other.flow' }), 0)).toMatchObject([{ flow: 'other.flow', outcome: 'match' }]);
  });
});

describe('PairingEngine: window', () => {
  it('turns a lone direct into missing_bus and a lone bus into missing_direct once the window passes', () => {
    const e = engine({ window: 30_000 });
    e.ingest(obs('direct', 'd1', ok(1, { latencyMs: 5 })), 1_000);
    e.ingest(obs('bus', 'b1', ok(1, { eventPublishedAt: 10_000, consumedAt: 10_050 })), 10_000);
    expect(e.expire(30_999)).toEqual([]);
    expect(e.expire(31_000)).toMatchObject([{ correlationId: 'd1', outcome: 'missing_bus', directLatencyMs: 5, diffs: [] }]);
    expect(e.expire(39_999)).toEqual([]);
    expect(e.expire(40_000)).toMatchObject([{ correlationId: 'b1', outcome: 'missing_direct', busLagMs: 50 }]);
    expect(e.stats().open).toBe(0);
  });

  it('drops a side that arrives after its pair was recorded missing', () => {
    const e = engine({ window: 1_000 });
    e.ingest(obs('direct', 'd1', ok(1)), 0);
    expect(e.expire(1_000)).toHaveLength(1);
    expect(e.ingest(obs('bus', 'd1', ok(1)), 1_500)).toEqual([]);
    expect(e.expire(10_000)).toEqual([]);
  });

  it('tells when the next pair expires', () => {
    const e = engine({ window: 100 });
    expect(e.nextDeadline()).toBeUndefined();
    e.ingest(obs('direct', 'd1', ok(1)), 50);
    expect(e.nextDeadline()).toBe(150);
  });
});

describe('PairingEngine: bounded memory', () => {
  it('drops the oldest open pair beyond maxOpenPairs and counts the overflow', () => {
    const e = engine({ maxOpenPairs: 3 });
    for (let i = 0; i < 5; i++) e.ingest(obs('direct', `c${i}`, ok(i)), i);
    expect(e.stats()).toMatchObject({ open: 3, overflow: 2 });
    // The evicted pair's late side does not reopen it.
    expect(e.ingest(obs('bus', 'c0', ok(0)), 10)).toEqual([]);
    expect(e.stats().open).toBe(3);
    expect(e.ingest(obs('bus', 'c4', ok(4)), 11)).toMatchObject([{ correlationId: 'c4', outcome: 'match' }]);
    expect(e.expire(100_000).map((r) => r.correlationId)).toEqual(['c2', 'c3']);
  });

  it('keeps the remembered decisions bounded too', () => {
    const e = engine({ maxOpenPairs: 10 });
    for (let i = 0; i < 100; i++) {
      e.ingest(obs('direct', `c${i}`, ok(i)), i);
      e.ingest(obs('bus', `c${i}`, ok(i)), i);
    }
    expect(e.stats().decided).toBeLessThanOrEqual(10);
  });
});

describe('PairingEngine: noise baseline', () => {
  const flows = { 'inventory.reserve': { noise: { sample: 0.05, warmup: 2 } } };

  it('learns fields that differ between two direct calls and excludes them from parity', () => {
    const e = engine({ flows });
    const body = (token: string, price: number) => ok({ sku: 'a', price, token });
    // Two noise samples warm the baseline up.
    for (const id of ['n1', 'n2']) {
      e.ingest(obs('direct', id, body(`${id}-1`, 1)), 0);
      e.ingest(obs('noise', id, body(`${id}-2`, 1)), 0);
      expect(e.ingest(obs('bus', id, body(`${id}-3`, 1)), 0)).toMatchObject([{ outcome: 'match', noise: ['/body/token'] }]);
    }
    expect(e.noisePaths('inventory.reserve')).toEqual(['/body/token']);
    e.ingest(obs('direct', 'c1', body('x', 1)), 0);
    expect(e.ingest(obs('bus', 'c1', body('y', 2)), 0)).toMatchObject([{ outcome: 'mismatch', diffs: [{ path: '/body/price' }], noise: ['/body/token'] }]);
  });

  it('holds mismatches until the baseline is warm, then decides them with it', () => {
    const e = engine({ flows });
    const body = (token: string) => ok({ sku: 'a', token });
    e.ingest(obs('direct', 'early', body('1')), 0);
    expect(e.ingest(obs('bus', 'early', body('2')), 0)).toEqual([]);
    expect(e.stats().held).toBe(1);
    e.ingest(obs('direct', 'n1', body('3')), 1);
    expect(e.ingest(obs('noise', 'n1', body('4')), 1)).toEqual([]);
    e.ingest(obs('noise', 'n2', body('5')), 2);
    const released = e.ingest(obs('direct', 'n2', body('6')), 2);
    expect(released).toMatchObject([{ correlationId: 'early', outcome: 'match', noise: ['/body/token'] }]);
    expect(e.stats().held).toBe(0);
  });

  it('decides a held pair at the end of its window even if the baseline never warms up', () => {
    const e = engine({ flows, window: 1_000 });
    e.ingest(obs('direct', 'c1', ok({ token: 'a' })), 0);
    e.ingest(obs('bus', 'c1', ok({ token: 'b' })), 0);
    expect(e.expire(1_000)).toMatchObject([{ correlationId: 'c1', outcome: 'mismatch' }]);
  });

  it('learns from a noise sample that arrives after its pair was decided', () => {
    const e = engine({ flows: { 'inventory.reserve': { noise: { sample: 1, warmup: 0 } } } });
    e.ingest(obs('direct', 'c1', ok({ t: 1 })), 0);
    expect(e.ingest(obs('bus', 'c1', ok({ t: 1 })), 0)).toMatchObject([{ outcome: 'match' }]);
    e.ingest(obs('noise', 'c1', ok({ t: 2 })), 1);
    expect(e.noisePaths('inventory.reserve')).toEqual(['/body/t']);
  });

  it('generalizes array indexes so noise in one element covers all', () => {
    const e = engine({ flows: { 'inventory.reserve': { noise: { sample: 1, warmup: 1 } } } });
    e.ingest(obs('direct', 'n', ok({ items: [{ id: 'x' }, { id: 'y' }] })), 0);
    e.ingest(obs('noise', 'n', ok({ items: [{ id: 'z' }, { id: 'y' }] })), 0);
    expect(e.noisePaths('inventory.reserve')).toEqual(['/body/items/*/id']);
    e.ingest(obs('direct', 'c', ok({ items: [{ id: 'x' }, { id: 'y' }] })), 0);
    expect(e.ingest(obs('bus', 'c', ok({ items: [{ id: 'x' }, { id: 'q' }] })), 0)).toMatchObject([{ outcome: 'match', noise: ['/body/items/1/id'] }]);
  });
});

describe('PairingEngine: any arrival order', () => {
  it('gives each call one record, the same whatever order and redeliveries its observations come in', () => {
    let seed = 3;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    for (let round = 0; round < 200; round++) {
      // Calls with both sides (equal or not), with one side only, and observations delivered twice.
      const calls = Array.from({ length: 1 + rand(30) }, (_, i) => ({ id: `r${round}-c${i}`, sides: rand(5), body: { n: rand(3) }, other: { n: rand(3) } }));
      const expected = new Map<string, string>();
      const arrivals: Observation[] = [];
      for (const c of calls) {
        const hasDirect = c.sides !== 1;
        const hasBus = c.sides !== 2;
        if (hasDirect) arrivals.push(obs('direct', c.id, ok(c.body)));
        if (hasBus) arrivals.push(obs('bus', c.id, ok(c.other)));
        expected.set(c.id, hasDirect && hasBus ? (c.body.n === c.other.n ? 'match' : 'mismatch') : hasDirect ? 'missing_bus' : 'missing_direct');
      }
      for (const a of [...arrivals]) if (rand(4) === 0) arrivals.push({ ...a });
      const outcomes = (order: Observation[]): Map<string, string[]> => {
        const e = engine({ maxOpenPairs: 10_000 });
        const got = new Map<string, string[]>();
        const take = (records: ReturnType<PairingEngine['ingest']>): void => {
          for (const r of records) got.set(r.correlationId, [...(got.get(r.correlationId) ?? []), r.outcome]);
        };
        order.forEach((o, i) => take(e.ingest(o, 1_000 + i)));
        take(e.expire(1_000 + order.length + 30_000));
        // Redeliveries after the decision change nothing either.
        for (const o of order.slice(0, 3)) take(e.ingest(o, 1_000 + order.length + 30_001));
        return got;
      };
      const shuffled = (): Observation[] => {
        const a = [...arrivals];
        for (let i = a.length - 1; i > 0; i--) {
          const j = rand(i + 1);
          [a[i], a[j]] = [a[j]!, a[i]!];
        }
        return a;
      };
      const want = new Map([...expected].map(([id, outcome]) => [id, [outcome]]));
      for (let k = 0; k < 3; k++) expect(outcomes(shuffled())).toEqual(want);
    }
  });
});
