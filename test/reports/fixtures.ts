import type { ParityRecord } from '../../src/parity/types.js';
import { buildReport } from '../../reports/report.js';
import type { Report } from '../../reports/types.js';
import { interleave, syntheticRecords } from './synthetic.js';

/** Values from the wire that try to break out of every output format. */
export const HOSTILE = {
  html: '<img src="http://example.invalid/pixel.png"><script src="http://example.invalid/x.js"></script>',
  ansi: '\x1b[31mRED\x1b[0m\x1b]0;title\x07',
  md: '| pipe | `tick` ``` fence *bold* [link](http://example.invalid)',
};

function hostileRecords(): ParityRecord[] {
  return Array.from({ length: 30 }, (_, i) => ({
    v: 1 as const,
    flow: 'pricing.quote',
    correlationId: `q-${i}${HOSTILE.ansi}`,
    outcome: 'mismatch' as const,
    at: new Date(Date.parse('2025-03-01T10:00:00Z') + i * 7000).toISOString(),
    mode: 'shadow',
    diffs: [
      { path: '/body/total', kind: 'changed' as const, direct: 12.5, bus: HOSTILE.html },
      { path: `/body/note`, kind: 'extra' as const, bus: HOSTILE.md },
    ],
    directLatencyMs: 20 + i,
    busLatencyMs: 60 + i * 2,
    busLagMs: 3,
    request: {
      method: 'POST',
      target: "/quote?sku=A'1&x=$(id)",
      headers: { 'content-type': 'application/json', authorization: 'Bearer nope' },
      body: `{"sku":"A'1","note":"${HOSTILE.html}\\n"}\n${HOSTILE.ansi}`,
    },
  }));
}

/** Three flows, one per verdict, with hostile diff values on the NOT_READY one. */
export async function sampleReport(): Promise<Report> {
  const records = interleave(
    syntheticRecords({ flow: 'inventory.reserve', samples: 6000, mismatchRate: 0, stepMs: 900 }),
    syntheticRecords({ flow: 'pricing.quote', samples: 4000, mismatchRate: 0.006, missingBusRate: 0.0025, dlqRate: 0.0013, stepMs: 1300, eventBytes: 150_000 }),
    hostileRecords(),
    syntheticRecords({ flow: 'catalog.lookup', samples: 120, method: 'GET', stepMs: 40_000 }),
  );
  return buildReport(records, {
    flows: [
      { name: 'inventory.reserve', mode: 'shadow', method: 'POST', topic: 'commands.agent.inventory.reserve' },
      { name: 'pricing.quote', mode: 'shadow', method: 'POST', topic: 'commands.agent.pricing.quote', readiness: { maxBusP99Ms: 500 } },
      { name: 'catalog.lookup', mode: 'direct', method: 'GET', topic: 'commands.agent.catalog.lookup' },
    ],
    now: new Date('2025-03-01T12:00:00Z'),
  });
}
