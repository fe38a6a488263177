import { readFileSync } from 'node:fs';
import path from 'node:path';
import ajv2020 from 'ajv/dist/2020.js';
import ajvFormats from 'ajv-formats';
import { describe, expect, it } from 'vitest';
import { buildReport } from '../../reports/report.js';
import { renderHtml } from '../../reports/render-html.js';
import { renderJson } from '../../reports/render-json.js';
import { renderMarkdown } from '../../reports/render-md.js';
import { renderText } from '../../reports/render-text.js';
import { READINESS_DEFAULTS } from '../../src/config/readiness.js';
import type { ParityRecord, SagaSummary } from '../../src/parity/types.js';

const schema = JSON.parse(readFileSync(path.resolve(import.meta.dirname, '../../docs/report-schema.json'), 'utf8')) as object;

const completed = (latency: number): SagaSummary => ({
  name: 'order',
  status: 'completed',
  steps: [
    { name: 'reserve', outcome: 'succeeded', latencyMs: latency },
    { name: 'pay', outcome: 'succeeded', latencyMs: latency * 2 },
  ],
});
const refusedAtPay: SagaSummary = {
  name: 'order',
  status: 'compensated',
  failedStep: 'pay',
  failureCode: 'CUTOVER_SAGA_STEP_REFUSED',
  steps: [
    { name: 'reserve', outcome: 'succeeded', latencyMs: 4, compensation: 'compensated' },
    { name: 'pay', outcome: 'refused', latencyMs: 6 },
  ],
};

function records(mismatches: number): ParityRecord[] {
  return Array.from({ length: 40 }, (_, i) => {
    const at = new Date(Date.UTC(2026, 11, 7, 1, 0, i)).toISOString();
    const bad = i % 2 === 0 && i / 2 < mismatches; // spread out: a block of mismatches would be read as a change point
    return {
      v: 1,
      flow: 'orders.place',
      correlationId: `c-${i}`,
      outcome: bad ? 'mismatch' : 'match',
      at,
      mode: 'shadow',
      diffs: bad ? [{ path: '/status', kind: 'changed', direct: 201, bus: 402 }] : [],
      directStatus: 201,
      busStatus: bad ? 402 : 201,
      busLatencyMs: 20,
      saga: bad ? refusedAtPay : completed(i + 1),
    };
  });
}

const readiness = { ...READINESS_DEFAULTS, minSamples: 40, minParityLowerBound: 0.8 };

describe('saga flows in the report', () => {
  it('counts how sagas ended, where they failed, what was undone and each step latency', async () => {
    const report = await buildReport(records(0), { flows: [{ name: 'orders.place', mode: 'shadow' }], readiness });
    const saga = report.flows[0]!.saga!;
    expect(saga.ended).toEqual({ completed: 40, compensated: 0, stuck: 0 });
    expect(saga.steps.map((s) => [s.name, s.refused, s.compensated, s.latency?.count, s.latency?.max])).toEqual([
      ['reserve', 0, 0, 40, 40],
      ['pay', 0, 0, 40, 80],
    ]);
    expect(saga.mismatchSteps).toEqual([]);
    expect(report.flows[0]!.verdict.status).toBe('READY');
  });

  it('names the saga step a mismatch comes from in the verdict and every format, and the JSON validates', async () => {
    const report = await buildReport(records(20), { flows: [{ name: 'orders.place', mode: 'shadow' }], readiness });
    const flow = report.flows[0]!;
    expect(flow.verdict.status).toBe('NOT_READY');
    expect(flow.saga!.mismatchSteps).toEqual([{ step: 'pay', count: 20 }]);
    expect(flow.saga!.steps[0]).toMatchObject({ name: 'reserve', compensated: 20 });
    expect(flow.verdict.reasons.find((r) => r.criterion === 'minParityLowerBound')!.message).toContain('mismatches at saga order step pay (20)');
    expect(renderText(report, { colour: false })).toContain('saga order: 20 completed, 20 compensated, 0 stuck; mismatches at step pay (20)');
    expect(renderMarkdown(report)).toContain('| reserve | 0 | 0 | 20 | 0 |');
    expect(renderHtml(report)).toContain('mismatches at step pay (20)');
    const Ajv2020 = ajv2020.default;
    const ajv = new Ajv2020({ allErrors: true, strict: true });
    ajvFormats.default(ajv);
    const validate = ajv.compile(schema);
    expect(validate(JSON.parse(renderJson(report)))).toBe(true);
    expect(validate.errors ?? []).toEqual([]);
  });

  it('flows without sagas have saga null', async () => {
    const plain = records(0).map(({ saga: _saga, ...r }) => r);
    const report = await buildReport(plain, { flows: [{ name: 'orders.place', mode: 'shadow' }], readiness });
    expect(report.flows[0]!.saga).toBeNull();
  });
});
