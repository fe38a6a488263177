import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { createBus, type CreateBusOptions } from '../src/bus/index.js';
import { signedBus } from '../src/bus/signed-bus.js';
import { loadIdentity, loadSigner } from '../src/events/signature.js';
import { flipPolicy, whyNotOperator } from '../src/flips/policy.js';
import type { Bus, BusHealth } from '../src/bus/types.js';
import { formatIssues } from '../src/config/load.js';
import { ConfigError, describeError, ErrorCodes } from '../src/errors.js';
import { silentLogger, type Logger } from '../src/logger.js';
import { createRegistry, type Registry } from '../src/metrics.js';
import { createAdminControl } from './admin-control.js';
import { createFlipFollower, type FlipFollower } from '../src/flips/follower.js';
import { createAdminServer, loadAdminTls } from './admin.js';
import { sidecarConfigSchema, type SidecarConfig, type SidecarConfigInput } from '../src/config/schema.js';
import { parseListen, sidecarBaseUrl } from '../src/net.js';
import { Keyring } from '../src/crypto/keyring.js';
import { DeliverRuntime } from './deliver.js';
import { Restarting, type Startable } from './restarting.js';
import { RollbackWatcher } from './rollback.js';
import { shadowInProcess } from '../src/config/shadow.js';
import { ShadowRuntime } from '../shadow/runtime.js';
import { FlowTable } from './flow-table.js';
import { newInstanceId, ReplyChannel } from './reply.js';
import { DataPlane } from './forward.js';
import { Discovery } from './discovery.js';
import { Contract } from '../src/discovery/contract.js';
import type { DiscoverySummary } from '../src/discovery/recorder.js';
import { SidecarMetrics } from './metrics.js';
import { Outbox } from './outbox.js';
import { Spool } from './spool.js';

export interface SidecarOptions {
  logger?: Logger;
  /** Registry for the sidecar's metrics (a fresh one when omitted). */
  registry?: Registry;
  /** Passed to createBus (tests inject `connect` to cut Kafka connections). */
  busOptions?: CreateBusOptions;
  /** A bus made and started by the caller (unit tests); the sidecar then neither starts nor closes it. */
  bus?: Bus;
  /** Environment for the encryption key (default process.env, read once here, never deeper). */
  env?: NodeJS.ProcessEnv;
  /** How long start waits for the flip log before serving with the config's modes (default 15 s). */
  flipLogBootWaitMs?: number;
  /** How long start waits for the bus before listening anyway, unless `publisher.requireBus` (default 3 s). */
  busBootWaitMs?: number;
}

export interface Address {
  host: string;
  port: number;
  /** `http://host:port` (`https://` for an admin listener with `admin.tls`) */
  url: string;
}

/** A running sidecar. */
export interface SidecarHandle {
  readonly config: SidecarConfig;
  readonly data: Address;
  readonly admin: Address;
  readonly flows: FlowTable;
  /** The outbox in front of the bus (configured by the `publisher` section). */
  readonly publisher: Outbox;
  readonly registry: Registry;
  /** This replica's reply channel for bus-mode calls. */
  readonly replies: ReplyChannel;
  /** The `deliver:` consumers, once started (undefined without a `deliver:` section). */
  deliver(): DeliverRuntime | undefined;
  /** The in-process shadow side (`shadow.inProcess`, default on the embedded bus), once the bus is up. */
  shadow(): ShadowRuntime | undefined;
  /** The bus, once started (undefined while the sidecar is still trying to reach it). */
  bus(): Bus | undefined;
  /**
   * What discovery (`observe:`) has seen so far, undefined without it. `discoveryTable(discoverFlows([...]))`
   * (src/discovery/) prints it as `cutover discover` does.
   */
  discovery(): DiscoverySummary | undefined;
  /**
   * Stops accepting requests, lets in-flight ones finish (up to shutdownTimeout), sends the queue and
   * spool (up to publisher.drainTimeout; what is left stays spooled), then closes the bus and listeners.
   * Idempotent.
   */
  close(): Promise<void>;
}

