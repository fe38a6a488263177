import type { BusConfig } from '../src/config/bus.js';
import type { Bus } from '../src/bus/types.js';
import type { CloudEvent } from '../src/events/types.js';
import type { FlowConfig } from '../src/config/flow.js';
import type { Logger } from '../src/logger.js';
import { createDedupeStore, type DedupeStore } from '../src/handling/dedupe/index.js';
import { DEFAULT_REPLY_HEADERS, isReplyChannel } from '../src/http/replay.js';
import type { Registry } from 'prom-client';
import { ReplayConsumers, type ReplayConsumer } from '../shadow/replay-consumer.js';
import type { CaptureConfig, DeliverConfig, RedactConfig } from '../src/config/sidecar.js';
import type { Keyring } from '../src/crypto/keyring.js';

/** Consumer group of a flow's `deliver:` consumers (all replicas of the callee share it). */
export function deliverGroup(flow: string): string {
  return `cutover.deliver.${flow}`;
}

/**
 * Which events the callee side serves: commands of the bus path (canary/bus modes, or published by a
 * bus-native producer without a mode). Shadow copies are skipped: their direct call already reached the
 * agent, and calling it again would execute the call twice.
 */
export function isDeliverable(event: CloudEvent): boolean {
  return event.cutovermode !== 'shadow';
}

export interface DeliverOptions {
  bus: Bus;
  busConfig: BusConfig;
  config: DeliverConfig;
  flows: readonly FlowConfig[];
  /** The agent: `deliver.target`, else the sidecar's upstream. */
  target: string;
  dataDir: string;
  logger: Logger;
  /** Overrides the dedupe store chosen from the bus (tests). Not closed here when given. */
  dedupe?: DedupeStore;
  /**
   * The sidecar's request header allow-list and redaction: the headers a command may carry to the agent.
   * Default: the defaults of `capture.requestHeaders` and `redact.headers`.
   */
  capture?: Pick<CaptureConfig, 'requestHeaders'>;
  redact?: Pick<RedactConfig, 'headers'>;
  /** Where refused commands are counted (`cutover_replay_refused_total`). */
  registry?: Registry;
  /**
   * The sidecar's keys (`encryption:`): encrypted request fields are decrypted before the agent sees them;
   * a value that does not decrypt dead-letters the command with CUTOVER_CRYPTO_FAILED.
   */
  keyring?: Keyring;
}

/**
 * The callee side of bus mode: one replay consumer per flow named in `deliver.flows` (the shadow side's
 * ReplayConsumer: rebuild the HTTP call from the command, send it to the local agent, reply
 * to the command's `replyto` with status, headers and body). Each command id is executed once per group
 * (dedupe store), so a redelivery after a rebalance does not call the agent again.
 */
export class DeliverRuntime {
  private readonly group: ReplayConsumers;
  private consuming = false;
  private closed = false;

  constructor(private readonly opts: DeliverOptions) {
    this.group = new ReplayConsumers({
      ...(opts.dedupe ? { dedupe: opts.dedupe } : {}),
      openDedupe: () => createDedupeStore(opts.busConfig, { dataDir: opts.dataDir }),
      logger: opts.logger,
    });
  }

  get consumers(): readonly ReplayConsumer[] {
    return this.group.consumers;
  }

  /** True once every flow's consumer has joined its group (false while starting, after a failed start, after close). */
  get ready(): boolean {
    return this.consuming && !this.closed;
  }

  async start(): Promise<void> {
    const { opts } = this;
    await this.group.start(
      opts.config.flows.map((name) => {
        // Validated at boot: every name is a declared flow.
        const flow = opts.flows.find((f) => f.name === name)!;
        return {
          bus: opts.bus,
          flow: {
            name: flow.name,
            topic: flow.topic,
            match: flow.match,
            shadow: { target: opts.target, timeout: opts.config.timeout, concurrency: opts.config.concurrency, maxAttempts: opts.config.maxAttempts },
            compareHeaders: DEFAULT_REPLY_HEADERS,
            // The callee side replays to the real agent: its version is the one the direct side reports.
            ...(flow.versions ? { versions: { header: flow.versions.header, shadow: flow.versions.direct } } : {}),
          },
          group: deliverGroup(flow.name),
          accept: isDeliverable,
          replySource: '/cutover/deliver',
          from: opts.config.from,
          logger: opts.logger,
          // The agent's answer goes only to a waiting sidecar's reply channel: a command naming any other
          // topic (the observations topic included: deliver never serves shadow copies) is refused.
          policy: {
            replyTo: isReplyChannel,
            ...(opts.capture ? { headers: opts.capture.requestHeaders } : {}),
            ...(opts.redact ? { denied: opts.redact.headers } : {}),
          },
          // The reply is sealed like every bus result; the waiting sidecar decrypts it for its caller.
          ...(opts.keyring ? { keyring: opts.keyring } : {}),
          // Metrics are shared per registry (ReplayMetrics.of), so every flow's consumer can be given it.
          ...(opts.registry ? { registry: opts.registry } : {}),
        };
      }),
    );
    if (this.closed) return;
    this.consuming = true;
    opts.logger.info({ flows: opts.config.flows, target: opts.target }, 'deliver consuming');
  }

  /** Stops the consumers (deliveries in flight finish, bounded by the bus), then the dedupe store it opened. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    await this.group.close();
  }
}
