import { randomUUID } from 'node:crypto';
import type { Registry } from 'prom-client';
import { sleep } from '../async.js';
import { DLQ_SUFFIX } from '../bus/topics.js';
import { DlqHeaders, type Bus, type BusMessage, type Delivery, type ReadStream, type Subscription } from '../bus/types.js';
import { newTraceparent } from '../events/cloudevent.js';
import type { CloudEvent } from '../events/types.js';
import { BusError, ErrorCodes, ValidationError } from '../errors.js';
import { silentLogger, type Logger } from '../logger.js';
import { createRegistry } from '../metrics.js';
import { sagaMetrics, type SagaMetrics } from './metrics.js';
import type { SagaDefinition } from './model.js';
import { SagaProjection } from './projection.js';
import { commandId, isTerminal, judgeReply, outcomeOf, plan, sagaIdOf, stepResults, type SagaAction, type SagaState } from './state.js';
import { SagaEventTypes, type SagaCommandData, type SagaEventType, type SagaOutcome, type SagaPhase } from './types.js';

/** `source` of the orchestrator's events and commands. */
export const SAGA_SOURCE = '/cutover/saga';

/** How long a delivery waits for this replica's projection to have read the same event. */
const APPLY_WAIT_MS = 10_000;
/** How long the owner leaves an action that is due now to the delivery of the event that made it due. */
const OWNER_FALLBACK_MS = 1_000;
/** Published events not yet read back are skipped for this long (then a re-do is allowed). */
const INFLIGHT_MS = 30_000;

export interface SagaOrchestratorOptions {
  /** A started bus; the orchestrator never closes it. */
  bus: Bus;
  sagas: readonly SagaDefinition[];
  logger?: Logger;
  /** Where `cutover_sagas`, `cutover_saga_ended_total` and `cutover_saga_step_duration_seconds` go. */
  registry?: Registry;
  /** Saga events handled in parallel (one saga's events always in order). Default 32. */
  concurrency?: number;
  /** How often deadlines (reply timeouts, retry backoffs, takeovers) are checked. Default 100 ms. */
  tickMs?: number;
  now?: () => number;
}

export interface BeginOptions {
  /** The saga id. Default a random UUID. */
  id?: string;
  /** `cutovermode` of every command of the saga (`shadow`). */
  mode?: string;
}

/**
 * Starts a saga without running an orchestrator (any replica of its group drives it): publishes its
 * `started` event and resolves with its id. Idempotent by `id`.
 */
export async function beginSaga(bus: Bus, def: SagaDefinition, input: unknown, options: BeginOptions & { now?: () => number } = {}): Promise<string> {
  const id = options.id ?? randomUUID();
  const data = { input, ...(options.mode !== undefined ? { mode: options.mode } : {}) };
  await bus.publish(def.topic, [sagaEvent(def, SagaEventTypes.started, `${id}.started`, id, data, (options.now ?? Date.now)())]);
  return id;
}

interface SagaRun {
  def: SagaDefinition;
  projection: SagaProjection;
  reader?: ReadStream;
  following?: Promise<void>;
  subscription?: Subscription;
}

/**
 * Drives sagas over any bus. Each step's command goes to its topic with the saga id as correlation id and
 * the saga topic as `replyto`; the participant's reply comes back on the saga topic, keyed by saga id, so
 * the replica of the orchestrators' consumer group that owns the saga's partition handles it.
 *
 * State is event-sourced: every replica folds the saga topics from the start ({@link SagaProjection}) and
 * plans the next action from the state alone ({@link plan}); actions publish events and commands with ids
 * derived from the saga id, step, phase and attempt, so doing one twice (a redelivery, a replica taking over
 * a saga whose owner died) changes nothing: the projection applies an event id once and participants
 * dedupe commands by event id. A replica acts on the sagas whose events it handles; on any other saga only
 * when it is overdue by the saga's `takeoverAfter` (its owner died without anything left to redeliver).
 */
export class SagaOrchestrator {
  private readonly runs = new Map<string, SagaRun>();
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly metrics: SagaMetrics;
  /** Sagas this replica handled an event of: it acts on their deadlines without waiting for a takeover. */
  private readonly owned = new Set<string>();
  /** Sagas an action is being taken for right now. */
  private readonly acting = new Set<string>();
  private readonly inflight = new Map<string, number>();
  private ticker: NodeJS.Timeout | undefined;
  private readonly stop = new AbortController();
  private started = false;
  private closed = false;

