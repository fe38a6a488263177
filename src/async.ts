/** Small promise helpers every part uses: one sleep, one timeout race, one wake-up list. */

/** Resolves true after `ms`, or false as soon as `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(false);
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Settles like `promise`, or rejects with `onTimeout()` after `ms`; the timer is cleared when the promise
 * settles, so nothing lingers. The promise itself is not cancelled (client calls cannot be): its late
 * rejection is swallowed here so it cannot go unhandled, and callers document what a late success means.
 */
export function withTimeout<T>(promise: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  promise.catch(() => undefined);
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

/**
 * A list of waiters woken together: `wait` resolves true on the next `notify`, or false after `ms` (when
 * given) or when `signal` aborts. Used for "wake the loop on new data" and "resolve when drained".
 *
 * With `latch`, a notify that finds nobody waiting makes the next `wait` return at once, so a poll loop
 * that was busy when new data arrived does not sleep past it. Without it (a drain), only current waiters
 * are woken.
 */
export class Notifier {
  private waiters: Array<(woken: boolean) => void> = [];
  private pending = false;

  constructor(private readonly options: { latch?: boolean } = {}) {}

  get waiting(): number {
    return this.waiters.length;
  }

  notify(): void {
    if (this.waiters.length === 0) {
      if (this.options.latch) this.pending = true;
      return;
    }
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w(true);
  }

  wait(ms?: number, signal?: AbortSignal): Promise<boolean> {
    if (signal?.aborted) return Promise.resolve(false);
    if (this.pending) {
      this.pending = false;
      return Promise.resolve(true);
    }
    return new Promise<boolean>((resolve) => {
      const done = (woken: boolean): void => {
        if (timer) clearTimeout(timer);
        const i = this.waiters.indexOf(done);
        if (i >= 0) this.waiters.splice(i, 1);
        signal?.removeEventListener('abort', onAbort);
        resolve(woken);
      };
      const onAbort = (): void => done(false);
      const timer = ms === undefined ? undefined : setTimeout(() => done(false), ms);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(done);
    });
  }
}
