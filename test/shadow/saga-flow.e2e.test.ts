import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startSidecar, type SidecarHandle } from '../../proxy/sidecar.js';
import type { BusConfigInput } from '../../src/bus/index.js';
import { busConfigSchema } from '../../src/config/bus.js';
import { READINESS_DEFAULTS } from '../../src/config/readiness.js';
import { sagaSchema, type SagaConfigInput } from '../../src/config/saga.js';
import { flowCompareSchema, shadowConfigSchema } from '../../src/config/shadow.js';
import { createRegistry } from '../../src/metrics.js';
import { AgentBus } from '../../src/sdk/agent-bus.js';
import { serveSagaStep } from '../../src/sdk/saga-step.js';
import type { SagaCommandData } from '../../src/saga/types.js';
import { buildReport } from '../../reports/report.js';
import { renderJson } from '../../reports/render-json.js';
import { renderMarkdown } from '../../reports/render-md.js';
import { renderText } from '../../reports/render-text.js';
import { renderHtml } from '../../reports/render-html.js';
import { ShadowRuntime } from '../../shadow/runtime.js';
import { busTargets, startBus } from '../helpers/bus-targets.js';
import { collectParity } from '../helpers/parity.js';
import { waitFor } from '../helpers/wait-for.js';

/**
 * A REST chain moved onto a saga, end to end: the orders agent answers POST /orders by calling inventory,
 * fraud, payments and logistics over HTTP (each behind its own sidecar) and undoing by hand what it can
 * when one refuses. The orders sidecar dual-writes each order; the shadow side begins the `order` saga for
 * it in shadow mode against bus-native participants written with the SDK (the same rules), and the
 * comparator pairs the saga's outcome with the chain's answer. Flipped to bus, the saga serves the caller.
 */

interface Order {
  order: string;
  qty: number;
  amount: number;
  card: string;
}

interface Answer {
  status: number;
  body: unknown;
}

/** The shop's rules, shared by the REST agents and the saga participants. `payLimit` is where payments refuse. */
function rules(payLimit: number): Record<string, (o: Order) => Answer> {
  return {
    reserve: (o) => (o.qty > 5 ? { status: 409, body: { error: 'out of stock' } } : { status: 201, body: { reservation: `r-${o.order}` } }),
    release: (o) => ({ status: 200, body: { released: `r-${o.order}` } }),
    check: (o) => (o.amount > 1000 ? { status: 403, body: { error: 'fraud suspected' } } : { status: 200, body: { score: 0.1 } }),
    charge: (o) => (o.card === 'tok_declined' || o.amount > payLimit ? { status: 402, body: { error: 'card declined' } } : { status: 201, body: { payment: `p-${o.order}` } }),
    refund: (o) => ({ status: 200, body: { refunded: `p-${o.order}` } }),
    ship: (o) => ({ status: 201, body: { tracking: `t-${o.order}`, order: o.order } }),
  };
}

/** The chain: agent, action, and the action that undoes it (none for a check or the last step). */
const CHAIN = [
  { agent: 'inventory', action: 'reserve', undo: 'release', step: 'reserve' },
  { agent: 'fraud', action: 'check', undo: undefined, step: 'fraud' },
  { agent: 'payments', action: 'charge', undo: 'refund', step: 'pay' },
  { agent: 'logistics', action: 'ship', undo: undefined, step: 'ship' },
] as const;

function orderSaga(tag: string): SagaConfigInput {
  const cmd = (agent: string, action: string) => `commands.agent.sf${tag}-${agent}.${action}`;
  return {
    name: 'order',
    topic: `cutover.saga.sf${tag}`,
    group: `cutover.saga.sf${tag}`,
    steps: CHAIN.map((c) => ({ name: c.step, command: cmd(c.agent, c.action), ...(c.undo ? { compensation: cmd(c.agent, c.undo) } : {}), timeout: '5s' })),
    pointOfNoReturn: 'pay',
    takeoverAfter: '1s',
  };
}

function listen(handler: http.RequestListener): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer(handler);
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => new Promise((r) => server.close(() => r())) })),
  );
}

function readJson(req: http.IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString() || '{}')));
    req.on('error', reject);
  });
}

function send(res: http.ServerResponse, answer: Answer): void {
  res.writeHead(answer.status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(answer.body));
}

