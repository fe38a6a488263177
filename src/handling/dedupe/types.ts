/**
 * Where consumers record the event ids they handled, so that an at-least-once redelivery does not reach
 * a shadow target (or an agent's side effect) twice. A claim is a short lease while the event is being
 * handled, then a long-lived "done" mark:
 * - `acquired`: handle it, then `complete()` (or `release()` on failure so that a retry can claim again);
 * - `done`: handled before, skip it;
 * - `busy`: another consumer holds the lease right now; retry later (its lease ends if it died).
 */
export type ClaimResult = 'acquired' | 'done' | 'busy';

export interface DedupeStore {
  /** `memory`, `sqlite` or `redis`. */
  readonly kind: string;
  /** Opens connections or files; rejects with a BusError when the store is unreachable. */
  start(): Promise<void>;
  /** Tries to take `id` within `scope` (a consumer group) for `leaseMs`. */
  claim(scope: string, id: string, leaseMs: number): Promise<ClaimResult>;
  /** Marks `id` handled for `ttlMs`. */
  complete(scope: string, id: string, ttlMs: number): Promise<void>;
  /** Gives up a lease taken by `claim` so that a retry may claim again. */
  release(scope: string, id: string): Promise<void>;
  /** Idempotent. */
  close(): Promise<void>;
}
