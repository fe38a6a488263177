import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { start as startInventory } from '../../examples/agents/inventory.js';
import { buildReportForConfig, ErrorCodes, loadConfig, openBus, parseConfig, renderJson, startSidecar, type CutoverConfigInput } from '../../proxy/index.js';
import { buildEvent } from '../../src/events/cloudevent.js';
import { PARITY_EVENT_TYPE, PARITY_TOPIC } from '../../src/parity/types.js';
import { request } from '../helpers/http.js';
import { syntheticRecords } from '../reports/synthetic.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'cutover-api-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const flows: CutoverConfigInput['flows'] = [
  { name: 'inventory.reserve', match: { method: 'POST', path: '/reservations' }, topic: 'commands.agent.inventory.reserve', key: 'body.sku', mode: 'shadow' },
  { name: 'inventory.stock', match: { method: 'GET', path: '/stock/:sku' }, topic: 'commands.agent.inventory.stock', mode: 'shadow' },
];

describe('the programmatic API (proxy/index.ts)', () => {
  it('startSidecar takes a config file path and returns a handle that forwards and closes', async () => {
    const dir = await tempDir();
    const agent = await startInventory();
    cleanups.push(() => agent.close());
    const file = path.join(dir, 'cutover.yaml');
    const config = { agent: 'inventory', listen: '127.0.0.1:0', upstream: agent.url, admin: { listen: '127.0.0.1:0', auth: false }, bus: { kind: 'embedded', path: path.join(dir, 'bus.db') }, dataDir: dir, flows };
    await writeFile(file, JSON.stringify(config));
    const sidecar = await startSidecar(file);
    cleanups.push(() => sidecar.close());
    const res = await request(sidecar.data.url, { method: 'POST', path: '/reservations', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ sku: 'SKU-RED-MUG', qty: 1 }) });
    expect(res.status).toBe(201);
    expect(sidecar.config.flows.map((f) => f.name)).toEqual(['inventory.reserve', 'inventory.stock']);
    await sidecar.close();
    await sidecar.close();
    expect(sidecar.spoolDepth()).toBe(0);
  });

  it('config errors are ConfigErrors with codes and paths, for files and objects', async () => {
    expect(() => loadConfig('/nonexistent/cutover.yaml')).toThrow(expect.objectContaining({ code: ErrorCodes.CONFIG_NOT_FOUND }));
    expect(() => parseConfig({ agent: 'inventory', admin: { auth: false }, flows: [{ name: 'x', match: { method: 'POST', path: 'no-slash' }, topic: 'commands.agent.x.y' }] })).toThrow(
      expect.objectContaining({ code: ErrorCodes.CONFIG_INVALID, issues: [expect.stringMatching(/^flows\[0\]\.match\.path: /)] }),
    );
    await expect(startSidecar({ agent: 'inventory' })).rejects.toMatchObject({ code: ErrorCodes.CONFIG_INVALID, issues: expect.arrayContaining([expect.stringMatching(/^upstream: /)]) });
  });

  it('buildReportForConfig reports the chosen flows from the parity records on the config bus', async () => {
    const dir = await tempDir();
    const config = { agent: 'inventory', bus: { kind: 'embedded' as const, path: path.join(dir, 'bus.db') }, admin: { auth: false }, readiness: { minSamples: 5 }, flows };
    const bus = await openBus(config.bus);
    const parity = [...syntheticRecords({ flow: 'inventory.reserve', samples: 8 })];
    await bus.publish(PARITY_TOPIC, parity.map((r) => ({ key: r.flow, event: buildEvent({ source: '/test', type: PARITY_EVENT_TYPE, data: r }) })));
    await bus.close();

    const report = await buildReportForConfig(config, { flows: ['inventory.reserve'] });
    expect(report.flows.map((f) => [f.flow, f.mode, f.samples])).toEqual([['inventory.reserve', 'shadow', 8]]);
    expect(JSON.parse(renderJson(report)).flows[0].verdict.status).toBe(report.flows[0]!.verdict.status);
    await expect(buildReportForConfig(config, { flows: ['nope'] })).rejects.toMatchObject({ code: ErrorCodes.FLOW_UNKNOWN });
  });
});
