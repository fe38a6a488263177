import type { ParityRecord, SagaSummary } from '../src/parity/types.js';
import { ValueHistogram } from './histogram.js';
import type { SagaFigures, SagaStepFigures } from './types.js';

/** Most distinct step names kept per flow (a saga has a handful; more means records of several sagas). */
const MAX_STEPS = 50;

interface StepState {
  failed: number;
  refused: number;
  compensated: number;
  compensationFailed: number;
  latency: ValueHistogram;
}

/**
 * The per-step figures of a saga flow, from the saga summaries its parity records carry: how the sagas
 * ended, where they failed, which compensations ran, each step's reply time, and which step made the
 * outcome differ from the REST chain's on mismatching calls.
 */
export class SagaAggregate {
  private name: string | undefined;
  private readonly ended = { completed: 0, compensated: 0, stuck: 0 };
  private readonly steps = new Map<string, StepState>();
  private readonly mismatchSteps = new Map<string, number>();

  add(record: ParityRecord): void {
    const saga = record.saga as SagaSummary | undefined;
    if (typeof saga !== 'object' || saga === null || !Array.isArray(saga.steps)) return;
    this.name ??= String(saga.name);
    if (saga.status in this.ended) this.ended[saga.status]++;
    for (const s of saga.steps) {
      if (typeof s?.name !== 'string') continue;
      let state = this.steps.get(s.name);
      if (!state) {
        if (this.steps.size >= MAX_STEPS) continue;
        state = { failed: 0, refused: 0, compensated: 0, compensationFailed: 0, latency: new ValueHistogram(1000) };
        this.steps.set(s.name, state);
      }
      if (s.outcome === 'failed') state.failed++;
      if (s.outcome === 'refused') state.refused++;
      if (s.compensation === 'compensated') state.compensated++;
      if (s.compensation === 'failed') state.compensationFailed++;
      state.latency.record(s.latencyMs);
    }
    if (record.outcome === 'mismatch') {
      // The saga step whose failure changed the answer: for a stuck saga the step it is stuck at (`reserve
      // (undo)` when undoing it kept failing); a saga that completed where the chain did not has none.
      const stuck = saga.status === 'stuck' && typeof saga.stuck?.step === 'string' ? `${saga.stuck.step}${saga.stuck.phase === 'compensate' ? ' (undo)' : ''}` : undefined;
      const step = saga.status === 'completed' ? COMPLETED : (stuck ?? saga.failedStep ?? COMPLETED);
      this.mismatchSteps.set(step, (this.mismatchSteps.get(step) ?? 0) + 1);
    }
  }

  summary(): SagaFigures | null {
    if (this.name === undefined) return null;
    const steps: SagaStepFigures[] = [...this.steps.entries()].map(([name, s]) => ({
      name,
      failed: s.failed,
      refused: s.refused,
      compensated: s.compensated,
      compensationFailed: s.compensationFailed,
      latency: s.latency.summary(),
    }));
    const mismatchSteps = [...this.mismatchSteps.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).map(([step, count]) => ({ step, count }));
    return { name: this.name, ended: { ...this.ended }, steps, mismatchSteps };
  }
}

/** `mismatchSteps[].step` of mismatches where the saga completed (the REST chain answered otherwise). */
export const COMPLETED = '(completed)';

/** "pay (3), (completed) (1)": mismatching calls by saga step, for verdict reasons and renderers. */
export function mismatchStepsText(figures: SagaFigures): string {
  return figures.mismatchSteps.map((m) => `${m.step} (${m.count})`).join(', ');
}
