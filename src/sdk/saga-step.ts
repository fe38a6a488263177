import type { Subscription } from '../bus/types.js';
import type { SagaCommandData } from '../saga/types.js';
import type { AgentBus, AgentSubscribeOptions, HandlerContext } from './agent-bus.js';

/** What a saga step's handler answers: a status (default 200) and a body. A status the step's `success` does not list is a refusal. */
export interface StepAnswer {
  status?: number;
  body?: unknown;
}

/** A saga command as a step's handler sees it. */
export interface SagaStepContext<I = unknown> {
  command: SagaCommandData<I>;
  /** The handler context of the SDK (event, attempt, logger...). */
  ctx: HandlerContext<SagaCommandData<I>>;
}

export type SagaStepHandler<I = unknown> = (step: SagaStepContext<I>) => Promise<StepAnswer> | StepAnswer;

export interface SagaStepOptions<I = unknown> {
  /** The step's command topic (`sagas[].steps[].command`). */
  command: string;
  run: SagaStepHandler<I>;
  /** The step's compensation topic (`sagas[].steps[].compensation`), with the handler that undoes `run`. */
  compensation?: { topic: string; run: SagaStepHandler<I> };
  /**
   * Subscription options of both (concurrency, attempts). Each topic has its own consumer group,
   * `agent.<agent>.<topic>` unless `group` is given: members of one group must subscribe the same topics.
   */
  subscribe?: Omit<AgentSubscribeOptions, 'group'> & { group?: (topic: string) => string };
}

/**
 * Serves one saga step (and its compensation) with an AgentBus. A command is handled once per event id
 * however often it is delivered or re-sent: the orchestrator sends every attempt of a step with the same id,
 * and the AgentBus dedupes by event id in its group (give it a shared dedupe store when several instances
 * serve the step). A handler that throws is retried by the bus, then answered with an error reply (a failed
 * send to the saga: retried by its `retry:` policy, then compensated).
 *
 * A compensation may arrive for a step whose run never happened or did not finish (its reply was late):
 * undo what there is, and answer success when there is nothing to undo.
 */
export async function serveSagaStep<I = unknown>(agents: AgentBus, options: SagaStepOptions<I>): Promise<Subscription[]> {
  const serve = (run: SagaStepHandler<I>) => async (ctx: HandlerContext<SagaCommandData<I>>) => {
    const answer = await run({ command: ctx.data, ctx });
    ctx.reply(answer.body ?? {}, { status: answer.status ?? 200 });
  };
  const { group, ...rest } = options.subscribe ?? {};
  const sub = (topic: string, run: SagaStepHandler<I>) => agents.subscribe<SagaCommandData<I>>(topic, serve(run), { ...rest, group: group ? group(topic) : `agent.${agents.agent}.${topic}` });
  const subs = [await sub(options.command, options.run)];
  if (options.compensation) subs.push(await sub(options.compensation.topic, options.compensation.run));
  return subs;
}
