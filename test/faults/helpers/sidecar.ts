import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { waitFor } from '../../helpers/wait-for.js';

const root = path.resolve(import.meta.dirname, '../../..');

/**
 * Runs the CLI the way cli-sidecar.test.ts does: bin/main.ts under tsx, so the suite needs no build, with
 * exactly the code `node bin/cutover.js` runs once compiled.
 */
export function cliArgs(args: readonly string[]): string[] {
  return ['--import', 'tsx', '--input-type=module', '-e', "const m = await import('./bin/main.ts'); process.exitCode = await m.runCli(process.argv.slice(1));", ...args];
}

export interface FlowUnderTest {
  name: string;
  topic: string;
}

/** One shadow flow with a topic of its own, so nothing else on the bus is counted. */
export function newFlow(): FlowUnderTest {
  const tag = randomUUID().slice(0, 8);
  return { name: `faults.call-${tag}`, topic: `commands.agent.faults.call-${tag}` };
}

export interface SidecarConfig {
  /** YAML of the `bus:` value, e.g. `{ kind: redis, url: redis://127.0.0.1:6400, prefix: "t1:" }`. */
  bus: string;
  /** Omitted when `extra` routes every call. */
  upstream?: string;
  /** The flow's path template; default /calls. */
  flowPath?: string;
  dataDir: string;
  flow: FlowUnderTest;
  /** More top-level YAML lines (spool, publisher, upstreamTimeout …). */
  extra?: string[];
  /** The flow's mode (default shadow) and more of its keys as YAML lines (`timeout: 5s`, `fallback: direct`). */
  mode?: string;
  flowExtra?: string[];
}

export async function writeSidecarConfig(file: string, c: SidecarConfig): Promise<string> {
  await writeFile(
    file,
    [
      'agent: faults',
      'listen: 127.0.0.1:0',
      ...(c.upstream ? [`upstream: ${c.upstream}`] : []),
      'admin: { listen: 127.0.0.1:0, auth: false }',
      `bus: ${c.bus}`,
      `dataDir: ${c.dataDir}`,
      'log: { level: warn }',
      ...(c.extra ?? []),
      'flows:',
      `  - name: ${c.flow.name}`,
      `    match: { method: POST, path: ${c.flowPath ?? '/calls'} }`,
      `    topic: ${c.flow.topic}`,
      '    key: body.id',
      `    mode: ${c.mode ?? 'shadow'}`,
      ...(c.flowExtra ?? []).map((line) => `    ${line}`),
    ].join('\n'),
  );
  return file;
}

export interface SidecarProcess {
  readonly child: ChildProcess;
  readonly url: string;
  readonly adminUrl: string;
  output(): { stdout: string; stderr: string };
  /** The exit, however it comes. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGKILL (idempotent); resolves once the process is gone. */
  kill(): Promise<void>;
  /** One Prometheus sample: the sum over label sets matching `labels` (a substring of the label block). */
  metric(name: string, labels?: string): Promise<number>;
}

/** Starts `cutover sidecar --config FILE` as a child and waits for both of its listeners. */
export async function startSidecarProcess(configFile: string): Promise<SidecarProcess> {
  const child = spawn(process.execPath, cliArgs(['sidecar', '--config', configFile]), { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const kill = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGKILL');
    await exited;
  };
  const m = await waitFor(() => (child.exitCode === null ? /on (http:\/\/[\d.]+:\d+) .*admin (http:\/\/[\d.]+:\d+)/.exec(stdout) : null), {
    timeoutMs: 45_000,
    intervalMs: 100,
    what: `sidecar listening (exit ${child.exitCode}; stderr: ${stderr.slice(-2000)})`,
  }).catch(async (err: unknown) => {
    await kill();
    throw err;
  });
  const adminUrl = m[2]!;
  return {
    child,
    url: m[1]!,
    adminUrl,
    output: () => ({ stdout, stderr }),
    exited,
    kill,
    async metric(name, labels) {
      const res = await fetch(`${adminUrl}/metrics`, { signal: AbortSignal.timeout(5_000) });
      const text = await res.text();
      let sum = 0;
      for (const line of text.split('\n')) {
        const mm = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})? (\S+)$/.exec(line);
        if (!mm || mm[1] !== name) continue;
        if (labels && !(mm[2] ?? '').includes(labels)) continue;
        sum += Number(mm[3]);
      }
      return sum;
    },
  };
}
