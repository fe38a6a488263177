import type { ClaimResult, DedupeStore } from './types.js';

interface Entry {
  done: boolean;
  until: number;
}

/**
 * A process-local store: dedupes redeliveries within one process only. For tests and single-process
 * agents; use the SQLite or Redis store when several consumers share a group.
 */
export class MemoryDedupeStore implements DedupeStore {
  readonly kind = 'memory';
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly maxEntries = 100_000,
    private readonly now: () => number = Date.now,
  ) {}

  async start(): Promise<void> {}

  async claim(scope: string, id: string, leaseMs: number): Promise<ClaimResult> {
    const key = scope + '\u0000' + id;
    const now = this.now();
    const e = this.entries.get(key);
    if (e && e.until > now) return e.done ? 'done' : 'busy';
    this.set(key, { done: false, until: now + leaseMs });
    return 'acquired';
  }

  async complete(scope: string, id: string, ttlMs: number): Promise<void> {
    this.set(scope + '\u0000' + id, { done: true, until: this.now() + ttlMs });
  }

  async release(scope: string, id: string): Promise<void> {
    const key = scope + '\u0000' + id;
    if (this.entries.get(key)?.done === false) this.entries.delete(key);
  }

  async close(): Promise<void> {
    this.entries.clear();
  }

  private set(key: string, entry: Entry): void {
    this.entries.delete(key);
    if (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
    this.entries.set(key, entry);
  }
}
