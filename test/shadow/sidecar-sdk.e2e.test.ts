import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { start as startInventory } from '../../examples/agents/inventory.js';
import { startSdkInventory } from '../../examples/agents/sdk-inventory.js';
import { startSidecar } from '../../proxy/sidecar.js';
import { createBus, type BusConfigInput } from '../../src/bus/index.js';
import { busConfigSchema } from '../../src/config/bus.js';
import { createRegistry } from '../../src/metrics.js';
import { buildReport } from '../../reports/report.js';
import { renderMarkdown } from '../../reports/render-md.js';
import { renderText } from '../../reports/render-text.js';
import { flowCompareSchema, shadowConfigSchema } from '../../src/config/shadow.js';
import { ShadowRuntime } from '../../shadow/runtime.js';
import { waitFor } from '../helpers/wait-for.js';
import { collectParity } from '../helpers/parity.js';

/**
 * The real chain on the embedded bus with a bus-native (SDK) agent on the bus side: caller → sidecar
 * (shadow mode) → REST agent, the call event answered by the SDK agent, both paired by the comparator.
 * An SDK reply carries no call sample, so a mismatch's replayable `curl` has to come from the sidecar's
 * direct observation.
 */

function post(url: string, body: unknown): Promise<number> {
  const payload = Buffer.from(JSON.stringify(body));
  const headers = { 'content-type': 'application/json', 'content-length': payload.length, authorization: 'Bearer secret-token' };
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}/reservations?src=test&api_key=k-secret`, { method: 'POST', headers }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    });
    req.on('error', reject);
    req.end(payload);
  });
}

describe('sidecar + SDK agent + comparator on the embedded bus', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
  });

  it("a mismatch answered by an SDK agent carries the sidecar's redacted call sample, and the report prints its curl", async () => {
    const id = randomUUID().slice(0, 8);
    const dir = await mkdtemp(path.join(tmpdir(), 'cutover-sidecar-sdk-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const busConfig: BusConfigInput = { kind: 'embedded', path: path.join(dir, 'bus.db'), pollInterval: '10ms' };
    const prefix = `commands.agent.t${id}`;

    const direct = await startInventory();
    cleanups.push(() => direct.close());
    const sdk = await startSdkInventory({ bus: busConfig, prefix, factsPrefix: `events.t${id}`, dataDir: dir });
    cleanups.push(() => sdk.close());
    const flow = { name: 'inventory.reserve', match: { method: 'POST' as const, path: '/reservations' }, topic: `${prefix}.reserve`, key: 'body.sku', mode: 'shadow' as const };
    const sidecar = await startSidecar(
      { agent: 'inventory', listen: '127.0.0.1:0', upstream: direct.url, admin: { listen: '127.0.0.1:0', auth: false }, bus: busConfig, dataDir: dir, flows: [flow] },
      { registry: createRegistry() },
    );
    cleanups.push(() => sidecar.close());

    const bus = await createBus(busConfig);
    await bus.start();
    cleanups.push(() => bus.close());
    const records = await collectParity(bus);
    // reservationId is random on both sides and not ignored: every 201 is a mismatch at /body/reservationId.
    const runtime = new ShadowRuntime({
      bus,
      busConfig: busConfigSchema.parse(busConfig),
      dataDir: dir,
      flows: [{ ...flow, compare: flowCompareSchema.parse({}) }],
      shadow: shadowConfigSchema.parse({ window: '20s' }),
    });
    await runtime.start();
    cleanups.push(() => runtime.close());

    expect(await post(sidecar.data.url, { sku: 'SKU-TEAPOT', qty: 2, customerId: 'c-1' })).toBe(201);
    await waitFor(() => records.length >= 1, { timeoutMs: 30_000, what: 'the parity record' });
    const [record] = records;
    expect(record).toMatchObject({ outcome: 'mismatch', directStatus: 201, busStatus: 201 });
    expect(record!.diffs.map((d) => d.path)).toContain('/body/reservationId');
    expect(sdk.handled.size).toBe(1);
    // Redacted as the call event: secret query values masked, credentials never captured.
    expect(record!.request).toEqual({
      method: 'POST',
      target: '/reservations?src=test&api_key=%5BREDACTED%5D',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ sku: 'SKU-TEAPOT', qty: 2, customerId: 'c-1' }),
    });

    const report = await buildReport(records, { flows: [{ name: flow.name, mode: 'shadow' }], baseUrl: 'http://127.0.0.1:15000' });
    const example = report.flows[0]!.topDiffs.find((d) => d.field.includes('reservationId'))!.examples[0]!;
    expect(example.curl).toBe(
      `curl -sS -g -X POST 'http://127.0.0.1:15000/reservations?src=test&api_key=%5BREDACTED%5D' -H 'content-type: application/json' --data-raw '{"sku":"SKU-TEAPOT","qty":2,"customerId":"c-1"}'`,
    );
    expect(renderText(report, { colour: false })).toContain(example.curl!);
    expect(renderMarkdown(report)).toContain(example.curl!);
    expect(JSON.stringify(report)).not.toContain('secret');
  });
});
