import http from 'node:http';
import type { Bus } from '../../src/bus/types.js';
import { openBus } from '../../src/bus/index.js';
import { signedBus } from '../../src/bus/signed-bus.js';
import { loadIdentity } from '../../src/events/signature.js';
import { createLogger } from '../../src/logger.js';
import { createRegistry } from '../../src/metrics.js';
import { ShadowRuntime } from '../../shadow/runtime.js';
import { Keyring } from '../../src/crypto/keyring.js';
import { ExitCode, loadConfig, parseCommandArgs, untilStopped, usageError, type CliIo, type CommandDeps } from '../io.js';
import { closeMetrics, metricsListen, serveMetrics } from '../metrics-server.js';

export const SHADOW_USAGE = `usage: cutover shadow --config FILE [--only delivery|comparator] [--metrics HOST:PORT]

Runs the shadow side on its own: a delivery consumer per flow with a shadow.target (consumer group
cutover.shadow.<flow>), the saga of each flow with a saga (group cutover.saga-flow.<flow>, with an
orchestrator replica), and the comparator for the config's flows (group cutover.comparator.<flow> each).
Start several to scale out. --metrics serves Prometheus metrics at http://HOST:PORT/metrics (bearer
admin.token when the config has one; without a token only on a loopback address).`;

/**
 * `cutover shadow --config FILE`: runs delivery consumers and comparator until SIGINT/SIGTERM (or
 * `io.signal`), then drains and returns 0. Usage, config and runtime failures are thrown.
 */
export async function shadowCommand(argv: string[], io: CliIo, deps: CommandDeps = {}): Promise<number> {
  const { values } = parseCommandArgs(argv, { config: { type: 'string', short: 'c' }, only: { type: 'string' }, metrics: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, SHADOW_USAGE);
  if (values.help) {
    io.out(SHADOW_USAGE);
    return ExitCode.OK;
  }
  if (!values.config) throw usageError('shadow needs --config FILE', SHADOW_USAGE);
  if (values.only !== undefined && values.only !== 'delivery' && values.only !== 'comparator') {
    throw usageError(`--only takes delivery or comparator, got ${JSON.stringify(values.only)}`, SHADOW_USAGE);
  }
  const metricsAt = metricsListen(values.metrics, SHADOW_USAGE);

  let runtime: ShadowRuntime | undefined;
  let bus: Bus | undefined;
  let metricsServer: http.Server | undefined;
  try {
    const config = loadConfig(values.config, deps);
    const registry = createRegistry({ defaultMetrics: true });
    if (metricsAt) metricsServer = await serveMetrics(config, metricsAt, registry);
    const logger = deps.logger ?? createLogger({ level: config.log.level });
    const identity = loadIdentity(config);
    // Read once here: a configured key that is missing stops the start, naming its variable.
    const keyring = config.encryption ? Keyring.fromConfig(config.encryption, deps.env ?? process.env) : undefined;
    bus = signedBus(await (deps.openBus ?? ((c, l) => openBus(c, { logger: l, registry })))(config.bus, logger), { ...identity, registry, logger });
    runtime = new ShadowRuntime({
      bus,
      busConfig: config.bus,
      flows: config.flows,
      shadow: config.shadow,
      sagas: config.sagas,
      dataDir: config.dataDir,
      logger,
      registry,
      delivery: values.only !== 'comparator',
      comparator: values.only === 'delivery' ? false : config.shadow.comparator,
      ...(keyring ? { keyring } : {}),
      ...(config.observationsTopic ? { observationsTopic: config.observationsTopic } : {}),
    });
    await runtime.start();
    const delivering = runtime.consumers.map((c) => c.group);
    const sagaFlows = config.flows.filter((f) => f.saga !== undefined && runtime!.sagaFlows).map((f) => `${f.name} → saga ${f.saga}`);
    io.out(`shadow: bus ${config.bus.kind}; delivery ${delivering.length ? delivering.join(', ') : 'none'}${sagaFlows.length ? `; sagas ${sagaFlows.join(', ')}` : ''}; comparator ${runtime.comparator ? 'on' : 'off'}${metricsServer ? `; metrics http://${values.metrics}/metrics` : ''}`);
    await untilStopped(io.signal);
    io.out('shadow: stopping');
    return ExitCode.OK;
  } finally {
    await runtime?.close().catch((err) => io.err(`closing the shadow runtime failed: ${(err as Error).message}`));
    await bus?.close().catch(() => undefined);
    await closeMetrics(metricsServer);
  }
}
