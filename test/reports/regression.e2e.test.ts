import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { flipFlow } from '../../proxy/flip-control.js';
import { startSidecar, type SidecarHandle } from '../../proxy/sidecar.js';
import { buildReport, parityRecordsFromBus, reportFlowsFromConfig } from '../../reports/report.js';
import type { FlowReport } from '../../reports/types.js';
import { openBus } from '../../src/bus/index.js';
import type { Bus } from '../../src/bus/types.js';
import { sidecarConfigSchema } from '../../src/config/schema.js';
import { createRegistry } from '../../src/metrics.js';
import { waitFor } from '../helpers/wait-for.js';

/**
 * A false READY after a regression, end to end on the embedded bus: a GET flow in shadow with the sidecar's
 * in-process replay consumer and comparator. The shadow agent matches the direct one for 3,000 calls (READY),
 * then is "redeployed" with a bug that answers another price on one call in ten. Within 150 calls of the
 * regression the flow must no longer be READY, and a flip to the bus must be refused naming the change.
 */

interface Agent {
  url: string;
  close: () => Promise<void>;
  buggy: boolean;
}

async function priceAgent(): Promise<Agent> {
  let n = 0;
  const agent: Agent = { url: '', buggy: false, close: async () => undefined };
  const server = http.createServer((req, res) => {
    const sku = (req.url ?? '').split('/').pop() ?? '';
    const wrong = agent.buggy && n++ % 10 === 0;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ sku, price: wrong ? 13.37 : 12.5 }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  agent.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  agent.close = () => new Promise<void>((r) => server.close(() => r()));
  return agent;
}

async function calls(base: string, from: number, count: number): Promise<void> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  let next = from;
  const worker = async (): Promise<void> => {
    while (next < from + count) {
      const i = next++;
      await new Promise<void>((resolve, reject) => {
        http.get(`${base}/prices/sku-${i}`, { agent }, (res) => {
          res.resume();
          res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`status ${res.statusCode}`))));
        }).on('error', reject);
      });
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  agent.destroy();
}

describe('a regression of the bus side after a READY history (embedded bus, end to end)', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterAll(async () => {
    while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
  });

  it('is not READY within 150 calls and the flip to bus is refused naming the change', { timeout: 240_000 }, async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'cutover-regression-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const direct = await priceAgent();
    const shadow = await priceAgent();
    cleanups.push(direct.close, shadow.close);
    const config = sidecarConfigSchema.parse({
      agent: 'pricing',
      listen: '127.0.0.1:0',
      upstream: direct.url,
      admin: { listen: '127.0.0.1:0', auth: false },
      bus: { kind: 'embedded', path: path.join(dir, 'bus.db'), pollInterval: '10ms' },
      dataDir: dir,
      readiness: { minSamples: 500, minParityLowerBound: 0.99 },
      shadow: { window: '5s' },
      flows: [{ name: 'pricing.lookup', match: { method: 'GET', path: '/prices/:sku' }, topic: 'commands.agent.pricing.lookup', key: 'path.sku', mode: 'shadow', shadow: { target: shadow.url } }],
    });
    const sidecar: SidecarHandle = await startSidecar(config, { registry: createRegistry() });
    cleanups.push(() => sidecar.close());
    const bus: Bus = await openBus(config.bus);
    cleanups.push(() => bus.close());

    const countRecords = async (): Promise<number> => {
      let n = 0;
      for await (const _ of parityRecordsFromBus(bus)) n++;
      return n;
    };
    const report = async (): Promise<FlowReport> =>
      (await buildReport(parityRecordsFromBus(bus), { flows: reportFlowsFromConfig(config.flows), readiness: config.readiness })).flows[0]!;

    await calls(sidecar.data.url, 0, 3000);
    await waitFor(async () => (await countRecords()) >= 3000, { timeoutMs: 120_000, intervalMs: 500, what: '3,000 parity records' });
    const before = await report();
    expect(before.verdict.status).toBe('READY');

    shadow.buggy = true;
    await calls(sidecar.data.url, 3000, 150);
    await waitFor(async () => (await countRecords()) >= 3150, { timeoutMs: 60_000, intervalMs: 200, what: '150 more parity records' });
    const after = await report();
    process.stderr.write(`regression: all-time parity ${after.parity.value}, change ${JSON.stringify(after.change && { at: after.change.at, before: after.change.before.parity.value, since: after.change.after.parity.value, compared: after.change.after.parity.compared })}, verdict ${after.verdict.status}\n`);
    expect(after.verdict.status).not.toBe('READY');
    expect(after.change).not.toBeNull();

    const refused = await flipFlow({ bus, flows: config.flows, readiness: config.readiness }, { flow: 'pricing.lookup', to: 'bus', who: 'test' }).then(
      () => undefined,
      (err: { code?: string; message?: string }) => err,
    );
    expect(refused?.code).toBe('CUTOVER_FLIP_REFUSED');
    expect(refused?.message).toMatch(/since its parity changed at /);
  });
});
