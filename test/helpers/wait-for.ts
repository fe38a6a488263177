/**
 * Polls `check` until it returns a truthy value (returned) or `timeoutMs` passes (throws with `what`).
 * Tests wait on conditions, never on fixed sleeps.
 */
export async function waitFor<T>(check: () => T | Promise<T>, options: { timeoutMs?: number; intervalMs?: number; what?: string } = {}): Promise<NonNullable<T>> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const intervalMs = options.intervalMs ?? 25;
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value as NonNullable<T>;
      last = value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`waitFor timed out after ${timeoutMs} ms: ${options.what ?? 'condition'} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * Waits (up to `timeoutMs`, via {@link waitFor}) for `promise` to settle and returns its value or its
 * rejection reason: for checks that an operation never hangs, without asserting on elapsed time.
 */
export async function settled<T>(promise: Promise<T>, options: { timeoutMs?: number; what?: string } = {}): Promise<T | unknown> {
  let done = false;
  let outcome: unknown;
  promise.then(
    (value) => ((outcome = value), (done = true)),
    (err: unknown) => ((outcome = err), (done = true)),
  );
  await waitFor(() => done, options);
  return outcome;
}
