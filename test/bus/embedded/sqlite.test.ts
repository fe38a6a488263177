import { randomUUID } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createBus, type Bus } from '../../../src/bus/index.js';
import { buildEvent } from '../../../src/events/cloudevent.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'cutover-sqlite-mode-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length) await Promise.resolve(cleanups.pop()!()).catch(() => undefined);
});

function recordingLogger() {
  const lines: Array<{ level: number; msg: string; path?: string; mode?: string }> = [];
  const logger = pino({ level: 'warn' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  return { logger, lines };
}

async function open(file: string, logger = recordingLogger().logger): Promise<Bus> {
  const bus = await createBus({ kind: 'embedded', path: file, pollInterval: '10ms' }, { logger });
  cleanups.push(() => bus.close());
  await bus.start();
  return bus;
}

const modeOf = (file: string): number => statSync(file).mode & 0o777;

describe('embedded bus file mode', () => {
  it('creates the file, its -wal and -shm 0600 and a missing directory 0700', async () => {
    const parent = path.join(dir, randomUUID());
    const file = path.join(parent, 'nested', 'bus.db');
    const bus = await open(file);
    await bus.publish(`test.mode.${randomUUID()}`, [{ key: 'k', event: buildEvent({ source: '/agents/test', type: 'test.event', data: { n: 1 } }) }]);
    expect(modeOf(file)).toBe(0o600);
    for (const side of ['-wal', '-shm']) {
      expect(existsSync(file + side)).toBe(true);
      expect(modeOf(file + side)).toBe(0o600);
    }
    expect(modeOf(parent)).toBe(0o700);
    expect(modeOf(path.dirname(file))).toBe(0o700);
  });

  it('leaves an existing directory and file mode alone and warns once about a world-readable file', async () => {
    const shared = path.join(dir, randomUUID());
    mkdirSync(shared);
    chmodSync(shared, 0o755);
    const file = path.join(shared, 'bus.db');
    writeFileSync(file, '');
    chmodSync(file, 0o644);
    const { logger, lines } = recordingLogger();
    await open(file, logger);
    await open(file, logger);
    expect(modeOf(file)).toBe(0o644);
    expect(modeOf(shared)).toBe(0o755);
    const warnings = lines.filter((l) => /world-readable/.test(l.msg));
    expect(warnings).toEqual([expect.objectContaining({ path: file, mode: '0644' })]);
  });

  it('says nothing about an existing private file', async () => {
    const file = path.join(dir, `${randomUUID()}.db`);
    writeFileSync(file, '', { mode: 0o640 });
    chmodSync(file, 0o640);
    const { logger, lines } = recordingLogger();
    await open(file, logger);
    expect(modeOf(file)).toBe(0o640);
    expect(lines.filter((l) => /world-readable/.test(l.msg))).toEqual([]);
  });
});
