import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startSidecar, type SidecarHandle } from '../../proxy/sidecar.js';
import { buildReport, parityRecordsFromBus, reportFlowsFromConfig } from '../../reports/report.js';
import { renderHtml } from '../../reports/render-html.js';
import { renderJson } from '../../reports/render-json.js';
import { renderMarkdown } from '../../reports/render-md.js';
import { renderText } from '../../reports/render-text.js';
import { shadowConfigSchema } from '../../src/config/shadow.js';
import { ShadowRuntime } from '../../shadow/runtime.js';
import { createBus } from '../../src/bus/index.js';
import type { Bus } from '../../src/bus/types.js';
import { CutoverError, describeError, ErrorCodes } from '../../src/errors.js';
import { createLogger, type Logger } from '../../src/logger.js';
import { createRegistry } from '../../src/metrics.js';
import { startBusCheckout, startBusFraud, startBusInventory, startBusPricing, type BusAgent } from '../shop/bus-native/index.js';
import type { AgentHandle } from '../shop/http.js';
import { startCallee, startShop, type CalleeAgent, type Shop } from '../shop/index.js';
import { busConfigFor, busHelp, firstUnreachable } from './bus.js';
import { deleteRedisPrefix } from '../../src/bus/redis/maintenance.js';
import { deleteRabbitObjects, listRabbitNames } from '../../src/bus/rabbitmq/maintenance.js';
import { vhostOf } from '../../src/acl/rabbitmq.js';
import type { RabbitmqBus } from '../../src/bus/rabbitmq/rabbitmq-bus.js';
import { CHECKOUT_SAGA, checkoutFlow, DEMO_READINESS, demoConfigYaml, demoFlows, type DemoFlow } from './config.js';
import { checkoutCount, mixIn, planCheckouts } from './checkout-traffic.js';
import { printSagaFlows } from './narrate-saga.js';
import { resetFlowModes, runFlipStep } from './flip-step.js';
import { observing, runDiscoveryPhase } from './discovery-phase.js';
import { askQuestions, planQuestions, questionsFor } from './questions.js';
import { frontRpcAgents, printRpcTopology, startRpcAgents, type RpcSide } from './rpc-side.js';
import type { ConfigFlow } from './config.js';
import { n, PLACEHOLDER_BASE, printCriteria, printTopology, printWhy, retarget, secs, summarizeTraffic, tableOf } from './narrate.js';
import type { DemoOptions } from './options.js';
import { ProgressBar, type ProgressStream } from './progress.js';
import { startReportServer } from './server.js';
import { driveTraffic, planTraffic } from './traffic.js';

/** Where the demo writes and how it waits; main.ts passes the process's, tests may pass their own. */
export interface DemoIo {
  /** One line of the demo's own output (stdout). */
  out: (line: string) => void;
  /** The progress bar's stream (stderr). */
  progress: ProgressStream;
  /** Whether stdout is a terminal (colour in the table). */
  colour: boolean;
  /** Aborts when the user wants the demo to stop (Ctrl-C): during the scripted part it stops early and cleans up. */
  signal: AbortSignal;
}

/** The demo's exit codes. */
export const DemoExit = { OK: 0, FAILED: 1, USAGE: 2, INTERRUPTED: 130 } as const;

/** Thrown between steps once the user pressed Ctrl-C. */
class Interrupted extends Error {}

/** How long the comparator waits for the other side of a pair. */
const WINDOW_MS = 30_000;

interface Running {
  bus?: Bus;
  sidecars: SidecarHandle[];
  busAgents: BusAgent[];
  shadowInstances: AgentHandle[];
  runtime?: ShadowRuntime;
  shop?: Shop;
  /** The JSON-RPC agents (A2A, MCP) with their shadow instances, and customer service calling them. */
  rpc?: RpcSide;
  customerService?: AgentHandle;
  tmp?: string;
  /** This run's Redis keys, deleted at the end. */
  redis?: { url: string; prefix: string };
  /** The RabbitMQ URL: the exchanges and queues the run's bus declared are deleted at the end. */
  rabbitmq?: { url: string; prefix: string };
  /** Puts the demo's flows back in their configured modes in a flip log that outlives the run (Kafka). */
  resetModes?: () => Promise<unknown>;
}

/**
 * Runs the whole demo: agents, sidecars, shadow side, traffic, report, flip step; then serves the report
 * until `io.signal` aborts (unless `options.wait` is false). Returns the exit code.
 */
