import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { startCountingUpstream, type CountingUpstream } from './traffic.js';

/** What every fault test file shares: a temp dir, one counting upstream, and cleanups run after each test. */
export interface FaultSuite {
  readonly dir: string;
  readonly upstream: CountingUpstream;
  /** Registers a cleanup for the current test (run in reverse order after it, failures ignored). */
  defer(fn: () => Promise<unknown>): void;
}

/** Registers the file's hooks; call once at the top level of a test file. */
export function faultSuite(label: string): FaultSuite {
  let dir: string | undefined;
  let upstream: CountingUpstream | undefined;
  const cleanups: Array<() => Promise<unknown>> = [];
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), `cutover-faults-${label}-`));
    upstream = await startCountingUpstream();
  });
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
  });
  afterAll(async () => {
    await upstream?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  return {
    get dir() {
      return dir!;
    },
    get upstream() {
      return upstream!;
    },
    defer: (fn) => void cleanups.push(fn),
  };
}