/** Validates sidecar config input; throws one ConfigError listing every problem with its path. */
export function parseSidecarConfig(input: SidecarConfigInput | SidecarConfig): SidecarConfig {
  const result = sidecarConfigSchema.safeParse(input);
  if (!result.success) {
    const issues = formatIssues(result.error);
    throw new ConfigError(ErrorCodes.CONFIG_INVALID, `config is invalid:\n  ${issues.join('\n  ')}`, issues);
  }
  return result.data;
}

/**
 * Starts a sidecar: the data-plane listener (forwarding + dual-write) and the admin listener. Config
 * problems (including a missing encryption key) throw a ConfigError before anything listens. An
 * unreachable bus does not stop the sidecar unless `publisher.requireBus` is set: it spools and keeps
 * retrying, because the direct path must not depend on the bus.
 */
/** How long a starting sidecar waits for the flip log before it serves with the config's modes. */
const FLIP_LOG_BOOT_WAIT_MS = 15_000;
/**
 * How long a starting sidecar waits for its first bus connection before it listens anyway. A broker that
 * accepts connections but never answers would otherwise hold the direct path for a whole connect timeout;
 * a reachable bus answers well within this, so its flip log is still applied before the first request.
 */
const BUS_BOOT_WAIT_MS = 3_000;