  constructor(private readonly options: SagaOrchestratorOptions) {
    this.log = (options.logger ?? silentLogger()).child({ component: 'saga' });
    this.now = options.now ?? Date.now;
    this.metrics = sagaMetrics(options.registry ?? createRegistry());
    for (const def of options.sagas) {
      if (this.runs.has(def.name)) throw new ValidationError(ErrorCodes.CONFIG_INVALID, `sagas: duplicate saga name ${def.name}`);
      this.runs.set(def.name, { def, projection: new SagaProjection(def, this.now) });
    }
  }

  /**
   * Reads every saga topic to its end, keeps following it, then joins the consumer groups: sagas in flight
   * (started by a replica that died) carry on from their last event.
   */
  async start(): Promise<void> {
    if (this.closed) throw new BusError(ErrorCodes.BUS_CLOSED, 'the saga orchestrator is closed');
    if (this.started) return;
    this.started = true;
    for (const run of this.runs.values()) {
      this.metrics.projections.add(run.projection);
      const stream = this.options.bus.read(run.def.topic, { from: 'start', follow: false });
      for await (const d of stream) run.projection.apply(d.event);
      await stream.close();
      run.following = this.follow(run);
      run.subscription = await this.options.bus.subscribe({
        group: run.def.group,
        topics: [run.def.topic],
        concurrency: this.options.concurrency ?? 32,
        maxAttempts: 100,
        backoff: { initialMs: 100, maxMs: 2_000 },
        handler: (d) => this.onEvent(run, d),
      });
    }
    this.ticker = setInterval(() => this.tick(), this.options.tickMs ?? 100);
    this.ticker.unref();
    this.log.info({ sagas: [...this.runs.keys()] }, 'saga orchestrator started');
  }

  /**
   * Starts a saga; resolves with its id once the bus holds its `started` event. Idempotent by `id`: a second
   * begin with the same id starts nothing. With `mode` (`shadow`), every command of the saga carries it as
   * `cutovermode`, so SDK participants see `ctx.shadow` and compute without side effects.
   */
  async begin(saga: string, input: unknown, options: BeginOptions = {}): Promise<string> {
    return beginSaga(this.options.bus, this.run(saga).def, input, { ...options, now: this.now });
  }

  /** The saga as this replica's projection has it. */
  get(saga: string, id: string): SagaState | undefined {
    return this.run(saga).projection.sagas.get(id);
  }

  /** Every saga of `saga` this replica knows. */
  list(saga: string): SagaState[] {
    return [...this.run(saga).projection.sagas.values()];
  }

  /** Resolves with how the saga ended, or rejects with CUTOVER_REPLY_TIMEOUT after `timeoutMs`. */
  outcome(saga: string, id: string, timeoutMs = 60_000): Promise<SagaOutcome> {
    const { projection } = this.run(saga);
    return new Promise((resolve, reject) => {
      const check = (state: SagaState | undefined): boolean => {
        const outcome = state && state.id === id ? outcomeOf(state) : undefined;
        if (!outcome) return false;
        clearTimeout(timer);
        off();
        resolve(outcome);
        return true;
      };
      const timer = setTimeout(() => {
        off();
        reject(new BusError(ErrorCodes.REPLY_TIMEOUT, `saga ${saga} ${id} did not end within ${timeoutMs} ms`, { retriable: true, details: { saga, id } }));
      }, timeoutMs);
      const off = projection.onChange((state) => void check(state));
      check(projection.sagas.get(id));
    });
  }

  /** Leaves the groups and stops reading; sagas in flight carry on at another replica. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stop.abort();
    if (this.ticker) clearInterval(this.ticker);
    for (const run of this.runs.values()) {
      await run.subscription?.close();
      await run.reader?.close();
      await run.following;
      this.metrics.projections.delete(run.projection);
    }
  }

  private run(saga: string): SagaRun {
    const run = this.runs.get(saga);
    if (!run) throw new ValidationError(ErrorCodes.SAGA_UNKNOWN, `no saga named ${JSON.stringify(saga)} (known: ${[...this.runs.keys()].join(', ') || 'none'})`);
    return run;
  }

  /** Keeps the projection up to date; a read that fails is opened again (already applied events are skipped). */
  private async follow(run: SagaRun): Promise<void> {
    while (!this.closed) {
      try {
        run.reader = this.options.bus.read(run.def.topic, { from: 'start', follow: true });
        for await (const d of run.reader) run.projection.apply(d.event);
      } catch (err) {
        if (this.closed) return;
        this.log.warn({ err, saga: run.def.name }, 'reading the saga topic failed; reading it again');
        await sleep(1_000, this.stop.signal);
      }
    }
  }

