import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startSidecar } from '../../proxy/sidecar.js';
import { createRegistry } from '../../src/metrics.js';
import { MemoryBus } from '../helpers/memory-bus.js';
import { waitFor } from '../helpers/wait-for.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
});

describe('admin listener', () => {
  it('closes a connection that never sends its request', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'cutover-admin-'));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    const sc = await startSidecar(
      { agent: 'inventory', listen: '127.0.0.1:0', upstream: 'http://127.0.0.1:1', admin: { listen: '127.0.0.1:0', auth: false }, dataDir, flows: [] },
      { bus: new MemoryBus(), registry: createRegistry() },
    );
    cleanups.push(() => sc.close());
    const socket = net.connect(sc.admin.port, sc.admin.host);
    cleanups.push(async () => socket.destroy());
    let answer = '';
    socket.on('data', (chunk: Buffer) => (answer += chunk.toString()));
    socket.on('error', () => undefined);
    let closed = false;
    socket.once('close', () => (closed = true));
    // Half a request line, then silence.
    socket.write('GET /heal');
    await waitFor(() => closed, { timeoutMs: 45_000, intervalMs: 250, what: 'the admin listener to close the silent connection' });
    expect(answer).toMatch(/^HTTP\/1\.1 408/);
  });
});