export async function startSidecar(input: SidecarConfigInput | SidecarConfig, options: SidecarOptions = {}): Promise<SidecarHandle> {
  const config = parseSidecarConfig(input);
  const env = options.env ?? process.env;
  const logger = (options.logger ?? silentLogger()).child({ component: 'sidecar', agent: config.agent });
  // The current key encrypts what the sidecar publishes; the in-process shadow side and `deliver:` decrypt with all of them.
  const keyring = config.encryption ? Keyring.fromConfig(config.encryption, env) : undefined;
  const cipher = keyring?.current;
  const registry = options.registry ?? createRegistry();
  const flows = new FlowTable(config.flows, config.observationsTopic);
  // Before anything listens or opens: an unreadable contract or admin certificate is a config error.
  const contract = config.contract !== undefined ? Contract.load(config.contract) : undefined;
  const adminTls = config.admin.tls ? loadAdminTls(config.admin.tls) : undefined;

  let outbox: Outbox | undefined;
  const metrics = new SidecarMetrics(registry, config.agent, {
    queueDepth: () => outbox?.queueDepth ?? 0,
    spoolDepth: () => spool.depth,
    spoolBytes: () => spool.sizeOnDisk,
    spoolHealthy: () => spool.healthy,
  });
  const spool = new Spool({
    dir: config.spool.dir ?? path.join(config.dataDir, 'spool', config.agent),
    maxBytes: config.spool.maxBytes,
    segmentBytes: config.spool.segmentBytes,
    durability: config.spool.durability,
    commitInterval: config.spool.commitInterval,
    backoff: config.publisher.backoff,
    maxBackoff: config.publisher.maxBackoff,
    logger: logger.child({ component: 'spool' }),
    onError: (op, reason) => metrics.spoolErrors.inc({ op, reason }),
  });
  try {
    await spool.open();
  } catch (err) {
    // Two sidecars on one spool would corrupt it: refuse. A disk that cannot hold a spool must not stop
    // the direct path: forward, publish from memory, drop (and count) what the bus does not take, and
    // retry opening the spool as events come.
    if (describeError(err).code === ErrorCodes.SPOOL_LOCKED) throw err;
    logger.error({ err }, 'spool unusable: forwarding anyway; events the bus does not take are dropped until the spool opens');
  }

  const cleanup: Array<() => Promise<void>> = [() => spool.close()];
  try {
    // Keys are read before anything connects: a bad key fails the boot, not the first publish.
    const identity = loadIdentity(config);
    // The control plane: who may flip, and the key this sidecar's admin API signs flips with.
    const policy = flipPolicy(config.trust);
    const operatorSigner = config.admin.operatorIdentity ? loadSigner(config.admin.operatorIdentity, config.admin.operatorIdentity.agent, 'admin.operatorIdentity') : identity.signer;
    const busLink = new BusLink(config, { ...options, busOptions: { registry, ...options.busOptions } }, logger, (bus) => signedBus(bus, { ...identity, registry, logger }));
    cleanup.unshift(() => busLink.close());
    const configModes = new Map(config.flows.map((f) => [f.name, f.mode]));
    if (policy?.enforce && config.flows.some((f) => f.rollback === 'auto')) {
      const signer = identity.signer;
      if (!signer || !policy.keys.get(signer.agent)?.has(signer.keyId)) {
        logger.warn({ agent: signer?.agent ?? null }, 'automatic rollbacks of this sidecar would be ignored by every follower: give it an identity: whose key is in trust.agents');
      }
    }
    const notOperator = whyNotOperator(policy, operatorSigner);
    if (notOperator) logger.info({ reason: notOperator }, 'the admin API refuses flips on this sidecar (CUTOVER_FLIP_NOT_OPERATOR): set admin.operatorIdentity to flip through it');
    // Flow modes come from the flip log (src/flips): follow it from whenever the bus is reachable.
    let follower: FlipFollower | undefined;
    let followerReady: Promise<void> | undefined;
    cleanup.unshift(async () => follower?.close());
    // This replica's reply channel (bus mode), the callee side (`deliver:`) and, with `shadow.inProcess`
    // (by default on the embedded bus, where one machine runs everything; elsewhere `cutover shadow` scales
    // it apart), the shadow side: all on the same bus, each started again after a failed start (say a slow
    // group join) rather than left off until the process restarts.
    const replies = new ReplyChannel(config.agent, config.replies.instance ?? newInstanceId(), logger.child({ component: 'replies' }));
    let replyRunner: Restarting<Startable> | undefined;
    let deliver: Restarting<DeliverRuntime> | undefined;
    let shadowSide: Restarting<ShadowRuntime> | undefined;
    let rollback: Restarting<RollbackWatcher> | undefined;
    busLink.onConnected = (bus) => {
      follower = createFlipFollower({ bus, flows, logger, policy, configModes, onRejected: (j) => metrics.flipsRejected.inc({ flow: j.flip.flow, reason: j.rejection!.reason }) });
      followerReady = follower.start().catch(() => undefined);
      if (config.flows.length > 0) {
        replyRunner = new Restarting('reply channel (bus-mode calls get 503 or their fallback until it consumes)', () => ({ start: () => replies.start(bus), close: () => replies.close() }), logger);
        void replyRunner.start();
      }
      const deliverConfig = config.deliver;
      if (deliverConfig) {
        deliver = new Restarting(
          'deliver consumers',
          () =>
            new DeliverRuntime({
              bus,
              busConfig: config.bus,
              config: deliverConfig,
              flows: config.flows,
              target: deliverConfig.target ?? config.upstream!,
              dataDir: config.dataDir,
              capture: config.capture,
              redact: config.redact,
              registry,
              ...(keyring ? { keyring } : {}),
              logger: logger.child({ component: 'deliver' }),
            }),
          logger,
        );
        void deliver.start();
      }
      if (shadowInProcess(config)) {
        shadowSide = new Restarting(
          'in-process shadow side',
          () =>
            new ShadowRuntime({
              bus,
              busConfig: config.bus,
              flows: config.flows,
              shadow: config.shadow,
              sagas: config.sagas,
              dataDir: config.dataDir,
              observationsTopic: config.observationsTopic,
              ...(keyring ? { keyring } : {}),
              logger,
              registry,
            }),
          logger,
        );
        void shadowSide.start();
      }
      if (config.flows.some((f) => f.rollback !== 'off')) {
        rollback = new Restarting(
          'automatic rollback watch',
          () => new RollbackWatcher({ bus, flows: config.flows, readiness: config.readiness, logger, registry, policy }),
          logger,
        );
        void rollback.start();
      }
    };
    cleanup.unshift(async () => {
      await replyRunner?.close();
      await replies.close();
      await deliver?.close();
      await shadowSide?.close();
      await rollback?.close();
    });
    await busLink.start(options.busBootWaitMs ?? BUS_BOOT_WAIT_MS);
    // With the bus reachable at boot, serve nothing before the log's modes are applied.
    // Bounded: a flip log that cannot be read in time must not keep the data plane from serving. The
    // follower keeps going and applies the log's modes as soon as it has read them.
    if (followerReady) {
      const bootWait = options.flipLogBootWaitMs ?? FLIP_LOG_BOOT_WAIT_MS;
      const applied = await Promise.race([followerReady.then(() => true), new Promise<false>((r) => setTimeout(() => r(false), bootWait).unref())]);
      if (!applied) logger.warn({ waitedMs: bootWait }, 'flip log not read yet; serving with the config modes until it is');
    }
    await deliver?.ready;
    await shadowSide?.ready;
    // A Kafka group join takes seconds: wait for the reply channel only when a flow starts on the bus path.
    if (flows.entries.some((e) => e.mode === 'bus' || e.mode.startsWith('canary:'))) await replyRunner?.ready;

    outbox = new Outbox({ config: config.publisher, bus: () => busLink.current, spool, logger: logger.child({ component: 'publisher' }), hooks: metrics.outboxHooks() });
    outbox.start();
    const out = outbox;
    cleanup.unshift(() => out.close());

    const discovery = config.observe ? new Discovery({ agent: config.agent, dataDir: config.dataDir, config: config.observe, logger: logger.child({ component: 'discovery' }) }) : undefined;
    discovery?.start();
    cleanup.unshift(async () => discovery?.close());
    const plane = new DataPlane({
      agent: config.agent,
      upstream: config.upstream,
      routes: config.routes,
      upstreamTimeout: config.upstreamTimeout,
      upstreamIdleTimeout: config.upstreamIdleTimeout,
      capture: config.capture,
      redact: config.redact,
      flows,
      outbox,
      metrics,
      cipher,
      keyring,
      replies,
      discovery,
      contract,
      logger: logger.child({ component: 'data-plane' }),
    });
    const admin = createAdminServer({
      token: config.admin.token,
      tokens: config.admin.tokens,
      maxAuthFailures: config.admin.maxAuthFailures,
      auth: config.admin.auth,
      ...(adminTls ? { tls: adminTls, clientCerts: config.admin.clientCerts } : {}),
      agent: config.agent,
      flows,
      publisher: outbox,
      registry,
      busHealth: () => busLink.health(),
      listening: () => plane.server.listening,
      ...(discovery ? { discovery: () => discovery.summary() } : {}),
      consumers: () => ({ replies: replies.ready, ...(config.deliver ? { deliver: deliver?.current?.ready === true } : {}) }),
      logger: logger.child({ component: 'admin' }),
      control: createAdminControl({ bus: () => busLink.current, flows: config.flows, readiness: config.readiness, baseUrl: sidecarBaseUrl(config.listen), table: flows, logger: logger.child({ component: 'flips' }), policy, signer: operatorSigner }),
    });

    const dataAddress = await listen(plane.server, config.listen);
    cleanup.unshift(async () => {
      plane.server.close();
      plane.server.closeAllConnections();
      plane.destroyConnections();
    });
    const adminAddress = await listen(admin, config.admin.listen, adminTls ? 'https' : 'http');
    cleanup.unshift(() => closeServer(admin));
    logger.info({ listen: dataAddress.url, admin: adminAddress.url, upstream: config.upstream, routes: config.routes.length, flows: config.flows.length, bus: config.bus.kind }, 'sidecar listening');

    let closing: Promise<void> | undefined;
    const close = async (): Promise<void> => {
      logger.info({ inFlight: plane.active }, 'sidecar stopping: draining in-flight requests');
      // Stop accepting; idle keep-alive connections close now, busy ones after their response.
      plane.server.close();
      plane.server.closeIdleConnections();
      const drained = await plane.drained(config.shutdownTimeout);
      if (!drained) logger.warn({ inFlight: plane.active }, 'shutdown timeout: closing requests still in flight');
      plane.server.closeAllConnections();
      plane.destroyConnections();
      await discovery?.close();
      await replyRunner?.close();
      await replies.close();
      await deliver?.close();
      await out.close();
      // After the outbox: the last direct observations still reach the in-process comparator's topic.
      await shadowSide?.close();
      await rollback?.close();
      logger.info({ ...out.stats, leftInSpool: spool.depth }, 'publisher drained');
      await closeServer(admin);
      await follower?.close();
      await busLink.close();
      await spool.close();
    };

    return {
      config,
      data: dataAddress,
      admin: adminAddress,
      flows,
      publisher: outbox,
      registry,
      replies,
      deliver: () => deliver?.current,
      shadow: () => shadowSide?.current,
      bus: () => busLink.current,
      discovery: () => discovery?.summary(),
      close: () => (closing ??= close()),
    };
  } catch (err) {
    for (const step of cleanup) await step().catch(() => undefined);
    throw err;
  }
}

