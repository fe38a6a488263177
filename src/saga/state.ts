import { ObservationTypes, type BusReplyData } from '../events/wire.js';
import type { CloudEvent } from '../events/types.js';
import { ErrorCodes } from '../errors.js';
import { isSuccess, retryDelay, type SagaDefinition } from './model.js';
import {
  SagaEventTypes,
  type ReasonData,
  type SagaFailure,
  type SagaOutcome,
  type SagaPhase,
  type SagaStatus,
  type StartedData,
  type StepReply,
  type StepFailedData,
  type StepSentData,
  type StepSucceededData,
} from './types.js';

/** Where one phase (run or undo) of one step stands. */
export interface PhaseState {
  status: 'idle' | 'sent' | 'succeeded' | 'failed';
  attempt: number;
  sentAt?: number;
  deadline?: number;
  failedAt?: number;
  reply?: StepReply;
  failure?: SagaFailure;
  refused?: boolean;
}

export interface StepState {
  name: string;
  forward: PhaseState;
  compensate: PhaseState;
}

/** One record of a saga's history: every event of its topic, in log order; `applied: false` when it changed nothing (late, or superseded). */
export interface SagaHistoryEntry {
  id: string;
  type: string;
  time: string | undefined;
  applied: boolean;
  data: unknown;
}

/** A saga as its events say it is. */
export interface SagaState {
  id: string;
  saga: string;
  status: SagaStatus;
  input: unknown;
  /** The `cutovermode` of its commands, when begun with one. */
  mode?: string;
  steps: StepState[];
  /** Why the saga is compensating (or was compensated). */
  failure?: SagaFailure;
  /** Why the saga is stuck. */
  stuck?: SagaFailure;
  /** Replies not yet turned into step.succeeded / step.failed, by command id (kept across a timed-out send). */
  replies: Map<string, BusReplyData>;
  history: SagaHistoryEntry[];
  /** Local time the last event was applied (a replica that does not own the saga waits from here). */
  updatedAt: number;
}

export function isTerminal(status: SagaStatus): boolean {
  return status === 'completed' || status === 'compensated' || status === 'stuck';
}

/** The id of a step's command: the same on every send, so a participant dedupes re-sends. */
export function commandId(sagaId: string, index: number, phase: SagaPhase): string {
  return `${sagaId}.${index}.${phase}`;
}

/** The saga id of an event on a saga topic: orchestrator events carry it in data, replies as correlation id. */
export function sagaIdOf(event: CloudEvent): string | undefined {
  if (event.type === ObservationTypes.bus) return event.correlationid;
  const data = event.data as { sagaId?: unknown } | undefined;
  return typeof data?.sagaId === 'string' ? data.sagaId : undefined;
}

/**
 * Applies one event of a saga topic to its saga (creating it on `started`); an event that does not fit the
 * state (a late reply, a second outcome for one send) is kept in the history as not applied. Returns the
 * saga, or undefined for an event of no known saga.
 */
export function applyEvent(sagas: Map<string, SagaState>, def: SagaDefinition, event: CloudEvent, now: number): SagaState | undefined {
  const id = sagaIdOf(event);
  if (id === undefined) return undefined;
  let state = sagas.get(id);
  if (event.type === SagaEventTypes.started) {
    if (state) return record(state, event, false, now);
    const data = event.data as StartedData;
    state = {
      id,
      saga: def.name,
      status: 'running',
      input: data.input,
      ...(typeof data.mode === 'string' ? { mode: data.mode } : {}),
      steps: def.steps.map((s) => ({ name: s.name, forward: { status: 'idle', attempt: 0 }, compensate: { status: 'idle', attempt: 0 } })),
      replies: new Map(),
      history: [],
      updatedAt: now,
    };
    sagas.set(id, state);
    return record(state, event, true, now);
  }
  if (!state) return undefined;
  return record(state, event, transition(state, def, event), now);
}

function record(state: SagaState, event: CloudEvent, applied: boolean, now: number): SagaState {
  state.history.push({ id: event.id, type: event.type, time: event.time, applied, data: event.data });
  if (applied) state.updatedAt = now;
  return state;
}

const phaseOf = (status: SagaStatus): SagaPhase | undefined => (status === 'running' ? 'forward' : status === 'compensating' ? 'compensate' : undefined);

