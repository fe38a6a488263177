import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createBus, type BusConfigInput } from '../../src/bus/index.js';
import { deleteRedisPrefix } from '../../src/bus/redis/maintenance.js';
import { rabbitmqUrl, redisUrl } from '../helpers/brokers.js';
import { deleteRabbitPrefix } from '../helpers/rabbitmq.js';
import { waitFor } from '../helpers/wait-for.js';
import { observationsTopicOf } from '../../src/events/wire.js';

/**
 * SIGKILL of a sidecar process while traffic runs, then a restart on the same spool: the events on the
 * bus (Redis or RabbitMQ, read straight from it, not through the sidecar) are counted against the calls the upstream saw
 * and the responses the client got. What `spool.durability` promises is checked here, and the table each
 * run prints is what docs/sidecar.md quotes.
 */

const root = path.resolve(import.meta.dirname, '../..');
const RATE = 300;
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
});
const table: string[] = [];
afterAll(() => {
  if (table.length) process.stdout.write(`\nSIGKILL loss (${RATE} req/s, 2 events per call)\n| bus | durability | bus at the kill | calls | events expected | on the bus | lost | duplicated |\n|---|---|---|---|---|---|---|---|\n${table.join('\n')}\n`);
});

/** A TCP relay in front of the bus server that can stall (hold every byte: a paused server) or refuse (a dead one). */
async function relay(port: number): Promise<{ port: number; stall(): void; refuse(): void; close(): Promise<void> }> {
  let mode: 'open' | 'stall' | 'refuse' = 'open';
  const live = new Set<net.Socket>();
  const server = net.createServer((client) => {
    if (mode === 'refuse') return client.destroy();
    const upstream = net.connect(port, '127.0.0.1');
    live.add(client).add(upstream);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    stall() {
      mode = 'stall';
      for (const s of live) {
        s.unpipe();
        s.pause();
      }
    },
    refuse() {
      mode = 'refuse';
      for (const s of live) s.destroy();
    },
    close() {
      for (const s of live) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

async function upstreamServer(): Promise<{ url: string; seen: Set<number>; close(): Promise<void> }> {
  const seen = new Set<number>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.add((JSON.parse(Buffer.concat(chunks).toString('utf8')) as { n: number }).n);
      res.writeHead(201, { 'content-type': 'application/json' }).end('{"ok":true}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    seen,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

function startSidecar(file: string): { child: ChildProcess; url: Promise<string>; admin: Promise<string>; exited: Promise<unknown> } {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', '--input-type=module', '-e', "const m = await import('./bin/main.ts'); process.exitCode = await m.runCli(process.argv.slice(1));", 'sidecar', '--config', file],
    { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  cleanups.push(async () => child.exitCode === null && child.signalCode === null && child.kill('SIGKILL'));
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise((resolve) => child.on('exit', resolve));
  const url = waitFor(() => /on (http:\/\/[\d.]+:\d+)/.exec(stdout)?.[1], { timeoutMs: 60_000, what: `sidecar listening (stderr: ${stderr.slice(-2000)})` });
  const admin = url.then(() => /admin (http:\/\/[\d.]+:\d+)/.exec(stdout)![1]!);
  return { child, url, admin, exited };
}

/** Sends RATE requests per second until stopped; records which responses completed. */
function traffic(url: string, from: number): { stop(): Promise<void>; completed: Set<number> } {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const completed = new Set<number>();
  let n = from;
  const inFlight = new Set<Promise<void>>();
  const timer = setInterval(() => {
    for (let i = 0; i < RATE / 100; i++) {
      const id = n++;
      const body = JSON.stringify({ n: id, sku: `SKU-${id % 7}` });
      const p = new Promise<void>((resolve) => {
        const req = http.request(`${url}/reservations`, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
          res.resume();
          res.on('end', () => {
            if (res.statusCode === 201) completed.add(id);
            resolve();
          });
          res.on('error', () => resolve());
        });
        req.on('error', () => resolve());
        req.end(body);
      });
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
    }
  }, 10);
  return {
    completed,
    async stop() {
      clearInterval(timer);
      await Promise.all(inFlight);
      agent.destroy();
    },
  };
}

/** A bus server the sidecar reaches through the relay: its config at a given port, and its own cleanup. */
interface Server {
  kind: 'redis' | 'rabbitmq';
  url: string;
  config(prefix: string, port: number): BusConfigInput;
  prefix(id: string): string;
  cleanup(prefix: string): Promise<unknown>;
}

function atPort(url: string, port: number): string {
  const u = new URL(url);
  u.port = String(port);
  return u.toString();
}

const SERVERS: Array<Server | undefined> = [
  ((url) => (url ? { kind: 'redis', url, config: (prefix, port) => ({ kind: 'redis', url: atPort(url, port), prefix }), prefix: (id) => `cutover-crash-${id}:`, cleanup: (prefix) => deleteRedisPrefix(url, prefix) } : undefined))(redisUrl()),
  ((url) => (url ? { kind: 'rabbitmq', url, config: (prefix, port) => ({ kind: 'rabbitmq', url: atPort(url, port), prefix, heartbeat: '5s' }), prefix: (id) => `cutover-crash-${id}`, cleanup: (prefix) => deleteRabbitPrefix(url, prefix) } : undefined))(rabbitmqUrl()),
];

/** Events of a topic read straight from the bus: the call number of each (from its body or its call's id). */
async function readTopic(server: Server, prefix: string, topic: string, callOf?: Map<string, number>): Promise<Array<{ n: number | undefined; id: string }>> {
  const bus = await createBus(server.config(prefix, Number(new URL(server.url).port)));
  await bus.start();
  try {
    const out: Array<{ n: number | undefined; id: string }> = [];
    for await (const d of bus.read(topic, { from: 'start', follow: false })) {
      const data = d.event.data as { body?: { n: number }; request?: { body?: string } };
      let n = data.body?.n;
      if (n === undefined && typeof data.request?.body === 'string') n = (JSON.parse(data.request.body) as { n?: number }).n;
      n ??= callOf?.get(String(d.event.correlationid));
      out.push({ n, id: d.event.id });
    }
    return out;
  } finally {
    await bus.close();
  }
}

type BusState = 'healthy' | 'paused' | 'down';

async function crashRun(server: Server, durability: 'none' | 'interval' | 'strict', state: BusState): Promise<{ calls: number; expected: number; found: number; lost: number; duplicated: number }> {
  const id = randomUUID().slice(0, 8);
  const prefix = server.prefix(id);
  cleanups.push(() => server.cleanup(prefix));
  const dir = await mkdtemp(path.join(tmpdir(), 'cutover-crash-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const upstream = await upstreamServer();
  cleanups.push(() => upstream.close());
  const serverPort = Number(new URL(server.url).port || (server.kind === 'redis' ? 6379 : 5672));
  const proxy = await relay(serverPort);
  cleanups.push(() => proxy.close());
  const topic = `commands.agent.inventory.crash-${id}`;
  const observations = `cutover.observations.crash-${id}`;
  // JSON is YAML too: the config file the CLI reads.
  const config = (busPort: number): string =>
    JSON.stringify({
      agent: 'inventory',
      listen: '127.0.0.1:0',
      upstream: upstream.url,
      admin: { listen: '127.0.0.1:0', auth: false },
      bus: server.config(prefix, busPort),
      dataDir: dir,
      observationsTopic: observations,
      spool: { durability },
      log: { level: 'error' },
      flows: [{ name: 'inventory.reserve', match: { method: 'POST', path: '/reservations' }, topic, key: 'body.sku', mode: 'shadow' }],
    });
  const first = path.join(dir, 'first.yaml');
  await writeFile(first, config(proxy.port));
  const a = startSidecar(first);
  const load = traffic(await a.url, 0);
  await waitFor(() => load.completed.size >= RATE, { timeoutMs: 30_000, what: 'a second of traffic' });
  if (state === 'paused') proxy.stall();
  if (state === 'down') proxy.refuse();
  const before = load.completed.size;
  await waitFor(() => load.completed.size >= before + RATE / 2, { timeoutMs: 30_000, what: 'traffic with the bus in trouble' });
  a.child.kill('SIGKILL');
  await a.exited;
  await load.stop();

  const second = path.join(dir, 'second.yaml');
  await writeFile(second, config(serverPort));
  const b = startSidecar(second);
  const admin = await b.admin;
  await waitFor(
    async () => {
      const ready = (await (await fetch(`${admin}/readyz`)).json()) as { ok: boolean; publisher: { queueDepth: number; spoolDepth: number } };
      return ready.ok && ready.publisher.queueDepth === 0 && ready.publisher.spoolDepth === 0;
    },
    { timeoutMs: 60_000, what: 'the restarted sidecar to send its spool' },
  );
  const calls = upstream.seen.size;
  const expected = calls + load.completed.size;
  // Drained when the counts stop moving: the restarted sidecar sends its spool within a few seconds.
  let last = -1;
  let found = { calls: [] as Array<{ n: number | undefined; id: string }>, obs: [] as Array<{ n: number | undefined; id: string }> };
  await waitFor(
    async () => {
      const callEvents = await readTopic(server, prefix, topic);
      found = { calls: callEvents, obs: await readTopic(server, prefix, observationsTopicOf('inventory.reserve', observations), new Map(callEvents.map((c) => [c.id, c.n!]))) };
      const now = found.calls.length + found.obs.length;
      const stable = now === last;
      last = now;
      return stable && now > 0;
    },
    { timeoutMs: 60_000, intervalMs: 1_500, what: 'events on the bus to stop arriving' },
  );
  b.child.kill('SIGTERM');
  await b.exited;

  const callSet = new Set(found.calls.map((c) => c.n));
  const obsSet = new Set(found.obs.map((o) => o.n));
  const lostCalls = [...upstream.seen].filter((n) => !callSet.has(n)).length;
  const lostObs = [...load.completed].filter((n) => !obsSet.has(n)).length;
  // Duplicates are the same event id twice (a resend), not two events of one call.
  const duplicated = found.calls.length - new Set(found.calls.map((c) => c.id)).size + (found.obs.length - new Set(found.obs.map((o) => o.id)).size);
  const result = { calls, expected, found: expected - lostCalls - lostObs, lost: lostCalls + lostObs, duplicated };
  table.push(`| ${server.kind} | ${durability} | ${state} | ${calls} | ${expected} | ${result.found} | ${result.lost} (${lostCalls} calls, ${lostObs} observations) | ${duplicated} |`);
  return result;
}

for (const [i, kind] of (['redis', 'rabbitmq'] as const).entries()) {
  const server = SERVERS[i];
  describe.skipIf(!server)(`sidecar SIGKILL (process, ${kind})`, () => {
    // A killed process keeps what it wrote; it loses what was accepted after its last write() began, and
    // the observations of responses finishing at the kill (built when the response is done, which the client
    // may see first). 100 ms of events at 2 per call: generous for a loaded 2-core machine.
    const bound = (2 * RATE * 100) / 1_000;

    for (const state of ['paused', 'healthy', 'down'] as const) {
      for (const durability of ['interval', 'strict'] as const) {
        it(`durability ${durability}, bus ${state}: loses at most 100 ms of events`, async () => {
          const r = await crashRun(server!, durability, state);
          expect(r.found).toBeGreaterThan(0);
          expect(r.lost).toBeLessThanOrEqual(bound);
        }, 180_000);
      }
    }

    it.runIf(process.env.CUTOVER_CRASH_BASELINE)('durability none, for comparison (CUTOVER_CRASH_BASELINE=1)', async () => {
      for (const state of ['paused', 'healthy', 'down'] as const) await crashRun(server!, 'none', state);
    }, 600_000);
  });
}