function postJson(url: string, body: unknown): Promise<Answer> {
  const payload = Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': payload.length } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(Buffer.concat(chunks).toString() || 'null') }));
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/** 16 orders: out of stock, declined cards, fraud, and amounts of 500 (what the planted bug refuses). */
function orders(tag: string): Order[] {
  return Array.from({ length: 16 }, (_, i) => ({
    order: `o-${tag}-${i}`,
    qty: i === 1 ? 9 : 1,
    amount: i % 4 === 2 ? 2000 : i % 4 === 1 ? 100 : 500,
    card: i % 4 === 1 ? 'tok_declined' : 'tok_ok',
  }));
}

// RabbitMQ is left out for time (the saga orchestrator's own end-to-end suite covers the others the same way).
const targets = busTargets('saga-flow').filter((t) => t.kind !== 'rabbitmq');

for (const target of targets) {
  const suite = target.skip ? describe.skip : describe;
  suite(`a REST chain and its saga on ${target.kind}${target.skip ? ` (skipped: ${target.skip})` : ''}`, () => {
    const cleanups: Array<() => Promise<unknown>> = [];
    afterEach(async () => {
      while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
    });

    async function setup(options: { mode: 'shadow' | 'bus'; busPayLimit: number; busReleaseBroken?: boolean }) {
      const tag = randomUUID().slice(0, 8);
      const env = await target.setup(tag);
      // Every topic and group is this test's own (Kafka topics outlive the run and are deleted by these prefixes).
      const observations = `cutover.observations.sf${tag}`;
      const parity = `cutover.parity.sf${tag}`;
      cleanups.push(() => env.cleanup([`cutover.saga.sf${tag}`, `commands.agent.sf${tag}`, observations, parity]));
      const busConfig: BusConfigInput = env.config;
      const saga = orderSaga(tag);
      const base = { listen: '127.0.0.1:0', admin: { listen: '127.0.0.1:0', auth: false }, bus: busConfig, dataDir: env.dataDir, shadow: { inProcess: false }, observationsTopic: observations };
      const sidecar = async (config: Record<string, unknown>): Promise<SidecarHandle> => {
        const s = await startSidecar({ ...base, ...config } as Parameters<typeof startSidecar>[0], { registry: createRegistry() });
        cleanups.push(() => s.close());
        return s;
      };

      // The REST side: four agents, each behind its own sidecar, and orders chaining them.
      const rest = rules(1000);
      const restCalls: string[] = [];
      const sidecars: Record<string, string> = {};
      for (const agent of ['inventory', 'fraud', 'payments', 'logistics']) {
        const server = await listen(async (req, res) => {
          const action = req.url!.slice(1);
          restCalls.push(`${agent}.${action}`);
          send(res, rest[action]!((await readJson(req)) as Order));
        });
        cleanups.push(() => server.close());
        sidecars[agent] = (await sidecar({ agent, upstream: server.url })).data.url;
      }
      let ordersCalls = 0;
      const ordersAgent = await listen(async (req, res) => {
        ordersCalls += 1;
        const order = (await readJson(req)) as Order;
        const done: Array<(typeof CHAIN)[number]> = [];
        let last: Answer | undefined;
        for (const link of CHAIN) {
          last = await postJson(`${sidecars[link.agent]}/${link.action}`, order);
          if (last.status >= 300) {
            for (const d of done.reverse()) if (d.undo) await postJson(`${sidecars[d.agent]}/${d.undo}`, order);
            break;
          }
          done.push(link);
        }
        send(res, last!);
      });
      cleanups.push(() => ordersAgent.close());
      const flow = { name: `orders.sf${tag}`, match: { method: 'POST' as const, path: '/orders' }, topic: `commands.agent.sf${tag}-orders.place`, key: 'body.order', mode: options.mode, saga: 'order' };
      const orders = await sidecar({ agent: 'orders', upstream: ordersAgent.url, flows: [flow], sagas: [saga] });

      // The bus side: the same rules as saga participants (payments possibly with a planted bug).
      const bus = await startBus(busConfig, cleanups);
      const onBus = rules(options.busPayLimit);
      if (options.busReleaseBroken) onBus.release = () => ({ status: 409, body: { error: 'no such reservation' } });
      const handled: Array<{ step: string; phase: string; shadow: boolean }> = [];
      const agents = await AgentBus.connect(busConfig, { agent: 'shop', dataDir: env.dataDir });
      cleanups.push(() => agents.close());
      const def = sagaSchema.parse(saga);
      for (const [i, link] of CHAIN.entries()) {
        const answer = (action: string) => async ({ command, ctx }: { command: SagaCommandData<{ body: Order }>; ctx: { shadow: boolean } }) => {
          handled.push({ step: command.step, phase: command.phase, shadow: ctx.shadow });
          return onBus[action]!(command.input.body);
        };
        const step = def.steps[i]!;
        await serveSagaStep<{ body: Order }>(agents, { command: step.command, run: answer(link.action), ...(link.undo ? { compensation: { topic: step.compensation!, run: answer(link.undo) } } : {}) });
      }
      const records = await collectParity(bus, { topic: parity });
      const runtime = new ShadowRuntime({
        bus,
        busConfig: busConfigSchema.parse(busConfig),
        dataDir: env.dataDir,
        flows: [{ ...flow, compare: flowCompareSchema.parse({}) }],
        sagas: [def],
        shadow: shadowConfigSchema.parse({ window: '20s' }),
        observationsTopic: observations,
        parityTopic: parity,
        comparatorGroup: `cutover.comparator.sf${tag}`,
      });
      await runtime.start();
      cleanups.push(() => runtime.close());
      return { tag, orders, records, handled, restCalls, runtime, flow, ordersCalls: () => ordersCalls };
    }

    async function report(records: Parameters<typeof buildReport>[0], flow: { name: string }) {
      return buildReport(records, { flows: [{ name: flow.name, mode: 'shadow' }], readiness: { ...READINESS_DEFAULTS, minSamples: 16, minParityLowerBound: 0.7 } });
    }

    it('a saga that behaves like the chain is READY, with its compensations and per-step figures in the report', async () => {
      const { tag, orders: sidecar, records, handled, restCalls, runtime, flow } = await setup({ mode: 'shadow', busPayLimit: 1000 });
      const answers = [];
      for (const o of orders(tag)) answers.push(await postJson(`${sidecar.data.url}/orders`, o));
      expect(answers.map((a) => a.status)).toEqual([201, 409, 403, 201, 201, 402, 403, 201, 201, 402, 403, 201, 201, 402, 403, 201]);
      // The chain undid reservations by hand: after each fraud refusal and each declined card.
      expect(restCalls.filter((c) => c === 'inventory.release')).toHaveLength(7);
      await waitFor(() => records.length >= 16, { timeoutMs: 60_000, what: '16 parity records' });

      expect(records.map((r) => r.outcome)).toEqual(Array(16).fill('match'));
      // The saga ran in shadow: every command reached its participant as shadow, compensations included.
      expect(handled.every((h) => h.shadow)).toBe(true);
      expect(handled.filter((h) => h.phase === 'compensate').map((h) => h.step)).toEqual(Array(7).fill('reserve'));
      const declined = records.find((r) => r.busStatus === 402)!;
      expect(declined.saga).toMatchObject({ name: 'order', status: 'compensated', failedStep: 'pay', failureCode: 'CUTOVER_SAGA_STEP_REFUSED' });
      expect(declined.saga!.steps.map((s) => [s.name, s.outcome, s.compensation ?? '-'])).toEqual([
        ['reserve', 'succeeded', 'compensated'],
        ['fraud', 'succeeded', '-'],
        ['pay', 'refused', '-'],
        ['ship', 'skipped', '-'],
      ]);
      expect(runtime.sagaFlows!.stats()).toMatchObject({ begun: 16, answered: 16, unanswered: 0 });

      const r = await report(records, flow);
      const f = r.flows[0]!;
      expect(f.verdict.status).toBe('READY');
      expect(f.saga).toMatchObject({ name: 'order', ended: { completed: 8, compensated: 8, stuck: 0 }, mismatchSteps: [] });
      expect(f.saga!.steps.map((s) => [s.name, s.refused, s.compensated])).toEqual([
        ['reserve', 1, 7],
        ['fraud', 4, 0],
        ['pay', 3, 0],
        ['ship', 0, 0],
      ]);
      expect(f.saga!.steps[3]!.latency!.count).toBe(8);
      expect(renderText(r, { colour: false })).toMatch(/saga order: 8 completed, 8 compensated, 0 stuck/);
      expect(renderMarkdown(r)).toContain('| pay | 0 | 3 | 0 |');
      expect(JSON.parse(renderJson(r)).flows[0].saga.name).toBe('order');
      expect(renderHtml(r)).toContain('saga order');
    });

    it('a participant that refuses what the chain accepts is NOT_READY, naming the saga step', async () => {
      const { tag, orders: sidecar, records, handled, flow } = await setup({ mode: 'shadow', busPayLimit: 300 });
      for (const o of orders(tag)) await postJson(`${sidecar.data.url}/orders`, o);
      await waitFor(() => records.length >= 16, { timeoutMs: 60_000, what: '16 parity records' });
      const mismatches = records.filter((r) => r.outcome === 'mismatch');
      // Amounts of 500 pass the chain's payments and are refused by the saga's: 8 orders, each undone on the bus only.
      expect(mismatches).toHaveLength(8);
      expect(mismatches.every((m) => m.directStatus === 201 && m.busStatus === 402 && m.saga?.failedStep === 'pay')).toBe(true);
      expect(handled.filter((h) => h.phase === 'compensate')).toHaveLength(15);

      const r = await report(records, flow);
      const f = r.flows[0]!;
      expect(f.verdict.status).toBe('NOT_READY');
      expect(f.saga!.mismatchSteps).toEqual([{ step: 'pay', count: 8 }]);
      const parity = f.verdict.reasons.find((x) => x.criterion === 'minParityLowerBound')!;
      expect(parity.message).toContain('mismatches at saga order step pay (8)');
      expect(renderText(r, { colour: false })).toContain('mismatches at saga order step pay (8)');
    });

    it('a participant whose compensation refuses is NOT_READY, naming the step the saga is stuck at', async () => {
      const { tag, orders: sidecar, records, flow } = await setup({ mode: 'shadow', busPayLimit: 1000, busReleaseBroken: true });
      for (const o of orders(tag)) await postJson(`${sidecar.data.url}/orders`, o);
      await waitFor(() => records.length >= 16, { timeoutMs: 60_000, what: '16 parity records' });
      // The chain answers 403 or 402 after releasing the stock; the saga cannot release it and is stuck.
      const mismatches = records.filter((r) => r.outcome === 'mismatch');
      expect(mismatches.map((m) => m.busStatus)).toEqual(Array(7).fill(500));
      expect(mismatches.every((m) => m.saga?.status === 'stuck' && m.saga.stuck?.step === 'reserve' && m.saga.stuck.phase === 'compensate')).toBe(true);

      const f = (await report(records, flow)).flows[0]!;
      expect(f.verdict.status).toBe('NOT_READY');
      expect(f.saga).toMatchObject({ ended: { completed: 8, compensated: 1, stuck: 7 }, mismatchSteps: [{ step: 'reserve (undo)', count: 7 }] });
      expect(f.saga!.steps[0]).toMatchObject({ name: 'reserve', compensated: 0, compensationFailed: 7 });
      expect(f.verdict.reasons.find((x) => x.criterion === 'minParityLowerBound')!.message).toContain('mismatches at saga order step reserve (undo) (7)');
    });

    it('flipped to bus, the saga serves the caller and the chain is not called', async () => {
      const { tag, orders: sidecar, handled, restCalls, ordersCalls } = await setup({ mode: 'bus', busPayLimit: 1000 });
      const [ok, declined] = orders(tag).slice(0, 2).map((o, i) => ({ ...o, qty: 1, card: i === 1 ? 'tok_declined' : 'tok_ok' }));
      expect(await postJson(`${sidecar.data.url}/orders`, ok)).toEqual({ status: 201, body: { tracking: `t-${ok!.order}`, order: ok!.order } });
      expect(await postJson(`${sidecar.data.url}/orders`, declined)).toEqual({ status: 402, body: { error: 'card declined' } });
      expect(ordersCalls()).toBe(0);
      expect(restCalls).toEqual([]);
      // Not shadow: the participants acted (reserve, fraud, pay, ship; then reserve, fraud, refused pay, release).
      expect(handled.every((h) => !h.shadow)).toBe(true);
      expect(handled.map((h) => `${h.phase === 'compensate' ? 'undo ' : ''}${h.step}`)).toEqual(['reserve', 'fraud', 'pay', 'ship', 'reserve', 'fraud', 'pay', 'undo reserve']);
    });
  });
}
