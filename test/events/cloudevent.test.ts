import { CloudEvent as SdkCloudEvent } from 'cloudevents';
import { describe, expect, it } from 'vitest';
import { buildEvent, isTraceparent, newTraceparent, parseEvent, schemaMajor, serializeEvent } from '../../src/events/cloudevent.js';
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
