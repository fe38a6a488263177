import type { SagaStepSummary, SagaSummary } from '../parity/types.js';
import { ErrorCodes } from '../errors.js';
import { SagaEventTypes, type StepSucceededData } from './types.js';
import type { PhaseState, SagaState } from './state.js';

/**
 * How an ended saga ran, step by step, for the bus reply of a saga flow (and so the parity record): which
 * step failed, which were compensated, and each step's reply time. Undefined while the saga runs.
 */
export function sagaSummary(state: SagaState): SagaSummary | undefined {
  if (state.status !== 'completed' && state.status !== 'compensated' && state.status !== 'stuck') return undefined;
  const latency = new Map<string, number>();
  for (const entry of state.history) {
    if (!entry.applied || entry.type !== SagaEventTypes.stepSucceeded) continue;
    const d = entry.data as StepSucceededData;
    if (d.phase === 'forward') latency.set(d.step, d.latencyMs);
  }
  const steps = state.steps.map((s): SagaStepSummary => {
    const out: SagaStepSummary = { name: s.name, outcome: outcomeOf(s.forward) };
    const ms = latency.get(s.name) ?? failedAfter(s.forward);
    if (ms !== undefined) out.latencyMs = ms;
    if (s.compensate.status === 'succeeded') out.compensation = 'compensated';
    else if (s.compensate.status === 'failed' || s.compensate.status === 'sent') out.compensation = 'failed';
    return out;
  });
  const failure = state.failure ?? state.stuck;
  const summary: SagaSummary = { name: state.saga, status: state.status, steps };
  if (failure) {
    summary.failedStep = failure.step;
    summary.failureCode = state.failure ? failure.code : ErrorCodes.SAGA_STUCK;
  }
  if (state.stuck) summary.stuck = { step: state.stuck.step, phase: state.stuck.phase };
  return summary;
}

function outcomeOf(phase: PhaseState): SagaStepSummary['outcome'] {
  if (phase.status === 'succeeded') return 'succeeded';
  if (phase.status === 'idle') return 'skipped';
  return phase.refused ? 'refused' : 'failed';
}

function failedAfter(phase: PhaseState): number | undefined {
  return phase.failedAt !== undefined && phase.sentAt !== undefined ? Math.max(0, phase.failedAt - phase.sentAt) : undefined;
}
