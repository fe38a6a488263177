import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startBlackHole } from '../helpers/black-hole.js';
import { waitFor } from '../helpers/wait-for.js';

const root = path.resolve(import.meta.dirname, '../..');
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
});

/** Runs the CLI in a child process; resolves with its exit code and stderr once it exits on its own. */
async function cli(args: string[]): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', '--input-type=module', '-e', "const m = await import('./bin/main.ts'); process.exitCode = await m.runCli(process.argv.slice(1));", ...args],
    { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  cleanups.push(async () => child.exitCode === null && child.kill('SIGKILL'));
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  let code: number | null | undefined;
  child.once('exit', (c) => (code = c));
  // Generous: what is checked is that the process ends by itself, not how fast.
  await waitFor(() => code !== undefined, { timeoutMs: 90_000, intervalMs: 100, what: `cutover ${args[0]} to exit (stderr: ${stderr})` });
  return { code: code ?? null, stderr };
}

describe('commands against a bus that accepts connections and never answers', () => {
  it.each([
    { kind: 'kafka', bus: (address: string) => `{ kind: kafka, brokers: [${address}], connectionTimeout: 300ms, publishTimeout: 1s }` },
    { kind: 'redis', bus: (address: string) => `{ kind: redis, url: "redis://${address}", publishTimeout: 1s }` },
    { kind: 'rabbitmq', bus: (address: string) => `{ kind: rabbitmq, url: "amqp://guest:guest@${address}/", connectionTimeout: 300ms, publishTimeout: 1s }` },
  ])('$kind: print a typed bus error naming the server and exit 1', async ({ bus }) => {
    const hole = await startBlackHole();
    cleanups.push(() => hole.close());
    const dir = await mkdtemp(path.join(tmpdir(), 'cutover-cli-bus-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const file = path.join(dir, 'cutover.yaml');
    await writeFile(
      file,
      [
        'agent: inventory',
        'listen: 127.0.0.1:0',
        'upstream: http://127.0.0.1:1',
        'admin: { listen: 127.0.0.1:0, auth: false }',
        `bus: ${bus(hole.address)}`,
        `dataDir: ${dir}`,
        'log: { level: error }',
        'flows:',
        '  - name: inventory.reserve',
        '    match: { method: POST, path: /reservations }',
        '    topic: commands.agent.inventory.reserve',
      ].join('\n'),
    );
    const runs = await Promise.all([
      cli(['status', '--config', file]),
      cli(['report', '--config', file]),
      cli(['history', 'inventory.reserve', '--config', file]),
      cli(['flip', 'inventory.reserve', '--to', 'shadow', '--config', file]),
    ]);
    for (const run of runs) {
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(new RegExp(`CUTOVER_BUS_(UNAVAILABLE|TIMEOUT): .*${hole.address.replace(/\./g, '\\.')}`));
    }
    expect(hole.accepted).toBeGreaterThan(0);
    await waitFor(() => hole.open === 0, { what: 'no connection left open' });
  });
});
