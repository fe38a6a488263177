
import type { Logger } from '../src/logger.js';

/** Something that starts and closes once: a deliver runtime, an in-process shadow side. */
export interface Startable {
  start(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Keeps one background component running: a start that fails (a consumer group join that timed out under
 * load, the bus gone between connect and subscribe) is retried with a fresh instance after `retryMs`,
 * instead of leaving the component off until the process restarts.
 */
export class Restarting<T extends Startable> {
  private instance: T | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** Settles when the latest start attempt has (it never rejects). */
  ready: Promise<void> | undefined;

  constructor(
    private readonly what: string,
    private readonly make: () => T,
    private readonly logger: Logger,
    private readonly retryMs = 2_000,
  ) {}

  /** The latest instance: running, still starting, or waiting for its retry. */
  get current(): T | undefined {
    return this.instance;
  }

  start(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    clearTimeout(this.timer);
    const instance = this.make();
    this.instance = instance;
    return (this.ready = instance.start().catch((err: unknown) => {
      this.logger.error({ err, retryInMs: this.retryMs }, `${this.what} could not start; retrying`);
      if (!this.stopped && this.instance === instance) this.timer = setTimeout(() => void this.start(), this.retryMs).unref();
    }));
  }

  /** Stops retrying and closes the latest instance. Idempotent. */
  async close(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.instance?.close();
  }
}