/**
 * Owns the sidecar's bus: starts it, and when it is unreachable at start keeps retrying in the
 * background with a fresh adapter each time (an adapter whose start failed is not reused).
 */
class BusLink {
  current: Bus | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly owned: boolean;
  private attempt: Promise<void> | undefined;
  /** The bus of the attempt under way, not usable yet. */
  private starting: Bus | undefined;
  /** Called once with the bus when it first becomes usable (at start or after retries). */
  onConnected: ((bus: Bus) => void) | undefined;

  constructor(
    private readonly config: SidecarConfig,
    private readonly options: SidecarOptions,
    private readonly logger: Logger,
    /** Adds agent identity (signing, verification) to each bus this link hands out. */
    private readonly wrap: (bus: Bus) => Bus,
  ) {
    this.owned = options.bus === undefined;
  }

  /**
   * Connects the bus, waiting at most `bootWaitMs` (all the way with `publisher.requireBus`); a start still
   * under way goes on in the background, and one that fails is retried with backoff.
   */
  async start(bootWaitMs: number): Promise<void> {
    if (!this.owned) {
      this.current = this.options.bus && this.wrap(this.options.bus);
      if (this.current) this.onConnected?.(this.current);
      return;
    }
    let booting = true;
    let settled = false;
    const first = this.tryStart().finally(() => (settled = true)).catch((err: unknown) => {
      const { code } = describeError(err);
      if (code === ErrorCodes.BUS_MISCONFIGURED || code === ErrorCodes.CONFIG_INVALID || this.config.publisher.requireBus) {
        if (booting) throw err;
        this.logger.error({ err }, 'bus refused after the sidecar started listening; forwarding, events stay in the spool until restarted with a fixed bus');
        return;
      }
      this.logger.warn({ err }, 'bus unreachable at start; forwarding anyway, spooling events and retrying');
      this.schedule(this.config.publisher.backoff);
    });
    this.attempt = first;
    try {
      if (this.config.publisher.requireBus) await first;
      else await Promise.race([first, new Promise<void>((resolve) => setTimeout(resolve, bootWaitMs).unref())]);
    } finally {
      booting = false;
    }
    if (!settled) this.logger.warn({ waitedMs: bootWaitMs }, 'bus not connected yet; listening anyway, connecting in the background');
  }

