import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { SidecarConfigInput } from '../../src/config/schema.js';
import { startSidecar, type SidecarHandle } from '../../proxy/sidecar.js';
import { ErrorCodes } from '../../src/errors.js';
import { observationsTopicOf } from '../../src/events/wire.js';
import { createRegistry } from '../../src/metrics.js';
import { MemoryBus } from '../helpers/memory-bus.js';
import { settled, waitFor } from '../helpers/wait-for.js';

const TOPIC = 'commands.agent.orders.get';
const OBS_TOPIC = observationsTopicOf('orders.get');
let dataDir: string;
const cleanups: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'cutover-forward-'));
});
afterAll(() => rm(dataDir, { recursive: true, force: true }));
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
});

/** A local upstream whose behaviour each test writes; its sockets are ended with it. */
async function upstream(handler: http.RequestListener): Promise<{ url: string; server: http.Server }> {
  const server = http.createServer(handler);
  // Upgraded sockets leave the server's own tracking (closeAllConnections does not see them).
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  );
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

async function sidecar(upstreamUrl: string, overrides: Partial<SidecarConfigInput> = {}): Promise<{ sc: SidecarHandle; bus: MemoryBus }> {
  const bus = new MemoryBus();
  const sc = await startSidecar(
    {
      agent: 'orders',
      listen: '127.0.0.1:0',
      upstream: upstreamUrl,
      admin: { listen: '127.0.0.1:0', auth: false },
      dataDir: path.join(dataDir, randomUUID()),
      flows: [{ name: 'orders.get', match: { method: 'GET', path: '/orders/:id' }, topic: TOPIC, key: 'path.id', mode: 'shadow' }],
      ...overrides,
    },
    { bus, registry: createRegistry() },
  );
  cleanups.push(() => sc.close());
  return { sc, bus };
}

interface Outcome {
  status?: number;
  body: string;
  /** How the exchange ended for the caller: a complete response, or a connection error. */
  ended: 'complete' | 'error';
  error?: string;
}

/** One request that records how it ended instead of throwing, so a cut connection is an answer too. */
function call(url: string, options: http.RequestOptions = {}): Promise<Outcome> {
  return new Promise((resolve) => {
    const out: Outcome = { body: '', ended: 'error' };
    const req = http.request(url, { agent: false, ...options }, (res) => {
      out.status = res.statusCode;
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (out.body += chunk));
      res.on('end', () => resolve({ ...out, ended: 'complete' }));
      res.on('error', (err) => resolve({ ...out, error: err.message }));
    });
    req.on('error', (err) => resolve({ ...out, error: err.message }));
    req.end();
  });
}

async function upstreamErrors(sc: SidecarHandle, code: string): Promise<number> {
  const metric = await sc.registry.getSingleMetric('cutover_sidecar_upstream_errors_total')!.get();
  return metric.values.find((v) => v.labels.code === code)?.value ?? 0;
}

describe('exchanges that break', () => {
  it('cuts the caller connection when the upstream dies mid-response, and records it', async () => {
    const up = await upstream((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"id":"o-1","lines":[');
      // Flushed first, so the caller has the headers and part of the body when the socket goes.
      setTimeout(() => res.socket?.destroy(), 50);
    });
    const { sc, bus } = await sidecar(up.url);
    const direct = (await settled(call(`${up.url}/orders/o-1`), { what: 'the direct call' })) as Outcome;
    const viaSidecar = (await settled(call(`${sc.data.url}/orders/o-1`), { what: 'the call through the sidecar' })) as Outcome;
    expect(direct.ended).toBe('error');
    expect(viaSidecar).toMatchObject({ status: 200, ended: 'error', body: '{"id":"o-1","lines":[' });

    await waitFor(() => bus.messages(OBS_TOPIC).length === 1, { what: 'the direct observation' });
    expect(bus.messages(OBS_TOPIC)[0]!.event.data).toMatchObject({ status: 200, bodyBytes: 21, error: { code: ErrorCodes.UPSTREAM_ABORTED } });
    expect(await upstreamErrors(sc, ErrorCodes.UPSTREAM_ABORTED)).toBe(1);
    expect(sc.flows.get('orders.get')!.counters.upstreamErrors).toBe(1);
  });

  it('cuts the caller connection for a call no flow matches too', async () => {
    const up = await upstream((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '100' });
      res.write('partial');
      setTimeout(() => res.socket?.destroy(), 50);
    });
    const { sc } = await sidecar(up.url);
    const out = (await settled(call(`${sc.data.url}/unmatched`), { what: 'the call through the sidecar' })) as Outcome;
    expect(out).toMatchObject({ status: 200, ended: 'error', body: 'partial' });
    expect(await upstreamErrors(sc, ErrorCodes.UPSTREAM_ABORTED)).toBe(1);
  });

  it.each([
    { status: 502, code: ErrorCodes.UPSTREAM_UNREACHABLE, why: 'the upstream resets before its headers', handler: ((req) => req.socket.destroy()) as http.RequestListener },
    { status: 504, code: ErrorCodes.UPSTREAM_TIMEOUT, why: 'the upstream sends nothing within upstreamTimeout', handler: (() => undefined) as http.RequestListener },
  ])('answers $status when $why, and records it', async ({ status, code, handler }) => {
    const up = await upstream(handler);
    const { sc, bus } = await sidecar(up.url, { upstreamTimeout: '300ms' });
    const out = (await settled(call(`${sc.data.url}/orders/o-2`))) as Outcome;
    expect(out).toMatchObject({ status, ended: 'complete' });
    expect(JSON.parse(out.body)).toMatchObject({ error: { code } });
    await waitFor(() => bus.messages(OBS_TOPIC).length === 1, { what: 'the direct observation' });
    expect(bus.messages(OBS_TOPIC)[0]!.event.data).toMatchObject({ status, error: { code } });
    expect(await upstreamErrors(sc, code)).toBe(1);
  });

  it('does not count a caller that leaves mid-response as an upstream failure', async () => {
    const up = await upstream((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first');
    });
    const { sc, bus } = await sidecar(up.url);
    await new Promise<void>((resolve) => {
      const req = http.get(`${sc.data.url}/orders/o-4`, { agent: false }, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', () => undefined);
    });
    await waitFor(async () => sc.flows.get('orders.get')!.counters.skipped.client_aborted === 1, { what: 'the skipped observation' });
    expect(await upstreamErrors(sc, ErrorCodes.UPSTREAM_ABORTED)).toBe(0);
    expect(bus.messages(OBS_TOPIC)).toHaveLength(0);
  });
});

