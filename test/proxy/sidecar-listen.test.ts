import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSidecar } from '../../proxy/sidecar.js';
import { createRegistry } from '../../src/metrics.js';
import { MemoryBus } from '../helpers/memory-bus.js';

/** Whether this machine can bind the IPv6 loopback (containers often run without IPv6). */
function canBindIpv6Loopback(): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(0, '::1', () => server.close(() => resolve(true)));
  });
}

const ipv6 = await canBindIpv6Loopback();

function get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    // A URL string: node strips the brackets of an IPv6 host before connecting.
    http
      .get(url, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      })
      .on('error', reject);
  });
}

let upstream: http.Server;
let upstreamUrl: string;
let dataDir: string;

beforeAll(async () => {
  upstream = http.createServer((req, res) => res.end(`upstream saw ${req.url}`));
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  dataDir = await mkdtemp(path.join(tmpdir(), 'cutover-listen-'));
});
afterAll(async () => {
  await new Promise((resolve) => upstream.close(resolve));
  await rm(dataDir, { recursive: true, force: true });
});

describe.skipIf(!ipv6)('sidecar on the IPv6 loopback (skipped when ::1 cannot be bound on this machine)', () => {
  it('listens on [::1], prints bracketed URLs, forwards, and allows admin auth: false there', async () => {
    const sc = await startSidecar(
      { agent: 'inventory', listen: '[::1]:0', upstream: upstreamUrl, admin: { listen: '[::1]:0', auth: false }, dataDir },
      { bus: new MemoryBus(), registry: createRegistry() },
    );
    try {
      expect(sc.data.host).toBe('::1');
      expect(sc.data.url).toBe(`http://[::1]:${sc.data.port}`);
      expect(sc.admin.url).toBe(`http://[::1]:${sc.admin.port}`);
      expect(await get(`${sc.data.url}/stock/1`)).toEqual({ status: 200, body: 'upstream saw /stock/1' });
      expect((await get(`${sc.admin.url}/healthz`)).status).toBe(200);
    } finally {
      await sc.close();
    }
  });

  it('listens on every IPv6 address for [::]', async () => {
    const sc = await startSidecar(
      { agent: 'inventory', listen: '[::]:0', upstream: upstreamUrl, admin: { listen: '[::1]:0', auth: false }, dataDir },
      { bus: new MemoryBus(), registry: createRegistry() },
    );
    try {
      expect(sc.data.url).toBe(`http://[::]:${sc.data.port}`);
      expect((await get(`http://[::1]:${sc.data.port}/x`)).body).toBe('upstream saw /x');
    } finally {
      await sc.close();
    }
  });
});
