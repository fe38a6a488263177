import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startSidecar } from '../../proxy/sidecar.js';
import { createRegistry } from '../../src/metrics.js';
import { startBlackHole } from '../helpers/black-hole.js';
import { settled, waitFor } from '../helpers/wait-for.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
});

describe('sidecar whose bus broker accepts connections and never answers', () => {
  it.each([
    { kind: 'kafka', bus: (address: string) => ({ kind: 'kafka' as const, brokers: [address], connectionTimeout: '300ms', publishTimeout: '1s' }) },
    { kind: 'rabbitmq', bus: (address: string) => ({ kind: 'rabbitmq' as const, url: `amqp://guest:guest@${address}/`, connectionTimeout: '300ms', publishTimeout: '1s' }) },
  ])('$kind: listens and forwards at once, retries the bus in the background without piling up sockets, and closes them all', async ({ bus }) => {
    const hole = await startBlackHole();
    cleanups.push(() => hole.close());
    const agent = http.createServer((_req, res) => res.end('ok'));
    await new Promise<void>((resolve) => agent.listen(0, '127.0.0.1', resolve));
    cleanups.push(
      () =>
        new Promise((resolve) => {
          agent.closeAllConnections();
          agent.close(resolve);
        }),
    );
    const dir = await mkdtemp(path.join(tmpdir(), 'cutover-bus-boot-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));

    const starting = startSidecar(
      {
        agent: 'inventory',
        listen: '127.0.0.1:0',
        upstream: `http://127.0.0.1:${(agent.address() as AddressInfo).port}`,
        admin: { listen: '127.0.0.1:0', auth: false },
        dataDir: path.join(dir, randomUUID()),
        bus: bus(hole.address),
        publisher: { backoff: '50ms', maxBackoff: '100ms', drainTimeout: '500ms' },
        flows: [{ name: 'inventory.stock', match: { method: 'GET', path: '/stock/:sku' }, topic: 'commands.agent.inventory.stock', key: 'path.sku', mode: 'shadow' }],
      },
      // The default boot wait (a few seconds) would only slow the test: what matters is that it is bounded.
      { registry: createRegistry(), busBootWaitMs: 0 },
    );
    const sc = (await settled(starting, { timeoutMs: 30_000, what: 'the sidecar to start' })) as Awaited<typeof starting>;
    cleanups.push(() => sc.close());
    const res = await fetch(`${sc.data.url}/stock/SKU-1`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('ok');
    expect(sc.bus()).toBeUndefined();

    // Several failed attempts, each with fresh clients: connections never accumulate.
    await waitFor(() => hole.accepted >= 8, { timeoutMs: 60_000, what: 'several connection attempts' });
    expect(hole.maxOpen).toBeLessThanOrEqual(4);
    expect((await fetch(`${sc.data.url}/stock/SKU-2`)).status).toBe(200);

    await settled(sc.close(), { timeoutMs: 30_000, what: 'close()' });
    await waitFor(() => hole.open === 0, { timeoutMs: 15_000, what: 'no connection left open after close' });
  });
});
