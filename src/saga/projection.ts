import type { Bus } from '../bus/types.js';
import type { CloudEvent } from '../events/types.js';
import type { SagaDefinition } from './model.js';
import { applyEvent, isTerminal, sagaIdOf, type SagaState } from './state.js';
import type { SagaStatus } from './types.js';

/**
 * The sagas of one saga topic, folded from its events in log order. Every event id is applied once, so an
 * event published twice (a replica re-doing an action after a crash) changes nothing the second time.
 */
export class SagaProjection {
  readonly sagas = new Map<string, SagaState>();
  private readonly seen = new Set<string>();
  /** Ids of the sagas that have not ended: what the orchestrator's deadline check walks. */
  private readonly running = new Set<string>();
  private readonly waiters = new Map<string, Array<() => void>>();
  private readonly listeners = new Set<(state: SagaState) => void>();
  /** Sagas by status. */
  readonly counts: Record<SagaStatus, number> = { running: 0, compensating: 0, completed: 0, compensated: 0, stuck: 0 };

  constructor(
    readonly def: SagaDefinition,
    private readonly now: () => number = Date.now,
  ) {}

  /** Applies an event of the saga topic; returns the saga it changed (or recorded), if any. */
  apply(event: CloudEvent): SagaState | undefined {
    if (this.seen.has(event.id)) return undefined;
    this.seen.add(event.id);
    const before = this.sagas.get(sagaIdOf(event) ?? '')?.status;
    const state = applyEvent(this.sagas, this.def, event, this.now());
    if (state && state.status !== before) {
      if (before) this.counts[before]--;
      this.counts[state.status]++;
      if (isTerminal(state.status)) this.running.delete(state.id);
      else this.running.add(state.id);
    }
    const waiting = this.waiters.get(event.id);
    if (waiting) {
      this.waiters.delete(event.id);
      for (const wake of waiting) wake();
    }
    if (state) for (const listener of this.listeners) listener(state);
    return state;
  }

  has(eventId: string): boolean {
    return this.seen.has(eventId);
  }

  /** Resolves once the event `eventId` was applied: true, or false after `timeoutMs`. */
  waitFor(eventId: string, timeoutMs: number): Promise<boolean> {
    if (this.seen.has(eventId)) return Promise.resolve(true);
    return new Promise((resolve) => {
      const list = this.waiters.get(eventId) ?? [];
      const wake = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        const rest = (this.waiters.get(eventId) ?? []).filter((w) => w !== wake);
        if (rest.length > 0) this.waiters.set(eventId, rest);
        else this.waiters.delete(eventId);
        resolve(false);
      }, timeoutMs);
      list.push(wake);
      this.waiters.set(eventId, list);
    });
  }

  /** Calls `listener` with every saga an applied event touched. Returns the unsubscribe. */
  onChange(listener: (state: SagaState) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Sagas that have not ended. */
  *active(): Iterable<SagaState> {
    for (const id of this.running) yield this.sagas.get(id)!;
  }
}

/** Folds a saga topic as it stands now (for `cutover saga list|show`): reads it once, to its current end. */
export async function readSagaTopic(bus: Bus, def: SagaDefinition): Promise<SagaProjection> {
  const projection = new SagaProjection(def);
  const stream = bus.read(def.topic, { from: 'start', follow: false });
  try {
    for await (const d of stream) projection.apply(d.event);
  } finally {
    await stream.close();
  }
  return projection;
}
