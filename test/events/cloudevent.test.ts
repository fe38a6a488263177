import { CloudEvent as SdkCloudEvent } from 'cloudevents';
import { describe, expect, it } from 'vitest';
import { buildEvent, isTraceparent, newTraceparent, parseEvent, schemaMajor, serializeEvent, validateEvent, validateEventBySchema, assertEvent, checkedEvent } from '../../src/events/cloudevent.js';
import { ErrorCodes } from '../../src/errors.js';

describe('CloudEvents', () => {
  it('builds events the official SDK accepts, with our extensions', () => {
    const ev = buildEvent({
      source: '/agents/inventory',
      type: 'inventory.reserve',
      data: { sku: 'A-1', qty: 2 },
      schemaversion: '1.2',
      correlationid: 'c-1',
      replyto: 'cutover.observations',
      partitionkey: 'A-1',
      traceparent: newTraceparent(),
      cutoverflow: 'inventory.reserve',
      cutovermode: 'shadow',
    });
    const sdk = new SdkCloudEvent(JSON.parse(serializeEvent(ev)) as object);
    expect(sdk.validate()).toBe(true);
    expect(sdk['cutoverflow']).toBe('inventory.reserve');
    expect(parseEvent(serializeEvent(ev))).toEqual(ev);
  });

  it('names each bad attribute in CUTOVER_EVENT_INVALID', () => {
    const bad = { specversion: '0.3', id: '', source: '/x', type: 't', bad_name: 1, traceparent: 'nope' };
    try {
      parseEvent(JSON.stringify(bad));
      expect.unreachable();
    } catch (err) {
      const e = err as { code: string; message: string };
      expect(e.code).toBe(ErrorCodes.EVENT_INVALID);
      expect(e.message).toContain('specversion');
      expect(e.message).toContain('id');
      expect(e.message).toContain('bad_name');
      expect(e.message).toContain('traceparent');
    }
    expect(() => parseEvent('{not json')).toThrowError(expect.objectContaining({ code: ErrorCodes.EVENT_INVALID }));
  });

  it('reads schema majors and traceparents', () => {
    expect(schemaMajor('2.1.0')).toBe(2);
    expect(schemaMajor('1')).toBe(1);
    expect(schemaMajor(undefined)).toBeUndefined();
    expect(isTraceparent(newTraceparent())).toBe(true);
    expect(isTraceparent('00-00000000000000000000000000000000-b7ad6b7169203331-01')).toBe(false);
  });
});