describe('requests beyond a plain path', () => {
  it('forwards OPTIONS * to the upstream as OPTIONS *', async () => {
    const seen: string[] = [];
    const up = await upstream((req, res) => {
      seen.push(`${req.method} ${req.url}`);
      res.writeHead(204, { allow: 'GET, POST, OPTIONS' });
      res.end();
    });
    const { sc } = await sidecar(up.url);
    const out = (await settled(call(sc.data.url, { method: 'OPTIONS', path: '*' }))) as Outcome;
    expect(out).toMatchObject({ status: 204, ended: 'complete' });
    expect(seen).toEqual(['OPTIONS *']);
    expect(await upstreamErrors(sc, ErrorCodes.UPSTREAM_UNREACHABLE)).toBe(0);
  });

  /** An upstream that accepts upgrades on /ws and echoes every byte back, upper-cased. */
  async function echoUpstream(): Promise<string> {
    const up = await upstream((_req, res) => {
      res.writeHead(426);
      res.end();
    });
    up.server.on('upgrade', (req: http.IncomingMessage, socket: Socket) => {
      if (req.url !== '/ws') {
        socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
        return;
      }
      socket.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\r\n');
      socket.on('data', (chunk: Buffer) => socket.write(chunk.toString().toUpperCase()));
    });
    return up.url;
  }

  /** Sends an upgrade request; resolves with the 101's socket, or the status of any other answer. */
  function upgrade(url: string): Promise<{ socket?: Socket; status?: number }> {
    return new Promise((resolve, reject) => {
      const req = http.request(url, { agent: false, headers: { connection: 'Upgrade', upgrade: 'websocket' } });
      req.on('upgrade', (_res, socket: Socket) => {
        cleanups.push(async () => socket.destroy());
        resolve({ socket });
      });
      req.on('response', (res) => {
        res.resume();
        resolve({ status: res.statusCode });
      });
      req.on('error', reject);
      req.end();
    });
  }

  it('tunnels an upgrade (WebSocket) to the upstream, and ends the tunnel when it closes', async () => {
    const { sc } = await sidecar(await echoUpstream());
    const { socket } = await upgrade(`${sc.data.url}/ws`);
    expect(socket).toBeDefined();
    let echoed = '';
    socket!.on('data', (chunk: Buffer) => (echoed += chunk.toString()));
    socket!.write('hello');
    await waitFor(() => echoed === 'HELLO', { what: 'the echo through the tunnel' });
    const closed = new Promise<void>((resolve) => socket!.once('close', () => resolve()));
    await sc.close();
    await settled(closed, { what: 'the tunnel closing with the sidecar' });
    expect(await upstreamErrors(sc, ErrorCodes.UPSTREAM_TIMEOUT)).toBe(0);
  });

  it('passes the upstream refusal of an upgrade through, and answers 502 when it is unreachable', async () => {
    const { sc } = await sidecar(await echoUpstream());
    expect(await upgrade(`${sc.data.url}/not-ws`)).toEqual({ status: 404 });
    const refused = await upstream(() => undefined);
    const port = (refused.server.address() as AddressInfo).port;
    await new Promise<void>((resolve) => refused.server.close(() => resolve()));
    const { sc: orphan } = await sidecar(`http://127.0.0.1:${port}`);
    expect(await upgrade(`${orphan.data.url}/ws`)).toEqual({ status: 502 });
    expect(await upstreamErrors(orphan, ErrorCodes.UPSTREAM_UNREACHABLE)).toBe(1);
  });

  it('answers 504 when the upstream never answers an upgrade', async () => {
    const up = await upstream(() => undefined);
    up.server.on('upgrade', () => undefined);
    const { sc } = await sidecar(up.url, { upstreamTimeout: '300ms' });
    expect(await upgrade(`${sc.data.url}/ws`)).toEqual({ status: 504 });
    expect(await upstreamErrors(sc, ErrorCodes.UPSTREAM_TIMEOUT)).toBe(1);
  });
});