  private async onEvent(run: SagaRun, d: Delivery): Promise<void> {
    const id = sagaIdOf(d.event);
    if (id === undefined) return;
    if (!(await run.projection.waitFor(d.event.id, APPLY_WAIT_MS))) {
      throw new BusError(ErrorCodes.BUS_TIMEOUT, `saga event ${d.event.id} not read back from ${run.def.topic} yet`, { retriable: true });
    }
    this.owned.add(ownKey(run, id));
    await this.drive(run, id, true);
  }

  private tick(): void {
    const now = this.now();
    for (const [id, at] of this.inflight) {
      if (now - at > INFLIGHT_MS) this.inflight.delete(id);
    }
    for (const run of this.runs.values()) {
      for (const state of run.projection.active()) {
        const next = plan(state, run.def);
        if (!next) continue;
        // The owner takes an immediate action when the event that made it due is delivered; the tick only
        // keeps its deadlines, and catches an action that delivery did not take within a second.
        const due = this.owned.has(ownKey(run, state.id)) ? next.at || state.updatedAt + OWNER_FALLBACK_MS : Math.max(next.at, state.updatedAt) + run.def.takeoverAfter;
        if (now < due) continue;
        this.drive(run, state.id, false).catch((err) => this.log.warn({ err, saga: run.def.name, sagaId: state.id }, 'saga action failed; retried at the next tick'));
      }
    }
  }

  /** Takes the saga's next action if it is due (always, for the owner's delivery; the tick checked `due`). */
  private async drive(run: SagaRun, id: string, owner: boolean): Promise<void> {
    const key = ownKey(run, id);
    if (this.acting.has(key)) return;
    const state = run.projection.sagas.get(id);
    if (!state || isTerminal(state.status)) {
      this.owned.delete(key);
      return;
    }
    const next = plan(state, run.def);
    if (!next || (owner && next.at > this.now())) return;
    this.acting.add(key);
    try {
      await this.act(run, state, next.action);
    } finally {
      this.acting.delete(key);
    }
  }

  private async act(run: SagaRun, state: SagaState, action: SagaAction): Promise<void> {
    const { def } = run;
    const id = state.id;
    const now = this.now();
    switch (action.kind) {
      case 'send': {
        const step = def.steps[action.index]!;
        const base = `${commandId(id, action.index, action.phase)}.${action.attempt}`;
        const sent = { sagaId: id, saga: def.name, step: step.name, index: action.index, phase: action.phase, attempt: action.attempt, deadline: now + step.timeout };
        if (!(await this.emit(run, SagaEventTypes.stepSent, `${base}.sent`, id, sent, now))) return;
        await this.options.bus.publish(commandTopic(def, action.index, action.phase), [this.command(state, action.index, action.phase, now)]);
        return;
      }
      case 'resolve': {
        const step = def.steps[action.index]!;
        const phase = state.steps[action.index]![action.phase];
        const latencyMs = Math.max(0, (action.reply.repliedAt ?? now) - (phase.sentAt ?? now));
        const judged = judgeReply(def, action.index, action.phase, action.reply);
        const base = { sagaId: id, saga: def.name, step: step.name, index: action.index, phase: action.phase, attempt: action.attempt };
        const ok = 'reply' in judged;
        const type = ok ? SagaEventTypes.stepSucceeded : SagaEventTypes.stepFailed;
        const data = ok ? { ...base, reply: judged.reply, latencyMs } : { ...base, failure: judged.failure, refused: judged.refused };
        if (await this.emit(run, type, `${commandId(id, action.index, action.phase)}.${action.attempt}.${ok ? 'succeeded' : 'failed'}`, id, data, now)) {
          this.metrics.stepSeconds.observe({ saga: def.name, step: step.name, phase: action.phase }, latencyMs / 1000);
        }
        return;
      }
      case 'timeout': {
        const step = def.steps[action.index]!;
        const failure = { step: step.name, phase: action.phase, code: ErrorCodes.REPLY_TIMEOUT, message: `no reply within ${step.timeout} ms (send ${action.attempt})` };
        const data = { sagaId: id, saga: def.name, step: step.name, index: action.index, phase: action.phase, attempt: action.attempt, failure, refused: false };
        await this.emit(run, SagaEventTypes.stepFailed, `${commandId(id, action.index, action.phase)}.${action.attempt}.failed`, id, data, now);
        return;
      }
      case 'compensate':
        await this.emit(run, SagaEventTypes.compensating, `${id}.compensating`, id, { sagaId: id, saga: def.name, reason: action.reason }, now);
        return;
      case 'complete':
        if (await this.emit(run, SagaEventTypes.completed, `${id}.completed`, id, { sagaId: id, saga: def.name, results: stepResults(state) }, now)) this.metrics.ended.inc({ saga: def.name, outcome: 'completed' });
        return;
      case 'compensated':
        if (await this.emit(run, SagaEventTypes.compensated, `${id}.compensated`, id, { sagaId: id, saga: def.name, reason: state.failure }, now)) this.metrics.ended.inc({ saga: def.name, outcome: 'compensated' });
        return;
      case 'stuck': {
        if (action.dlq) await this.deadLetter(run, state, action.dlq.index, action.reason.code, action.reason.message, now);
        if (await this.emit(run, SagaEventTypes.stuck, `${id}.stuck`, id, { sagaId: id, saga: def.name, reason: action.reason }, now)) {
          this.metrics.ended.inc({ saga: def.name, outcome: 'stuck' });
          this.log.error({ saga: def.name, sagaId: id, reason: action.reason }, 'saga stuck: an operator must act (docs/sagas.md, runbook)');
        }
        return;
      }
    }
  }

