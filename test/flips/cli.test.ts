import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { createBus } from '../../src/bus/index.js';
import { buildEvent } from '../../src/events/cloudevent.js';
import { PARITY_EVENT_TYPE, PARITY_TOPIC } from '../../src/parity/types.js';
import { busTargets, cli, records, writeConfig } from './fixtures.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
});

/** A config on a fresh embedded bus with one NOT_READY flow (in shadow) and one READY flow. */
async function setup(): Promise<string> {
  const { config: bus, dir, cleanup } = await busTargets[0]!.setup(randomUUID());
  cleanups.push(cleanup);
  const file = await writeConfig(dir, 'cutover.json', { bus, flows: [{ name: 'orders.create', mode: 'shadow' }, { name: 'stock.check', mode: 'shadow' }] });
  const b = await createBus(bus);
  await b.start();
  const recs = [...records('orders.create', 50, { mismatches: 20 }), ...records('stock.check', 40)];
  await b.publish(PARITY_TOPIC, recs.map((r) => ({ key: r.flow, event: buildEvent({ source: '/test', type: PARITY_EVENT_TYPE, data: r }) })));
  await b.close();
  return file;
}

describe('cutover flip | status | history', () => {
  it('refuses a NOT_READY flip (exit 1) with its reasons; --force --reason goes through and shows in history', async () => {
    const file = await setup();
    const refused = await cli('flip', 'orders.create', '--to', 'canary:10', '--config', file);
    expect(refused.code).toBe(1);
    expect(refused.err).toContain('CUTOVER_FLIP_REFUSED');
    expect(refused.err).toContain('verdict NOT_READY');
    expect(refused.err).toMatch(/minParityLowerBound \(fail\): parity 60%.*\[measured 0\.\d+, threshold 0\.8\]/);

    const noReason = await cli('flip', 'orders.create', '--to', 'canary:10', '--force', '--config', file);
    expect(noReason.code).toBe(2);
    expect(noReason.err).toContain('CUTOVER_USAGE');

    const forced = await cli('flip', 'orders.create', '--to', 'canary:10', '--force', '--reason', 'partner deadline, owner approved', '--who', 'carol', '--config', file);
    expect(forced.code).toBe(0);
    expect(forced.out).toContain('flipped orders.create: shadow -> canary:10');
    expect(forced.out).toContain('FORCED past a NOT_READY verdict; reason: partner deadline, owner approved');

    const history = await cli('history', 'orders.create', '--config', file);
    expect(history.code).toBe(0);
    expect(history.out).toMatch(/shadow -> canary:10 {2}by carol {2}FORCED {2}reason: partner deadline, owner approved \[NOT_READY, 50 samples, parity 60%\]/);

    const json = JSON.parse((await cli('history', 'orders.create', '--json', '--config', file)).out) as Array<Record<string, unknown>>;
    expect(json).toHaveLength(1);
    expect(json[0]).toMatchObject({ flow: 'orders.create', from: 'shadow', to: 'canary:10', who: 'carol', forced: true, reason: 'partner deadline, owner approved', report: { verdict: 'NOT_READY' } });
  });

  it('flips a READY flow, rolls back at once, no-ops the same mode, and status shows modes from the log', async () => {
    const file = await setup();
    expect((await cli('flip', 'stock.check', '--to', 'canary:25', '--config', file)).code).toBe(0);
    const same = await cli('flip', 'stock.check', '--to', 'canary:25', '--config', file);
    expect(same).toMatchObject({ code: 0 });
    expect(same.out).toContain('already in canary:25');
    const back = await cli('flip', 'orders.create', '--to', 'direct', '--config', file);
    expect(back.code).toBe(0);
    expect(back.out).toContain('shadow -> direct');

    const status = await cli('status', '--config', file);
    expect(status.code).toBe(0);
    const lines = status.out.split('\n');
    expect(lines[0]).toMatch(/^FLOW\s+MODE\s+VERDICT\s+SAMPLES\s+PARITY/);
    expect(lines.find((l) => l.startsWith('orders.create'))).toMatch(/orders\.create\s+direct\s+NOT_READY\s+50\s+60%/);
    expect(lines.find((l) => l.startsWith('stock.check'))).toMatch(/stock\.check\s+canary:25\s+READY\s+40\s+100%/);

    const report = await cli('report', '--config', file, '--format', 'json');
    expect(report.code).toBe(1);
    const flows = (JSON.parse(report.out) as { flows: Array<{ flow: string; mode: string }> }).flows;
    expect(flows.map((f) => [f.flow, f.mode])).toEqual([
      ['orders.create', 'direct'],
      ['stock.check', 'canary:25'],
    ]);
  });

  it('usage and config errors exit 2', async () => {
    const file = await setup();
    for (const argv of [
      ['flip', 'orders.create', '--to', 'canary:0', '--config', file],
      ['flip', 'nope', '--to', 'bus', '--config', file],
      ['flip', 'orders.create', '--config', file],
      ['flip', '--to', 'bus', '--config', file],
      ['flip', 'orders.create', '--to', 'bus'],
      ['flip', 'orders.create', '--to', 'bus', '--config', '/does/not/exist.yaml'],
      ['history', '--config', file],
      ['status'],
    ]) {
      const r = await cli(...argv);
      expect(r.code, argv.join(' ')).toBe(2);
    }
    expect((await cli('flip', 'orders.create', '--to', 'canary:0', '--config', file)).err).toContain('expected direct, shadow, canary:<1-99> or bus');
    expect((await cli('flip', 'nope', '--to', 'bus', '--config', file)).err).toContain('CUTOVER_FLOW_UNKNOWN');
  });

  it('lists the new commands in the usage text', async () => {
    const r = await cli('help');
    for (const c of ['flip FLOW --to MODE', 'status --config', 'history FLOW', 'report --config', 'shadow --config']) expect(r.out).toContain(c);
  });
});
