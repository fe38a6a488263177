import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Report } from '../../reports/types.js';
import { checkoutCount } from '../../examples/demo/checkout-traffic.js';
import { loadConfigFile } from '../../src/config/load.js';
import { cutoverConfigSchema } from '../../src/config/schema.js';
import { kafkaBrokers, rabbitmqUrl, redisUrl } from '../helpers/brokers.js';
import { listRabbitNames } from '../../src/bus/rabbitmq/maintenance.js';
import { launchChromium, watchPage } from '../helpers/chromium.js';

/**
 * `npm start` end to end: the demo as a child process, the way a user runs it (`--no-wait` so it exits).
 * 400 requests (the 240 questions to customer service and the 210 checkouts beside them) give every flow
 * at least the demo's 200 samples.
 */

const root = path.resolve(import.meta.dirname, '../..');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runDemo(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', 'examples/demo/main.ts', ...args],
      // CI unset: the flag under test is --no-wait, not the CI fallback.
      { cwd: root, env: { ...process.env, CI: '', NO_COLOR: '1', ...env }, timeout: 170_000, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr }),
    );
  });
}

/** The verdict column of the report table, by flow. */
function tableVerdicts(stdout: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of stdout.split('\n')) {
    const m = /^(pricing\.quote|inventory\.reserve|fraud\.check|logistics\.ship|orders\.checkout|fraud-desk\.send|fraud-desk\.stream|inventory-mcp\.lookup-stock)\s+shadow\s+.*\s(READY|NOT_READY|INSUFFICIENT_DATA)$/.exec(line);
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

/** The JSON-RPC flows, one per method: A2A SendMessage, the streamed SendStreamingMessage, MCP tools/call lookup_stock. */
const RPC_FLOWS = ['fraud-desk.send', 'fraud-desk.stream', 'inventory-mcp.lookup-stock'];
const DESIGNED = {
  'pricing.quote': 'NOT_READY', 'inventory.reserve': 'NOT_READY', 'fraud.check': 'READY', 'logistics.ship': 'READY', 'orders.checkout': 'READY',
  ...Object.fromEntries(RPC_FLOWS.map((f) => [f, 'READY'])),
};

async function expectDesignedRun(run: Run, out: string): Promise<Report> {
  expect(run.code, run.stderr.slice(-2000)).toBe(0);
  expect(tableVerdicts(run.stdout)).toEqual(DESIGNED);
  for (const file of ['report.html', 'report.md', 'report.json', 'report.txt']) expect(existsSync(path.join(out, file)), file).toBe(true);
  // The run's config, for the CLI while the demo serves: valid for the CLI's schema.
  const config = loadConfigFile(path.join(out, 'cutover.yaml'), cutoverConfigSchema);
  expect(config.flows.map((f) => [f.name, f.mode])).toEqual([
    ...['pricing.quote', 'inventory.reserve', 'fraud.check', 'logistics.ship', 'orders.checkout', 'fraud-desk.send'].map((name) => [name, 'shadow']),
    // GetTask reads a task only the direct agent holds: left direct, so not in the report.
    ['fraud-desk.get-task', 'direct'],
    ['fraud-desk.stream', 'shadow'],
    ['inventory-mcp.lookup-stock', 'shadow'],
  ]);
  expect(config.flows.filter((f) => f.match.rpc !== undefined).map((f) => [f.match.path, f.match.rpc, f.match.tool])).toEqual([
    ['/a2a', 'SendMessage', undefined],
    ['/a2a', 'GetTask', undefined],
    ['/a2a', 'SendStreamingMessage', undefined],
    ['/mcp', 'tools/call', 'lookup_stock'],
  ]);
  expect(config.readiness).toMatchObject({ minSamples: 200, minParityLowerBound: 0.98 });
  expect(config.flows.find((f) => f.name === 'orders.checkout')!.saga).toBe('checkout');
  expect(config.sagas!.map((s) => [s.name, s.steps.map((st) => [st.name, st.compensation ?? '-']), s.pointOfNoReturn])).toEqual([
    [
      'checkout',
      [
        ['reserve', 'commands.agent.inventory.checkout.release'],
        ['fraud', '-'],
        ['pay', 'commands.agent.payments.checkout.refund'],
        ['ship', '-'],
      ],
      'ship',
    ],
  ]);
  const report = JSON.parse(await readFile(path.join(out, 'report.json'), 'utf8')) as Report;
  expect(Object.fromEntries(report.flows.map((f) => [f.flow, f.verdict.status]))).toEqual(DESIGNED);
  expect(report.verdict).toBe('NOT_READY');

  const flow = (name: string) => report.flows.find((f) => f.flow === name)!;
  // On a failure: what the demo said about its traffic and pairing, and each flow's counts.
  const said = run.stdout.split('\n').filter((l) => /^(Traffic|Comparator|Customer service)/.test(l.trim())).join('\n');
  const counts = (name: string): string => `${said}\n${name}: ${flow(name).samples} samples, ${JSON.stringify(flow(name).outcomes)}${flow(name).change ? `, parity changed at ${flow(name).change!.at}` : ''}`;
  // The rounding bug: parity fails (not sample size), on the price fields.
  const pricing = flow('pricing.quote');
  expect(pricing.verdict.reasons.map((r) => [r.criterion, r.status]), counts('pricing.quote')).toEqual([['minParityLowerBound', 'fail']]);
  expect(pricing.topDiffs.map((d) => d.field)).toEqual(expect.arrayContaining(['/body/lines/*/unitPrice', '/body/total']));
  // The ordering bug: parity fails on the stock the callers are told remains.
  const inventory = flow('inventory.reserve');
  // How often two orders race for one SKU follows the machine's pace, so on a slow run the report may find a
  // change in this flow's parity and judge only the calls after it: then, and only then, those can also be
  // fewer than minSamples, and the NOT_READY above rests on the parity failure being conclusive. With enough
  // samples a failure decides alone, however few the mismatches of a slow run (20 of 438 were seen).
  const inventoryReasons = inventory.verdict.reasons.map((r) => `${r.criterion} ${r.status}`);
  const allowed = inventory.change ? ['minParityLowerBound fail', 'minSamples insufficient'] : ['minParityLowerBound fail'];
  expect(inventoryReasons, counts('inventory.reserve')).toContain('minParityLowerBound fail');
  expect(inventoryReasons.filter((r) => !allowed.includes(r)), counts('inventory.reserve')).toEqual([]);
  if (inventoryReasons.includes('minSamples insufficient')) {
    expect(inventory.verdict.reasons.find((r) => r.criterion === 'minParityLowerBound')!.conclusive, counts('inventory.reserve')).toBe(true);
  }
  expect(inventory.topDiffs[0]!.field).toBe('/body/remaining');
  for (const name of ['fraud.check', 'logistics.ship', 'orders.checkout', ...RPC_FLOWS]) {
    const f = flow(name);
    expect(f.samples, counts(name)).toBeGreaterThanOrEqual(200);
    expect(f.outcomes.match).toBe(f.samples);
    expect(f.verdict.reasons).toEqual([]);
  }
  // Customer service's questions: each answered after four JSON-RPC calls, one of them a stream.
  expect(run.stdout).toMatch(/^Customer service: \d+ questions, answered \d+× 200 \(/m);
  expect(run.stdout).toMatch(/fraud-desk\.stream\s+POST \/a2a SendStreamingMessage\s+key rpc\.params\.message\.contextId; delivery to a shadow fraud-desk instance/);
  // Discovery first: the table of what the sidecars observed, printed before the flows are shadowed.
  const table = run.stdout.indexOf('What the sidecars saw');
  expect(table).toBeGreaterThan(-1);
  expect(table).toBeLessThan(run.stdout.indexOf('direct -> shadow'));
  expect(run.stdout.indexOf('direct -> shadow')).toBeLessThan(run.stdout.indexOf('Sending'));
  const discovered = run.stdout.slice(table, run.stdout.indexOf('direct -> shadow'));
  expect(discovered).toMatch(/GET\s+\/stock\/:stockId\s+\d+ .* inventory\.get-stock -> commands\.agent\.inventory\.get-stock/);
  expect(discovered).toMatch(/POST\s+\/a2a\s+SendStreamingMessage\s+\d+ .* fraud-desk\.stream \(configured\)/);
  expect(discovered).toMatch(/POST\s+\/mcp\s+tools\/call lookup_stock\s+\d+ .* inventory-mcp\.lookup-stock \(configured\)/);
  expect(discovered).toMatch(/POST\s+\/mcp\s+tools\/list\s+1 .* inventory-mcp\.tools-list -> commands\.agent\.inventory-mcp\.tools-list/);
  expect(run.stdout).toMatch(/Flipped pricing\.quote, inventory\.reserve, fraud\.check, logistics\.ship, orders\.checkout, fraud-desk\.send, fraud-desk\.stream, inventory-mcp\.lookup-stock direct -> shadow/);
  expectCheckoutSaga(run, flow('orders.checkout'));
  // The flip step moves the READY flow (the sidecar applies the flip and serves more orders over the bus)
  // and the gate refuses the NOT_READY one.
  expect(run.stdout).toMatch(/Flip step/);
  expect(run.stdout).toMatch(/cutover flip logistics\.ship --to bus/);
  expect(run.stdout).toMatch(/flipped logistics\.ship shadow -> bus, recorded on cutover\.control/);
  expect(run.stdout).toMatch(/the logistics sidecar now serves logistics\.ship over the bus/);
  expect(run.stdout).toMatch(/\d+ more orders after the flip, logistics\.ship over the bus: \d+× 201(, \d+× 409)?\n/);
  expect(run.stdout).toMatch(/refused \(CUTOVER_FLIP_REFUSED\): flip pricing\.quote shadow -> bus refused: verdict NOT_READY/);
  expect(run.stdout).toMatch(/Scripted part done in \d+\.\d s\./);
  return report;
}

/**
 * The checkout chain proven as a saga: every outcome matches the chain's answer, payments refused some
 * checkouts (the traffic's 402s), and the saga undid the hold of each checkout refused after it, as the
 * chain did by hand. The narration says so.
 */
function expectCheckoutSaga(run: Run, checkout: Report['flows'][number]): void {
  const saga = checkout.saga!;
  expect(saga.name).toBe('checkout');
  expect(saga.mismatchSteps).toEqual([]);
  expect(saga.ended.stuck).toBe(0);
  const step = (name: string) => saga.steps.find((s) => s.name === name)!;
  const declined = Number(/checkouts \([^)]*?(\d+)× 402/.exec(run.stdout)?.[1] ?? 0);
  expect(declined).toBeGreaterThan(0);
  expect(step('pay').refused).toBe(declined);
  // Every refusal after the hold released it; nothing after the charge failed, so nothing was refunded.
  expect(step('reserve').compensated).toBe(step('fraud').refused + step('pay').refused + step('ship').refused);
  expect(step('pay').compensated).toBe(step('ship').refused);
  expect(saga.ended.compensated).toBe(saga.steps.reduce((sum, s) => sum + s.refused + s.failed, 0));
  expect(saga.ended.completed + saga.ended.compensated).toBe(checkout.samples);
  expect(run.stdout).toMatch(/Saga flows/);
  expect(run.stdout).toContain(`orders.checkout READY as saga checkout: ${checkout.samples} of ${checkout.samples} outcomes match the REST chain's answer.`);
  expect(run.stdout).toContain(`compensations ran: reserve ${step('reserve').compensated} undone.`);
}

/** The demo's HTML report in headless Chromium: the five flows with their verdicts, no errors, no network. */
async function expectHtmlOpens(file: string): Promise<void> {
  const profile = await mkdtemp(path.join(tmpdir(), 'cutover-demo-chromium-'));
  const context = await launchChromium(profile);
  try {
    const page = await context.newPage();
    const { requests, problems } = watchPage(page);
    const url = pathToFileURL(file).href;
    await page.goto(url, { waitUntil: 'load' });
    expect(await page.locator('section.flow h2').allTextContents()).toEqual(Object.keys(DESIGNED));
    expect(await page.locator('section.flow').evaluateAll((els) => els.map((e) => e.getAttribute('data-verdict')))).toEqual(Object.values(DESIGNED));
    expect(await page.locator('svg.timeline-chart').count()).toBe(Object.keys(DESIGNED).length);
    if (process.env.CUTOVER_DEMO_SCREENSHOT) await page.screenshot({ path: process.env.CUTOVER_DEMO_SCREENSHOT, fullPage: true });
    expect(problems).toEqual([]);
    expect(requests).toEqual([url]);
  } finally {
    await context.close();
    await rm(profile, { recursive: true, force: true });
  }
}

describe('the demo (npm start)', () => {
  let out: string;
  beforeAll(async () => {
    out = await mkdtemp(path.join(tmpdir(), 'cutover-demo-test-'));
  });
  afterAll(() => rm(out, { recursive: true, force: true }));

  it('runs on the embedded bus: READY and NOT_READY flows for the planted reasons, reports written, exit 0', async () => {
    const dir = path.join(out, 'embedded');
    const run = await runDemo(['--no-wait', '--requests', '400', '--out', dir]);
    const report = await expectDesignedRun(run, dir);
    expect(run.stdout).toMatch(/onto the embedded bus/);
    // The progress bar goes to stderr, as plain lines when stderr is not a terminal.
    const sent = 400 + checkoutCount(400);
    expect(run.stderr).toMatch(new RegExp(`^traffic \\[#+\\] 100% ${sent}/${sent} requests`, 'm'));
    expect(run.stderr).not.toMatch(/\r|\x1b\[/);
    expect(report.flows.every((f) => f.mode === 'shadow')).toBe(true);
    expect(await readFile(path.join(dir, 'report.md'), 'utf8')).toMatch(/pricing\.quote/);
    await expectHtmlOpens(path.join(dir, 'report.html'));
  }, 180_000);

  it('with --fix for both planted bugs, every flow is READY', async () => {
    const dir = path.join(out, 'fixed');
    const run = await runDemo(['--no-wait', '--requests', '400', '--out', dir, '--fix', 'pricing.quote', '--fix', 'inventory.reserve']);
    expect(run.code, run.stderr.slice(-2000)).toBe(0);
    expect(tableVerdicts(run.stdout)).toEqual(Object.fromEntries(Object.keys(DESIGNED).map((f) => [f, 'READY'])));
  }, 180_000);

  const redis = redisUrl();
  (redis ? it : it.skip)('runs the same on Redis (--bus redis)', async () => {
    const dir = path.join(out, 'redis');
    const run = await runDemo(['--no-wait', '--bus', 'redis', '--requests', '400', '--out', dir], { REDIS_URL: redis! });
    await expectDesignedRun(run, dir);
    expect(run.stdout).toMatch(/onto the redis bus/);
  }, 180_000);

  const kafka = kafkaBrokers();
  (kafka ? it : it.skip)('runs the same on Kafka (--bus kafka)', async () => {
    const dir = path.join(out, 'kafka');
    const run = await runDemo(['--no-wait', '--bus', 'kafka', '--requests', '400', '--out', dir], { KAFKA_BROKERS: kafka!.join(',') });
    await expectDesignedRun(run, dir);
    expect(run.stdout).toMatch(/onto the kafka bus/);
  }, 180_000);

  const rabbitmq = rabbitmqUrl();
  (rabbitmq ? it : it.skip)('runs the same on RabbitMQ (--bus rabbitmq)', async () => {
    const dir = path.join(out, 'rabbitmq');
    const before = await listRabbitNames('cutover-demo-');
    const run = await runDemo(['--no-wait', '--bus', 'rabbitmq', '--requests', '400', '--out', dir], { RABBITMQ_URL: rabbitmq! });
    await expectDesignedRun(run, dir);
    expect(run.stdout).toMatch(/onto the rabbitmq bus/);
    // The run removes every queue and exchange it declared (its sidecars' included) under its own prefix.
    const after = await listRabbitNames('cutover-demo-');
    expect(after.queues.filter((q) => !before.queues.includes(q))).toEqual([]);
    expect(after.exchanges.filter((x) => !before.exchanges.includes(x))).toEqual([]);
  }, 180_000);

  it('says how to start RabbitMQ when nothing answers, and exits 1', async () => {
    const run = await runDemo(['--no-wait', '--bus', 'rabbitmq', '--out', path.join(out, 'none-rabbitmq')], { RABBITMQ_URL: 'amqp://guest:guest@127.0.0.1:1/' });
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/cannot reach the rabbitmq bus: nothing answers at 127\.0\.0\.1:1/);
    expect(run.stdout).toMatch(/RABBITMQ_URL/);
  });

  it('says how to start Kafka when no broker answers, and exits 1', async () => {
    const run = await runDemo(['--no-wait', '--bus', 'kafka', '--out', path.join(out, 'none')], { KAFKA_BROKERS: '127.0.0.1:1' });
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/cannot reach the kafka bus: nothing answers at 127\.0\.0\.1:1/);
    expect(run.stdout).toMatch(/npm run kafka:start/);
  });

  it('rejects a bad flag with the usage and exit 2', async () => {
    const run = await runDemo(['--bus', 'nats']);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/CUTOVER_USAGE: --bus expects embedded, redis, kafka or rabbitmq/);
    expect(run.stderr).toMatch(/usage: npm start/);
  });
});