function transition(state: SagaState, def: SagaDefinition, event: CloudEvent): boolean {
  const time = event.time ? Date.parse(event.time) : Date.now();
  switch (event.type) {
    case ObservationTypes.bus: {
      const cause = event.causationid;
      const found = typeof cause === 'string' ? findCommand(state, cause) : undefined;
      // A reply that comes after its send timed out is kept: the participant did the work, and the re-send
      // (same command id) is skipped by its dedupe, so this reply is the one that answers it.
      if (!found || (found.phase.status !== 'sent' && found.phase.status !== 'failed')) return false;
      state.replies.set(cause as string, (event.data ?? {}) as BusReplyData);
      return true;
    }
    case SagaEventTypes.stepSent: {
      const d = event.data as StepSentData;
      const phase = state.steps[d.index]?.[d.phase];
      if (!phase || phaseOf(state.status) !== d.phase || d.attempt !== phase.attempt + 1 || (phase.status !== 'idle' && phase.status !== 'failed')) return false;
      state.steps[d.index]![d.phase] = { status: 'sent', attempt: d.attempt, sentAt: time, deadline: d.deadline };
      return true;
    }
    case SagaEventTypes.stepSucceeded:
    case SagaEventTypes.stepFailed: {
      const d = event.data as StepSucceededData | StepFailedData;
      const phase = state.steps[d.index]?.[d.phase];
      if (!phase || phase.status !== 'sent' || phase.attempt !== d.attempt) return false;
      // The reply that decided the outcome is used up; a timeout leaves a late reply for the next send.
      if (!('failure' in d) || d.failure.code !== ErrorCodes.REPLY_TIMEOUT) state.replies.delete(commandId(state.id, d.index, d.phase));
      if ('reply' in d) Object.assign(phase, { status: 'succeeded', reply: d.reply });
      else Object.assign(phase, { status: 'failed', failedAt: time, failure: d.failure, refused: d.refused });
      return true;
    }
    case SagaEventTypes.compensating:
      if (state.status !== 'running') return false;
      state.status = 'compensating';
      state.failure = (event.data as ReasonData).reason;
      return true;
    case SagaEventTypes.compensated:
      if (state.status !== 'compensating') return false;
      state.status = 'compensated';
      return true;
    case SagaEventTypes.completed:
      if (state.status !== 'running') return false;
      state.status = 'completed';
      return true;
    case SagaEventTypes.stuck:
      if (isTerminal(state.status)) return false;
      state.status = 'stuck';
      state.stuck = (event.data as ReasonData).reason;
      return true;
    default:
      return false;
  }
}

function findCommand(state: SagaState, id: string): { index: number; phase: PhaseState; name: SagaPhase } | undefined {
  for (let index = 0; index < state.steps.length; index++) {
    for (const name of ['forward', 'compensate'] as const) {
      if (commandId(state.id, index, name) === id) return { index, phase: state.steps[index]![name], name };
    }
  }
  return undefined;
}

/** What the orchestrator does next for a saga, and from when. */
export type SagaAction =
  | { kind: 'send'; index: number; phase: SagaPhase; attempt: number }
  | { kind: 'resolve'; index: number; phase: SagaPhase; attempt: number; reply: BusReplyData }
  | { kind: 'timeout'; index: number; phase: SagaPhase; attempt: number }
  | { kind: 'compensate'; reason: SagaFailure }
  | { kind: 'complete' }
  | { kind: 'compensated' }
  | { kind: 'stuck'; reason: SagaFailure; dlq?: { index: number } };

export interface Plan {
  action: SagaAction;
  /** Epoch ms from which the action is due; 0 for now. */
  at: number;
}

/**
 * The one next action of a saga, from its state alone: every replica plans the same, so a replica taking
 * over a saga carries on where its events stop. Undefined once the saga has ended.
 */
export function plan(state: SagaState, def: SagaDefinition): Plan | undefined {
  if (state.status === 'running') {
    const index = state.steps.findIndex((s) => s.forward.status !== 'succeeded');
    if (index === -1) return { action: { kind: 'complete' }, at: 0 };
    const next = sendPlan(state, def, index, 'forward');
    if (next) return next;
    const failure = state.steps[index]!.forward.failure!;
    if (def.pointOfNoReturnIndex >= 0 && index > def.pointOfNoReturnIndex) {
      return { action: { kind: 'stuck', reason: { ...failure, message: `after the point of no return (${def.pointOfNoReturn}): ${failure.message}` } }, at: 0 };
    }
    return { action: { kind: 'compensate', reason: failure }, at: 0 };
  }
  if (state.status === 'compensating') {
    const index = compensationCursor(state, def);
    if (index === -1) return { action: { kind: 'compensated' }, at: 0 };
    const next = sendPlan(state, def, index, 'compensate');
    if (next) return next;
    const phase = state.steps[index]!.compensate;
    const why = phase.refused ? 'compensation refused' : `compensation failed ${phase.attempt} times`;
    return { action: { kind: 'stuck', reason: { ...phase.failure!, message: `${why}: ${phase.failure!.message}` }, dlq: { index } }, at: 0 };
  }
  return undefined;
}

