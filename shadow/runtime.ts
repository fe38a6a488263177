import type { Registry } from 'prom-client';
import type { BusConfig } from '../src/config/bus.js';
import type { Bus } from '../src/bus/types.js';
import { silentLogger, type Logger } from '../src/logger.js';
import { createDedupeStore, type DedupeStore } from '../src/handling/dedupe/index.js';
import { shadowReplyTopics } from '../src/http/replay.js';
import { Comparator } from './comparator.js';
import { ReplayConsumers, type ReplayConsumer } from './replay-consumer.js';
import { flowCompareSchema, type FlowCompareOptions, type FlowNoiseOptions, type FlowShadowOptions, type ShadowConfig } from '../src/config/shadow.js';
import { RPC_GENERATED_PATHS } from './noise.js';
import type { FlowRules } from './pairing.js';
import type { Keyring } from '../src/crypto/keyring.js';
import type { SagaConfig } from '../src/config/saga.js';
import { sagaDefinition } from '../src/saga/model.js';
import { ErrorCodes, ValidationError } from '../src/errors.js';
import { SagaFlows, type SagaFlow } from './saga-flows.js';

/** The parts of a flow the shadow side reads (a validated flow from the config has them all). */
export interface ShadowFlowConfig {
  name: string;
  topic: string;
  match: { method: string; path: string; rpc?: string | string[] | undefined };
  shadow?: FlowShadowOptions | undefined;
  /** A saga (in {@link ShadowRuntimeOptions.sagas}) begun for each call event and answering it. */
  saga?: string | undefined;
  compare?: FlowCompareOptions | undefined;
  noise?: FlowNoiseOptions | undefined;
  versions?: { header?: string | undefined; direct?: string | undefined; shadow?: string | undefined } | undefined;
}

export interface ShadowRuntimeOptions {
  /** A started bus; the runtime does not close it. */
  bus: Bus;
  busConfig: BusConfig;
  flows: readonly ShadowFlowConfig[];
  shadow: ShadowConfig;
  /** The config's `sagas:`: flows with `saga` name one of them. */
  sagas?: readonly SagaConfig[];
  dataDir?: string;
  logger?: Logger;
  registry?: Registry;
  /** Run replay consumers for flows with a `shadow.target`, and the sagas of flows with a `saga`. Default true. */
  delivery?: boolean;
  /** Run the comparator. Default `shadow.comparator`. */
  comparator?: boolean;
  /** Overrides the store chosen from the bus config (tests). Not closed by the runtime when given. */
  dedupe?: DedupeStore;
  /**
   * The sidecars' `observationsTopic`: the comparator reads flow F on `<observationsTopic>.F` (and the topic
   * itself with `shadow.sharedObservations`). Default `cutover.observations`.
   */
  observationsTopic?: string;
  /** Default `cutover.parity`. */
  parityTopic?: string;
  /** Prefix of the comparator's groups: it judges flow X in group `<comparatorGroup>.X`. Default `cutover.comparator`. */
  comparatorGroup?: string;
  /**
   * Which pairs the comparator judges: `flows` (default) only those of `flows`, one group per flow, so
   * runtimes that know different flows (several sidecars on one embedded bus) never judge each other's
   * pairs with default rules; `all` every observation in the one group `comparatorGroup`.
   */
  comparatorScope?: 'flows' | 'all';
  /** Where new consumer groups start. Default `start`. */
  from?: 'start' | 'end';
  /**
   * The config's `encryption:` keys: replay consumers decrypt request fields for the target and encrypt
   * the configured response fields of their replies; the comparator compares decrypted values. Without
   * it, ciphertext passes through and is compared as ciphertext.
   */
  keyring?: Keyring;
}

/** Compare and noise rules per flow, as the comparator takes them. */
export function flowRulesOf(flows: readonly ShadowFlowConfig[]): Record<string, FlowRules> {
  const out: Record<string, FlowRules> = {};
  for (const f of flows) {
    let compare = f.compare;
    if (f.match.rpc !== undefined && (compare?.rpcIds ?? true)) compare = flowCompareSchema.parse({ ...compare, ignore: [...RPC_GENERATED_PATHS, ...(compare?.ignore ?? [])] });
    out[f.name] = { ...(compare ? { compare } : {}), ...(f.noise ? { noise: f.noise } : {}) };
  }
  return out;
}

/**
 * Replay consumers (one per flow with a shadow target), the sagas of saga flows, and the comparator, started and stopped
 * together: what `cutover shadow` runs, and what the sidecar runs in-process with `shadow.inProcess`.
 */
