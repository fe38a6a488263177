import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { start as startInventory } from '../../examples/agents/inventory.js';
import { createBus } from '../../src/bus/index.js';
import { request } from '../helpers/http.js';
import { waitFor } from '../helpers/wait-for.js';

const TOPIC = 'commands.agent.inventory.reserve';

export interface SigtermRun {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Status of the one call made through the sidecar before the signal. */
  callStatus: number;
  /** Call events on the bus after the process ended: the dual write was flushed, not left behind. */
  busEvents: number;
  /** Processes still running with the config file on their command line after the exit. */
  leftovers: number[];
}

/** Pids whose command line mentions `needle` (Linux /proc; empty elsewhere). */
function processesMentioning(needle: string): number[] {
  if (!existsSync('/proc')) return [];
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(needle);
      } catch {
        return false;
      }
    })
    .map(Number);
}

/**
 * Runs `command args… sidecar --config FILE` the way a supervisor does (an embedded bus and data dir in a
 * temp dir, the inventory example agent as upstream), makes one call through it, sends SIGTERM to the pid
 * it started and waits for the exit. What a supervisor sees decides whether the way of starting the CLI is
 * fit for production: the signal must reach the sidecar, which drains and exits, leaving nothing behind.
 */
export async function runSidecarUntilSigterm(command: string, args: readonly string[], options: { cwd: string; timeoutMs?: number }): Promise<SigtermRun> {
  const dir = await mkdtemp(path.join(tmpdir(), 'cutover-sigterm-'));
  const agent = await startInventory();
  const config = path.join(dir, 'cutover.yaml');
  const busConfig = { kind: 'embedded' as const, path: path.join(dir, 'bus.db') };
  await writeFile(
    config,
    [
      'agent: inventory',
      'listen: 127.0.0.1:0',
      `upstream: ${agent.url}`,
      'admin: { listen: 127.0.0.1:0, auth: false }',
      `bus: { kind: embedded, path: ${busConfig.path} }`,
      `dataDir: ${dir}`,
      'log: { level: warn }',
      'flows:',
      '  - name: inventory.reserve',
      '    match: { method: POST, path: /reservations }',
      `    topic: ${TOPIC}`,
      '    key: body.sku',
      '    mode: shadow',
    ].join('\n'),
  );
  const child = spawn(command, [...args, 'sidecar', '--config', config], { cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  try {
    const url = await waitFor(() => /on (http:\/\/[\d.]+:\d+)/.exec(stdout)?.[1], { timeoutMs: options.timeoutMs ?? 30_000, what: `the sidecar listening (stderr: ${stderr})` });
    const body = JSON.stringify({ sku: 'SKU-RED-MUG', qty: 1 });
    const call = await request(url, { method: 'POST', path: '/reservations', headers: { 'content-type': 'application/json' }, body });
    child.kill('SIGTERM');
    const { code, signal } = await exited;
    const leftovers = await waitFor(() => processesMentioning(config).length === 0, { timeoutMs: 5_000, what: 'no process left' })
      .then(() => [])
      .catch(() => processesMentioning(config));
    return { exitCode: code, signal, stdout, stderr, callStatus: call.status, busEvents: await countEvents(busConfig, TOPIC), leftovers };
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    for (const pid of processesMentioning(config)) process.kill(pid, 'SIGKILL');
    await agent.close();
    await rm(dir, { recursive: true, force: true });
  }
}

async function countEvents(busConfig: { kind: 'embedded'; path: string }, topic: string): Promise<number> {
  const bus = await createBus(busConfig);
  await bus.start();
  try {
    let n = 0;
    for await (const _ of bus.read(topic, { from: 'start', follow: false })) n++;
    return n;
  } finally {
    await bus.close();
  }
}
