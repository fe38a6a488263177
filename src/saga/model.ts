import { ConfigError, ErrorCodes } from '../errors.js';
import { formatIssues } from '../config/load.js';
import { sagaSchema, type SagaConfig, type SagaConfigInput, type SagaStepConfig } from '../config/saga.js';

/** A saga ready to run: its config with the defaults resolved. Declared under `sagas:` or with {@link defineSaga}. */
export interface SagaDefinition extends SagaConfig {
  /** The saga topic: its events, keyed by saga id, and its participants' replies. */
  topic: string;
  /** The orchestrators' consumer group. */
  group: string;
  /** Index of the point of no return; -1 when every step can be compensated. */
  pointOfNoReturnIndex: number;
}

/** Default saga topic of a saga named `name`. */
export function sagaTopic(name: string): string {
  return `cutover.saga.${name}`;
}

/** Resolves a parsed `sagas[]` entry. */
export function sagaDefinition(config: SagaConfig): SagaDefinition {
  return {
    ...config,
    topic: config.topic ?? sagaTopic(config.name),
    group: config.group ?? sagaTopic(config.name),
    pointOfNoReturnIndex: config.pointOfNoReturn === undefined ? -1 : config.steps.findIndex((s) => s.name === config.pointOfNoReturn),
  };
}

/**
 * A saga declared in code, validated like the config file's `sagas:` entries. Throws CUTOVER_CONFIG_INVALID
 * whose `issues` name each failing field (`steps[1].command: ...`).
 */
export function defineSaga(input: SagaConfigInput): SagaDefinition {
  const result = sagaSchema.safeParse(input);
  if (!result.success) {
    const issues = formatIssues(result.error).map((i) => `saga ${typeof input?.name === 'string' ? input.name : '?'}: ${i}`);
    throw new ConfigError(ErrorCodes.CONFIG_INVALID, `invalid saga:\n  ${issues.join('\n  ')}`, issues);
  }
  return sagaDefinition(result.data);
}

/** Whether a reply status counts as the step's success. */
export function isSuccess(step: SagaStepConfig, status: number): boolean {
  return step.success.status.some((s) => (typeof s === 'number' ? s === status : Math.floor(status / 100) === Number(s[0])));
}

/** Wait before send `attempt + 1` after send `attempt` failed: the step's backoff, doubled per attempt, capped at a minute. */
export function retryDelay(step: SagaStepConfig, attempt: number): number {
  return Math.min(step.retry.backoff * 2 ** Math.max(0, attempt - 1), 60_000);
}
