import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { runCli } from '../../bin/main.js';
import { start as startInventory } from '../../examples/agents/inventory.js';
import { startSidecar } from '../../proxy/sidecar.js';
import { renderHtml, renderMarkdown, renderText, type Report } from '../../reports/index.js';
import { createBus } from '../../src/bus/index.js';
import type { SidecarConfigInput } from '../../src/config/schema.js';
import { ErrorCodes } from '../../src/errors.js';
import { createRegistry } from '../../src/metrics.js';
import { collectParity } from '../helpers/parity.js';
import { request } from '../helpers/http.js';
import { waitFor } from '../helpers/wait-for.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
});

const reserve = (body: object) => ({ method: 'POST', path: '/reservations', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

describe('contract drift', () => {
  it('counts calls whose payload shape changed after the contract was written, per flow, in every report format', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'cutover-drift-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const direct = await startInventory();
    const shadow = await startInventory();
    cleanups.push(() => direct.close(), () => shadow.close());
    const bus = { kind: 'embedded' as const, path: path.join(dir, 'bus.db') };
    const config: SidecarConfigInput = {
      agent: 'inventory',
      listen: '127.0.0.1:0',
      upstream: direct.url,
      admin: { listen: '127.0.0.1:0', auth: false },
      bus,
      dataDir: dir,
      shadow: { window: '20s' },
      observe: { writeInterval: '1h' },
      flows: [{ name: 'inventory.reserve', match: { method: 'POST', path: '/reservations' }, topic: 'commands.agent.inventory.reserve', key: 'body.sku', mode: 'shadow', shadow: { target: shadow.url }, compare: { ignore: ['/body/reservationId', '/body/remaining'] } }],
    };

    // 1. Observe calls, then write the contract from them.
    const observing = await startSidecar(config, { registry: createRegistry() });
    const reader = await createBus(bus);
    await reader.start();
    cleanups.push(() => reader.close());
    const records = await collectParity(reader);
    for (let i = 0; i < 10; i++) expect((await request(observing.data.url, reserve({ sku: i % 2 ? 'SKU-RED-MUG' : 'SKU-BLUE-MUG', qty: 1, customerId: `c-${i}` }))).status).toBe(201);
    await waitFor(() => records.length >= 10, { timeoutMs: 30_000, what: '10 parity records' });
    await observing.close();
    const file = path.join(dir, 'cutover.yaml');
    await writeFile(file, stringify(config));
    const contract = path.join(dir, 'asyncapi.yaml');
    expect(await runCli(['asyncapi', '--config', file, '--out', contract], { out: () => undefined, err: () => undefined }, { env: {} })).toBe(0);

    // 2. Run with the contract: the caller starts sending `quantity` instead of `qty` on some calls.
    const sidecar = await startSidecar({ ...config, contract }, { registry: createRegistry() });
    cleanups.push(() => sidecar.close());
    for (let i = 0; i < 8; i++) await request(sidecar.data.url, reserve(i % 4 === 3 ? { sku: 'SKU-RED-MUG', quantity: 1, customerId: `d-${i}` } : { sku: 'SKU-RED-MUG', qty: 1, customerId: `d-${i}` }));
    // The report counts phase 1's records too (same bus): 18 in all.
    await waitFor(() => records.length >= 18, { timeoutMs: 30_000, what: '18 parity records' });
    expect(records.filter((r) => r.drift !== undefined).map((r) => r.drift)).toEqual(['request /qty: missing', 'request /qty: missing']);

    const report = (await (await fetch(`${sidecar.admin.url}/report`)).json()) as Report;
    const flow = report.flows.find((f) => f.flow === 'inventory.reserve')!;
    expect(flow.drift).toMatchObject({ count: 2, rate: 2 / 18, examples: [{ problem: 'request /qty: missing' }, { problem: 'request /qty: missing' }] });
    const line = '2 calls (11.111%) stopped fitting the contract; latest: request /qty: missing';
    expect(renderText(report)).toContain(`drift      ${line}`);
    // Markdown escapes the punctuation of record text.
    expect(renderMarkdown(report)).toContain('**Contract drift:** 2 calls \\(11.111%\\) stopped fitting the contract; latest: request /qty: missing.');
    expect(renderHtml(report)).toContain(`<tr><td>Contract drift</td><td>${line}</td></tr>`);
  });

  it('refuses a contract file that is not an AsyncAPI 3 document, naming the key', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'cutover-drift-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const contract = path.join(dir, 'not-asyncapi.yaml');
    await writeFile(contract, 'openapi: 3.1.0\n');
    const start = startSidecar({ agent: 'inventory', listen: '127.0.0.1:0', upstream: 'http://127.0.0.1:9', admin: { listen: '127.0.0.1:0', auth: false }, dataDir: dir, contract }, { registry: createRegistry() });
    await expect(start).rejects.toMatchObject({ code: ErrorCodes.CONFIG_INVALID, message: `contract: ${contract} is not an AsyncAPI 3 document (write one with cutover asyncapi)` });
  });
});