describe('validateEvent: the hand-written check agrees with the schema', () => {
  const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
  const full = {
    specversion: '1.0',
    id: 'e-1',
    source: '/cutover/sidecar/inventory',
    type: 'cutover.call.v1',
    time: '2026-12-07T10:00:00.123Z',
    datacontenttype: 'application/json',
    dataschema: 'https://example.com/s',
    subject: 'order-1',
    data: { body: { sku: 'A-1', qty: 2 }, headers: { 'content-type': 'application/json' } },
    schemaversion: '1.2.3',
    correlationid: 'c-1',
    causationid: 'k-1',
    replyto: 'cutover.replies.shop.a1',
    partitionkey: 'cust-1',
    traceparent,
    cutoverflow: 'inventory.reserve',
    cutovermode: 'bus',
    rpcmethod: 'SendMessage',
  };
  /** Values an attribute may be given: good and bad for each rule the schema has. */
  const values: unknown[] = [
    undefined, null, '', 'x', 0, 1, true, [], {}, ['a'], { a: 1 }, '1.0', '0.3', '1', '1.2', '1.2.3', '1.2.3.4', 'v1',
    traceparent, '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331', 'nope',
    '2026-12-07T10:00:00Z', '2026-12-07T10:00:00+02:00', '2026-12-07T10:00:00+0200', '2026-12-07T10:00Z', '2026-02-30T10:00:00Z',
    '2024-02-29T00:00:00.5Z', '2026-12-07 10:00:00Z', '2026-12-07T10:00:00', 'aGVsbG8=', () => 1,
  ];
  const names = [...Object.keys(full), 'data_base64', 'ext1', 'Bad', 'bad_name', 'x'.repeat(21), '__proto__', 'then', 'catch'];

  /** What the old path (zod alone) returns or throws, as comparable text (key order included). */
  function outcome(f: (v: unknown) => unknown, value: unknown): string {
    try {
      const out = f(value) as Record<string, unknown>;
      return `ok ${JSON.stringify(Object.keys(out))} ${JSON.stringify(out)} ${Object.keys(out).map((k) => typeof out[k]).join(',')}`;
    } catch (err) {
      return `error ${(err as { code?: string }).code} ${(err as Error).message}`;
    }
  }

  function expectSame(value: unknown): void {
    const reference = outcome(validateEventBySchema, value);
    expect(outcome(validateEvent, value), JSON.stringify(value)).toBe(reference);
    // The publish check (no copy) and the read check (where in the message) refuse exactly the same.
    expect(outcome((v) => (assertEvent(v, 'here'), {}), value).startsWith('ok'), JSON.stringify(value)).toBe(reference.startsWith('ok'));
    const verdict = (o: string): string => (o.startsWith('ok') ? 'ok' : o);
    expect(verdict(outcome((v) => checkedEvent(v, 'here'), value).replace('here: ', '')), JSON.stringify(value)).toBe(verdict(reference));
    // The read checks take values just parsed from JSON and return them: the schema's answer but for key order.
    const text = JSON.stringify(value) as string | undefined;
    if (text !== undefined) {
      const expected = outcome((t) => ownOrder(JSON.parse(t as string), validateEventBySchema(JSON.parse(t as string))), text);
      const parsed = outcome((t) => parseEvent(t as string), text);
      expect(parsed, text).toBe(expected);
      expect(outcome((t) => checkedEvent(JSON.parse(t as string), 'here'), text).replace('here: ', ''), text).toBe(expected);
      if (parsed.startsWith('ok')) {
        // Not a copy, and nothing of the text lost or added.
        expect(Object.keys(parseEvent(text)), text).toEqual(Object.keys(JSON.parse(text) as object));
      }
    }
  }

  /** The schema's result with the attributes in the order `input` has them (what a check that does not copy returns). */
  function ownOrder(input: unknown, checked: object): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(input as object)) if (k in checked) out[k] = (checked as Record<string, unknown>)[k];
    for (const k of Object.keys(checked)) if (!(k in out)) out[k] = (checked as Record<string, unknown>)[k];
    return out;
  }

  it('on every attribute given every kind of value', () => {
    let accepted = 0;
    let refused = 0;
    for (const name of names) {
      for (const value of values) {
        const event: Record<string, unknown> = JSON.parse(JSON.stringify(full));
        if (name === '__proto__') Object.defineProperty(event, name, { value, enumerable: true, configurable: true, writable: true });
        else event[name] = value;
        expectSame(event);
        if (outcome(validateEventBySchema, event).startsWith('ok')) accepted++;
        else refused++;
      }
    }
    // Both paths were exercised: the corpus holds events the schema takes and events it refuses.
    expect(accepted).toBeGreaterThan(100);
    expect(refused).toBeGreaterThan(100);
  });

  it('on random mixes of attributes, and on what is not an object', () => {
    let seed = 42;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    const good = full as Record<string, unknown>;
    let accepted = 0;
    for (let i = 0; i < 3_000; i++) {
      const event: Record<string, unknown> = {};
      for (const name of names) {
        if (name === '__proto__') continue;
        // Mostly the attribute's good value, sometimes absent or any value; a bad name now and then.
        const r = rand(good[name] === undefined ? 60 : 24);
        if (r >= 2) {
          if (good[name] !== undefined) event[name] = good[name];
        } else if (r === 1) event[name] = values[rand(values.length)];
      }
      expectSame(event);
      if (outcome(validateEventBySchema, event).startsWith('ok')) accepted++;
    }
    expect(accepted).toBeGreaterThan(50);
    for (const value of [null, undefined, 1, 'text', [full], new Date(), new Map(), Object.assign(Object.create(null), full), { ...full, then: () => 1, catch: () => 1 }])
      expectSame(value);
  });

  it('returns a copy that keeps data by reference, as the schema did', () => {
    const event = JSON.parse(JSON.stringify(full)) as Record<string, unknown>;
    const out = validateEvent(event);
    expect(out).not.toBe(event);
    expect(out.data).toBe(event.data);
  });
});
