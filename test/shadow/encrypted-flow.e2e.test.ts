import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import amqp from 'amqplib';
import Database from 'better-sqlite3';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { startSidecar } from '../../proxy/sidecar.js';
import { buildReport, parityRecordsFromBus, reportFlowsFromConfig } from '../../reports/report.js';
import { renderHtml } from '../../reports/render-html.js';
import { renderJson } from '../../reports/render-json.js';
import { renderMarkdown } from '../../reports/render-md.js';
import { renderText } from '../../reports/render-text.js';
import { ShadowRuntime } from '../../shadow/runtime.js';
import { openBus } from '../../src/bus/index.js';
import { deleteRedisPrefix } from '../../src/bus/redis/maintenance.js';
import { registeredTopics, scanStream } from '../../src/bus/rabbitmq/backfill.js';
import { rabbitNames } from '../../src/bus/rabbitmq/names.js';
import type { Bus } from '../../src/bus/types.js';
import { cutoverConfigSchema, type CutoverConfig, type CutoverConfigInput } from '../../src/config/schema.js';
import { Keyring } from '../../src/crypto/keyring.js';
import { createRegistry } from '../../src/metrics.js';
import type { ParityRecord } from '../../src/parity/types.js';
import { rabbitmqUrl, redisUrl } from '../helpers/brokers.js';
import { deleteRabbitPrefix } from '../helpers/rabbitmq.js';
import { collectParity } from '../helpers/parity.js';
import { waitFor } from '../helpers/wait-for.js';

/**
 * An encrypted flow shadowed end to end: caller → sidecar (shadow mode, /customer/email and /card/number
 * encrypted in requests and responses) → payments agent; the shadow side replays each call to a second
 * instance and the comparator pairs both answers. With the key the shadow target sees clear values and the
 * flow reaches READY; without it, those fields never pair equal unless ignored. Either way no secret is on
 * the bus (every message of every topic is scanned) or in the report.
 */

const CALLS = 50;
const READINESS = { minSamples: 40, minParityLowerBound: 0.8 };
const FIELDS = ['/customer/email', '/card/number'];

const email = (i: number): string => `customer-${i}-${randomUUID().slice(0, 8)}@example.com`;
const card = (i: number): string => `4111${String(1_000_000_000_000 + i * 7919).slice(-12)}`;

interface Agent {
  url: string;
  /** Request bodies as the agent received them. */
  received: unknown[];
  close(): Promise<void>;
}

/** The payments agent: answers a charge with the customer and card it was given (its answer is then secret too). */
async function startPayments(): Promise<Agent> {
  const received: unknown[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString()) as { orderId: string; amount: number; customer: unknown; card: unknown };
      received.push(body);
      res.writeHead(201, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ chargeId: `ch-${body.orderId}`, status: 'captured', amount: body.amount, customer: body.customer, card: body.card }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, received, close: () => new Promise((r) => server.close(() => r())) };
}