export async function runDemo(options: DemoOptions, io: DemoIo): Promise<number> {
  const runStart = new Date();
  const runId = `${runStart.getTime().toString(36)}${randomBytes(2).toString('hex')}`;
  const logger = createLogger({ level: options.logLevel });
  const running: Running = { sidecars: [], busAgents: [], shadowInstances: [] };
  const out = io.out;
  const checkpoint = (): void => {
    if (io.signal.aborted) throw new Interrupted('interrupted');
  };
  try {
    running.tmp = await mkdtemp(path.join(tmpdir(), 'cutover-demo-'));
    const { input: busInput, config: busConfig, where } = busConfigFor(options, running.tmp, runId);
    const flows = [...demoFlows(options.fixes), checkoutFlow()];
    // On Kafka, topics are shared by every run: this run's consumer groups are its own and start at the
    // end, and the report only reads parity records decided after the run started.
    const shared = busConfig.kind === 'kafka';
    const group = (name: string): string => (shared ? `${name}.demo-${runId}` : name);
    const from = shared ? ('end' as const) : ('start' as const);

    out(`cutover demo: an online shop moves its REST calls onto the ${busConfig.kind} bus (${where})`);
    out('');

    // A plain TCP check first: when nothing listens, say so and how to fix it, instead of a client's retries.
    const unreachable = await firstUnreachable(busConfig);
    if (unreachable) {
      out(`cannot reach the ${busConfig.kind} bus: nothing answers at ${unreachable}.`);
      out(busHelp(options));
      return DemoExit.FAILED;
    }
    const bus = await createBus(busConfig, { logger });
    running.bus = bus;
    try {
      await bus.start();
    } catch (err) {
      const { code, message } = describeError(err);
      out(`cannot use the ${busConfig.kind} bus: ${code}: ${message}`);
      out(busHelp(options));
      return DemoExit.FAILED;
    }
    if (busConfig.kind === 'redis') running.redis = { url: busConfig.url, prefix: busConfig.prefix };
    if (busConfig.kind === 'rabbitmq') running.rabbitmq = { url: busConfig.url, prefix: busConfig.prefix };

    // The bus-driven side first, so it is consuming before the first call is dual-written.
    const adminToken = randomBytes(18).toString('base64url');
    const shadowTargets = new Map<CalleeAgent, AgentHandle>();
    for (const f of flows) {
      if (f.replier.kind !== 'delivery' || shadowTargets.has(f.replier.agent)) continue;
      // A second instance of the agent, fed from the bus by the delivery consumer.
      const instance = await startCallee[f.replier.agent]({ logger });
      running.shadowInstances.push(instance);
      shadowTargets.set(f.replier.agent, instance);
    }
    const natives: Partial<Record<CalleeAgent, () => Promise<BusAgent>>> = {
      pricing: () => startBusPricing({ bus, logger, group: group('agent.pricing'), from, rounding: options.fixes.has('pricing.quote') ? 'half-even' : 'half-up' }),
      inventory: () => startBusInventory({ bus, logger, group: group('agent.inventory'), from }),
      fraud: () => startBusFraud({ bus, logger, group: group('agent.fraud'), from }),
    };
    for (const f of flows) {
      if (f.replier.kind !== 'bus-native') continue;
      const start = natives[f.replier.agent];
      if (!start) throw new CutoverError(ErrorCodes.INTERNAL, `no bus-native ${f.replier.agent} agent in examples/shop/bus-native`);
      running.busAgents.push(await start());
    }
    // The checkout saga's participants: inventory, fraud, payments and logistics serving their steps.
    if (flows.some((f) => f.replier.kind === 'saga')) running.busAgents.push(...(await startBusCheckout({ bus, logger, group: (topic) => group(`agent.${topic}`), from })));
    for (const f of flows) {
      if (f.replier.kind !== 'delivery') continue;
      const target = shadowTargets.get(f.replier.agent)!.url;
      f.flow.shadow = { ...f.flow.shadow!, target };
      f.input.shadow = { ...f.input.shadow, target };
    }
    const rpc = await startRpcAgents();
    running.rpc = rpc;
    const allFlows: ConfigFlow[] = [...flows.map((f) => f.flow), ...rpc.flows];
    // The shadow side runs once for all flows here, as `cutover shadow` would beside the sidecars.
    const runtime = new ShadowRuntime({
      bus,
      busConfig,
      flows: allFlows,
      sagas: [CHECKOUT_SAGA],
      shadow: shadowConfigSchema.parse({ window: WINDOW_MS }),
      dataDir: running.tmp,
      logger,
      registry: createRegistry(),
      from,
      comparatorGroup: group('cutover.comparator'),
    });
    running.runtime = runtime;
    await runtime.start();

    if (shared) {
      // Kafka's flip log outlives the run: undo an earlier run's flips before the sidecars apply them, and this run's at the end.
      const reset = (reason: string, mode?: 'direct') => resetFlowModes({ bus, flows: allFlows.map((f) => ({ name: f.name, mode: mode ?? f.mode })), who: 'cutover-demo', reason, unflipped: 'direct' });
      // A run starts with discovery, every flow direct.
      const undone = await reset('cutover demo: a new run starts with every flow direct', 'direct');
      if (undone.length > 0) out(`(flipped ${undone.join(', ')} back to direct: an earlier demo run on this Kafka left them flipped)`);
      running.resetModes = () => reset('cutover demo: end of run, leaving the shared flip log as it found it');
    }

    // The shop, with a sidecar in front of every agent that has a migrating flow.
    const sidecarOf = new Map<string, SidecarHandle>();
    const startFlowSidecar = async (agent: string, upstream: string, mine: ConfigFlow[]): Promise<SidecarHandle> => {
        const sidecar = await startSidecar(
          {
            agent,
            listen: '127.0.0.1:0',
            upstream,
            admin: { listen: '127.0.0.1:0', token: adminToken },
            bus: busConfig,
            dataDir: running.tmp!,
            // Direct until the discovery phase is over; then flipped to their configured mode.
            flows: mine.map(observing),
            observe: {},
            ...(mine.some((f) => f.saga) ? { sagas: [CHECKOUT_SAGA] } : {}),
            // The demo runs one shadow side for every flow (above), not one per sidecar.
            shadow: { inProcess: false },
            readiness: DEMO_READINESS,
          },
          // One process, one bus connection: the sidecars share the demo's (they neither start nor close it).
          { logger, bus, registry: createRegistry() },
        );
        running.sidecars.push(sidecar);
        for (const f of mine) sidecarOf.set(f.name, sidecar);
        return sidecar;
    };
    const shop = await startShop({
      logger,
      front: async (agent, handle) => {
        const mine = flows.filter((f) => f.agent === agent).map((f) => f.flow);
        return mine.length === 0 ? handle.url : (await startFlowSidecar(agent, handle.url, mine)).data.url;
      },
    });
    running.shop = shop;
    // Checkouts reach orders through its own sidecar (the storefront's other requests go to orders directly).
    const ordersFlows = flows.filter((f) => f.agent === 'orders').map((f) => f.flow);
    const checkoutUrl = ordersFlows.length === 0 ? shop.agents.orders.url : (await startFlowSidecar('orders', shop.agents.orders.url, ordersFlows)).data.url;
    const { customerService, sidecars: rpcSidecars } = await frontRpcAgents(rpc, startFlowSidecar, logger);
    running.customerService = customerService;
    printTopology(out, shop, flows, sidecarOf, shadowTargets);
    printRpcTopology(out, rpc, rpcSidecars, customerService);
    printCriteria(out);
    checkpoint();

    await runDiscoveryPhase({ bus, shop, customerService: customerService.url, flows: allFlows, sidecars: running.sidecars, sidecarOf, seed: options.seed, concurrency: options.concurrency, out, signal: io.signal, who: 'cutover-demo' });
    checkpoint();

    // Traffic.
    const checkouts = planCheckouts(options.seed, checkoutCount(options.requests));
    const plan = mixIn(planTraffic(options.seed, options.requests), checkouts);
    out(`Sending ${n(plan.length)} shop requests (seed ${options.seed}, ${options.concurrency} at a time) to orders and recommendation, ${n(checkouts.length)} of them checkouts...`);
    const questions = planQuestions(options.seed, questionsFor(options.requests));
    out(`... and ${n(questions.length)} customers' questions to customer service, beside them.`);
    const bar = new ProgressBar(io.progress, 'traffic', plan.length, 'requests');
    const [traffic, answers] = await Promise.all([
      driveTraffic(plan, {
        ordersUrl: shop.agents.orders.url,
        recommendationUrl: shop.agents.recommendation.url,
        checkoutUrl,
        concurrency: options.concurrency,
        onProgress: (done) => bar.update(done),
        signal: io.signal,
      }),
      // Fewer at a time: each question is four JSON-RPC calls.
      askQuestions(customerService.url, questions, 2, io.signal),
    ]);
    bar.finish(traffic.sent);
    checkpoint();
    out(summarizeTraffic(traffic));
    out(`Customer service: ${n(questions.length)} questions, answered ${[...answers].map(([status, count]) => `${n(count)}× ${status}`).join(', ')} (each a SendMessage, GetTask and SendStreamingMessage to the fraud desk, a tools/call lookup_stock to inventory's MCP server).`);

    // Wait until the comparator decided every dual-written call.
    const expected = running.sidecars.reduce((sum, s) => sum + s.flows.entries.reduce((a, e) => a + e.counters.events, 0), 0);
    const pairing = await waitForPairs(runtime, expected, io.progress, io.signal);
    checkpoint();
    out(
      pairing.decided >= expected
        ? `Comparator: all ${n(expected)} dual-written calls paired and compared (${secs(pairing.ms)}).`
        : `Comparator: ${n(pairing.decided)} of ${n(expected)} calls decided after ${secs(pairing.ms)}; the rest are missing from the report.`,
    );
    out('');

    // The report, from the parity records on the bus, as `cutover report` builds it.
    // A flow left direct (fraud-desk.get-task) is only forwarded: nothing to compare, so not in the report.
    const reportFlows = reportFlowsFromConfig(allFlows.filter((f) => f.mode !== 'direct'));
    const report = retarget(
      await buildReport(parityRecordsFromBus(bus), { flows: reportFlows, readiness: DEMO_READINESS, since: runStart, baseUrl: PLACEHOLDER_BASE, logger }),
      new Map([...sidecarOf].map(([flow, s]) => [flow, s.data.url])),
    );
    const text = renderText(report, { colour: io.colour });
    out(tableOf(text));
    out('');
    printWhy(out, report, flows);
    printSagaFlows(out, report);

    const outDir = options.out;
    await mkdir(outDir, { recursive: true });
    const html = renderHtml(report);
    const json = renderJson(report);
    const markdown = renderMarkdown(report);
    await writeFile(path.join(outDir, 'report.html'), html);
    await writeFile(path.join(outDir, 'report.md'), markdown);
    await writeFile(path.join(outDir, 'report.json'), json);
    await writeFile(path.join(outDir, 'report.txt'), renderText(report, { colour: false }));
    await writeFile(path.join(outDir, 'cutover.yaml'), demoConfigYaml(busInput, running.tmp, flows, outDir, rpc.inputs));
    out(`Reports written to ${outDir}${path.sep}: report.html, report.md, report.json, report.txt (and cutover.yaml, this run's config)`);
    out('');

    checkpoint();
    await runFlipStep({
      report,
      sidecars: sidecarOf,
      bus,
      out,
      logger,
      who: 'cutover-demo',
      prefer: ['logistics.ship', 'fraud.check'],
      afterFlip: async (flow) => {
        // A few more customers, now served over the bus for the flipped flow.
        const more = planTraffic(options.seed + 1, 40).filter((r) => r.kind === 'order');
        const t = await driveTraffic(more, { ordersUrl: shop.agents.orders.url, recommendationUrl: shop.agents.recommendation.url, concurrency: options.concurrency, signal: io.signal });
        return `${n(t.orders)} more orders after the flip, ${flow} over the bus: ${[...t.statuses].map(([label, count]) => `${n(count)}× ${label.replace('order ', '')}`).join(', ')}${t.failures ? `, ${n(t.failures)} without an answer` : ''}`;
      },
    });
    out('');
    // performance.now() counts from process start: this includes loading the code.
    out(`Scripted part done in ${secs(performance.now())}.`);

    if (!options.wait) return DemoExit.OK;
    const server = await startReportServer({ html, json, markdown, sidecars: running.sidecars, adminToken, logger });
    try {
      out('');
      out(`The demo keeps running. HTML report (the one the flip step used): ${server.url}`);
      out(`  also ${server.url}report (JSON), ${server.url}report.md, and every sidecar's flows at ${server.url}flows`);
      out(`Admin APIs of the sidecars (bearer token ${adminToken}):`);
      for (const s of running.sidecars) out(`  ${s.config.agent.padEnd(10)} curl -H 'authorization: Bearer ${adminToken}' ${s.admin.url}/flows   (also /report.html, /metrics, /readyz)`);
      const config = path.join(outDir, 'cutover.yaml');
      out('The CLI works on the running demo:');
      out(`  npx cutover status --config ${config}`);
      out(`  npx cutover flip inventory.reserve --to bus --config ${config}   (refused; add --force --reason TEXT to override)`);
      out('Press Ctrl-C to stop.');
      await new Promise<void>((resolve) => (io.signal.aborted ? resolve() : io.signal.addEventListener('abort', () => resolve(), { once: true })));
      out('Stopping...');
    } finally {
      await server.close();
    }
    return DemoExit.OK;
  } catch (err) {
    if (err instanceof Interrupted) {
      out('Interrupted: stopping and cleaning up (Ctrl-C again to quit at once).');
      return DemoExit.INTERRUPTED;
    }
    const { code, message } = describeError(err);
    out(`the demo failed: ${code}: ${message}`);
    logger.error({ err }, 'demo failed');
    return DemoExit.FAILED;
  } finally {
    await shutdown(running, logger);
    await new Promise<void>((resolve) => logger.flush(() => resolve()));
  }
}

