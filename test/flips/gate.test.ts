import { describe, expect, it } from 'vitest';
import { ErrorCodes } from '../../src/errors.js';
import { decideFlip, isGated } from '../../reports/gate.js';
import { buildReport } from '../../reports/report.js';
import type { FlowReport } from '../../reports/types.js';
import { records, TEST_READINESS } from './fixtures.js';

async function report(n: number, mismatches = 0): Promise<FlowReport> {
  const r = await buildReport(records('orders.create', n, { mismatches }), { flows: [{ name: 'orders.create', mode: 'shadow' }], readiness: TEST_READINESS });
  return r.flows[0]!;
}

function caught(fn: () => unknown): { code?: string; message?: string; details?: Record<string, unknown> } {
  try {
    fn();
  } catch (err) {
    return err as { code: string };
  }
  throw new Error('expected a throw');
}

describe('decideFlip', () => {
  it('refuses a flow whose bus side regressed after a READY history, naming the change', async () => {
    const start = Date.parse('2025-03-01T10:00:00Z');
    const history = records('orders.create', 3000).map((r, i) => ({ ...r, at: new Date(start + i * 20).toISOString() }));
    const regressed = records('orders.create', 150).map((r, i) => ({ ...r, at: new Date(start + 60_000 + i * 20).toISOString(), outcome: i % 8 === 0 ? ('mismatch' as const) : r.outcome }));
    const readiness = { ...TEST_READINESS, minSamples: 500, minParityLowerBound: 0.99 };
    const before = (await buildReport(history, { flows: [{ name: 'orders.create', mode: 'shadow' }], readiness })).flows[0]!;
    expect(decideFlip({ flow: 'orders.create', from: 'shadow', to: 'bus', report: before }).action).toBe('flip');
    const now = (await buildReport([...history, ...regressed], { flows: [{ name: 'orders.create', mode: 'shadow' }], readiness })).flows[0]!;
    const err = caught(() => decideFlip({ flow: 'orders.create', from: 'shadow', to: 'bus', report: now }));
    expect(err.code).toBe(ErrorCodes.FLIP_REFUSED);
    expect(err.message).toMatch(/refused: verdict NOT_READY since its parity changed at 2025-03-01T10:0\d/);
    expect(err.message).toMatch(/since the change at .*parity 8\d\.\d+%/);
  });

  it('allows a flip towards the bus when the verdict is READY and records the evidence', async () => {
    const d = decideFlip({ flow: 'orders.create', from: 'shadow', to: 'canary:10', report: await report(50) });
    expect(d).toMatchObject({ action: 'flip', to: 'canary:10', gated: true, forced: false });
    expect(d.summary).toMatchObject({ verdict: 'READY', samples: 50, parity: 1, reasons: [] });
    expect(d.summary!.parityLowerBound).toBeGreaterThan(0.8);
  });

  it('refuses NOT_READY with CUTOVER_FLIP_REFUSED listing the reasons', async () => {
    const r = await report(50, 20);
    expect(r.verdict.status).toBe('NOT_READY');
    const err = caught(() => decideFlip({ flow: 'orders.create', from: 'shadow', to: 'bus', report: r }));
    expect(err.code).toBe(ErrorCodes.FLIP_REFUSED);
    expect(err.message).toContain('minParityLowerBound (fail)');
    expect(err.message).toContain('threshold 0.8');
    expect(err.message).toMatch(/measured 0\.\d+/);
    expect(err.details).toMatchObject({ verdict: 'NOT_READY', from: 'shadow', to: 'bus' });
  });

  it('refuses INSUFFICIENT_DATA too (too few samples is never READY)', async () => {
    const r = await report(5);
    const e = caught(() => decideFlip({ flow: 'orders.create', from: 'shadow', to: 'canary:5', report: r }));
    expect(e.code).toBe(ErrorCodes.FLIP_REFUSED);
    expect(e.message).toContain('minSamples (insufficient): 5 samples');
  });

  it('refuses a gated flip that has no report at all', () => {
    expect(caught(() => decideFlip({ flow: 'x', from: 'shadow', to: 'bus' })).code).toBe(ErrorCodes.FLIP_REFUSED);
  });

  it('--force needs a non-empty reason (usage error), and with one goes through marked forced', async () => {
    const r = await report(50, 20);
    expect(caught(() => decideFlip({ flow: 'orders.create', from: 'shadow', to: 'bus', report: r, force: true })).code).toBe(ErrorCodes.USAGE);
    expect(caught(() => decideFlip({ flow: 'orders.create', from: 'shadow', to: 'bus', report: r, force: true, reason: '   ' })).code).toBe(ErrorCodes.USAGE);
    const d = decideFlip({ flow: 'orders.create', from: 'shadow', to: 'bus', report: r, force: true, reason: 'incident 42: callee is down' });
    expect(d).toMatchObject({ action: 'flip', forced: true, gated: true });
    expect(d.summary!.verdict).toBe('NOT_READY');
  });

  it('always allows a flip back towards direct, whatever the verdict', async () => {
    const bad = await report(50, 40);
    for (const [from, to] of [['bus', 'direct'], ['bus', 'canary:10'], ['canary:50', 'canary:10'], ['canary:10', 'shadow'], ['shadow', 'direct']] as const) {
      expect(decideFlip({ flow: 'orders.create', from, to, report: bad })).toMatchObject({ action: 'flip', gated: false, forced: false });
      expect(decideFlip({ flow: 'orders.create', from, to })).toMatchObject({ action: 'flip', gated: false });
    }
  });

  it('always allows direct -> shadow (it only observes; evidence comes from shadowing)', () => {
    expect(isGated('direct', 'shadow')).toBe(false);
    expect(decideFlip({ flow: 'orders.create', from: 'direct', to: 'shadow' })).toMatchObject({ action: 'flip', gated: false, summary: null });
    // Skipping shadow is gated.
    expect(isGated('direct', 'canary:1')).toBe(true);
    expect(caught(() => decideFlip({ flow: 'orders.create', from: 'direct', to: 'canary:1' })).code).toBe(ErrorCodes.FLIP_REFUSED);
  });

  it('same mode is a no-op; an invalid mode is a usage error naming the allowed forms', () => {
    expect(decideFlip({ flow: 'orders.create', from: 'canary:10', to: 'canary:10' })).toMatchObject({ action: 'noop' });
    for (const bad of ['canary:0', 'canary:100', 'Bus', 'canary', 'kafka']) {
      const e = caught(() => decideFlip({ flow: 'orders.create', from: 'shadow', to: bad }));
      expect(e.code).toBe(ErrorCodes.USAGE);
      expect(e.message).toContain('expected direct, shadow, canary:<1-99> or bus');
    }
  });
});
