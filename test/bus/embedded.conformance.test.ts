import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll } from 'vitest';
import { runConformance } from './conformance.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'cutover-embedded-'));
const file = path.join(dir, 'bus.db');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

runConformance({
  kind: 'embedded',
  config: () => ({ kind: 'embedded', path: file, sessionTimeout: '1500ms', pollInterval: '10ms' }),
  // The embedded bus has no server: "down" is another process holding the write lock on the file.
  async faulty() {
    const lockFile = path.join(dir, `faulty-${Date.now()}.db`);
    let holder: Database.Database | undefined;
    return {
      config: { kind: 'embedded', path: lockFile, sessionTimeout: '1500ms', pollInterval: '10ms' },
      async down() {
        holder = new Database(lockFile);
        holder.pragma('journal_mode = WAL');
        holder.exec('BEGIN EXCLUSIVE');
      },
      async up() {
        holder?.exec('COMMIT');
        holder?.close();
        holder = undefined;
      },
      async close() {
        if (holder?.inTransaction) holder.exec('ROLLBACK');
        holder?.close();
      },
    };
  },
  takeoverMs: 5_000,
  discoveryMs: 2_000,
  countsCrashRedelivery: true,
});
