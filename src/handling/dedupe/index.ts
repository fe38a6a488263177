import path from 'node:path';
import type { BusConfig } from '../../config/bus.js';
import { busTlsOptions } from '../../tls.js';
import { MemoryDedupeStore } from './memory.js';
import { RedisDedupeStore } from './redis.js';
import { SqliteDedupeStore } from './sqlite.js';
import type { DedupeStore } from './types.js';

export type { ClaimResult, DedupeStore } from './types.js';
export { MemoryDedupeStore } from './memory.js';
export { RedisDedupeStore } from './redis.js';
export { SqliteDedupeStore } from './sqlite.js';

/** An explicit store choice (config `shadow.dedupe`). */
export type DedupeChoice = { kind: 'redis'; url: string; prefix?: string } | { kind: 'sqlite'; path: string } | { kind: 'memory' };

/** File name of the SQLite dedupe store, beside the embedded bus file or in the data directory. */
export const DEDUPE_FILE = 'cutover-dedupe.db';

/**
 * The dedupe store for a bus, unless `choice` names one:
 * - embedded: a SQLite file beside the bus file (its own file, so that dedupe writes never wait for the
 *   bus file's single writer lock);
 * - redis: the same Redis, keys under the bus prefix + `dedupe:`;
 * - kafka, rabbitmq: the broker has no place for it, so a local SQLite file in `dataDir` (configure
 *   `shadow.dedupe` with a Redis to dedupe across machines).
 * Not started: call `start()`.
 */
export function createDedupeStore(bus: BusConfig, options: { choice?: DedupeChoice; dataDir?: string } = {}): DedupeStore {
  const choice = options.choice;
  if (choice) {
    switch (choice.kind) {
      case 'redis':
        return new RedisDedupeStore(choice.url, choice.prefix);
      case 'sqlite':
        return new SqliteDedupeStore(choice.path);
      case 'memory':
        return new MemoryDedupeStore();
    }
  }
  switch (bus.kind) {
    case 'embedded':
      return new SqliteDedupeStore(bus.path === ':memory:' ? ':memory:' : path.join(path.dirname(bus.path), DEDUPE_FILE));
    case 'redis':
      return new RedisDedupeStore(bus.url, `${bus.prefix}dedupe:`, busTlsOptions(bus.tls, 'bus.tls'));
    case 'kafka':
    case 'rabbitmq':
      return new SqliteDedupeStore(path.join(options.dataDir ?? '.data', DEDUPE_FILE));
  }
}
