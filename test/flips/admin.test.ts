import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startSidecar } from '../../proxy/sidecar.js';
import { buildEvent } from '../../src/events/cloudevent.js';
import { readFlips } from '../../src/flips/log.js';
import { PARITY_EVENT_TYPE, PARITY_TOPIC } from '../../src/parity/types.js';
import { busTargets, records, writeConfig } from './fixtures.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
});

const TOKEN = 'flip-admin-token-0123456789';

async function sidecar() {
  const { config: bus, dir, cleanup } = await busTargets[0]!.setup(randomUUID());
  cleanups.push(cleanup);
  const file = await writeConfig(dir, 'c.json', { bus, admin: { listen: '127.0.0.1:0', token: TOKEN }, flows: [{ name: 'orders.create', mode: 'shadow' }, { name: 'stock.check', mode: 'shadow' }] });
  const sc = await startSidecar(JSON.parse(await readFile(file, 'utf8')));
  cleanups.push(() => sc.close());
  const b = sc.bus()!;
  const recs = [...records('orders.create', 50, { mismatches: 20 }), ...records('stock.check', 40)];
  await b.publish(PARITY_TOPIC, recs.map((r) => ({ key: r.flow, event: buildEvent({ source: '/test', type: PARITY_EVENT_TYPE, data: r }) })));
  return { sc, dbPath: path.join(dir, 'bus.db') };
}

function post(url: string, body: unknown, token?: string): Promise<Response> {
  return fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: JSON.stringify(body) });
}

describe('admin API flips', () => {
  it('POST /flows/:name/flip needs the token; 409 with reasons when refused; 200 with the record otherwise', async () => {
    const { sc } = await sidecar();
    const base = sc.admin.url;
    expect((await post(`${base}/flows/stock.check/flip`, { to: 'canary:10' })).status).toBe(401);
    expect((await post(`${base}/flows/stock.check/flip`, { to: 'canary:10' }, 'wrong-token-wrong-token')).status).toBe(401);
    expect(sc.flows.get('stock.check')!.mode).toBe('shadow');

    const refused = await post(`${base}/flows/orders.create/flip`, { to: 'bus' }, TOKEN);
    expect(refused.status).toBe(409);
    const err = (await refused.json()) as { error: { code: string; message: string; details: { reasons: Array<{ criterion: string }> } } };
    expect(err.error.code).toBe('CUTOVER_FLIP_REFUSED');
    expect(err.error.details.reasons.map((r) => r.criterion)).toContain('minParityLowerBound');

    const ok = await post(`${base}/flows/stock.check/flip`, { to: 'canary:10' }, TOKEN);
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ action: 'flip', flip: { flow: 'stock.check', from: 'shadow', to: 'canary:10', forced: false, report: { verdict: 'READY' } } });
    // Applied on this sidecar before the answer.
    expect(sc.flows.get('stock.check')!.mode).toBe('canary:10');

    const forced = await post(`${base}/flows/orders.create/flip`, { to: 'bus', force: true, reason: 'drill', who: 'dana' }, TOKEN);
    expect(forced.status).toBe(200);
    const rollback = await post(`${base}/flows/orders.create/flip`, { to: 'direct' }, TOKEN);
    expect(rollback.status).toBe(200);
    expect(sc.flows.get('orders.create')!.mode).toBe('direct');

    expect((await post(`${base}/flows/orders.create/flip`, { to: 'canary:500' }, TOKEN)).status).toBe(400);
    expect((await post(`${base}/flows/orders.create/flip`, {}, TOKEN)).status).toBe(400);
    expect((await post(`${base}/flows/orders.create/flip`, { to: 'bus', force: true }, TOKEN)).status).toBe(400);
    expect((await post(`${base}/flows/nope/flip`, { to: 'bus' }, TOKEN)).status).toBe(404);
    const badJson = await fetch(`${base}/flows/orders.create/flip`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` }, body: '{nope' });
    expect(badJson.status).toBe(400);

    const history = await fetch(`${base}/flows/orders.create/history`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(history.status).toBe(200);
    const h = (await history.json()) as { flips: Array<{ to: string; forced: boolean; who: string; reason: string | null }> };
    expect(h.flips.map((f) => [f.to, f.forced, f.who, f.reason])).toEqual([
      ['bus', true, 'dana', 'drill'],
      ['direct', false, 'admin@flipper', null],
    ]);
    expect((await fetch(`${base}/flows/orders.create/history`)).status).toBe(401);
    expect((await readFlips(sc.bus()!)).length).toBe(3);
  });

  it('serves GET /report and /report.html with each flow\u2019s flip history', async () => {
    const { sc } = await sidecar();
    const base = sc.admin.url;
    const auth = { authorization: `Bearer ${TOKEN}` };
    await post(`${base}/flows/orders.create/flip`, { to: 'canary:5', force: true, reason: 'try <it> & see' }, TOKEN);
    const json = await fetch(`${base}/report`, { headers: auth });
    expect(json.status).toBe(200);
    const report = (await json.json()) as { flows: Array<{ flow: string; mode: string }> };
    expect(report.flows.find((f) => f.flow === 'orders.create')!.mode).toBe('canary:5');
    const html = await fetch(`${base}/report.html`, { headers: auth });
    expect(html.headers.get('content-type')).toContain('text/html');
    const text = await html.text();
    expect(text).toContain('<h3>Flips</h3>');
    expect(text).toContain('shadow → <b>canary:5</b>');
    expect(text).toContain('try &lt;it&gt; &amp; see');
    expect(text).toContain('No flips yet');
  });
});
