import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { start as startInventory } from '../../examples/agents/inventory.js';
import { observationsTopicOf } from '../../src/events/wire.js';
import { createBus, type Delivery } from '../../src/bus/index.js';
import { tcpReachable } from '../../src/net.js';
import { request } from '../helpers/http.js';
import { waitFor } from '../helpers/wait-for.js';

const root = path.resolve(import.meta.dirname, '../..');
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
});

async function refused(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return !(await tcpReachable(hostname, Number(port)));
}

async function readAll(dbPath: string, topic: string): Promise<Delivery[]> {
  const bus = await createBus({ kind: 'embedded', path: dbPath });
  await bus.start();
  try {
    const out: Delivery[] = [];
    const stream = bus.read(topic, { from: 'start', follow: false });
    for await (const d of stream) out.push(d);
    return out;
  } finally {
    await bus.close();
  }
}

describe('cutover sidecar (process)', () => {
  it('on SIGTERM finishes in-flight requests and flushes events before exiting 0', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'cutover-cli-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const agent = await startInventory();
    cleanups.push(() => agent.close());
    const topic = `commands.agent.inventory.reserve-${randomUUID().slice(0, 8)}`;
    const dbPath = path.join(dir, 'bus.db');
    const file = path.join(dir, 'cutover.yaml');
    await writeFile(
      file,
      [
        'agent: inventory',
        'listen: 127.0.0.1:0',
        `upstream: ${agent.url}`,
        'admin: { listen: 127.0.0.1:0, auth: false }',
        `bus: { kind: embedded, path: ${dbPath} }`,
        `dataDir: ${dir}`,
        'log: { level: warn }',
        'flows:',
        '  - name: inventory.reserve',
        '    match: { method: POST, path: /reservations }',
        `    topic: ${topic}`,
        '    key: body.sku',
        '    mode: shadow',
      ].join('\n'),
    );
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', "const m = await import('./bin/main.ts'); process.exitCode = await m.runCli(process.argv.slice(1));", 'sidecar', '--config', file],
      { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    cleanups.push(async () => child.exitCode === null && child.kill('SIGKILL'));
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const url = (await waitFor(() => /on (http:\/\/[\d.]+:\d+)/.exec(stdout)?.[1], { timeoutMs: 30_000, what: `sidecar listening (stderr: ${stderr})` }))!;

    const body = JSON.stringify({ sku: 'SKU-RED-MUG', qty: 1 });
    for (let i = 0; i < 10; i++) expect((await request(url, { method: 'POST', path: '/reservations', headers: { 'content-type': 'application/json' }, body })).status).toBe(201);

    // One request in flight across the signal: half its body before SIGTERM, the rest after.
    const inFlight = new Promise<number>((resolve, reject) => {
      const r = http.request(`${url}/reservations`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode!));
      });
      r.on('error', reject);
      r.write(body.slice(0, 10));
      setImmediate(() => {
        child.kill('SIGTERM');
        // The rest of the body arrives only once the sidecar is draining: it refuses new connections.
        waitFor(() => refused(url), { what: 'sidecar refusing new connections' }).then(() => r.end(body.slice(10)), reject);
      });
    });
    expect(await inFlight).toBe(201);
    expect(await exited).toBe(0);
    expect(stdout).toContain('stopped (SIGTERM); 0 events left in the spool');

    const calls = await readAll(dbPath, topic);
    const observations = (await readAll(dbPath, observationsTopicOf('inventory.reserve'))).filter((d) => d.event.cutoverflow === 'inventory.reserve');
    expect(calls).toHaveLength(11);
    expect(observations).toHaveLength(11);
  });
});
