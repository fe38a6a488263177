import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBus } from '../../src/bus/index.js';
import type { Bus } from '../../src/bus/types.js';
import { buildEvent } from '../../src/events/cloudevent.js';
import { silentLogger } from '../../src/logger.js';
import { PARITY_EVENT_TYPE, PARITY_TOPIC, type ParityRecord } from '../../src/parity/types.js';
import { reportCommand } from '../../bin/commands/report.js';
import type { CommandDeps } from '../../bin/io.js';
import { appendFlip } from '../../src/flips/log.js';
import type { Report } from '../../reports/types.js';
import { interleave, syntheticRecords } from './synthetic.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'cutover-report-cli-'));
const busPath = path.join(dir, 'bus.db');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const NOW = new Date('2025-03-01T12:00:00Z');
const deps: CommandDeps = { logger: silentLogger(), now: () => NOW, env: {} };

function capture(isTTY = false) {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (s: string) => void out.push(s), err: (s: string) => void err.push(s), isTTY }, out, err };
}

function configFile(name: string, extra = ''): string {
  const file = path.join(dir, name);
  writeFileSync(
    file,
    `agent: shop
admin: { auth: false }
listen: 0.0.0.0:18080
bus: { kind: embedded, path: ${JSON.stringify(busPath)} }
readiness:
  minSamples: 1000
flows:
  - name: inventory.reserve
    match: { method: POST, path: /stock/reserve }
    topic: commands.agent.inventory.reserve
    mode: shadow
  - name: pricing.quote
    match: { method: POST, path: /quote }
    topic: commands.agent.pricing.quote
    mode: shadow
  - name: catalog.lookup
    match: { method: GET, path: /catalog/:sku }
    topic: commands.agent.catalog.lookup
    readiness: { minSamples: 10, minParityLowerBound: 0.75 }
${extra}`,
  );
  return file;
}

/**
 * The real embedded bus (SQLite) carries the parity records: READY inventory.reserve (5,000 perfect
 * matches at 10:00-10:50), NOT_READY pricing.quote (1% mismatches), and catalog.lookup whose 50 records
 * (10:00-11:38) meet its relaxed per-flow criteria.
 */
beforeAll(async () => {
  const bus: Bus = await createBus({ kind: 'embedded', path: busPath }, { logger: silentLogger() });
  await bus.start();
  try {
    const records: ParityRecord[] = [
      ...interleave(
        syntheticRecords({ flow: 'inventory.reserve', samples: 5000, stepMs: 600 }),
        syntheticRecords({ flow: 'pricing.quote', samples: 5000, mismatchRate: 0.01, stepMs: 600 }),
        syntheticRecords({ flow: 'catalog.lookup', samples: 50, method: 'GET', stepMs: 120_000 }),
      ),
    ];
    const batch = 500;
    for (let i = 0; i < records.length; i += batch) {
      await bus.publish(
        PARITY_TOPIC,
        records.slice(i, i + batch).map((r) => ({ key: r.flow, event: buildEvent({ source: '/agents/comparator', type: PARITY_EVENT_TYPE, data: r, correlationid: r.correlationId }) })),
      );
    }
    // Not a parity record: counted and skipped, never fatal.
    await bus.publish(PARITY_TOPIC, [{ key: null, event: buildEvent({ source: '/agents/x', type: 'something.else', data: { hello: 1 } }) }]);
  } finally {
    await bus.close();
  }
});

