import { describe, expect, it } from 'vitest';
import { logEngine, resetFlowModes, runFlipStep, type FlipRequest } from '../../../examples/demo/flip-step.js';
import type { SidecarHandle } from '../../../proxy/sidecar.js';
import { buildReport } from '../../../reports/report.js';
import type { Report } from '../../../reports/types.js';
import type { Bus } from '../../../src/bus/types.js';
import { silentLogger } from '../../../src/logger.js';
import { interleave, syntheticRecords } from '../../reports/synthetic.js';

/** The flip step against a known report: one READY flow, one NOT_READY. */

async function report(): Promise<Report> {
  return buildReport(interleave(syntheticRecords({ flow: 'logistics.ship', samples: 400 }), syntheticRecords({ flow: 'pricing.quote', samples: 400, mismatchRate: 0.05 })), {
    flows: [
      { name: 'pricing.quote', mode: 'shadow', method: 'POST' },
      { name: 'logistics.ship', mode: 'shadow', method: 'POST' },
    ],
    readiness: { minSamples: 200, minParityLowerBound: 0.98, maxMissingRate: 0.001, maxDlqRate: 0.001, maxBusErrorRate: 0.001, maxBusP99Ms: null, largeEventBytes: 65536 },
  });
}

/** A sidecar as far as the flip step looks at it: its agent, flows and their current modes. */
function fakeSidecar(agent: string, flow: string): SidecarHandle & { modes: Map<string, string> } {
  const modes = new Map([[flow, 'shadow']]);
  return {
    modes,
    config: { agent, flows: [{ name: flow, topic: `commands.agent.${agent}.x` }] },
    flows: { get: (name: string) => (modes.has(name) ? { mode: modes.get(name) } : undefined) },
  } as unknown as SidecarHandle & { modes: Map<string, string> };
}

const bus = {} as Bus;

describe('demo flip step', () => {
  it('through the gate and the log, records the READY flip, waits for the sidecar, and shows the refusal', async () => {
    const appended: Array<Record<string, unknown>> = [];
    const sidecar = fakeSidecar('logistics', 'logistics.ship');
    const engine = logEngine({
      append: async (_bus, record) => {
        appended.push({ ...record });
        // The sidecar follows the log and applies the flip.
        sidecar.modes.set(record.flow, record.to);
      },
      read: async () => [],
    });
    const lines: string[] = [];
    const after: string[] = [];
    const result = await runFlipStep({
      report: await report(),
      sidecars: new Map([['logistics.ship', sidecar]]),
      bus,
      out: (l) => lines.push(l),
      logger: silentLogger(),
      who: 'test',
      engine,
      afterFlip: async (flow) => {
        after.push(flow);
        return `traffic over the bus for ${flow}`;
      },
    });
    expect(result).toEqual({ flipped: 'logistics.ship', applied: true, refused: 'pricing.quote', problems: [] });
    expect(appended).toEqual([expect.objectContaining({ flow: 'logistics.ship', from: 'shadow', to: 'bus', who: 'test', forced: false, report: expect.objectContaining({ verdict: 'READY' }) })]);
    expect(after).toEqual(['logistics.ship']);
    const text = lines.join('\n');
    expect(text).toMatch(/the logistics sidecar now serves logistics\.ship over the bus/);
    expect(text).toMatch(/refused \(CUTOVER_FLIP_REFUSED\): flip pricing\.quote shadow -> bus refused/);
  });

  it('reports an engine that lets a NOT_READY flow through, and a sidecar that never applies the flip', async () => {
    const flips: FlipRequest[] = [];
    const result = await runFlipStep({
      report: await report(),
      sidecars: new Map([['logistics.ship', fakeSidecar('logistics', 'logistics.ship')]]),
      bus,
      out: () => undefined,
      logger: silentLogger(),
      who: 'test',
      applyTimeoutMs: 100,
      engine: { flip: async (r) => void flips.push(r) },
    });
    expect(flips.map((f) => f.flow)).toEqual(['logistics.ship', 'pricing.quote']);
    expect(result.applied).toBe(false);
    expect(result.problems).toEqual(['the gate let NOT_READY pricing.quote through']);
  });

  it('resets flows to the modes asked for, reading flows without flips as the sidecars\' config mode (unflipped)', async () => {
    const log: Array<{ flow: string; from: string; to: string }> = [];
    const engine = logEngine({ append: async (_bus, record) => void log.push({ flow: record.flow, from: record.from, to: record.to }), read: async () => [] });
    const flows = [{ name: 'pricing.quote', mode: 'shadow' }, { name: 'fraud-desk.get-task', mode: 'direct' }];
    // Without flips and without unflipped, a flow is taken to be in the mode asked for: nothing to do.
    expect(await resetFlowModes({ bus, flows, who: 'test', reason: 'r', engine })).toEqual([]);
    // Sidecars configured direct (the demo's discovery phase): shadowed flows are flipped, direct ones stay.
    expect(await resetFlowModes({ bus, flows, who: 'test', reason: 'discovery done', engine, unflipped: 'direct' })).toEqual(['pricing.quote']);
    expect(log).toEqual([{ flow: 'pricing.quote', from: 'direct', to: 'shadow' }]);
  });
});