function charge(url: string, body: unknown): Promise<number> {
  const payload = Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}/charges`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': payload.length } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/** Every message of every topic, as stored by the bus: event, key and headers, as one text to search. */
type BusDump = () => Promise<{ topics: number; text: string }>;

function embeddedDump(file: string): BusDump {
  return async () => {
    const db = new Database(file, { readonly: true, fileMustExist: true });
    try {
      const topics = (db.prepare('SELECT COUNT(*) AS n FROM topics').get() as { n: number }).n;
      const rows = db.prepare('SELECT msg_key, event, headers FROM messages').all() as Array<Record<string, string | null>>;
      return { topics, text: JSON.stringify(rows) };
    } finally {
      db.close();
    }
  };
}

function redisDump(url: string, prefix: string): BusDump {
  return async () => {
    const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    client.on('error', () => undefined);
    await client.connect();
    try {
      const parts: unknown[] = [];
      let topics = 0;
      let cursor = '0';
      do {
        const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
        cursor = next;
        for (const key of keys) {
          if ((await client.type(key)) !== 'stream') continue;
          topics += 1;
          parts.push(key, await client.xrange(key, '-', '+'));
        }
      } while (cursor !== '0');
      return { topics, text: JSON.stringify(parts) };
    } finally {
      client.disconnect();
    }
  };
}

/** Every topic's log stream under the prefix (topics from the registry stream), each read to a marker appended now. */
function rabbitDump(url: string, prefix: string): BusDump {
  return async () => {
    const names = rabbitNames(prefix);
    const model = await amqp.connect(url);
    model.on('error', () => undefined);
    try {
      const parts: unknown[] = [];
      const topics = [...(await registeredTopics(model, names))];
      const writer = await model.createConfirmChannel();
      for (const topic of topics) {
        const end = randomUUID();
        await new Promise<void>((resolve, reject) => writer.publish('', names.log(topic), Buffer.from('{}'), { headers: { 'cutover-read-marker': end } }, (err: unknown) => (err ? reject(new Error('nacked')) : resolve())));
        await scanStream(model, names.log(topic), end, (m) => void parts.push(topic, m.content.toString('utf8'), m.properties.headers));
      }
      return { topics: topics.length, text: JSON.stringify(parts) };
    } finally {
      await model.close().catch(() => undefined);
    }
  };
}

interface Setup {
  config: CutoverConfig;
  bus: Bus;
  dump: BusDump;
  direct: Agent;
  shadowTarget: Agent;
  secrets: string[];
  sidecarUrl: string;
}

const redis = redisUrl();
const rabbitmq = rabbitmqUrl();
const buses = [{ kind: 'embedded' as const }, ...(redis ? [{ kind: 'redis' as const }] : []), ...(rabbitmq ? [{ kind: 'rabbitmq' as const }] : [])];

describe.each(buses)('encrypted flow end to end on the $kind bus', ({ kind }) => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
  });

  const env = { CUTOVER_PII_KEY: randomBytes(32).toString('hex') };

  async function setup(): Promise<Setup> {
    const dir = await mkdtemp(path.join(tmpdir(), 'cutover-encrypted-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const prefix = `cutover-encrypted-${randomUUID().slice(0, 8)}${kind === 'redis' ? ':' : ''}`;
    if (kind === 'redis') cleanups.push(() => deleteRedisPrefix(redis!, prefix));
    if (kind === 'rabbitmq') cleanups.push(() => deleteRabbitPrefix(rabbitmq!, prefix));
    const direct = await startPayments();
    const shadowTarget = await startPayments();
    cleanups.push(() => direct.close(), () => shadowTarget.close());
    const input: CutoverConfigInput = {
      agent: 'payments',
      listen: '127.0.0.1:0',
      upstream: direct.url,
      admin: { listen: '127.0.0.1:0', auth: false },
      bus:
        kind === 'redis'
          ? { kind: 'redis', url: redis!, prefix, blockTime: '200ms' }
          : kind === 'rabbitmq'
            ? { kind: 'rabbitmq', url: rabbitmq!, prefix, rebalanceInterval: '200ms' }
            : { kind: 'embedded', path: path.join(dir, 'bus.db') },
      dataDir: dir,
      // The shadow side runs apart, as `cutover shadow` does, so each test chooses whether it holds the key.
      shadow: { inProcess: false, window: '20s' },
      readiness: READINESS,
      encryption: { keyEnv: 'CUTOVER_PII_KEY', keyId: 'pii-2026-01', fields: FIELDS },
      flows: [{ name: 'payments.charge', match: { method: 'POST', path: '/charges' }, topic: 'commands.agent.payments.charge', key: 'body.card.number', mode: 'shadow', shadow: { target: shadowTarget.url } }],
    };
    const config = cutoverConfigSchema.parse(input);
    const sidecar = await startSidecar(config, { env, registry: createRegistry() });
    cleanups.push(() => sidecar.close());
    const bus = await openBus(config.bus);
    cleanups.push(() => bus.close());
    const dump = kind === 'redis' ? redisDump(redis!, prefix) : kind === 'rabbitmq' ? rabbitDump(rabbitmq!, prefix) : embeddedDump(path.join(dir, 'bus.db'));
    return { config, bus, dump, direct, shadowTarget, secrets: [], sidecarUrl: sidecar.data.url };
  }

  async function shadowSide(s: Setup, options: { keyring?: Keyring; delivery: boolean; ignore?: string[]; parityTopic?: string; group?: string }): Promise<void> {
    const flow = s.config.flows[0]!;
    const runtime = new ShadowRuntime({
      bus: s.bus,
      busConfig: s.config.bus,
      dataDir: s.config.dataDir,
      flows: [{ ...flow, compare: { ...flow.compare, ignore: options.ignore ?? [] } }],
      shadow: s.config.shadow,
      delivery: options.delivery,
      ...(options.keyring ? { keyring: options.keyring } : {}),
      ...(options.parityTopic ? { parityTopic: options.parityTopic } : {}),
      ...(options.group ? { comparatorGroup: options.group } : {}),
    });
    await runtime.start();
    cleanups.push(() => runtime.close());
  }

  async function run(s: Setup): Promise<void> {
    for (let i = 0; i < CALLS; i++) {
      const e = email(i);
      const c = card(i);
      s.secrets.push(e, c);
      expect(await charge(s.sidecarUrl, { orderId: `o-${i}`, amount: 10 + i, customer: { email: e, name: `Customer ${i}` }, card: { number: c } })).toBe(201);
    }
  }

  async function report(s: Setup) {
    return buildReport(parityRecordsFromBus(s.bus), { flows: reportFlowsFromConfig(s.config.flows), readiness: s.config.readiness });
  }

  /** No secret in any message of any topic, nor in any rendering of the report. */
  async function expectNoSecrets(s: Setup, rendered: string[]): Promise<void> {
    const { topics, text } = await s.dump();
    // Flow topic, observations, parity at least: the scan sees the whole bus, not one topic.
    expect(topics).toBeGreaterThanOrEqual(3);
    expect(text.length).toBeGreaterThan(CALLS * 500);
    for (const secret of s.secrets) {
      expect(text.includes(secret), `${secret} on the bus`).toBe(false);
      for (const r of rendered) expect(r.includes(secret), `${secret} in the report`).toBe(false);
    }
  }

  it('with the key on the shadow side: the target gets clear values, the flow reaches READY, and nothing clear is on the bus or in the report', async () => {
    const s = await setup();
    const records = await collectParity(s.bus);
    await shadowSide(s, { keyring: Keyring.fromConfig(s.config.encryption!, env), delivery: true });
    await run(s);
    await waitFor(() => records.length >= CALLS, { timeoutMs: 60_000, what: `${CALLS} parity records` });
    expect(records.filter((r) => r.outcome !== 'match')).toEqual([]);
    // The shadow target was sent the values the caller sent, in clear (in any order: keys replay in parallel).
    const byOrder = (bodies: unknown[]) => [...bodies].sort((a, b) => ((a as { orderId: string }).orderId < (b as { orderId: string }).orderId ? -1 : 1));
    expect(byOrder(s.shadowTarget.received)).toEqual(byOrder(s.direct.received));
    expect(JSON.stringify(s.shadowTarget.received)).toContain(s.secrets[0]!);
    const r = await report(s);
    const flow = r.flows[0]!;
    expect(flow.verdict.status).toBe('READY');
    await expectNoSecrets(s, [renderText(r), renderMarkdown(r), renderHtml(r), renderJson(r)]);
  });

  it('without the key: encrypted fields never pair equal (NOT_READY, shown as [ENCRYPTED]); with compare.ignore on them the flow pairs equal', async () => {
    const s = await setup();
    const records = await collectParity(s.bus);
    const ignoring = await collectParity(s.bus, { topic: 'cutover.parity-ignoring', group: 'test.parity-ignoring' });
    await shadowSide(s, { delivery: true });
    await shadowSide(s, { delivery: false, ignore: ['/body/customer/email', '/body/card/number'], parityTopic: 'cutover.parity-ignoring', group: 'cutover.comparator-ignoring' });
    await run(s);
    await waitFor(() => records.length >= CALLS && ignoring.length >= CALLS, { timeoutMs: 60_000, what: `${CALLS} parity records of each comparator` });
    // The target got the ciphertext, as published.
    expect(JSON.stringify(s.shadowTarget.received)).toContain('"$enc"');
    expect(records.map((x) => x.outcome)).toEqual(Array(CALLS).fill('mismatch'));
    const paths = new Set(records.flatMap((x: ParityRecord) => x.diffs.map((d) => d.path)));
    expect([...paths].sort()).toEqual(['/body/card/number/$enc', '/body/customer/email/$enc']);
    expect(records.flatMap((x) => x.diffs).every((d) => d.direct === '[ENCRYPTED]' && d.bus === '[ENCRYPTED]')).toBe(true);
    expect(ignoring.map((x) => x.outcome)).toEqual(Array(CALLS).fill('match'));
    const r = await report(s);
    expect(r.flows[0]!.verdict.status).toBe('NOT_READY');
    const text = renderText(r);
    await expectNoSecrets(s, [text, renderMarkdown(r), renderHtml(r), renderJson(r)]);
  });
});
