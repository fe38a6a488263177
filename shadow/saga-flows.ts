import { Counter, type Registry } from 'prom-client';
import { nonRetriable } from '../src/bus/attempts.js';
import type { Bus, Delivery, Subscription } from '../src/bus/types.js';
import { publishBusReply } from '../src/handling/at-least-once.js';
import { checkReplyTo, shadowReplyTopics } from '../src/http/replay.js';
import { ErrorCodes, isCutoverError } from '../src/errors.js';
import { silentLogger, type Logger } from '../src/logger.js';
import { SagaOrchestrator, beginSaga } from '../src/saga/orchestrator.js';
import type { SagaDefinition } from '../src/saga/model.js';
import { outcomeResponse } from '../src/saga/state.js';
import { sagaSummary } from '../src/saga/summary.js';

/**
 * `cutover_saga_flow_calls_total{flow,outcome}`: call events of saga flows by what the shadow side did —
 * `answered` (the saga ended and its outcome was published to the call's `replyto`) or `unanswered` (it had
 * not ended within the wait: the pair goes `missing_bus`, a waiting caller times out). One per registry.
 */
export function sagaFlowMetrics(registry: Registry): Counter<'flow' | 'outcome'> {
  const name = 'cutover_saga_flow_calls_total';
  return (
    (registry.getSingleMetric(name) as Counter<'flow' | 'outcome'> | undefined) ??
    new Counter({ name, help: 'Call events of saga flows: answered with the saga outcome, or unanswered (not ended within the wait)', labelNames: ['flow', 'outcome'], registers: [registry] })
  );
}

/** The consumer group that begins the sagas of a saga flow. */
export function sagaFlowGroup(flow: string): string {
  return `cutover.saga-flow.${flow}`;
}

export interface SagaFlow {
  name: string;
  topic: string;
  saga: SagaDefinition;
}

export interface SagaFlowsOptions {
  /** A started bus; never closed here. */
  bus: Bus;
  flows: readonly SagaFlow[];
  /**
   * How long a call waits for its saga to end: the comparator's window. A saga that has not ended by then
   * gets no reply, so its pair is `missing_bus` (a caller in bus mode gets its reply timeout).
   */
  waitMs: number;
  /** The sidecars' `observationsTopic`: shadow-mode calls ask their reply on `<observationsTopic>.<flow>` (or on it, from older sidecars). */
  observationsTopic?: string;
  /** Call events begun in parallel per flow (one key's calls in order). Default 32. */
  concurrency?: number;
  from?: 'start' | 'end';
  logger?: Logger;
  registry?: Registry;
}

export interface SagaFlowStats {
  begun: number;
  answered: number;
  /** Sagas that had not ended within `waitMs`: no reply was published. */
  unanswered: number;
  skipped: number;
}

/**
 * The bus side of saga flows. For each call event of a flow that names a saga it begins that saga, with
 * the call event's id as saga id (a redelivered call begins nothing new: begin is idempotent by id) and
 * the call's `cutovermode` (`shadow`: participants compute without side effects), waits for its end, and
 * answers the call's `replyto` with `outcomeResponse(outcome)` and the saga's per-step summary — the same
 * reply a replay consumer or an SDK agent publishes, so the comparator pairs it with the direct result of
 * the REST chain, and a sidecar in bus mode answers its caller with it.
 */
export class SagaFlows {
  /** An orchestrator replica of the flows' sagas (`cutover saga run` replicas share the work). */
  readonly orchestrator: SagaOrchestrator;
  private readonly subscriptions: Subscription[] = [];
  private readonly log: Logger;
  private readonly counters: SagaFlowStats = { begun: 0, answered: 0, unanswered: 0, skipped: 0 };
  private readonly replyTo: (topic: string) => boolean;
  private readonly calls: Counter<'flow' | 'outcome'> | undefined;
  private closed = false;

  constructor(private readonly options: SagaFlowsOptions) {
    this.log = (options.logger ?? silentLogger()).child({ component: 'saga-flows' });
    this.replyTo = shadowReplyTopics(options.observationsTopic);
    this.calls = options.registry ? sagaFlowMetrics(options.registry) : undefined;
    const sagas = [...new Map(options.flows.map((f) => [f.saga.name, f.saga])).values()];
    this.orchestrator = new SagaOrchestrator({ bus: options.bus, sagas, logger: this.log, ...(options.registry ? { registry: options.registry } : {}) });
  }

  async start(): Promise<void> {
    await this.orchestrator.start();
    for (const flow of this.options.flows) {
      this.subscriptions.push(
        await this.options.bus.subscribe({
          group: sagaFlowGroup(flow.name),
          topics: [flow.topic],
          concurrency: this.options.concurrency ?? 32,
          from: this.options.from ?? 'start',
          handler: (d) => this.handle(flow, d),
        }),
      );
    }
    this.log.info({ flows: this.options.flows.map((f) => `${f.name} → saga ${f.saga.name}`) }, 'saga flows consuming');
  }

  stats(): SagaFlowStats {
    return { ...this.counters };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.subscriptions) await s.close();
    await this.orchestrator.close();
  }

  private async handle(flow: SagaFlow, d: Delivery): Promise<void> {
    const call = d.event;
    if (call.cutoverflow !== undefined && call.cutoverflow !== flow.name) {
      this.counters.skipped += 1;
      return;
    }
    try {
      checkReplyTo(call, { replyTo: this.replyTo });
    } catch (err) {
      this.log.warn({ eventId: call.id, source: call.source, err }, 'call event refused: replyto is not a cutover reply topic; dead-lettered');
      throw nonRetriable(err as object);
    }
    const consumedAt = Date.now();
    const id = await beginSaga(this.options.bus, flow.saga, call.data, { id: call.id, ...(call.cutovermode !== undefined ? { mode: call.cutovermode } : {}) });
    this.counters.begun += 1;
    let outcome;
    try {
      outcome = await this.orchestrator.outcome(flow.saga.name, id, this.options.waitMs);
    } catch (err) {
      if (!isCutoverError(err) || err.code !== ErrorCodes.REPLY_TIMEOUT) throw err;
      // No reply: the comparator's window runs out on the pair (missing_bus), a waiting caller times out.
      this.counters.unanswered += 1;
      this.calls?.inc({ flow: flow.name, outcome: 'unanswered' });
      this.log.warn({ flow: flow.name, saga: flow.saga.name, sagaId: id, waitMs: this.options.waitMs }, 'saga did not end in time; its call gets no reply');
      return;
    }
    const state = this.orchestrator.get(flow.saga.name, id);
    const saga = state ? sagaSummary(state) : undefined;
    const response = outcomeResponse(outcome);
    await publishBusReply(d, { bus: this.options.bus, source: '/cutover/saga', consumedAt }, { ...response, latencyMs: Date.now() - consumedAt, ...(saga ? { saga } : {}) });
    this.counters.answered += 1;
    this.calls?.inc({ flow: flow.name, outcome: 'answered' });
  }
}
