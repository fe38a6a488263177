import type { BackoffOptions } from './types.js';

export interface ResolvedBackoff {
  initialMs: number;
  maxMs: number;
  multiplier: number;
}

export const DEFAULT_BACKOFF: ResolvedBackoff = { initialMs: 100, maxMs: 5_000, multiplier: 2 };
export const DEFAULT_MAX_ATTEMPTS = 5;

export function resolveBackoff(options: BackoffOptions | undefined): ResolvedBackoff {
  return { ...DEFAULT_BACKOFF, ...(options ?? {}) };
}

/**
 * Delay before attempt `nextAttempt` (2 = first retry): exponential with "equal jitter" so that
 * consumers failing together do not retry in lockstep, never below half the nominal delay.
 */
export function backoffDelay(b: ResolvedBackoff, nextAttempt: number, random: () => number = Math.random): number {
  const nominal = Math.min(b.maxMs, b.initialMs * b.multiplier ** Math.max(0, nextAttempt - 2));
  return Math.round(nominal / 2 + (random() * nominal) / 2);
}
