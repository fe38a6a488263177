import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { waitFor } from '../../helpers/wait-for.js';

const root = path.resolve(import.meta.dirname, '../../..');
const dir = mkdtempSync(path.join(os.tmpdir(), 'cutover-embedded-mp-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Worker {
  name: string;
  lines: string[];
  has(line: string): boolean;
  stop(): Promise<void>;
}

function worker(config: object, topic: string, group: string, name: string, count: number): Worker {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'test/bus/embedded/fixtures/worker.ts'), JSON.stringify(config), topic, group, name, String(count)], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines: string[] = [];
  let buffer = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    buffer += chunk.toString();
    const parts = buffer.split('\n');
    buffer = parts.pop()!;
    lines.push(...parts);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    name,
    lines,
    has: (line) => lines.includes(line),
    async stop() {
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000).unref())]);
      child.kill('SIGKILL');
    },
  };
}

it('two processes publish and consume on one file in one group: every message once, per-key order kept', async () => {
  const config = { kind: 'embedded', path: path.join(dir, 'shared.db'), sessionTimeout: '5s', pollInterval: '10ms' };
  const topic = `test.mp.${randomUUID().slice(0, 8)}`;
  const group = `g-${randomUUID()}`;
  const count = 3_000;
  const workers = [worker(config, topic, group, 'a', count), worker(config, topic, group, 'b', count)];
  try {
    await waitFor(() => workers.every((w) => w.has('published')), { timeoutMs: 60_000, what: 'both workers to publish' });
    const deliveries = (): string[] => workers.flatMap((w) => w.lines.filter((l) => l.startsWith('got ')));
    await waitFor(() => new Set(deliveries()).size >= 2 * count, { timeoutMs: 60_000, what: `all ${2 * count} deliveries` });
    await Promise.all(workers.map((w) => w.stop()));
    expect(workers.every((w) => w.has('closed'))).toBe(true);

    const all = deliveries();
    expect(all).toHaveLength(2 * count); // nothing twice
    for (const w of workers) {
      // Within one consumer, each key's messages arrive in publish order.
      const byKey = new Map<string, number[]>();
      for (const line of w.lines.filter((l) => l.startsWith('got '))) {
        const [, key, n] = line.split(' ');
        byKey.set(key!, [...(byKey.get(key!) ?? []), Number(n)]);
      }
      for (const ns of byKey.values()) expect(ns).toEqual([...ns].sort((x, y) => x - y));
    }
    // Both processes did some of the work.
    for (const w of workers) expect(w.lines.some((l) => l.startsWith('got '))).toBe(true);
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
  }
});