/** Closes what was started, callers before callees, then the bus; removes what the run left behind. */
async function shutdown(running: Running, logger: Logger): Promise<void> {
  const step = async (what: string, fn: () => Promise<unknown>): Promise<void> => {
    try {
      await fn();
    } catch (err) {
      logger.warn({ err, what }, 'cleanup step failed');
    }
  };
  if (running.customerService) await step('customer service', () => running.customerService!.close());
  if (running.shop) await step('shop', () => running.shop!.close());
  for (const s of running.sidecars) await step(`sidecar ${s.config.agent}`, () => s.close());
  for (const a of running.busAgents) await step('bus-native agent', () => a.close());
  if (running.runtime) await step('shadow runtime', () => running.runtime!.close());
  if (running.resetModes) await step('flip log', running.resetModes);
  for (const i of running.shadowInstances) await step('shadow instance', () => i.close());
  if (running.rpc) await step('JSON-RPC agents', () => running.rpc!.close());
  // Named before the bus closes; deleted after, so nothing consumes or re-declares them meanwhile.
  const rabbitNames = running.rabbitmq && running.bus?.kind === 'rabbitmq' ? (running.bus as RabbitmqBus).declaredNames() : undefined;
  if (running.bus) await step('bus', () => running.bus!.close());
  if (running.rabbitmq && rabbitNames) {
    // The demo's own bus knows what it declared; the sidecars' buses declared more (their reply channels,
    // logs, groups). On the broker's host rabbitmqctl lists everything under the run's prefix.
    const { url, prefix } = running.rabbitmq;
    await step('rabbitmq exchanges and queues', async () => {
      const listed = await listRabbitNames(`${prefix}.`, vhostOf(url));
      await deleteRabbitObjects(url, { queues: [...new Set([...rabbitNames.queues, ...listed.queues])], exchanges: [...new Set([...rabbitNames.exchanges, ...listed.exchanges])] });
    });
  }
  if (running.redis) await step('redis keys', async () => void (await deleteRedisPrefix(running.redis!.url, running.redis!.prefix)));
  if (running.tmp) await step('temporary files', () => rm(running.tmp!, { recursive: true, force: true }));
}

async function waitForPairs(runtime: ShadowRuntime, expected: number, stream: ProgressStream, signal: AbortSignal): Promise<{ decided: number; ms: number }> {
  const started = performance.now();
  const comparator = runtime.comparator!;
  const decided = (): number => Object.values(comparator.stats().records).reduce((a, b) => a + b, 0);
  const bar = new ProgressBar(stream, 'pairing', expected, 'calls', false);
  // Every pair is decided within the window at the latest (then as missing); allow publishing time on top.
  const deadline = performance.now() + WINDOW_MS + 15_000;
  while (decided() < expected && performance.now() < deadline && !signal.aborted) {
    bar.update(decided());
    await new Promise((r) => setTimeout(r, 50));
  }
  await comparator.flush();
  bar.finish(decided());
  return { decided: decided(), ms: performance.now() - started };
}