  async health(): Promise<BusHealth | undefined> {
    return this.current?.health();
  }

  private async tryStart(): Promise<void> {
    const bus = await createBus(this.config.bus, { ...this.options.busOptions, logger: this.options.logger ?? silentLogger() });
    this.starting = bus;
    try {
      await bus.start();
    } catch (err) {
      await bus.close().catch(() => undefined);
      throw err;
    } finally {
      this.starting = undefined;
    }
    if (this.closed) {
      await bus.close();
      return;
    }
    this.current = this.wrap(bus);
    this.onConnected?.(this.current);
  }

  private schedule(delay: number): void {
    if (this.closed) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.attempt = this.tryStart().then(
        () => this.logger.info('bus reachable; sending spooled events'),
        (err: unknown) => {
          this.logger.debug({ err }, 'bus still unreachable');
          this.schedule(Math.min(this.config.publisher.maxBackoff, delay * 2));
        },
      );
    }, delay);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    // A start still waiting on a silent broker is given up at once rather than waited out.
    await this.starting?.close().catch(() => undefined);
    await this.attempt?.catch(() => undefined);
    if (this.owned) await this.current?.close();
  }
}

function listen(server: http.Server, address: string, scheme: 'http' | 'https' = 'http'): Promise<Address> {
  const { host, port } = parseListen(address);
  return new Promise<Address>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const a = server.address() as AddressInfo;
      const h = a.family === 'IPv6' ? `[${a.address}]` : a.address;
      resolve({ host: a.address, port: a.port, url: `${scheme}://${h}:${a.port}` });
    });
  });
}

function closeServer(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
