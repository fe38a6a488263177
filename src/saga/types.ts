/** CloudEvent types on a saga topic, written by the orchestrator (participants' replies are `cutover.observation.bus`). */
export const SagaEventTypes = {
  started: 'cutover.saga.started',
  stepSent: 'cutover.saga.step.sent',
  stepSucceeded: 'cutover.saga.step.succeeded',
  stepFailed: 'cutover.saga.step.failed',
  compensating: 'cutover.saga.compensating',
  compensated: 'cutover.saga.compensated',
  completed: 'cutover.saga.completed',
  stuck: 'cutover.saga.stuck',
} as const;

export type SagaEventType = (typeof SagaEventTypes)[keyof typeof SagaEventTypes];

/** `forward` runs a step, `compensate` undoes it. */
export type SagaPhase = 'forward' | 'compensate';

export type SagaStatus = 'running' | 'compensating' | 'completed' | 'compensated' | 'stuck';

/** Why a step or a saga failed. */
export interface SagaFailure {
  step: string;
  phase: SagaPhase;
  /** `CUTOVER_REPLY_TIMEOUT`, `CUTOVER_SAGA_REFUSED` (a reply whose status is not a success), or the participant's error code. */
  code: string;
  message: string;
  /** Status of the reply, when there was one. */
  status?: number;
  /** Body of the reply, when there was one. */
  body?: unknown;
}

/** A step's reply as the saga keeps it. */
export interface StepReply {
  status: number;
  body?: unknown;
}

/** `data` of every orchestrator event. */
export interface SagaEventBase {
  sagaId: string;
  saga: string;
}

export interface StartedData extends SagaEventBase {
  input: unknown;
  /** `cutovermode` stamped on every command of the saga (`shadow`: participants compute, no side effects). */
  mode?: string;
}

export interface StepSentData extends SagaEventBase {
  step: string;
  index: number;
  phase: SagaPhase;
  attempt: number;
  /** When the orchestrator stops waiting for this send's reply, epoch ms. */
  deadline: number;
}

export interface StepSucceededData extends SagaEventBase {
  step: string;
  index: number;
  phase: SagaPhase;
  attempt: number;
  reply: StepReply;
  latencyMs: number;
}

export interface StepFailedData extends SagaEventBase {
  step: string;
  index: number;
  phase: SagaPhase;
  attempt: number;
  failure: SagaFailure;
  /** A refusal is the participant's answer, not a fault: it is not retried. */
  refused: boolean;
}

export interface ReasonData extends SagaEventBase {
  reason: SagaFailure;
}

/** `data` of a step's command, as a participant gets it. */
export interface SagaCommandData<I = unknown> {
  sagaId: string;
  saga: string;
  step: string;
  phase: SagaPhase;
  /** The saga's input, as given to `begin()`. */
  input: I;
  /** Reply bodies of the steps that succeeded so far, by step name (for a compensation: including its own step). */
  results: Record<string, unknown>;
}

/**
 * How a saga ended: a value a caller can compare with what the REST chain it replaces answered. A completed
 * saga answers with its last step's reply; a compensated one with the failing step's reply (or its error).
 */
export type SagaOutcome =
  | { status: 'completed'; sagaId: string; saga: string; result: StepReply; results: Record<string, unknown> }
  | { status: 'compensated'; sagaId: string; saga: string; failure: SagaFailure }
  | { status: 'stuck'; sagaId: string; saga: string; reason: SagaFailure; failure?: SagaFailure };
