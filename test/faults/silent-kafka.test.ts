import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { settled } from '../helpers/wait-for.js';
import { printRow, upstreamIds } from './helpers/count.js';
import { cliArgs, newFlow, startSidecarProcess, writeSidecarConfig } from './helpers/sidecar.js';
import { Traffic } from './helpers/traffic.js';
import { faultSuite } from './helpers/suite.js';

const root = path.resolve(import.meta.dirname, '../..');
/** How long the sockets to the silent broker are watched. */
const WATCH_MS = 20_000;
/**
 * Most connections a sidecar may hold to one broker at once: its producer, admin and consumers each need
 * one or two. A client that opens a new connection per retry and never closes the old one grows past this
 * within the watch.
 */
const MAX_SOCKETS = 16;
/** A status command still running this long after its start is hanging, not waiting out a timeout. */
const STATUS_HANG_MS = 40_000;

/** A "Kafka broker" that accepts connections and never answers a byte: the worst a dead broker can do. */
interface SilentBroker {
  readonly port: number;
  /** Connections open right now. */
  open(): number;
  /** Connections accepted so far. */
  accepted(): number;
  close(): Promise<void>;
}

async function silentBroker(): Promise<SilentBroker> {
  const sockets = new Set<net.Socket>();
  let accepted = 0;
  const server = net.createServer((s) => {
    accepted++;
    sockets.add(s);
    s.on('error', () => undefined);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    open: () => sockets.size,
    accepted: () => accepted,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

const suite = faultSuite('silent');
const { defer } = suite;

describe('a Kafka broker that accepts connections and never answers', () => {
  it('the sidecar still serves direct calls, `status` exits with a bus error, sockets to the broker stay bounded', async () => {
    const forSidecar = await silentBroker();
    defer(() => forSidecar.close());
    // The status command gets a broker of its own, so each socket count is one process's.
    const forStatus = await silentBroker();
    defer(() => forStatus.close());
    const prefix = `c${randomUUID().slice(0, 8)}`;
    const flow = newFlow();
    const sidecarConfig = await writeSidecarConfig(path.join(suite.dir, `${prefix}-sidecar.yaml`), {
      bus: `{ kind: kafka, brokers: ["127.0.0.1:${forSidecar.port}"] }`,
      upstream: suite.upstream.url,
      dataDir: path.join(suite.dir, prefix),
      flow,
    });
    const statusConfig = await writeSidecarConfig(path.join(suite.dir, `${prefix}-status.yaml`), {
      bus: `{ kind: kafka, brokers: ["127.0.0.1:${forStatus.port}"] }`,
      upstream: suite.upstream.url,
      dataDir: path.join(suite.dir, `${prefix}-status`),
      flow,
    });

    const sidecar = await startSidecarProcess(sidecarConfig);
    defer(() => sidecar.kill());

    const status = spawn(process.execPath, cliArgs(['status', '--config', statusConfig]), { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    defer(async () => status.exitCode === null && status.signalCode === null && status.kill('SIGKILL'));
    let statusErr = '';
    status.stderr.on('data', (c: Buffer) => (statusErr += c.toString()));
    status.stdout.resume();
    const statusExit = new Promise<number | null>((resolve) => status.once('exit', (code) => resolve(code)));
    const statusDeadline = Date.now() + STATUS_HANG_MS;

    const traffic = new Traffic(sidecar.url, { prefix, max: 100, intervalMs: 50 }).start();
    defer(() => traffic.stop());
    const samples: Array<{ sidecar: number; status: number }> = [];
    const watchEnd = Date.now() + WATCH_MS;
    while (Date.now() < watchEnd) {
      samples.push({ sidecar: forSidecar.open(), status: forStatus.open() });
      await sleep(1_000);
    }
    const results = await traffic.stop();
    const code = await settled(statusExit, { timeoutMs: Math.max(statusDeadline - Date.now(), 0), what: 'cutover status to exit' }).catch(() => 'hung');

    const peak = Math.max(...samples.map((s) => s.sidecar));
    const statusPeak = Math.max(...samples.map((s) => s.status));
    printRow(`silent kafka (sockets peak ${peak}, accepted ${forSidecar.accepted()}; status exit ${code}, sockets peak ${statusPeak})`, {
      calls: upstreamIds(suite.upstream.seen, prefix).length,
      failed: results.filter((r) => r.status !== 200).length,
      // Nothing reaches a broker that never answers: events are spooled, not counted here.
      lost: '-',
      duplicated: '-',
    });
    expect(results).toHaveLength(100);
    expect(results.filter((r) => r.status !== 200)).toEqual([]);
    expect(samples.filter((s) => s.sidecar > MAX_SOCKETS), `open sockets each second: ${samples.map((s) => s.sidecar).join(' ')}`).toEqual([]);
    expect(code, `status stderr: ${statusErr.slice(-1000)}`).not.toBe('hung');
    expect(code).not.toBe(0);
    expect(statusErr).toMatch(/CUTOVER_BUS_[A-Z_]+/);
    expect(samples.filter((s) => s.status > MAX_SOCKETS), `status: open sockets each second: ${samples.map((s) => s.status).join(' ')}`).toEqual([]);
  }, 120_000);
});