export class ShadowRuntime {
  comparator: Comparator | undefined;
  /** The sagas of saga flows, once started (none without such flows). */
  sagaFlows: SagaFlows | undefined;
  private readonly replay: ReplayConsumers;
  private readonly log: Logger;
  private started = false;
  private closed = false;

  constructor(private readonly options: ShadowRuntimeOptions) {
    this.log = (options.logger ?? silentLogger()).child({ component: 'shadow' });
    this.replay = new ReplayConsumers({
      ...(options.dedupe ? { dedupe: options.dedupe } : {}),
      openDedupe: () =>
        createDedupeStore(options.busConfig, {
          ...(options.shadow.dedupe ? { choice: options.shadow.dedupe } : {}),
          ...(options.dataDir ? { dataDir: options.dataDir } : {}),
        }),
      logger: this.log,
    });
  }

  /** One replay consumer per flow with a shadow target, once started. */
  get consumers(): readonly ReplayConsumer[] {
    return this.replay.consumers;
  }

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    const { options } = this;
    try {
      const targets = options.delivery === false ? [] : options.flows.filter((f) => f.shadow?.target);
      if (targets.length > 0) {
        await this.replay.start(
          targets.map((f) => ({
            bus: options.bus,
            flow: { name: f.name, topic: f.topic, match: f.match, shadow: { ...f.shadow!, target: f.shadow!.target! }, compareHeaders: f.compare?.headers ?? [], ...(f.versions ? { versions: f.versions } : {}) },
            dedupeTtl: options.shadow.dedupeTtl,
            // Replies go to the observations topic the sidecars were given, or a sidecar's reply channel.
            policy: { replyTo: shadowReplyTopics(options.observationsTopic) },
            ...(options.keyring ? { keyring: options.keyring } : {}),
            ...(options.from ? { from: options.from } : {}),
            ...(options.logger ? { logger: options.logger } : {}),
            ...(options.registry ? { registry: options.registry } : {}),
          })),
        );
        this.log.info({ flows: targets.map((f) => f.name), dedupe: this.replay.store?.kind }, 'shadow delivery started');
      }
      const sagaFlows = options.delivery === false ? [] : options.flows.filter((f) => f.saga !== undefined).map((f) => this.sagaFlow(f));
      if (sagaFlows.length > 0) {
        this.sagaFlows = new SagaFlows({
          bus: options.bus,
          flows: sagaFlows,
          waitMs: options.shadow.window,
          ...(options.observationsTopic ? { observationsTopic: options.observationsTopic } : {}),
          ...(options.from ? { from: options.from } : {}),
          ...(options.logger ? { logger: options.logger } : {}),
          ...(options.registry ? { registry: options.registry } : {}),
        });
        await this.sagaFlows.start();
      }
      if (options.comparator ?? options.shadow.comparator) {
        this.comparator = new Comparator({
          bus: options.bus,
          flows: flowRulesOf(options.flows),
          scope: options.comparatorScope ?? 'flows',
          sharedTopic: options.shadow.sharedObservations,
          window: options.shadow.window,
          maxOpenPairs: options.shadow.maxOpenPairs,
          ...(options.keyring ? { keyring: options.keyring } : {}),
          ...(options.observationsTopic ? { observationsTopic: options.observationsTopic } : {}),
          ...(options.parityTopic ? { parityTopic: options.parityTopic } : {}),
          ...(options.comparatorGroup ? { group: options.comparatorGroup } : {}),
          ...(options.from ? { from: options.from } : {}),
          ...(options.logger ? { logger: options.logger } : {}),
          ...(options.registry ? { registry: options.registry } : {}),
        });
        await this.comparator.start();
      }
    } catch (err) {
      await this.close();
      throw err;
    }
  }

  private sagaFlow(flow: ShadowFlowConfig): SagaFlow {
    const saga = this.options.sagas?.find((s) => s.name === flow.saga);
    if (!saga) throw new ValidationError(ErrorCodes.CONFIG_INVALID, `flow ${flow.name}: saga: no saga named ${JSON.stringify(flow.saga)} under sagas:`);
    return { name: flow.name, topic: flow.topic, saga: sagaDefinition(saga) };
  }

  /** Stops the replay consumers and the dedupe store it opened, the saga flows, then the comparator (publishing what it decided). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.replay.close();
    await this.sagaFlows?.close().catch((err) => this.log.warn({ err }, 'closing the saga flows failed'));
    await this.comparator?.close().catch((err) => this.log.warn({ err }, 'closing the comparator failed'));
  }
}
