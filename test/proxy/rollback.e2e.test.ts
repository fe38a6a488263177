import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startSidecar } from '../../proxy/sidecar.js';
import { openBus } from '../../src/bus/index.js';
import { busConfigSchema } from '../../src/config/bus.js';
import { flowCompareSchema, shadowConfigSchema } from '../../src/config/shadow.js';
import { appendFlip, readFlips } from '../../src/flips/log.js';
import { createRegistry } from '../../src/metrics.js';
import { AgentBus, nonRetriable } from '../../src/sdk/index.js';
import { ShadowRuntime } from '../../shadow/runtime.js';
import { busTargets } from '../helpers/bus-targets.js';
import { waitFor } from '../helpers/wait-for.js';

/**
 * After the flip: a flow in canary:20 served by a bus-native agent that starts failing one call in five is
 * rolled back to shadow by the sidecar on its own, every caller still gets an answer, and the automatic flip
 * is in the history with its reasons. On the real brokers.
 */

const targets = busTargets('rollback').filter((t) => t.kind !== 'embedded');

async function directAgent(): Promise<{ url: string; close: () => Promise<void> }> {
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const { sku } = JSON.parse(body || '{}') as { sku?: string };
      res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ sku, reserved: true }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => new Promise<void>((r) => server.close(() => r())) };
}

function post(base: string, sku: string): Promise<number> {
  const payload = JSON.stringify({ sku, qty: 1 });
  return new Promise((resolve) => {
    const req = http.request(`${base}/reservations`, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', () => resolve(0));
    req.end(payload);
  });
}

for (const target of targets) {
  const suite = target.skip ? describe.skip : describe;
  suite(`automatic rollback on ${target.kind}${target.skip ? ` (skipped: ${target.skip})` : ''}`, () => {
    const cleanups: Array<() => Promise<unknown>> = [];
    afterEach(async () => {
      while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
    });

    it('rolls a failing canary back to shadow; every caller gets an answer; the history says why', { timeout: 180_000 }, async () => {
      const id = randomUUID().replace(/-/g, '').slice(0, 10);
      const env = await target.setup(id);
      const flowName = `orders.reserve${id}`;
      const topic = `commands.agent.orders.reserve-${id}`;
      const agentName = `orders-${id}`;
      cleanups.push(() => env.cleanup([topic, `cutover.replies.${agentName}.`]));
      const direct = await directAgent();
      cleanups.push(direct.close);

      // The bus-native agent: right until told to fail one call in five.
      let failing = false;
      let handled = 0;
      let firstFailureAt: number | undefined;
      const native = await AgentBus.connect(env.config, { agent: agentName, version: '2.0.0' });
      cleanups.push(() => native.close());
      await native.subscribe(
        topic,
        (ctx) => {
          const n = handled++;
          if (failing && n % 5 === 0) {
            firstFailureAt ??= Date.now();
            throw nonRetriable(new Error('inventory service unavailable'));
          }
          const { sku } = (ctx.data as { body: { sku?: string } }).body;
          ctx.reply({ sku, reserved: true }, { status: 201 });
        },
        { maxAttempts: 1 },
      );

      const flow = { name: flowName, match: { method: 'POST' as const, path: '/reservations' }, topic, key: 'body.sku', mode: 'shadow' as const, timeout: '8s', rollback: 'auto' as const };
      const readiness = { minSamples: 30, minParityLowerBound: 0.8, maxBusErrorRate: 0.05 };
      const sidecar = await startSidecar(
        { agent: agentName, listen: '127.0.0.1:0', upstream: direct.url, admin: { listen: '127.0.0.1:0', auth: false }, bus: env.config, dataDir: env.dataDir, readiness, flows: [flow] },
        { registry: createRegistry() },
      );
      cleanups.push(() => sidecar.close());

      // The comparator (run apart from the sidecar on this bus, as `cutover shadow` would).
      const bus = await openBus(env.config);
      cleanups.push(() => bus.close());
      const comparator = new ShadowRuntime({
        bus,
        busConfig: busConfigSchema.parse(env.config),
        dataDir: env.dataDir,
        flows: [{ ...flow, compare: flowCompareSchema.parse({}) }],
        shadow: shadowConfigSchema.parse({ window: '10s' }),
        delivery: false,
      });
      await comparator.start();
      cleanups.push(() => comparator.close());

      // The canary's bus share needs this replica's reply channel (a group join on Kafka).
      await waitFor(() => sidecar.replies.ready, { timeoutMs: 30_000, what: 'the reply channel consuming' });
      await appendFlip(bus, { flow: flowName, from: 'shadow', to: 'canary:20', reason: 'test', who: 'test', at: new Date().toISOString(), forced: true, report: null });
      await waitFor(() => sidecar.flows.get(flowName)?.mode === 'canary:20', { timeoutMs: 20_000, what: 'the canary applied' });

      const statuses: number[] = [];
      let i = 0;
      const send = async (count: number) => {
        for (let k = 0; k < count; k++) statuses.push(await post(sidecar.data.url, `sku-${id}-${i++}`));
      };
      await send(60);
      failing = true;
      let rolledBackAt: number | undefined;
      await waitFor(
        async () => {
          await send(5);
          if (sidecar.flows.get(flowName)?.mode === 'shadow') rolledBackAt ??= Date.now();
          return rolledBackAt !== undefined;
        },
        { timeoutMs: 90_000, intervalMs: 10, what: 'the automatic rollback' },
      );
      await send(10);

      process.stderr.write(`rollback on ${target.kind}: ${rolledBackAt! - firstFailureAt!} ms from the first failing call to the sidecar serving shadow again (${statuses.length} calls)\n`);
      // Every caller got an answer: 201 served, or 502 for a bus-served call the agent failed.
      expect(statuses.filter((s) => s !== 201 && s !== 502)).toEqual([]);
      const flips = await readFlips(bus, { flow: flowName });
      const auto = flips.filter((f) => f.automatic);
      expect(auto).toHaveLength(1);
      expect(auto[0]).toMatchObject({ from: 'canary:20', to: 'shadow', who: 'cutover/auto-rollback' });
      process.stderr.write(`rollback reason on ${target.kind}: ${auto[0]!.reason}\n`);
      // The failing agent shows as DLQ'd calls and bus errors: either criterion may be the first to be conclusive.
      expect(auto[0]!.reason).toMatch(/automatic rollback: NOT_READY in canary:20 since .*(DLQ|bus error) rate/);
      expect(auto[0]!.report).toMatchObject({ verdict: 'NOT_READY', basis: 'canary' });
    });
  });
}