/**
 * The send, reply or timeout due for a phase, or its re-send after a timeout or an error reply; undefined
 * once it failed for good. A refusal is never re-sent: the participant handled the command (a re-send with
 * the same id would be skipped), and its answer stands.
 */
function sendPlan(state: SagaState, def: SagaDefinition, index: number, name: SagaPhase): Plan | undefined {
  const phase = state.steps[index]![name];
  if (phase.status === 'idle') return { action: { kind: 'send', index, phase: name, attempt: 1 }, at: 0 };
  if (phase.status === 'sent') {
    const reply = state.replies.get(commandId(state.id, index, name));
    if (reply) return { action: { kind: 'resolve', index, phase: name, attempt: phase.attempt, reply }, at: 0 };
    return { action: { kind: 'timeout', index, phase: name, attempt: phase.attempt }, at: phase.deadline! };
  }
  const step = def.steps[index]!;
  if (phase.status === 'failed' && !phase.refused && phase.attempt < step.retry.attempts) {
    return { action: { kind: 'send', index, phase: name, attempt: phase.attempt + 1 }, at: phase.failedAt! + retryDelay(step, phase.attempt) };
  }
  return undefined;
}

/**
 * The step to undo next, last done first: one that succeeded, or whose run may have happened (no reply in
 * time, an error reply) — never one the participant refused. Steps without a compensation are skipped.
 */
function compensationCursor(state: SagaState, def: SagaDefinition): number {
  for (let index = state.steps.length - 1; index >= 0; index--) {
    const s = state.steps[index]!;
    if (def.steps[index]!.compensation === undefined || s.compensate.status === 'succeeded') continue;
    if (s.forward.status === 'succeeded' || (s.forward.status === 'failed' && !s.forward.refused)) return index;
  }
  return -1;
}

/** Turns a participant's reply into the step's outcome. */
export function judgeReply(def: SagaDefinition, index: number, phase: SagaPhase, reply: BusReplyData): { reply: StepReply } | { failure: SagaFailure; refused: boolean } {
  const step = def.steps[index]!;
  const body = reply.body;
  if (typeof reply.status !== 'number') {
    const error = reply.error ?? { code: ErrorCodes.HANDLER_FAILED, message: 'the participant answered without a status' };
    return { failure: { step: step.name, phase, code: error.code, message: error.message ?? error.code }, refused: false };
  }
  if (isSuccess(step, reply.status)) return { reply: { status: reply.status, ...(body !== undefined ? { body } : {}) } };
  return {
    failure: { step: step.name, phase, code: ErrorCodes.SAGA_STEP_REFUSED, message: `${step.name} answered ${reply.status}`, status: reply.status, ...(body !== undefined ? { body } : {}) },
    refused: true,
  };
}

/** Reply bodies of the steps that succeeded, by step name. */
export function stepResults(state: SagaState): Record<string, unknown> {
  const results: Record<string, unknown> = {};
  for (const s of state.steps) if (s.forward.status === 'succeeded') results[s.name] = s.forward.reply?.body;
  return results;
}

/** How an ended saga ended; undefined while it runs. */
export function outcomeOf(state: SagaState): SagaOutcome | undefined {
  const base = { sagaId: state.id, saga: state.saga };
  switch (state.status) {
    case 'completed':
      return { status: 'completed', ...base, result: state.steps[state.steps.length - 1]!.forward.reply!, results: stepResults(state) };
    case 'compensated':
      return { status: 'compensated', ...base, failure: state.failure! };
    case 'stuck':
      return { status: 'stuck', ...base, reason: state.stuck!, ...(state.failure ? { failure: state.failure } : {}) };
    default:
      return undefined;
  }
}

/**
 * The HTTP answer a saga's outcome stands for, to compare with what the REST chain it replaces answered
 * for the same input: a completed saga answers with its last step's reply; a compensated one with the
 * refusing step's reply, or 504 (no reply in time) / 502 (the participant failed) with the error; a stuck
 * one with 500 and CUTOVER_SAGA_STUCK.
 */
export function outcomeResponse(outcome: SagaOutcome): StepReply {
  if (outcome.status === 'completed') return outcome.result;
  if (outcome.status === 'stuck') return { status: 500, body: { error: { code: ErrorCodes.SAGA_STUCK, message: outcome.reason.message, step: outcome.reason.step } } };
  const f = outcome.failure;
  if (f.status !== undefined) return { status: f.status, ...(f.body !== undefined ? { body: f.body } : {}) };
  return { status: f.code === ErrorCodes.REPLY_TIMEOUT ? 504 : 502, body: { error: { code: f.code, message: f.message, step: f.step } } };
}
