import { describe, expect, it, vi } from 'vitest';
import { Restarting, type Startable } from '../../proxy/restarting.js';
import { silentLogger } from '../../src/logger.js';
import { waitFor } from '../helpers/wait-for.js';

class Component implements Startable {
  started = false;
  closed = false;
  constructor(private readonly fail: boolean) {}
  async start(): Promise<void> {
    if (this.fail) throw new Error('join group timed out');
    this.started = true;
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}

describe('Restarting', () => {
  it('starts a fresh instance after each failed start until one runs', async () => {
    const made: Component[] = [];
    const r = new Restarting('test component', () => made[made.push(new Component(made.length < 2)) - 1]!, silentLogger(), 10);
    await r.start();
    expect(r.current?.started).toBe(false);
    await waitFor(() => r.current?.started === true, { timeoutMs: 2_000, what: 'the third instance running' });
    expect(made.map((c) => c.started)).toEqual([false, false, true]);
    await r.close();
    expect(r.current?.closed).toBe(true);
  });

  it('stops retrying once closed', async () => {
    vi.useFakeTimers();
    try {
      let made = 0;
      const r = new Restarting('test component', () => (made++, new Component(true)), silentLogger(), 20);
      await r.start();
      await vi.advanceTimersByTimeAsync(20);
      expect(made).toBe(2);
      await r.close();
      await vi.advanceTimersByTimeAsync(1_000);
      expect(made).toBe(2);
      await r.start();
      expect(made).toBe(2);
    } finally {
      vi.useRealTimers();
    }
  });
});