describe('cutover report (reportCommand) over the embedded bus', () => {
  it('exits 1 when any flow is NOT_READY, printing a table without colour when not on a TTY', async () => {
    const c = capture(false);
    expect(await reportCommand(['--config', configFile('all.yaml')], c.io, deps)).toBe(1);
    const text = c.out.join('\n');
    expect(text).not.toContain('\x1b');
    expect(text).toMatch(/^inventory\.reserve\s+shadow\s+5,000\s+100%.*READY$/m);
    expect(text).toMatch(/^pricing\.quote\s+shadow\s+5,000\s+99%.*NOT_READY$/m);
    expect(text).toMatch(/^catalog\.lookup\s+direct\s+50\s+100%.*READY$/m);
    expect(text).toContain('records: 10,051 read, 10,050 used');
    // Example curls point at the sidecar's listen address, wildcard replaced by loopback.
    expect(text).toContain("curl -sS -g -X POST 'http://127.0.0.1:18080/stock/reserve?n=");
  });

  it('exits 0 when every selected flow is READY', async () => {
    const c = capture();
    expect(await reportCommand(['--config', configFile('all.yaml'), '--flow', 'inventory.reserve', '--flow', 'catalog.lookup'], c.io, deps)).toBe(0);
  });

  it('exits 3 when a flow lacks data and none is NOT_READY (--since leaves too few records)', async () => {
    const c = capture();
    // Only records from 11:10 on: inventory.reserve has none left, catalog.lookup keeps 15.
    expect(await reportCommand(['--config', configFile('all.yaml'), '--flow', 'inventory.reserve', '--flow', 'catalog.lookup', '--since', '50m', '--format', 'json'], c.io, deps)).toBe(3);
    const report = JSON.parse(c.out.join('\n')) as Report;
    expect(report.since).toBe('2025-03-01T11:10:00.000Z');
    expect(report.flows.map((f) => [f.flow, f.samples, f.verdict.status])).toEqual([
      ['inventory.reserve', 0, 'INSUFFICIENT_DATA'],
      ['catalog.lookup', 15, 'READY'],
    ]);
    expect(report.input).toMatchObject({ read: 10_051, invalid: 1, otherFlows: 5000 });
  });

  it('applies per-flow readiness overrides from the config', async () => {
    const c = capture();
    await reportCommand(['--config', configFile('all.yaml'), '--flow', 'catalog.lookup', '--format', 'json'], c.io, deps);
    const report = JSON.parse(c.out.join('\n')) as Report;
    expect(report.flows[0]!.criteria).toMatchObject({ minSamples: 10, minParityLowerBound: 0.75, maxMissingRate: 0.001 });
    expect(report.flows[0]!.mode).toBe('direct');
    expect(report.flows[0]!.verdict.advice.map((a) => a.code)).toContain('keep-on-rest');
  });

  it('takes the current mode from the flip log', async () => {
    const bus = await createBus({ kind: 'embedded', path: busPath }, { logger: silentLogger() });
    await bus.start();
    try {
      await appendFlip(bus, { flow: 'catalog.lookup', from: 'direct', to: 'canary:10', at: NOW.toISOString(), who: 'test', reason: null, forced: false, report: null });
    } finally {
      await bus.close();
    }
    const c = capture();
    await reportCommand(['--config', configFile('all.yaml'), '--flow', 'catalog.lookup', '--format', 'json'], c.io, deps);
    const flow = (JSON.parse(c.out.join('\n')) as Report).flows[0]!;
    expect(flow.mode).toBe('canary:10');
    expect(flow.lastFlip).toEqual({ at: NOW.toISOString(), from: 'direct', to: 'canary:10', who: 'test', reason: null, forced: false, automatic: false });
  });

  it('writes md and html to --out and says where', async () => {
    for (const format of ['md', 'html'] as const) {
      const c = capture();
      const out = path.join(dir, `report.${format}`);
      expect(await reportCommand(['--config', configFile('all.yaml'), '--format', format, '--out', out], c.io, deps)).toBe(1);
      expect(c.out).toEqual([`wrote ${format} report to ${out}: NOT_READY (2 ready, 1 not ready, 0 insufficient data)`]);
      const content = readFileSync(out, 'utf8');
      expect(content).toContain('pricing.quote');
      if (format === 'html') expect(content).toMatch(/^<!doctype html>/);
    }
  });

  it('colours only on a TTY and honours NO_COLOR', async () => {
    const tty = capture(true);
    await reportCommand(['--config', configFile('all.yaml')], tty.io, deps);
    expect(tty.out.join('\n')).toContain('\x1b[31mNOT_READY');
    const noColour = capture(true);
    await reportCommand(['--config', configFile('all.yaml')], noColour.io, { ...deps, env: { NO_COLOR: '1' } });
    expect(noColour.out.join('\n')).not.toContain('\x1b');
  });
});

describe('cutover report usage and config errors', () => {
  const usage = { code: 'CUTOVER_USAGE' };
  it.each([
    [[]],
    [['--config']],
    [['--config', 'x.yaml', '--format', 'pdf']],
    [['--config', 'x.yaml', '--since', 'yesterday']],
    [['--config', 'x.yaml', '--nope']],
    [['--config', 'x.yaml', 'positional']],
  ])('rejects %j as a usage error', async (argv) => {
    await expect(reportCommand(argv, capture().io, deps)).rejects.toMatchObject(usage);
  });

  it('names an unknown flow and the flows the config declares', async () => {
    await expect(reportCommand(['--config', configFile('all.yaml'), '--flow', 'nope'], capture().io, deps)).rejects.toMatchObject({
      code: 'CUTOVER_USAGE',
      message: expect.stringContaining('unknown flow "nope" (the config declares inventory.reserve, pricing.quote, catalog.lookup)'),
    });
  });

  it('reports bad readiness keys with their paths, together with other config problems', async () => {
    const file = path.join(dir, 'bad.yaml');
    writeFileSync(
      file,
      `agent: shop
admin: { auth: false }
readiness: { minParityLowerBound: 2, typo: 1 }
flows:
  - name: a.b
    match: { method: POST, path: nope }
    topic: commands.agent.shop.a
    readiness: { maxBusP99Ms: -5 }
`,
    );
    await expect(reportCommand(['--config', file], capture().io, deps)).rejects.toMatchObject({
      code: 'CUTOVER_CONFIG_INVALID',
      issues: expect.arrayContaining([
        'readiness.minParityLowerBound: expected a rate between 0 and 1',
        'readiness.typo: unknown key',
        'flows[0].readiness.maxBusP99Ms: expected a positive number of milliseconds',
        expect.stringMatching(/^flows\[0\]\.match\.path: expected a path starting with \//),
      ]),
    });
  });

  it('refuses a config without flows instead of passing vacuously', async () => {
    const file = path.join(dir, 'empty.yaml');
    writeFileSync(file, 'agent: shop\nadmin: { auth: false }\n');
    await expect(reportCommand(['--config', file], capture().io, deps)).rejects.toMatchObject({ code: 'CUTOVER_USAGE', message: expect.stringContaining('declares no flows') });
  });

  it('names a missing config file', async () => {
    await expect(reportCommand(['--config', path.join(dir, 'absent.yaml')], capture().io, deps)).rejects.toMatchObject({ code: 'CUTOVER_CONFIG_NOT_FOUND' });
  });
});
