import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { SagaProjection } from './projection.js';
import type { SagaStatus } from './types.js';

/**
 * Saga figures of one registry: how many sagas stand in each status (as this replica's projection of the
 * saga topics sees them: every replica reports the same), the outcomes this replica decided, and the time
 * from a step's command to its reply.
 */
export interface SagaMetrics {
  projections: Set<SagaProjection>;
  ended: Counter<'saga' | 'outcome'>;
  stepSeconds: Histogram<'saga' | 'step' | 'phase'>;
}

const sets = new WeakMap<Registry, SagaMetrics>();

export function sagaMetrics(registry: Registry): SagaMetrics {
  let set = sets.get(registry);
  if (set) return set;
  const projections = new Set<SagaProjection>();
  new Gauge({
    name: 'cutover_sagas',
    help: 'Sagas by status (running, compensating, completed, compensated, stuck), as the saga topics say',
    labelNames: ['saga', 'status'],
    registers: [registry],
    collect() {
      this.reset();
      for (const p of projections) {
        for (const [status, n] of Object.entries(p.counts) as Array<[SagaStatus, number]>) this.set({ saga: p.def.name, status }, n);
      }
    },
  });
  set = {
    projections,
    ended: new Counter({ name: 'cutover_saga_ended_total', help: 'Sagas this replica ended, by outcome (completed, compensated, stuck)', labelNames: ['saga', 'outcome'], registers: [registry] }),
    stepSeconds: new Histogram({
      name: 'cutover_saga_step_duration_seconds',
      help: 'From a saga step command to its reply, by step and phase (forward, compensate)',
      labelNames: ['saga', 'step', 'phase'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
  };
  sets.set(registry, set);
  return set;
}