  /** Publishes an orchestrator event unless it was published already; false when it was. */
  private async emit(run: SagaRun, type: SagaEventType, eventId: string, sagaId: string, data: object, now: number): Promise<boolean> {
    if (run.projection.has(eventId) || this.inflight.has(eventId)) return false;
    this.inflight.set(eventId, now);
    try {
      await this.options.bus.publish(run.def.topic, [sagaEvent(run.def, type, eventId, sagaId, data, now)]);
    } catch (err) {
      this.inflight.delete(eventId);
      throw err;
    }
    return true;
  }

  private command(state: SagaState, index: number, phase: SagaPhase, now: number): BusMessage {
    const def = this.runs.get(state.saga)!.def;
    const step = def.steps[index]!;
    const data: SagaCommandData = { sagaId: state.id, saga: def.name, step: step.name, phase, input: state.input, results: stepResults(state) };
    const topic = commandTopic(def, index, phase);
    const event: CloudEvent<SagaCommandData> = {
      specversion: '1.0',
      id: commandId(state.id, index, phase),
      source: SAGA_SOURCE,
      type: topic,
      time: new Date(now).toISOString(),
      datacontenttype: 'application/json',
      schemaversion: '1',
      correlationid: state.id,
      replyto: def.topic,
      partitionkey: state.id,
      traceparent: newTraceparent(),
      data,
    };
    if (state.mode !== undefined) event.cutovermode = state.mode;
    return { key: state.id, event };
  }

  /** A compensation that kept failing: its command goes to `<topic>.dlq` with the reason, as the bus's own DLQ records it. */
  private async deadLetter(run: SagaRun, state: SagaState, index: number, code: string, message: string, now: number): Promise<void> {
    const topic = commandTopic(run.def, index, 'compensate');
    const message_ = this.command(state, index, 'compensate', now);
    const headers = {
      [DlqHeaders.originalTopic]: topic,
      [DlqHeaders.errorCode]: code,
      [DlqHeaders.errorMessage]: message.slice(0, 500),
      [DlqHeaders.attempts]: String(state.steps[index]!.compensate.attempt),
      [DlqHeaders.failedAt]: new Date(now).toISOString(),
      [DlqHeaders.group]: run.def.group,
    };
    await this.options.bus.publish(`${topic}${DLQ_SUFFIX}`, [{ ...message_, headers }]);
  }
}

function ownKey(run: SagaRun, id: string): string {
  return `${run.def.name}\u0000${id}`;
}

function commandTopic(def: SagaDefinition, index: number, phase: SagaPhase): string {
  const step = def.steps[index]!;
  return phase === 'forward' ? step.command : step.compensation!;
}

function sagaEvent(def: SagaDefinition, type: SagaEventType, id: string, sagaId: string, data: object, now: number): BusMessage {
  const event: CloudEvent = {
    specversion: '1.0',
    id,
    source: SAGA_SOURCE,
    type,
    time: new Date(now).toISOString(),
    datacontenttype: 'application/json',
    correlationid: sagaId,
    partitionkey: sagaId,
    subject: def.name,
    data: { ...data, sagaId, saga: def.name },
  };
  return { key: sagaId, event };
}
