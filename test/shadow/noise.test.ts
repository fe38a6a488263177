import { describe, expect, it } from 'vitest';
import { buildObservationMessage } from '../../proxy/call-event.js';
import { encodeBody as sidecarEncodeBody } from '../../src/events/body.js';
import { encodeBody } from '../../src/events/body.js';
import { shouldSampleNoise, toNoiseObservation } from '../../shadow/noise.js';
import { ObservationTypes } from '../../src/events/wire.js';

describe('noise sampling (for the sidecar)', () => {
  it('samples only safe methods, at the configured share', () => {
    expect(shouldSampleNoise({ sample: 1 }, 'GET')).toBe(true);
    expect(shouldSampleNoise({ sample: 1 }, 'head')).toBe(true);
    expect(shouldSampleNoise({ sample: 1 }, 'POST')).toBe(false);
    expect(shouldSampleNoise({ sample: 1 }, 'DELETE')).toBe(false);
    expect(shouldSampleNoise(undefined, 'GET')).toBe(false);
    expect(shouldSampleNoise({ sample: 0 }, 'GET')).toBe(false);
    expect(shouldSampleNoise({ sample: 0.05 }, 'GET', () => 0.049)).toBe(true);
    expect(shouldSampleNoise({ sample: 0.05 }, 'GET', () => 0.05)).toBe(false);
    let n = 0;
    let x = 0;
    const lcg = (): number => (x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let i = 0; i < 10_000; i++) if (shouldSampleNoise({ sample: 0.05 }, 'GET', lcg)) n += 1;
    expect(n).toBeGreaterThan(400);
    expect(n).toBeLessThan(600);
  });

  it("turns the sidecar's direct observation of the second call into the noise observation", () => {
    const direct = buildObservationMessage({
      agent: 'inventory',
      flow: { name: 'inventory.stock', schemaVersion: '1', mode: 'shadow' },
      correlationId: 'c-1',
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      data: { status: 200, headers: {}, body: { a: 1 }, latencyMs: 1 },
    });
    const noise = toNoiseObservation(direct);
    expect(noise.key).toBe('c-1');
    expect(noise.event).toMatchObject({ type: ObservationTypes.noise, correlationid: 'c-1', cutoverflow: 'inventory.stock', data: { body: { a: 1 } } });
    expect(noise.event.id).not.toBe(direct.event.id);
    expect(direct.event.type).toBe(ObservationTypes.direct);
  });
});

describe('body encoding', () => {
  it('encodes bodies exactly as the sidecar does, so both sides compare alike', () => {
    const cases: Array<[string, string | undefined]> = [
      ['{"a":1}', 'application/json'],
      ['{"a":1}', undefined],
      ['{bad json', 'application/json'],
      ['hello', 'text/plain'],
      ['\u00ff\u0000binary', 'application/octet-stream'],
      ['', 'application/json'],
      ['[1,2]', 'application/problem+json'],
    ];
    for (const [text, ct] of cases) expect(encodeBody(Buffer.from(text, 'latin1'), ct)).toEqual(sidecarEncodeBody(Buffer.from(text, 'latin1'), ct));
  });
});
