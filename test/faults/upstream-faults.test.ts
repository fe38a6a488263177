import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/wait-for.js';
import { freePort } from './helpers/brokers.js';
import { printRow, readEmbedded, tally, type SeenEvent } from './helpers/count.js';
import { newFlow, startSidecarProcess, writeSidecarConfig, type SidecarProcess } from './helpers/sidecar.js';
import { callOnce, type CallResult } from './helpers/traffic.js';

/** Long enough that a hang cannot pass for a prompt failure; far above the 1 s upstreamTimeout. */
const CALLER_TIMEOUT_MS = 5_000;

/** An upstream that misbehaves in one way, counting the calls it saw. */
interface BadUpstream {
  url: string;
  seen(): number;
  close(): Promise<void>;
}

async function badUpstream(onRequest: (req: http.IncomingMessage, res: http.ServerResponse) => void): Promise<BadUpstream> {
  let seen = 0;
  const sockets = new Set<net.Socket>();
  const server = http.createServer((req, res) => {
    seen++;
    req.resume();
    req.on('end', () => onRequest(req, res));
  });
  server.on('connection', (s) => (sockets.add(s), s.on('close', () => sockets.delete(s))));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    seen: () => seen,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Headers and part of a body, then the connection dies: the response can never be complete. */
function abortMidBody(chunked: boolean) {
  return (_req: http.IncomingMessage, res: http.ServerResponse): void => {
    res.writeHead(200, chunked ? { 'content-type': 'text/plain' } : { 'content-type': 'text/plain', 'content-length': '100000' });
    res.write('x'.repeat(1_000));
    setTimeout(() => res.socket?.destroy(), 50);
  };
}

let dir: string;
let sidecar: SidecarProcess;
const upstreams: Record<string, BadUpstream | { url: string; seen(): number; close(): Promise<void> }> = {};
const prefix = `c${randomUUID().slice(0, 8)}`;
const dbPath = (): string => path.join(dir, 'bus.db');

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'cutover-faults-upstream-'));
  const deadPort = await freePort();
  upstreams.dead = { url: `http://127.0.0.1:${deadPort}`, seen: () => 0, close: async () => undefined };
  // Never answers; its sockets are destroyed when the test ends.
  upstreams.slow = await badUpstream(() => undefined);
  upstreams.reset = await badUpstream((req) => {
    const socket = req.socket as net.Socket & { resetAndDestroy?: () => void };
    if (socket.resetAndDestroy) socket.resetAndDestroy();
    else socket.destroy();
  });
  upstreams['abort-length'] = await badUpstream(abortMidBody(false));
  upstreams['abort-chunked'] = await badUpstream(abortMidBody(true));
  const config = await writeSidecarConfig(path.join(dir, 'cutover.yaml'), {
    bus: `{ kind: embedded, path: ${dbPath()} }`,
    dataDir: dir,
    flow: newFlow(),
    flowPath: '/:fault/calls',
    extra: ['upstreamTimeout: 1s', 'routes:', ...Object.entries(upstreams).map(([name, u]) => `  - { prefix: /${name}/, upstream: ${u.url} }`)],
  });
  sidecar = await startSidecarProcess(config);
});
afterAll(async () => {
  await sidecar?.kill();
  for (const u of Object.values(upstreams)) await u.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const CALLS = 3;

/** Calls `/<fault>/calls` CALLS times at once; then the observations of those calls once all are on the bus. */
async function exercise(fault: string): Promise<{ results: CallResult[]; observations: SeenEvent[]; events: SeenEvent[] }> {
  const ids = Array.from({ length: CALLS }, (_, i) => `${prefix}-${fault}-${i}`);
  const results = await Promise.all(ids.map((id) => callOnce(sidecar.url, id, undefined, CALLER_TIMEOUT_MS, `/${fault}/calls`)));
  let events: SeenEvent[] = [];
  await waitFor(
    () => {
      events = readEmbedded(dbPath()).filter((e) => ids.includes(e.callId));
      return tally(ids, events, prefix).lost === 0;
    },
    { timeoutMs: 8_000, intervalMs: 200, what: `events of the ${fault} calls` },
  ).catch(() => undefined);
  return { results, observations: events.filter((e) => e.kind === 'observation'), events };
}

function report(fault: string, ids: string[], r: Awaited<ReturnType<typeof exercise>>, failed: number): void {
  const t = tally(ids, r.events, prefix);
  printRow(`upstream ${fault} (caller: ${[...new Set(r.results.map((x) => x.status ?? x.error))].join(', ')})`, {
    calls: upstreams[fault]!.seen(),
    failed,
    lost: t.lost,
    duplicated: t.duplicated,
  });
}

const idsOf = (fault: string): string[] => Array.from({ length: CALLS }, (_, i) => `${prefix}-${fault}-${i}`);
const errorCode = (r: CallResult): string | undefined => {
  try {
    return (JSON.parse(r.body ?? '') as { error?: { code?: string } }).error?.code;
  } catch {
    return undefined;
  }
};
/** The observation's `error.code`; undefined for an observation of a call that did not fail. */
const observationError = (o: SeenEvent): string | undefined => (o.event.data as { error?: { code?: string } } | undefined)?.error?.code;

describe('sidecar in front of an upstream that fails', () => {
  it.each([
    ['dead', 502, 'CUTOVER_UPSTREAM_UNREACHABLE'],
    ['slow', 504, 'CUTOVER_UPSTREAM_TIMEOUT'],
    ['reset', 502, 'CUTOVER_UPSTREAM_UNREACHABLE'],
  ])('%s upstream: the caller gets %i %s and an observation with the error is on the bus', async (fault, status, code) => {
    const r = await exercise(fault);
    const wrong = r.results.filter((x) => x.status !== status || errorCode(x) !== code);
    report(fault, idsOf(fault), r, wrong.length);
    expect(wrong).toEqual([]);
    expect(r.observations.map((o) => ({ status: (o.event.data as { status?: number }).status, error: observationError(o) }))).toEqual(
      Array.from({ length: CALLS }, () => ({ status, error: code })),
    );
  });

  it.each([['abort-length'], ['abort-chunked']])('%s: upstream dies mid-body: the caller sees a failed response promptly, an observation with an error is on the bus', async (fault) => {
    const r = await exercise(fault);
    // A response that ends cleanly would pass a truncated body off as complete; a timeout would be a hang.
    const wrong = r.results.filter((x) => !x.error || /no complete response/.test(x.error));
    report(fault, idsOf(fault), r, wrong.length);
    expect(wrong, 'calls that ended cleanly or hung until the caller gave up').toEqual([]);
    expect(r.observations).toHaveLength(CALLS);
    expect(r.observations.filter((o) => !observationError(o)), 'observations without an error').toEqual([]);
  });
});
